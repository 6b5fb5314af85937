//! The echo service: a router with the real [`ServiceAuth`] behind the common layers on
//! 127.0.0.1:0, answering `POST /` with 201 and the [`Caller`] it extracted — for the suites
//! that test authentication against a running service without a store.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing;
use serde_json::json;
use shared::auth::{AuthConfig, Caller, ServiceAuth, protect};
use shared::config::{MapSource, ServerConfig};

/// Starts the echo service with the authentication settings `cfg` and returns its base URL
/// (`http://127.0.0.1:PORT`). It runs until the test's runtime ends.
pub async fn serve(cfg: AuthConfig) -> String {
    serve_with(ServiceAuth::new(
        &cfg,
        reqwest::Client::new(),
        shared::auth::EndUsers::None,
    ))
    .await
}

/// The same with an authentication built by the test (forwarded end users, say).
pub async fn serve_with(auth: ServiceAuth) -> String {
    let routes = Router::new().route(
        "/",
        protect(
            routing::post(|p: Caller| async move {
                (
                    StatusCode::CREATED,
                    axum::Json(
                        json!({"caller": p.email(), "on_behalf_of": p.on_behalf_of_email()}),
                    ),
                )
            }),
            &auth,
        ),
    );
    let server = ServerConfig::from_source(&MapSource::default()).expect("server config");
    let router = shared::server::with_common_layers(routes, &server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(shared::server::serve(
        listener,
        router,
        std::future::pending(),
        Duration::from_secs(1),
        Duration::from_secs(10),
    ));
    format!("http://{addr}")
}
