//! Authentication of incoming requests. Each module owns one concern:
//!
//! - [`mode`]: `AUTH_MODE` and the [`Signature`] rule (the one switch that skips a signature check).
//! - [`allow_list`]: the allow-list syntax — exact emails and `*@domain` patterns.
//! - [`config`]: the `AUTH_*` settings, declared once.
//! - [`forwarded`]: `called`'s trusted forwarders and the end user in `X-Forwarded-Authorization`.
//! - [`keys`]: the key-set (JWKS) cache — Cache-Control aware, single flight, refetch cooldown.
//! - [`verifier`]: cryptographic and claim checks of a Google-signed ID token.
//! - [`authenticator`]: the policy — which header, verification, `email` rules, allow-list.
//! - [`error`]: why a request was not authenticated, mapped to 401/403/503 once.
//! - [`extract`]: the axum extractor [`Principal`].
//!
//! The flow: [`Principal`] (extractor) → [`Authenticator::authenticate`] → bearer token from
//! the right header → [`Verifier::verify`] → allow-list → [`Identity`]; then, from a trusted
//! forwarder, `X-Forwarded-Authorization` → the forwarded verifier → `on_behalf_of`.

pub mod allow_list;
pub mod authenticator;
pub mod config;
pub mod error;
pub mod extract;
pub mod forwarded;
pub mod keys;
pub mod mode;
pub mod verifier;

pub use allow_list::PrincipalPattern;
pub use authenticator::{Authenticator, Identity, SERVERLESS_AUTHORIZATION, bearer_token};
pub use config::{AuthConfig, GOOGLE_ISSUERS, GOOGLE_JWKS_URL};
pub use error::AuthError;
pub use extract::Principal;
pub use forwarded::{FORWARDED_AUTHORIZATION, ForwardedConfig, ForwardedMode};
pub use mode::{AuthMode, Signature};
pub use verifier::{Claims, Verifier};

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
