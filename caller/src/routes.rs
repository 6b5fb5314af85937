//! HTTP handlers: authenticate the client, validate `"foo"`, forward as `"bar"`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};
use shared::auth::Caller;
use shared::body::{ExactJsonObject, idempotency_key, require_text};
use shared::problem::Problem;

use crate::AppState;
use crate::error::Error;
use crate::forward::{Forwarder, Outgoing, PROPAGATED, forwarded_authorization};

/// Longest accepted `"foo"`, in characters.
pub const MAX_FOO_CHARS: usize = 1024;

/// Request body of `POST /` (other fields are forwarded as they are).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ForwardBody {
    /// A non-empty string of at most 1024 characters; forwarded as `"bar"`.
    #[schema(min_length = 1, max_length = 1024)]
    foo: String,
}

/// `POST /`: `{"foo": …, …}` → called `POST /` with `{"bar": …, …}`.
#[utoipa::path(
    post,
    path = "/",
    request_body(content = ForwardBody, content_type = "application/json",
        description = "A JSON object with a required \"foo\" and no \"bar\"; other fields are forwarded"),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Forwarded (a fresh UUID when absent) and reused on retries"),
        ("traceparent" = Option<String>, Header, description = "Propagated"),
        ("X-Cloud-Trace-Context" = Option<String>, Header, description = "Propagated"),
        ("X-Request-Id" = Option<String>, Header, description = "Propagated (generated when absent)"),
    ),
    responses(
        (status = 201, description = "The called service's answer: the stored entity", body = Object, content_type = "application/json"),
        (status = 400, description = "Body not JSON, not an object, or \"foo\" missing or invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid identity token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Principal not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Same Idempotency-Key still in flight at the called service", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The called service is rate limiting", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The called service failed, answered a redirect (never followed), or rejected this service's credentials", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No identity token obtainable, or overload", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The called service did not answer within CALL_TIMEOUT_MS", body = Problem, content_type = "application/problem+json"),
    ),
    security(("google_id_token" = []))
)]
pub async fn forward(
    State(app): State<AppState>,
    principal: Caller,
    headers: HeaderMap,
    body: ExactJsonObject,
) -> Result<Response, Error> {
    require_text(&body.map, "foo", MAX_FOO_CHARS)?;
    if body.map.contains_key("bar") {
        return Err(Problem::bad_request(
            "field \"bar\" must not be sent: it is derived from \"foo\"",
        )
        .into());
    }
    let key = idempotency_key(&headers)?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Renamed in the exact text: every other value reaches called as the client wrote it
    // (numbers keep every digit). The received body is consumed here (on the blocking pool
    // when large): only the renamed text is held across the forward and its retries.
    let renamed =
        shared::body::off_the_runtime(body.raw.get().len(), move || body.renamed("foo", "bar"))
            .await?
            .map_err(|_| Problem::internal())?;
    let propagated = PROPAGATED
        .iter()
        .filter_map(|name| headers.get(*name).map(|v| (*name, v.clone())))
        .collect();
    // The token the Principal extractor just verified (none with AUTH_MODE=off); the client's
    // own X-Forwarded-Authorization is never passed on.
    let forwarded_authorization = principal
        .identity
        .as_ref()
        .and_then(|_| app.auth.presented_token(&headers))
        .and_then(forwarded_authorization);
    let out = Outgoing {
        body: Bytes::from(renamed),
        idempotency_key: key,
        propagated,
        forwarded_authorization,
    };
    let up = app.forwarder.forward(&out).await?;
    let mut res = (up.status, up.body).into_response();
    res.headers_mut().extend(up.headers);
    Ok(res)
}

/// `GET /health/live`.
#[utoipa::path(get, path = "/health/live", responses((status = 200, description = "Running")))]
pub async fn live() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// `GET /health/ready`: a token can be had and called answers.
#[utoipa::path(get, path = "/health/ready", responses(
    (status = 200, description = "A token can be had and the called service accepts it (result cached about a second)"),
    (status = 503, description = "No token, or the called service is unreachable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn ready(State(app): State<AppState>) -> Response {
    match app.readiness.get().await {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(problem)) => problem.into_response(),
        Err(_) => {
            Problem::unavailable("the readiness check did not finish in time", 2).into_response()
        }
    }
}

/// One readiness check: a token within 3 s, then an authenticated
/// `GET {CALLED_URL}/entities?limit=1` within 2 s — proof that called accepts this token (an
/// unauthenticated probe of `/health/live` would stay green while every forward gets 401).
/// A token called refuses is dropped, so the next check (or request) fetches a new one.
/// `ready` caches its result about a second with one check in flight ([`shared::readiness`]),
/// so probes never fan out to called.
pub async fn check_ready(forwarder: &Forwarder, http: &reqwest::Client) -> Result<(), Problem> {
    let token = match tokio::time::timeout(Duration::from_secs(3), forwarder.tokens().get()).await {
        Ok(Ok(token)) => token,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: no ID token");
            return Err(Problem::unavailable("no identity token can be obtained", 2));
        }
        Err(_) => {
            return Err(Problem::unavailable(
                "the token source did not answer in time",
                2,
            ));
        }
    };
    let url = forwarder
        .target()
        .join("entities?limit=1")
        .map_err(|_| Problem::internal())?;
    let probe = http
        .get(url)
        .bearer_auth(token.value())
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    if let Ok(r) = &probe
        && r.status() == 401
    {
        forwarder.tokens().invalidate_if_current(&token);
        tracing::warn!(
            "not ready: called refuses this service's ID token; it will be fetched again"
        );
        return Err(Problem::unavailable(
            "the called service refuses this service's identity token",
            1,
        ));
    }
    match probe {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            tracing::warn!(
                status = r.status().as_u16(),
                "not ready: called is unhealthy"
            );
            Err(Problem::unavailable("the called service is not healthy", 2))
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: called unreachable");
            Err(Problem::unavailable("the called service is unreachable", 2))
        }
    }
}
