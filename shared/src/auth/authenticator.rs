//! The authentication policy of one service: which header carries the token, verification,
//! the `email` rules and the allow-list, yielding an [`Identity`].

use std::sync::Arc;

use http::{HeaderMap, header};

use super::config::AuthConfig;
use super::error::AuthError;
use super::mode::AuthMode;
use super::verifier::Verifier;

/// A verified identity: whoever presented the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The verified `email` claim.
    pub email: String,
    /// The `sub` claim.
    pub subject: String,
}

/// The authentication policy of one service; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    verifier: Option<Verifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.inner.config.mode)
            .finish()
    }
}

/// Header Cloud Run checks when present (and then ignores `Authorization`).
pub const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

impl Authenticator {
    /// Builds the policy; `http` is the shared outbound client used for the key set.
    pub fn new(config: AuthConfig, http: reqwest::Client) -> Self {
        let verifier = match config.mode {
            AuthMode::Off => None,
            AuthMode::Verify | AuthMode::Platform => Some(Verifier::new(&config, http)),
        };
        if config.mode == AuthMode::Off {
            tracing::warn!("AUTH_MODE=off: this service accepts requests from anyone");
        } else if config.allow_any_principal {
            tracing::warn!(
                "AUTH_ALLOW_ANY_PRINCIPAL=true: any Google identity with a token for this audience may call"
            );
        }
        Self {
            inner: Arc::new(Inner { config, verifier }),
        }
    }

    /// No authentication (tests).
    pub fn off() -> Self {
        Self::new(AuthConfig::off(), reqwest::Client::new())
    }

    /// Fetches the key set once (errors are logged; requests retry later). Call at startup
    /// so the first request does not wait for it.
    pub async fn warm_up(&self) {
        if let Some(v) = &self.inner.verifier {
            v.keys().warm_up().await;
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// The verifier, when the mode has one.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.inner.verifier.as_ref()
    }

    /// The raw bearer token [`Authenticator::authenticate`] verifies for these headers (the same
    /// header rule: `X-Serverless-Authorization` when present in platform mode, else
    /// `Authorization`); `None` when the mode is off or there is no well-formed bearer token.
    /// For forwarding the end user's proof once `authenticate` accepted it. Never log it.
    pub fn presented_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        self.inner.verifier.as_ref()?;
        let platform = self.inner.config.mode == AuthMode::Platform;
        let header = if platform && headers.contains_key(SERVERLESS_AUTHORIZATION) {
            headers.get(SERVERLESS_AUTHORIZATION)
        } else {
            headers.get(header::AUTHORIZATION)
        };
        bearer_token(header).ok()
    }

    /// Authenticates a request by its headers: `Ok(None)` only when the mode is off.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Identity>, AuthError> {
        let cfg = &self.inner.config;
        let Some(verifier) = &self.inner.verifier else {
            tracing::warn!("AUTH_MODE=off: request accepted without authentication");
            return Ok(None);
        };
        let platform = cfg.mode == AuthMode::Platform;
        let header = if platform && headers.contains_key(SERVERLESS_AUTHORIZATION) {
            headers.get(SERVERLESS_AUTHORIZATION)
        } else {
            headers.get(header::AUTHORIZATION)
        };
        let token = bearer_token(header)?;
        let claims = verifier.verify(token, cfg.mode.signature()).await?;
        let email = match (claims.email.as_deref(), claims.email_verified) {
            (Some(e), Some(true)) if !e.is_empty() => e.to_owned(),
            (Some(_), _) => return Err(AuthError::Invalid("email is not verified".into())),
            (None, _) => return Err(AuthError::Invalid("token has no email claim".into())),
        };
        if !cfg.is_allowed(&email) {
            return Err(AuthError::Forbidden(email));
        }
        Ok(Some(Identity {
            email,
            subject: claims.sub,
        }))
    }
}

/// Extracts the token from `Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(value: Option<&http::HeaderValue>) -> Result<&str, AuthError> {
    let Some(value) = value else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("authorization header is not visible ASCII".into()))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid(
            "authorization scheme must be Bearer".into(),
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Invalid("empty bearer token".into()));
    }
    Ok(token)
}
