//! `floor-front`: the first hop of the floor. `POST /` parses a JSON object, renames `"foo"` to
//! `"bar"` and forwards it to `$BACK_URL` with one pooled HTTP client, answering with the back's
//! status and body; no authentication, no retries. `GET /health/ready` answers 200 once the
//! back does. Listens on `127.0.0.1:$PORT` (default 9081).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value};

#[derive(Clone)]
struct Front {
    http: reqwest::Client,
    back: String,
}

async fn forward(State(f): State<Front>, Json(mut body): Json<Map<String, Value>>) -> Response {
    let Some(value) = body.remove("foo") else {
        return (StatusCode::BAD_REQUEST, "missing \"foo\"").into_response();
    };
    body.insert("bar".to_owned(), value);
    let bytes = match serde_json::to_vec(&body) {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let res = f
        .http
        .post(&f.back)
        .header(header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .send()
        .await;
    let res = match res {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match res.bytes().await {
        Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn ready(State(f): State<Front>) -> StatusCode {
    let url = format!("{}health/ready", f.back);
    match f.http.get(url).send().await {
        Ok(r) if r.status().is_success() => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut back = std::env::var("BACK_URL").unwrap_or_else(|_| "http://127.0.0.1:9082/".into());
    if !back.ends_with('/') {
        back.push('/');
    }
    // The same pool settings as invoker's outbound client, so the comparison is fair.
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()?;
    let listener = bench::floor::bind(bench::floor::port(9081)?).await?;
    let router = Router::new()
        .route("/", post(forward))
        .route("/health/ready", get(ready))
        .with_state(Front { http, back });
    bench::floor::serve(listener, router).await
}
