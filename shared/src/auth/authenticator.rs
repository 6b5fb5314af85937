//! The authentication policy of one service: which header carries the token, verification,
//! the `email` rules (well-formed, verified, lower-cased) and the allow-list, yielding an
//! [`Identity`]; then, in `called`, the end user a trusted forwarder vouches for.

use std::sync::Arc;

use http::{HeaderMap, header};

use super::config::AuthConfig;
use super::error::AuthError;
use super::extract::Principal;
use super::forwarded::{FORWARDED_AUTHORIZATION, ForwardedConfig};
use super::mode::AuthMode;
use super::verifier::{Claims, Verifier};

/// A verified identity: whoever presented the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The verified `email` claim, lower-cased.
    pub email: String,
    /// The `sub` claim.
    pub subject: String,
    /// The `hd` claim (Workspace domain of a user account), lower-cased; `None` for service
    /// accounts and consumer accounts.
    pub hosted_domain: Option<String>,
}

/// Longest `email` claim accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// The authentication policy of one service; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    verifier: Option<Verifier>,
    forwarded: Option<Forwarded>,
}

/// The forwarded-identity check: its settings and a verifier for the forwarder's audiences.
struct Forwarded {
    config: ForwardedConfig,
    verifier: Verifier,
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
    /// Builds the policy; `http` is the shared outbound client used for the key set. With
    /// `config.forwarded` set (`called`), end users forwarded by trusted principals are
    /// verified too; `None` (`caller`) ignores `X-Forwarded-Authorization`.
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
        if config.platform_off_cloud_run {
            tracing::warn!(
                "AUTH_MODE=platform with AUTH_PLATFORM_TRUSTED=true and K_SERVICE unset: tokens with a stripped signature are accepted on their claims alone, so anyone who can reach this port directly can claim any identity"
            );
        }
        let forwarded = match (&config.forwarded, &verifier) {
            (Some(f), Some(v)) if !f.forwarders.is_empty() => {
                let trusted: Vec<String> = f.forwarders.iter().map(ToString::to_string).collect();
                tracing::info!(
                    forwarders = %trusted.join(","),
                    audiences = %f.audiences.join(","),
                    mode = ?f.mode,
                    "X-Forwarded-Authorization is verified from these principals only"
                );
                Some(Forwarded {
                    config: f.clone(),
                    verifier: v.for_audiences(&f.audiences),
                })
            }
            (Some(_), _) => {
                tracing::info!(
                    "no trusted forwarders (AUTH_FORWARDERS is empty): X-Forwarded-Authorization is ignored"
                );
                None
            }
            (None, _) => None,
        };
        Self {
            inner: Arc::new(Inner {
                config,
                verifier,
                forwarded,
            }),
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
        self.bearer(headers).ok()
    }

    /// The one header rule: in platform mode `X-Serverless-Authorization` when present (the
    /// header Cloud Run checked, and then ignores `Authorization`), else `Authorization`.
    fn bearer<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, AuthError> {
        let platform = self.inner.config.mode == AuthMode::Platform;
        let header = if platform && headers.contains_key(SERVERLESS_AUTHORIZATION) {
            headers.get(SERVERLESS_AUTHORIZATION)
        } else {
            headers.get(header::AUTHORIZATION)
        };
        bearer_token(header)
    }

    /// Authenticates a request by its headers: `Ok(None)` only when the mode is off.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Identity>, AuthError> {
        let cfg = &self.inner.config;
        let Some(verifier) = &self.inner.verifier else {
            tracing::warn!("AUTH_MODE=off: request accepted without authentication");
            return Ok(None);
        };
        let token = self.bearer(headers)?;
        let claims = verifier.verify(token, cfg.mode.signature()).await?;
        let identity = identity(&claims)?;
        if !cfg.admits(&identity.email, identity.hosted_domain.as_deref()) {
            return Err(AuthError::Forbidden(identity.email));
        }
        Ok(Some(identity))
    }

    /// Authenticates a request and, when its principal is a trusted forwarder and the
    /// request carries `X-Forwarded-Authorization`, the end user it acts for. From any other
    /// principal the header is ignored.
    ///
    /// # Errors
    /// As [`Authenticator::authenticate`]; a forwarded token that fails any check (or a
    /// repeated header) is [`AuthError::ForwardedInvalid`].
    pub async fn authenticate_principal(
        &self,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        let identity = self.authenticate(headers).await?;
        let on_behalf_of = match (&identity, &self.inner.forwarded) {
            (Some(principal), Some(f)) if f.config.trusts(principal) => {
                forwarded_identity(f, headers).await?
            }
            _ => None,
        };
        Ok(Principal {
            identity,
            on_behalf_of,
        })
    }
}

/// The end user in `X-Forwarded-Authorization`, fully checked (no allow-list: the trusted
/// forwarder vouches for any verified Google user).
async fn forwarded_identity(
    f: &Forwarded,
    headers: &HeaderMap,
) -> Result<Option<Identity>, AuthError> {
    let forwarded = |e: AuthError| match e {
        AuthError::Invalid(reason) => AuthError::ForwardedInvalid(reason),
        AuthError::KeysUnavailable(_) | AuthError::ForwardedInvalid(_) => e,
        other => AuthError::ForwardedInvalid(other.to_string()),
    };
    let mut values = headers.get_all(FORWARDED_AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::ForwardedInvalid(
            "the header appears more than once".into(),
        ));
    }
    let token = bearer_token(Some(value)).map_err(forwarded)?;
    let claims = f
        .verifier
        .verify(token, f.config.mode.signature())
        .await
        .map_err(forwarded)?;
    identity(&claims).map(Some).map_err(forwarded)
}

/// The identity in verified `claims`: a well-formed, verified email, lower-cased.
fn identity(claims: &Claims) -> Result<Identity, AuthError> {
    let email = match (claims.email.as_deref(), claims.email_verified) {
        (Some(e), _) if !is_well_formed_email(e) => {
            return Err(AuthError::Invalid("malformed email claim".into()));
        }
        (Some(e), Some(true)) => e.to_lowercase(),
        (Some(_), _) => return Err(AuthError::Invalid("email is not verified".into())),
        (None, _) => return Err(AuthError::Invalid("token has no email claim".into())),
    };
    let hosted_domain = match claims.hd.as_deref() {
        None => None,
        Some(hd) if is_well_formed_domain(hd) => Some(hd.to_lowercase()),
        Some(_) => return Err(AuthError::Invalid("malformed hd claim".into())),
    };
    Ok(Identity {
        email,
        subject: claims.sub.clone(),
        hosted_domain,
    })
}

/// Exactly one `@` between a non-empty local part (at most 64 bytes) and a domain, no
/// whitespace or control characters, at most 254 bytes in all.
pub fn is_well_formed_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c.is_control())
        && is_well_formed_domain(domain)
}

fn is_well_formed_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= MAX_EMAIL_LEN
        && !domain
            .chars()
            .any(|c| c == '@' || c.is_whitespace() || c.is_control())
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
