//! Why a request was not authenticated, and its one mapping to HTTP (401, 403, 503).

use http::{StatusCode, header};

use crate::problem::Problem;

/// Why a request was not authenticated. Maps to 401, 403 or 503.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401 with bare `WWW-Authenticate: Bearer`: no credentials were sent.
    #[error("no bearer token")]
    Missing,
    /// 401 with `error="invalid_token"`: the token is malformed, forged, expired or not for us.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// 403 with `error="insufficient_scope"`: a valid token for a principal not on the allow-list.
    #[error("principal {0} is not allowed")]
    Forbidden(String),
    /// 401 with `error="invalid_token"`: a trusted forwarder's `X-Forwarded-Authorization`
    /// (the end user's token) is malformed, forged, expired, not for the forwarder, or repeated.
    #[error("invalid forwarded end-user token: {0}")]
    ForwardedInvalid(String),
    /// 503: no signing keys are available to verify with (never accept in that case).
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Problem::new(
                StatusCode::UNAUTHORIZED,
                "a bearer identity token is required",
            )
            .with_header(header::WWW_AUTHENTICATE, "Bearer"),
            AuthError::Invalid(reason) => Problem::new(
                StatusCode::UNAUTHORIZED,
                format!("invalid identity token: {reason}"),
            )
            .with_header(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""),
            AuthError::ForwardedInvalid(reason) => Problem::new(
                StatusCode::UNAUTHORIZED,
                format!("invalid forwarded end-user token (X-Forwarded-Authorization): {reason}"),
            )
            .with_header(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""),
            AuthError::Forbidden(who) => Problem::new(
                StatusCode::FORBIDDEN,
                format!("principal {who} is not allowed to call this service"),
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                "Bearer error=\"insufficient_scope\"",
            ),
            AuthError::KeysUnavailable(_) => {
                Problem::unavailable("token signing keys are not available yet; try again", 2)
            }
        }
    }
}

impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
