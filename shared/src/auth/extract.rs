//! The axum extractor that authenticates a request: [`Principal`], the identity that called
//! this service (`None` only with `AUTH_MODE=off`).

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;

use super::authenticator::{Authenticator, Identity};
use crate::problem::Problem;

/// Extractor yielding the authenticated principal — the identity whose token this request
/// carries — and the end user it acts for, if any. Rejects with a problem response
/// (401/403/503).
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// Whoever presented the request's token; `None` only with `AUTH_MODE=off`.
    pub identity: Option<Identity>,
    /// The end user a trusted forwarder acts for (a verified `X-Forwarded-Authorization`).
    pub on_behalf_of: Option<Identity>,
}

impl Principal {
    /// The principal's email, if authenticated.
    pub fn email(&self) -> Option<&str> {
        self.identity.as_ref().map(|p| p.email.as_str())
    }

    /// The email of the end user on whose behalf the principal acts, if any.
    pub fn on_behalf_of_email(&self) -> Option<&str> {
        self.on_behalf_of.as_ref().map(|p| p.email.as_str())
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
        match auth.authenticate_principal(&parts.headers).await {
            Ok(principal) => Ok(principal),
            Err(e) => {
                // The reason may quote a claim (a forbidden principal's email): escaped.
                let reason = crate::telemetry::escape_control(&e.to_string()).into_owned();
                tracing::info!(%reason, "request rejected by authentication");
                Err(e.into())
            }
        }
    }
}
