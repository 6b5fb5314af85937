//! The axum extractor that authenticates a request: [`Principal`], the identity that called
//! this service (`None` only with `AUTH_MODE=off`).

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;

use super::authenticator::{Authenticator, Identity};
use crate::problem::Problem;

/// Extractor yielding the authenticated principal — the identity whose token this request
/// carries (`None` only with `AUTH_MODE=off`). Rejects with a problem response (401/403/503).
#[derive(Debug, Clone)]
pub struct Principal(pub Option<Identity>);

impl Principal {
    /// The principal's email, if authenticated.
    pub fn email(&self) -> Option<&str> {
        self.0.as_ref().map(|p| p.email.as_str())
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        match auth.authenticate(&parts.headers).await {
            Ok(p) => Ok(Principal(p)),
            Err(e) => {
                tracing::info!(reason = %e, "request rejected by authentication");
                Err(e.into())
            }
        }
    }
}
