//! Authentication of incoming requests: which modes exist, where the token is read from, the
//! allow-list of principals, and the axum extractor that yields the verified [`Principal`].
//!
//! - [`keys`]: the key-set (JWKS) cache — Cache-Control aware, single flight, refetch cooldown.
//! - [`verifier`]: cryptographic and claim checks of a Google-signed ID token.
//!
//! The flow: [`Caller`] (extractor) → [`Authenticator::authenticate`] → bearer token from the
//! right header → [`verifier::Verifier`] → allow-list → [`Principal`].

pub mod keys;
pub mod verifier;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};

use crate::config::{ConfigError, Reader, Setting, Source};
use crate::problem::Problem;

pub use verifier::{Claims, Verifier};

/// How a service authenticates its callers (`AUTH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Full signature verification against the key set.
    Verify,
    /// Behind Cloud Run's IAM check: signature-stripped tokens are accepted on their claims.
    Platform,
    /// No authentication at all (development only).
    Off,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "verify" => Ok(Self::Verify),
            "platform" => Ok(Self::Platform),
            "off" => Ok(Self::Off),
            _ => Err("expected verify, platform or off".into()),
        }
    }
}

/// One entry of `AUTH_ALLOWED_PRINCIPALS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    /// An exact email, compared case-insensitively.
    Exact(String),
    /// `*@domain`: any verified email at that domain (lower-case, without the `@`).
    Domain(String),
}

impl PrincipalPattern {
    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(domain) = s.strip_prefix("*@") {
            if domain.is_empty()
                || domain.contains('@')
                || domain.contains('*')
                || !domain.contains('.')
            {
                return Err(format!("{s:?} is not a valid *@domain pattern"));
            }
            return Ok(Self::Domain(domain.to_owned()));
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !s.contains('*') =>
            {
                Ok(Self::Exact(s))
            }
            _ => Err(format!("{s:?} is neither an email nor a *@domain pattern")),
        }
    }

    /// Whether `email` (already verified) matches.
    pub fn matches(&self, email: &str) -> bool {
        let email = email.to_ascii_lowercase();
        match self {
            Self::Exact(e) => *e == email,
            Self::Domain(d) => email
                .rsplit_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain == d),
        }
    }
}

/// Validated authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `AUTH_MODE`.
    pub mode: AuthMode,
    /// `AUTH_AUDIENCES`: accepted `aud` values.
    pub audiences: Vec<String>,
    /// `AUTH_ALLOWED_PRINCIPALS`; empty only when `allow_any_principal` or mode is off.
    pub allowed: Vec<PrincipalPattern>,
    /// `AUTH_ALLOW_ANY_PRINCIPAL`.
    pub allow_any_principal: bool,
    /// `AUTH_JWKS_URL`.
    pub jwks_url: String,
    /// `AUTH_ISSUERS`.
    pub issuers: Vec<String>,
    /// `AUTH_CLOCK_SKEW_SECS`.
    pub clock_skew_secs: u64,
}

/// Google's key set for ID tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Issuers Google puts in ID tokens.
pub const GOOGLE_ISSUERS: &str = "https://accounts.google.com,accounts.google.com";

impl AuthConfig {
    /// The settings [`AuthConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[
        Setting {
            name: "AUTH_MODE",
            default: "verify",
            help: "verify (check signatures), platform (behind Cloud Run IAM) or off",
        },
        Setting {
            name: "AUTH_AUDIENCES",
            default: "required unless AUTH_MODE=off",
            help: "comma list of accepted aud values",
        },
        Setting {
            name: "AUTH_ALLOWED_PRINCIPALS",
            default: "required unless AUTH_MODE=off or AUTH_ALLOW_ANY_PRINCIPAL=true",
            help: "comma list of exact emails or *@domain patterns",
        },
        Setting {
            name: "AUTH_ALLOW_ANY_PRINCIPAL",
            default: "false",
            help: "accept any verified Google identity (warns loudly)",
        },
        Setting {
            name: "AUTH_JWKS_URL",
            default: GOOGLE_JWKS_URL,
            help: "signing keys for verify",
        },
        Setting {
            name: "AUTH_ISSUERS",
            default: GOOGLE_ISSUERS,
            help: "accepted iss values",
        },
        Setting {
            name: "AUTH_CLOCK_SKEW_SECS",
            default: "60",
            help: "leeway on exp, nbf and iat",
        },
    ];

    /// Reads and validates the authentication settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let mode: AuthMode = r.parse("AUTH_MODE", AuthMode::Verify)?;
        let allow_any_principal = r.bool("AUTH_ALLOW_ANY_PRINCIPAL", false)?;
        let audiences = r.list("AUTH_AUDIENCES");
        let mut allowed = Vec::new();
        for item in r.list("AUTH_ALLOWED_PRINCIPALS") {
            allowed.push(PrincipalPattern::parse(&item).map_err(|reason| {
                ConfigError::invalid(
                    "AUTH_ALLOWED_PRINCIPALS",
                    r.raw("AUTH_ALLOWED_PRINCIPALS").unwrap_or_default(),
                    reason,
                )
            })?);
        }
        let jwks_url = r
            .raw("AUTH_JWKS_URL")
            .unwrap_or_else(|| GOOGLE_JWKS_URL.to_owned());
        match url::Url::parse(&jwks_url) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
            _ => {
                return Err(ConfigError::invalid(
                    "AUTH_JWKS_URL",
                    jwks_url,
                    "must be an http(s) URL",
                ));
            }
        }
        let mut issuers = r.list("AUTH_ISSUERS");
        if issuers.is_empty() {
            issuers = GOOGLE_ISSUERS.split(',').map(str::to_owned).collect();
        }
        let clock_skew_secs = r.int_in("AUTH_CLOCK_SKEW_SECS", 60u64, 0..=600)?;
        if mode != AuthMode::Off {
            if audiences.is_empty() {
                return Err(ConfigError::missing(
                    "AUTH_AUDIENCES",
                    "required unless AUTH_MODE=off: the aud values this service accepts (its own URL)",
                ));
            }
            if allowed.is_empty() && !allow_any_principal {
                return Err(ConfigError::missing(
                    "AUTH_ALLOWED_PRINCIPALS",
                    "required unless AUTH_MODE=off or AUTH_ALLOW_ANY_PRINCIPAL=true: any Google account can mint a token for any audience, so name who may call",
                ));
            }
        }
        Ok(Self {
            mode,
            audiences,
            allowed,
            allow_any_principal,
            jwks_url,
            issuers,
            clock_skew_secs,
        })
    }

    /// Settings for `AUTH_MODE=off` (tests, local experiments).
    pub fn off() -> Self {
        Self {
            mode: AuthMode::Off,
            audiences: Vec::new(),
            allowed: Vec::new(),
            allow_any_principal: false,
            jwks_url: GOOGLE_JWKS_URL.to_owned(),
            issuers: GOOGLE_ISSUERS.split(',').map(str::to_owned).collect(),
            clock_skew_secs: 60,
        }
    }

    /// Whether `email` may call.
    pub fn is_allowed(&self, email: &str) -> bool {
        self.allow_any_principal || self.allowed.iter().any(|p| p.matches(email))
    }
}

/// A verified caller identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The verified `email` claim.
    pub email: String,
    /// The `sub` claim.
    pub subject: String,
}

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

    /// Authenticates a request by its headers: `Ok(None)` only when the mode is off.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, AuthError> {
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
        let claims = verifier.verify(token, platform).await?;
        let email = match (claims.email.as_deref(), claims.email_verified) {
            (Some(e), Some(true)) if !e.is_empty() => e.to_owned(),
            (Some(_), _) => return Err(AuthError::Invalid("email is not verified".into())),
            (None, _) => return Err(AuthError::Invalid("token has no email claim".into())),
        };
        if !cfg.is_allowed(&email) {
            return Err(AuthError::Forbidden(email));
        }
        Ok(Some(Principal {
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

/// Extractor yielding the authenticated caller (`None` only with `AUTH_MODE=off`).
/// Rejects with a problem response (401/403/503).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

impl Caller {
    /// The caller's email, if authenticated.
    pub fn email(&self) -> Option<&str> {
        self.0.as_ref().map(|p| p.email.as_str())
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        match auth.authenticate(&parts.headers).await {
            Ok(p) => Ok(Caller(p)),
            Err(e) => {
                tracing::info!(reason = %e, "request rejected by authentication");
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapSource;

    #[test]
    fn patterns() {
        let exact = PrincipalPattern::parse("Caller@P.iam.gserviceaccount.com").expect("email");
        assert!(exact.matches("caller@p.iam.gserviceaccount.com"));
        assert!(!exact.matches("other@p.iam.gserviceaccount.com"));
        let dom = PrincipalPattern::parse("*@example.com").expect("domain");
        assert!(dom.matches("a@example.com"));
        assert!(!dom.matches("a@evil-example.com"));
        assert!(!dom.matches("a@sub.example.com"));
        assert!(!dom.matches("@example.com"));
        assert!(PrincipalPattern::parse("*").is_err());
        assert!(PrincipalPattern::parse("*@*.com").is_err());
        assert!(PrincipalPattern::parse("nobody").is_err());
    }

    #[test]
    fn config_requires_audience_and_principals() {
        let e = AuthConfig::from_source(&MapSource::default()).expect_err("aud required");
        assert_eq!(e.name, "AUTH_AUDIENCES");
        let e = AuthConfig::from_source(&MapSource::from_pairs([("AUTH_AUDIENCES", "https://x")]))
            .expect_err("principals required");
        assert_eq!(e.name, "AUTH_ALLOWED_PRINCIPALS");
        let ok = AuthConfig::from_source(&MapSource::from_pairs([
            ("AUTH_AUDIENCES", "https://x"),
            ("AUTH_ALLOW_ANY_PRINCIPAL", "true"),
        ]))
        .expect("any principal");
        assert!(ok.is_allowed("anyone@gmail.com"));
        let off =
            AuthConfig::from_source(&MapSource::from_pairs([("AUTH_MODE", "off")])).expect("off");
        assert_eq!(off.mode, AuthMode::Off);
        let e = AuthConfig::from_source(&MapSource::from_pairs([("AUTH_MODE", "open")]))
            .expect_err("bad mode");
        assert_eq!(e.name, "AUTH_MODE");
    }

    #[test]
    fn bearer_parsing() {
        let hv = |s: &str| http::HeaderValue::from_str(s).expect("header");
        assert!(matches!(bearer_token(None), Err(AuthError::Missing)));
        assert_eq!(
            bearer_token(Some(&hv("bearer abc"))).expect("lower-case"),
            "abc"
        );
        assert_eq!(
            bearer_token(Some(&hv("BEARER  abc "))).expect("upper-case"),
            "abc"
        );
        assert!(matches!(
            bearer_token(Some(&hv("Basic abc"))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            bearer_token(Some(&hv("Bearer"))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            bearer_token(Some(&hv("Bearer   "))),
            Err(AuthError::Invalid(_))
        ));
    }
}
