//! RFC 9457 problem details: the one shape every error response takes.
//!
//! Every crate maps its own error enum to a [`Problem`] in exactly one place; extractor
//! rejections and fallbacks produce a [`Problem`] directly, so a client only ever has to
//! understand one error format.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document plus the response headers that belong with it
/// (`WWW-Authenticate`, `Retry-After`, …).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "missing required field \"bar\""}))]
pub struct Problem {
    /// A URI reference naming the problem type; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// Short, human-readable summary of the problem type.
    pub title: Cow<'static, str>,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence. Never contains tokens or driver errors.
    pub detail: String,
    #[serde(skip)]
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of type `about:blank` whose title is the status code's reason phrase.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: Cow::Borrowed("about:blank"),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// Sets a specific problem type URI and title.
    #[must_use]
    pub fn with_type(mut self, kind: &'static str, title: &'static str) -> Self {
        self.kind = Cow::Borrowed(kind);
        self.title = Cow::Borrowed(title);
        self
    }

    /// Adds a response header. Invalid header values are dropped rather than panicking.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.push((name, v));
        }
        self
    }

    /// Adds `Retry-After: secs`.
    #[must_use]
    pub fn retry_after(self, secs: u64) -> Self {
        self.with_header(header::RETRY_AFTER, secs.to_string())
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The headers that go with this problem.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// 400 with the given detail.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404 for an unknown route or entity.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail).retry_after(retry_after_secs)
    }

    /// 500 with a fixed message; the cause belongs in the log, not the body.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to handle the request; see its logs",
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        res
    }
}

/// Fallback for unknown routes: 404 problem.
pub async fn route_not_found(uri: http::Uri) -> Problem {
    Problem::not_found(format!("no route for {}", uri.path()))
}

/// Fallback for a known route with the wrong method: 405 problem.
pub async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
