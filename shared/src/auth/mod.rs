//! The services' side of authentication: the `AUTH_*` settings mapped onto the
//! [`invoker_auth`] library's builders, and the library's refusals mapped onto problem
//! responses and log entries. The checks themselves live in the library. Each module owns one
//! concern:
//!
//! - [`mode`]: `AUTH_MODE` and what it means for the signature rule and the header rule.
//! - [`config`]: the `AUTH_*` settings, declared once.
//! - [`forwarded`]: `called`'s trusted forwarders and the end user in `X-Forwarded-Authorization`.
//! - [`iap`]: `caller`'s people behind Identity-Aware Proxy (`AUTH_IAP_AUDIENCES`).
//! - [`refusal`]: a refusal's one structured log entry (the `auth` object).
//! - [`service`]: [`ServiceAuth`] — the settings turned into the library's `Authenticator`,
//!   [`protect`] for a route, the rejection hook (problem + log), and the [`Caller`] extractor.

pub mod config;
pub mod forwarded;
pub mod iap;
pub mod mode;
pub mod refusal;
pub mod service;

pub use config::{AuthConfig, GOOGLE_ISSUERS, GOOGLE_JWKS_URL};
pub use forwarded::{ForwardedConfig, ForwardedMode};
pub use iap::IapConfig;
pub use invoker_auth::{AllowList, Identity, PrincipalPattern, SERVERLESS_AUTHORIZATION};
pub use mode::AuthMode;
pub use service::{AuthDisabled, Caller, EndUsers, ServiceAuth, problem, protect};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapSource;

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
        let anyone = Identity {
            email: "anyone@gmail.com".into(),
            subject: "1".into(),
            hosted_domain: None,
        };
        assert!(ok.allowed.admits(&anyone));
        let off =
            AuthConfig::from_source(&MapSource::from_pairs([("AUTH_MODE", "off")])).expect("off");
        assert_eq!(off.mode, AuthMode::Off);
        let e = AuthConfig::from_source(&MapSource::from_pairs([("AUTH_MODE", "open")]))
            .expect_err("bad mode");
        assert_eq!(e.name, "AUTH_MODE");
        let e = AuthConfig::from_source(&MapSource::from_pairs([
            ("AUTH_AUDIENCES", "https://x"),
            ("AUTH_ALLOWED_PRINCIPALS", "a@b.com,nobody"),
        ]))
        .expect_err("bad entry");
        assert_eq!(e.name, "AUTH_ALLOWED_PRINCIPALS");
    }
}
