//! The caller service's one error type, mapped to HTTP in one place.

use crate::token::TokenError;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use shared::problem::Problem;

/// Everything a caller handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 4xx problems raised before forwarding (auth, validation).
    #[error("{0}")]
    Problem(Problem),
    /// 503 + Retry-After (seconds until the token cache tries again): no ID token could be
    /// obtained for the called service.
    #[error("no ID token: {0}")]
    NoToken(TokenError, u64),
    /// 502: the called service answered 401/403 to our credentials.
    #[error("called rejected the caller's credentials ({0})")]
    Rejected(u16),
    /// 502: the called service answered a redirect (3xx), which is never followed.
    #[error("called answered a redirect ({0})")]
    Redirected(u16),
    /// 502: the called service failed (5xx or connection error) after retries.
    #[error("called failed: {0}")]
    Upstream(String),
    /// 504: `CALL_TIMEOUT_MS` passed.
    #[error("deadline passed")]
    Deadline,
}

impl From<Problem> for Error {
    fn from(p: Problem) -> Self {
        Self::Problem(p)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match self {
            Self::Problem(p) => p,
            Self::NoToken(e, retry_after) => {
                tracing::error!(error = %e, "no ID token for the called service");
                Problem::unavailable(
                    "no identity token could be obtained for the called service",
                    retry_after,
                )
            }
            Self::Rejected(status) => {
                tracing::error!(
                    status,
                    "called rejected our credentials: check its allow-list and audience"
                );
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "the called service rejected this service's credentials",
                )
            }
            Self::Redirected(status) => {
                tracing::error!(
                    status,
                    "called answered a redirect: not followed; check CALLED_URL"
                );
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "the called service answered with a redirect, which is not followed",
                )
            }
            Self::Upstream(cause) => {
                tracing::error!(%cause, "called failed");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "the called service failed; retry later",
                )
            }
            Self::Deadline => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "the called service did not answer within the deadline",
            ),
        };
        problem.into_response()
    }
}
