//! The forwarded end user (`called` only): which principals may vouch for an end user in
//! `X-Forwarded-Authorization`, and what that end user's token must satisfy.
//!
//! Settings are `called`'s (`AUTH_FORWARDERS`, `AUTH_FORWARDED_AUDIENCES`,
//! `AUTH_FORWARDED_MODE`); the check itself runs in the library's
//! [`ForwardedUsers`](invoker_auth::ForwardedUsers).

use crate::config::{ConfigError, Reader, Setting, Source};

use invoker_auth::AllowList;
use invoker_auth::verify::Signature;

use super::config::{AuthConfig, principal_list};
use super::mode::AuthMode;

/// How a forwarded end-user token's signature is checked (`AUTH_FORWARDED_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedMode {
    /// The forwarded token must carry a real signature, verified against the key set.
    Verify,
    /// The forwarder runs behind Cloud Run's IAM check, which stripped the end user's
    /// signature: exactly `SIGNATURE_REMOVED_BY_GOOGLE` is accepted on the claims; any other
    /// signature is still verified.
    Platform,
}

impl std::str::FromStr for ForwardedMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "verify" => Ok(Self::Verify),
            "platform" => Ok(Self::Platform),
            _ => Err("expected verify or platform".into()),
        }
    }
}

impl ForwardedMode {
    /// The signature rule for forwarded tokens.
    pub fn signature(self) -> Signature {
        match self {
            Self::Verify => Signature::Required,
            Self::Platform => Signature::StrippedByCloudRun,
        }
    }
}

/// Validated forwarded-identity settings.
#[derive(Debug, Clone)]
pub struct ForwardedConfig {
    /// `AUTH_FORWARDERS`: principals trusted to forward an end user; empty = header ignored.
    pub forwarders: AllowList,
    /// `AUTH_FORWARDED_AUDIENCES`: `aud` values accepted on forwarded tokens.
    pub audiences: Vec<String>,
    /// `AUTH_FORWARDED_MODE`.
    pub mode: ForwardedMode,
}

impl ForwardedConfig {
    /// `AUTH_FORWARDERS`.
    pub const AUTH_FORWARDERS: Setting = Setting::unset(
        "AUTH_FORWARDERS",
        "empty: X-Forwarded-Authorization is ignored",
        "principals (exact emails or *@domain) trusted to forward an end user's ID token in X-Forwarded-Authorization",
    );
    /// `AUTH_FORWARDED_AUDIENCES`.
    pub const AUTH_FORWARDED_AUDIENCES: Setting = Setting::unset(
        "AUTH_FORWARDED_AUDIENCES",
        "required when AUTH_FORWARDERS is set",
        "comma list of aud values accepted on forwarded end-user tokens (the forwarder's own URL)",
    );
    /// `AUTH_FORWARDED_MODE`.
    pub const AUTH_FORWARDED_MODE: Setting = Setting::new(
        "AUTH_FORWARDED_MODE",
        "verify",
        "verify (forwarded tokens need a real signature) or platform (the forwarder runs behind Cloud Run's IAM check: a stripped signature is accepted on the claims)",
    );
    /// The settings [`ForwardedConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[
        Self::AUTH_FORWARDERS,
        Self::AUTH_FORWARDED_AUDIENCES,
        Self::AUTH_FORWARDED_MODE,
    ];

    /// Reads and validates the forwarded-identity settings for a service authenticating
    /// with `auth`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable: a bad entry or mode, forwarders without
    /// audiences, or forwarders with `AUTH_MODE=off` (no principal to trust).
    pub fn from_source(src: &dyn Source, auth: &AuthConfig) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let forwarders = principal_list(&r, &Self::AUTH_FORWARDERS)?;
        let audiences = r.list(&Self::AUTH_FORWARDED_AUDIENCES);
        let mode: ForwardedMode = r.parse(&Self::AUTH_FORWARDED_MODE)?;
        if !forwarders.is_empty() {
            if auth.mode == AuthMode::Off {
                return Err(ConfigError::invalid(
                    Self::AUTH_FORWARDERS.name,
                    r.raw(&Self::AUTH_FORWARDERS).unwrap_or_default(),
                    "needs AUTH_MODE verify or platform: with AUTH_MODE=off no principal is known to trust",
                ));
            }
            if audiences.is_empty() {
                return Err(ConfigError::missing(
                    Self::AUTH_FORWARDED_AUDIENCES.name,
                    "required when AUTH_FORWARDERS is set: the aud of forwarded end-user tokens (the forwarder's own URL)",
                ));
            }
        }
        Ok(Self {
            forwarders,
            audiences,
            mode,
        })
    }
}
