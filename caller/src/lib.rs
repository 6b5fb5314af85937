//! The caller service: authenticates its own client, then forwards `{"foo"}` to the called
//! service as `{"bar"}` with a cached Google ID token.
//!
//! - [`config`]: settings (`CALLED_URL`, token source, deadlines, auth) and `--help`.
//! - [`routes`]: the handlers (`POST /`, health).
//! - [`forward`]: the outbound call — token, headers, retries, deadline, outcome mapping.
//! - [`hop`]: the lean pooled client the forward sends with (no redirects, rustls).
//! - [`token`]: ID-token sources (metadata server, google-cloud-auth) under one cache.
//! - [`openapi`]: the generated OpenAPI 3.1 document (`GET /openapi.json`).
//! - [`error`]: the one error enum and its HTTP mapping.
//!
//! `main.rs` only parses config, starts telemetry, binds and calls [`run`].

pub mod config;
pub mod error;
pub mod forward;
pub mod hop;
pub mod openapi;
pub mod routes;
/// ID tokens for the hop to called: the auth library's sources and cache.
pub use invoker_auth::fetch as token;

use std::future::Future;
use std::sync::Arc;

use crate::token::{CacheOptions, TokenCache, build_source};
use axum::Router;
use axum::routing::{get, post};
use shared::auth::{EndUsers, ServiceAuth};
use shared::problem::Problem;
use shared::readiness::{READINESS_TTL, ReadinessCache};
use tokio::net::TcpListener;

pub use config::Config;
use forward::Forwarder;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Who may call this service.
    pub auth: ServiceAuth,
    /// The outbound call.
    pub forwarder: Arc<Forwarder>,
    /// The pooled outbound client (health checks).
    pub http: reqwest::Client,
    /// The last readiness result, so probes cost at most one upstream check a second.
    pub readiness: ReadinessCache<Result<(), Problem>>,
}

/// The routes with all common layers.
pub fn router(state: AppState, cfg: &Config) -> Router {
    let routes = Router::new()
        .route(
            "/",
            shared::auth::protect(post(routes::forward), &state.auth),
        )
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/openapi.json", get(openapi::serve))
        .with_state(state);
    shared::server::with_common_layers(routes, &cfg.server)
}

/// Builds the token source, cache, forwarder and router. Starts fetching the first token in
/// the background so the first request does not wait for it.
pub fn build(cfg: &Config, http: reqwest::Client) -> anyhow::Result<(Router, TokenCache)> {
    let source = build_source(
        cfg.token_source,
        &cfg.called_audience,
        cfg.metadata_host.as_deref(),
        &cfg.credential_files,
        http.clone(),
        cfg.token_fetch_timeout,
    )
    .map_err(|e| anyhow::anyhow!("cannot set up TOKEN_SOURCE: {e}"))?;
    let tokens = TokenCache::new(
        source,
        CacheOptions {
            fetch_timeout: cfg.token_fetch_timeout,
            ..CacheOptions::default()
        },
    );
    let hop = hop::HopClient::new(shared::outbound::CONNECT_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("cannot set up TLS for CALLED_URL: {e}"))?;
    let forwarder = Forwarder::new(
        hop,
        &cfg.called_url,
        tokens.clone(),
        cfg.call_timeout,
        cfg.call_max_attempts,
    )
    .map_err(|e| anyhow::anyhow!("CALLED_URL is not a valid request URI: {e}"))?;
    let auth = ServiceAuth::new(&cfg.auth, http.clone(), EndUsers::Iap(&cfg.iap));
    let warm = auth.clone();
    tokio::spawn(async move { warm.warm_up().await });
    let forwarder = Arc::new(forwarder);
    let readiness = {
        let (forwarder, http) = (Arc::clone(&forwarder), http.clone());
        ReadinessCache::new(READINESS_TTL, move || {
            let (forwarder, http) = (Arc::clone(&forwarder), http.clone());
            async move { routes::check_ready(&forwarder, &http).await }
        })
    };
    let state = AppState {
        auth,
        forwarder,
        http,
        readiness,
    };
    let warm = tokens.clone();
    tokio::spawn(async move { warm.warm_up().await });
    Ok((router(state, cfg), tokens))
}

/// Serves until `shutdown` completes and drains within `SHUTDOWN_GRACE_MS`.
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let http = shared::outbound::client(shared::outbound::CONNECT_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("cannot set up the outbound HTTP client: {e}"))?;
    let (router, _tokens) = build(&cfg, http)?;
    tracing::info!(
        addr = %listener.local_addr()?,
        called = %cfg.called_url,
        audience = %cfg.called_audience,
        token_source = ?cfg.token_source,
        auth_mode = ?cfg.auth.mode,
        "caller listening"
    );
    shared::server::serve(
        listener,
        router,
        shutdown,
        cfg.server.shutdown_grace,
        &cfg.server,
    )
    .await?;
    tracing::info!("caller stopped");
    Ok(())
}
