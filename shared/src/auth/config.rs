//! Authentication settings (`AUTH_*`), declared once for `--help` and the parser.

use crate::config::{ConfigError, Reader, Setting, Source};

use super::allow_list::PrincipalPattern;
use super::mode::AuthMode;

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
    /// `AUTH_MODE`.
    pub const AUTH_MODE: Setting = Setting::new(
        "AUTH_MODE",
        "verify",
        "verify (check signatures), platform (behind Cloud Run IAM) or off",
    );
    /// `AUTH_AUDIENCES`.
    pub const AUTH_AUDIENCES: Setting = Setting::unset(
        "AUTH_AUDIENCES",
        "required unless AUTH_MODE=off",
        "comma list of accepted aud values",
    );
    /// `AUTH_ALLOWED_PRINCIPALS`.
    pub const AUTH_ALLOWED_PRINCIPALS: Setting = Setting::unset(
        "AUTH_ALLOWED_PRINCIPALS",
        "required unless AUTH_MODE=off or AUTH_ALLOW_ANY_PRINCIPAL=true",
        "comma list of exact emails or *@domain patterns",
    );
    /// `AUTH_ALLOW_ANY_PRINCIPAL`.
    pub const AUTH_ALLOW_ANY_PRINCIPAL: Setting = Setting::new(
        "AUTH_ALLOW_ANY_PRINCIPAL",
        "false",
        "accept any verified Google identity (warns loudly)",
    );
    /// `AUTH_JWKS_URL`.
    pub const AUTH_JWKS_URL: Setting =
        Setting::new("AUTH_JWKS_URL", GOOGLE_JWKS_URL, "signing keys for verify");
    /// `AUTH_ISSUERS`.
    pub const AUTH_ISSUERS: Setting =
        Setting::new("AUTH_ISSUERS", GOOGLE_ISSUERS, "accepted iss values");
    /// `AUTH_CLOCK_SKEW_SECS`.
    pub const AUTH_CLOCK_SKEW_SECS: Setting =
        Setting::new("AUTH_CLOCK_SKEW_SECS", "60", "leeway on exp, nbf and iat");
    /// The settings [`AuthConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[
        Self::AUTH_MODE,
        Self::AUTH_AUDIENCES,
        Self::AUTH_ALLOWED_PRINCIPALS,
        Self::AUTH_ALLOW_ANY_PRINCIPAL,
        Self::AUTH_JWKS_URL,
        Self::AUTH_ISSUERS,
        Self::AUTH_CLOCK_SKEW_SECS,
    ];

    /// Reads and validates the authentication settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let mode: AuthMode = r.parse(&Self::AUTH_MODE)?;
        let allow_any_principal = r.bool(&Self::AUTH_ALLOW_ANY_PRINCIPAL)?;
        let audiences = r.list(&Self::AUTH_AUDIENCES);
        let allowed = principal_list(&r, &Self::AUTH_ALLOWED_PRINCIPALS)?;
        let jwks_url: String = r.parse(&Self::AUTH_JWKS_URL)?;
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
        let mut issuers = r.list(&Self::AUTH_ISSUERS);
        if issuers.is_empty() {
            issuers = GOOGLE_ISSUERS.split(',').map(str::to_owned).collect();
        }
        let clock_skew_secs = r.int_in(&Self::AUTH_CLOCK_SKEW_SECS, 0..=600)?;
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

/// Parses a comma list of allow-list entries (`AUTH_ALLOWED_PRINCIPALS` syntax) from `setting`.
///
/// # Errors
/// A [`ConfigError`] naming the setting and the entry that is neither an email nor `*@domain`.
pub fn principal_list(
    r: &Reader<'_>,
    setting: &Setting,
) -> Result<Vec<PrincipalPattern>, ConfigError> {
    r.list(setting)
        .iter()
        .map(|item| {
            PrincipalPattern::parse(item).map_err(|reason| {
                ConfigError::invalid(setting.name, r.raw(setting).unwrap_or_default(), reason)
            })
        })
        .collect()
}
