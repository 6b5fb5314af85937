//! The common layers every service's routes run behind.
//!
//! In order: request id (`X-Request-Id`, generated when absent or not 1–128 visible ASCII
//! characters, echoed back) → request span and access log (header values cut to
//! [`telemetry::MAX_LOGGED_VALUE`] bytes) → early 413 on `Content-Length`, load shedding (503 +
//! `Retry-After` beyond `MAX_CONCURRENT_REQUESTS`, health routes exempt) and a whole-request
//! timeout → body limit → the service's routes → 404/405 problem fallbacks.
//!
//! The first three are one middleware, [`front`]: every request passes through it, and one
//! layer costs one boxed future and one `Next` where four layers cost four
//! (`bench/RESULTS.md`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::HeaderName;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::body::too_large;
use crate::config::ServerConfig;
use crate::problem::{self, Problem};
use crate::telemetry;

#[derive(Debug)]
struct Limits {
    max_body_bytes: usize,
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

/// Wraps a service's routes with the common layers and problem fallbacks.
pub fn with_common_layers(router: Router, cfg: &ServerConfig) -> Router {
    let limits = Arc::new(Limits {
        max_body_bytes: cfg.max_body_bytes,
        in_flight: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
        request_timeout: cfg.request_timeout,
    });
    router
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(limits, front))
}

/// `X-Request-Id`.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest `X-Request-Id` kept from a client.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Whether a client's `X-Request-Id` is kept: 1 to [`MAX_REQUEST_ID_BYTES`] visible ASCII
/// characters (no space, no control character).
fn acceptable_request_id(id: &HeaderValue) -> bool {
    let id = id.as_bytes();
    (1..=MAX_REQUEST_ID_BYTES).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

/// Every request's way in: its id (the client's `X-Request-Id` when it is 1–128 visible ASCII
/// characters, else a new UUID — logged as a replacement when the client sent one), set as the
/// request's only `X-Request-Id` (what the routes read and the caller propagates) and echoed on
/// the answer; its span and request log line; then [`guard`].
async fn front(State(limits): State<Arc<Limits>>, mut req: Request, next: Next) -> Response {
    let mut sent = req.headers().get_all(&X_REQUEST_ID).iter();
    let (first, more) = (sent.next(), sent.next().is_some());
    let (request_id, replaced) = match first {
        Some(id) if acceptable_request_id(id) => (id.clone(), None),
        other => {
            let mut buf = uuid::Uuid::encode_buffer();
            let id =
                HeaderValue::from_str(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            (id, other.map(|v| v.len()))
        }
    };
    if more || first != Some(&request_id) {
        req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
    }
    let mut res = observe(limits, &request_id, replaced, req, next).await;
    if !res.headers().contains_key(&X_REQUEST_ID) {
        res.headers_mut().insert(X_REQUEST_ID, request_id);
    }
    res
}

async fn guard(limits: Arc<Limits>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(Some(limits.max_body_bytes)).into_response();
    }
    let _permit = if req.uri().path().starts_with("/health/") {
        None
    } else {
        match limits.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::warn!("load shed: too many requests in flight");
                return Problem::unavailable(
                    "the service is at its concurrency limit; retry shortly",
                    1,
                )
                .into_response();
            }
        }
    };
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Problem::unavailable(
            format!(
                "the request did not complete within {} ms",
                limits.request_timeout.as_millis()
            ),
            1,
        )
        .into_response(),
    }
}

/// Opens the request's span, whose fields repeat in every line of the request: header values
/// (and the path) are escaped and cut to [`telemetry::MAX_LOGGED_VALUE`] bytes.
async fn observe(
    limits: Arc<Limits>,
    request_id: &HeaderValue,
    replaced: Option<usize>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let headers = req.headers();
    let cap = |s| telemetry::escape_capped(s, telemetry::MAX_LOGGED_VALUE);
    // Visible ASCII by now (see `front`); escaped all the same.
    let request_id = cap(request_id.to_str().unwrap_or(""));
    // The last X-Forwarded-For entry is the one Cloud Run's front end appended; earlier ones
    // are whatever the client wrote.
    let remote_ip = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| cap(s).into_owned())
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        });
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        http.method = %req.method(),
        http.path = %cap(req.uri().path()),
        http.user_agent = tracing::field::Empty,
        http.remote_ip = tracing::field::Empty,
        http.protocol = ?req.version(),
        otel.kind = tracing::field::Empty,
    );
    // With tracing on: a server span continuing the incoming trace (no-op otherwise).
    if telemetry::otel::enabled() {
        span.record("otel.kind", "server");
        telemetry::otel::set_remote_parent(&span, headers);
    }
    if let Some(tc) = telemetry::trace_context(headers) {
        span.record("trace_id", tc.trace_id.as_str());
        if let Some(s) = tc.span_id.as_deref() {
            span.record("span_id", s);
        }
    }
    if let Some(ua) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        span.record("http.user_agent", cap(ua).as_ref());
    }
    if let Some(ip) = remote_ip.as_deref() {
        span.record("http.remote_ip", ip);
    }
    if let Some(bytes) = replaced {
        span.in_scope(|| {
            tracing::info!(
                replaced_request_id_bytes = bytes,
                "X-Request-Id replaced by a new id: not 1 to {MAX_REQUEST_ID_BYTES} visible ASCII characters"
            );
        });
    }
    let res = guard(limits, req, next).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                http.status = status,
                http.latency_us = latency_us,
                "request finished"
            );
        } else {
            tracing::info!(
                http.status = status,
                http.latency_us = latency_us,
                "request finished"
            );
        }
    });
    res
}
