//! The called service: verifies the caller's identity token and persists JSON bodies durably.
//!
//! - [`config`]: settings (`DATABASE_URL`, auth, server) and `--help`.
//! - [`routes`]: the handlers (`POST /`, `GET /entities…`, health).
//! - [`idempotency`]: `Idempotency-Key` validation, body hash, in-flight guard.
//! - [`store`]: the storage interface; SQLite (embedded, group commit) and PostgreSQL backends.
//! - [`openapi`]: the generated OpenAPI 3.1 document (`GET /openapi.json`).
//! - [`error`]: the one error enum and its HTTP mapping.
//!
//! `main.rs` only parses config, starts telemetry, binds and calls [`run`].

pub mod config;
pub mod error;
pub mod idempotency;
pub mod openapi;
pub mod routes;
pub mod store;

use std::future::Future;

use axum::Router;
use axum::routing::{get, post};
use shared::auth::{EndUsers, ServiceAuth, protect};
use shared::problem::Problem;
use shared::readiness::{READINESS_TTL, ReadinessCache};
use tokio::net::TcpListener;

pub use config::Config;
use store::Store;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The storage backend.
    pub store: Store,
    /// Who may call.
    pub auth: ServiceAuth,
    /// Idempotency keys being processed right now.
    pub in_flight: idempotency::InFlight,
    /// The last readiness result, so probes cost at most one store ping a second.
    pub readiness: ReadinessCache<Result<(), Problem>>,
    /// Who reads what (`READ_ALL_PRINCIPALS`) and the page byte bound (`MAX_PAGE_BYTES`).
    pub reads: std::sync::Arc<config::ReadSettings>,
}

/// The routes with all common layers.
pub fn router(state: AppState, cfg: &Config) -> Router {
    let routes = Router::new()
        .route("/", protect(post(routes::create), &state.auth))
        .route("/entities", protect(get(routes::list), &state.auth))
        .route("/entities/{id}", protect(get(routes::get_one), &state.auth))
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/openapi.json", get(openapi::serve))
        .with_state(state);
    shared::server::with_common_layers(routes, &cfg.server)
}

/// A built application: its router and the store to close on shutdown.
pub struct App {
    /// The HTTP routes.
    pub router: Router,
    /// The store.
    pub store: Store,
    /// The readiness cache behind `/health/ready` (its check count shows probe fan-out).
    pub readiness: ReadinessCache<Result<(), Problem>>,
}

/// Opens the store and builds the router.
pub async fn build(cfg: &Config, http: reqwest::Client) -> anyhow::Result<App> {
    let store = Store::open(&cfg.database_url, &cfg.store)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open store {}: {e}",
                store::redact_url(&cfg.database_url)
            )
        })?;
    let auth = ServiceAuth::new(&cfg.auth, http, EndUsers::Forwarded(&cfg.forwarded));
    let warm = auth.clone();
    tokio::spawn(async move { warm.warm_up().await });
    let state = AppState {
        store: store.clone(),
        auth: auth.clone(),
        in_flight: idempotency::InFlight::default(),
        readiness: {
            let (auth, store) = (auth.clone(), store.clone());
            ReadinessCache::new(READINESS_TTL, move || {
                let (auth, store) = (auth.clone(), store.clone());
                async move { routes::check_ready(&auth, &store).await }
            })
        },
        reads: std::sync::Arc::new(cfg.reads.clone()),
    };
    Ok(App {
        readiness: state.readiness.clone(),
        router: router(state, cfg),
        store,
    })
}

/// Serves until `shutdown` completes, drains within `SHUTDOWN_GRACE_MS`, then closes the store
/// (everything acknowledged is already committed; queued writes are committed before exit).
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let http = shared::outbound::client(shared::outbound::CONNECT_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("cannot set up the outbound HTTP client: {e}"))?;
    let app = build(&cfg, http).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        store = %store::redact_url(&cfg.database_url),
        auth_mode = ?cfg.auth.mode,
        "called listening"
    );
    shared::server::serve(
        listener,
        app.router,
        shutdown,
        cfg.server.shutdown_grace,
        &cfg.server,
    )
    .await?;
    app.store.close().await;
    tracing::info!("called stopped");
    Ok(())
}
