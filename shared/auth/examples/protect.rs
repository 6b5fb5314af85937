//! A new axum service protected by invoker-auth: only allowed callers get in, a handler reads
//! who called (and for whom), and `/relay` calls another Cloud Run service with a fetched token.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use invoker_auth::fetch::{CacheOptions, DEFAULT_METADATA_HOST, MetadataSource, TokenCache};
use invoker_auth::verify::Verifier;
use invoker_auth::{AllowList, AuthLayer, Authenticator, EndUser, Principal};

/// The other Cloud Run service this one calls, and the cached ID tokens for it.
#[derive(Clone)]
pub struct Downstream {
    /// The HTTP client (one per process: it pools connections).
    pub http: reqwest::Client,
    /// The downstream URL.
    pub url: String,
    /// ID tokens for the downstream service's audience.
    pub tokens: TokenCache,
}

/// `GET /whoami` and `POST /relay` need an allowed caller; `GET /health` does not.
pub fn app(auth: Authenticator, downstream: Downstream) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/relay", post(relay))
        .layer(AuthLayer::new(auth))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(downstream)
}

/// Who called, and for whom (a trusted forwarder's end user).
async fn whoami(principal: Principal, end_user: Option<EndUser>) -> String {
    match end_user {
        Some(EndUser(user)) => format!("{} for {}\n", principal.email(), user.email),
        None => format!("{}\n", principal.email()),
    }
}

/// Calls the downstream service as this service, with a cached ID token.
async fn relay(State(d): State<Downstream>, _caller: Principal) -> Result<String, StatusCode> {
    let token = d
        .tokens
        .get()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let res = d.http.get(&d.url).bearer_auth(token.value()).send().await;
    let res = res.map_err(|_| StatusCode::BAD_GATEWAY)?;
    res.text().await.map_err(|_| StatusCode::BAD_GATEWAY)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // This service's URL (the `aud` of its callers' tokens), who may call it, and the URL of
    // the service it calls, e.g. AUDIENCE=https://me-abc-uc.a.run.app
    // ALLOWED=caller@my-project.iam.gserviceaccount.com,*@example.com
    // DOWNSTREAM_URL=https://other-abc-uc.a.run.app
    let audience = std::env::var("AUDIENCE")?;
    let allowed = AllowList::parse(std::env::var("ALLOWED")?.split(','))?;
    let downstream = std::env::var("DOWNSTREAM_URL")?;

    let auth = Authenticator::builder(Verifier::builder([audience]).build())
        .allow(allowed)
        .build();
    let http = reqwest::Client::new();
    let source = MetadataSource::try_new(
        http.clone(),
        DEFAULT_METADATA_HOST,
        &downstream,
        Duration::from_secs(5),
    )?;
    let tokens = TokenCache::new(Arc::new(source), CacheOptions::default());
    let downstream = Downstream {
        http,
        url: downstream,
        tokens,
    };

    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "8080".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    axum::serve(listener, app(auth, downstream)).await?;
    Ok(())
}
