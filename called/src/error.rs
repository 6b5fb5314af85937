//! The called service's one error type, mapped to HTTP in one place.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use shared::problem::Problem;

use crate::store::StoreError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400/401/403/404/405/413/415: already a client-facing problem.
    #[error("{0}")]
    Problem(Problem),
    /// 409: a request with this idempotency key is still being processed.
    #[error("idempotency key in flight")]
    KeyInFlight,
    /// 422: the idempotency key was used with a different body.
    #[error("idempotency key reused with a different body")]
    KeyReused,
    /// 503 with `Retry-After`: the store cannot be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
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
            Self::KeyInFlight => Problem::new(
                StatusCode::CONFLICT,
                "a request with this Idempotency-Key is still in flight; retry after it completes",
            )
            .with_type(
                "/problems/idempotency-in-flight",
                "Idempotency key in flight",
            )
            .retry_after(1),
            Self::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was already used with a different request body",
            )
            .with_type("/problems/idempotency-key-reused", "Idempotency key reused"),
            Self::Store(StoreError::Unavailable(cause)) => {
                tracing::error!(%cause, "store unavailable");
                Problem::unavailable("the store is unavailable; retry shortly", 2)
            }
            Self::Store(StoreError::Corrupt(cause)) => {
                tracing::error!(%cause, "stored data could not be read");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}
