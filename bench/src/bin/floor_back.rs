//! `floor-back`: the second hop of the floor. `POST /` parses a JSON object and answers `201`
//! with it wrapped in a small entity (`{"id", "body"}`); no authentication, no storage.
//! `GET /health/ready` answers 200. Listens on `127.0.0.1:$PORT` (default 9082).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

async fn create(Json(body): Json<Map<String, Value>>) -> (StatusCode, Json<Value>) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    (StatusCode::CREATED, Json(json!({"id": id, "body": body})))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = bench::floor::bind(bench::floor::port(9082)?).await?;
    let router = Router::new()
        .route("/", post(create))
        .route("/health/ready", get(|| async { "ok" }));
    bench::floor::serve(listener, router).await
}
