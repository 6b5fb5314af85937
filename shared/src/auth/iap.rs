//! People behind Identity-Aware Proxy (`caller` only): `AUTH_IAP_AUDIENCES`, the audiences of
//! IAP's signed header this service accepts. When set, the end user is the person in a
//! verified `X-Goog-IAP-JWT-Assertion` (the library's [`IapUsers`](invoker_auth::IapUsers)).

use crate::config::{ConfigError, Reader, Setting, Source};

use super::config::AuthConfig;
use super::mode::AuthMode;

/// Validated IAP settings.
#[derive(Debug, Clone, Default)]
pub struct IapConfig {
    /// `AUTH_IAP_AUDIENCES`; empty = IAP mode off.
    pub audiences: Vec<String>,
}

impl IapConfig {
    /// `AUTH_IAP_AUDIENCES`.
    pub const AUTH_IAP_AUDIENCES: Setting = Setting::unset(
        "AUTH_IAP_AUDIENCES",
        "empty (off)",
        "comma list of aud values of IAP's signed header (X-Goog-IAP-JWT-Assertion) accepted; when set, the end user is the person IAP asserts and AUTH_ALLOWED_PRINCIPALS applies to that person. IAP on this Cloud Run service: /projects/PROJECT_NUMBER/locations/REGION/services/SERVICE; IAP on a load balancer: /projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID",
    );
    /// The settings [`IapConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[Self::AUTH_IAP_AUDIENCES];

    /// Reads and validates the IAP settings for a service authenticating with `auth`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `AUTH_IAP_AUDIENCES`: an audience that is not one of IAP's
    /// forms (a service URL there is the usual mistake), or IAP with `AUTH_MODE=off`.
    pub fn from_source(src: &dyn Source, auth: &AuthConfig) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let audiences = r.list(&Self::AUTH_IAP_AUDIENCES);
        let name = Self::AUTH_IAP_AUDIENCES.name;
        if !audiences.is_empty() && auth.mode == AuthMode::Off {
            return Err(ConfigError::invalid(
                name,
                r.raw(&Self::AUTH_IAP_AUDIENCES).unwrap_or_default(),
                "needs AUTH_MODE verify or platform: with AUTH_MODE=off nothing is verified",
            ));
        }
        for aud in &audiences {
            if !is_iap_audience(aud) {
                return Err(ConfigError::invalid(
                    name,
                    aud.clone(),
                    "not an IAP signed-header audience: expected /projects/PROJECT_NUMBER/locations/REGION/services/SERVICE (IAP on Cloud Run), /projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID (IAP on a load balancer) or /projects/PROJECT_NUMBER/apps/PROJECT_ID (App Engine); the service URL belongs in AUTH_AUDIENCES",
                ));
            }
        }
        Ok(Self { audiences })
    }

    /// Whether IAP mode is on.
    pub fn enabled(&self) -> bool {
        !self.audiences.is_empty()
    }
}

/// `/projects/<number>/` followed by one of IAP's resource forms, each segment non-empty and
/// free of spaces and slashes.
pub fn is_iap_audience(aud: &str) -> bool {
    let parts: Vec<&str> = aud.split('/').collect();
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let number_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    match parts.as_slice() {
        ["", "projects", n, "locations", region, "services", svc] => {
            number_ok(n) && segment_ok(region) && segment_ok(svc)
        }
        ["", "projects", n, "global", "backendServices", id] => number_ok(n) && segment_ok(id),
        ["", "projects", n, "apps", project] => number_ok(n) && segment_ok(project),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapSource;

    fn auth() -> AuthConfig {
        AuthConfig::from_source(&MapSource::from_pairs([
            ("AUTH_AUDIENCES", "https://caller-abc-ew.a.run.app"),
            ("AUTH_ALLOWED_PRINCIPALS", "alice@example.com"),
        ]))
        .expect("auth")
    }

    #[test]
    fn iap_audiences_are_checked_for_their_form() {
        for ok in [
            "/projects/123456789012/locations/europe-west1/services/caller",
            "/projects/123456789012/global/backendServices/4567890123",
            "/projects/123456789012/apps/my-project",
        ] {
            assert!(is_iap_audience(ok), "{ok}");
        }
        for bad in [
            "https://caller-abc-ew.a.run.app",
            "/projects/my-project/locations/europe-west1/services/caller",
            "/projects/123/locations//services/caller",
            "/projects/123/global/backendServices/",
            "projects/123/apps/p",
            "/projects/123/apps/p/extra",
        ] {
            assert!(!is_iap_audience(bad), "{bad}");
        }
        let e = IapConfig::from_source(
            &MapSource::from_pairs([("AUTH_IAP_AUDIENCES", "https://caller-abc-ew.a.run.app")]),
            &auth(),
        )
        .expect_err("a URL is not an IAP audience");
        assert_eq!(e.name, "AUTH_IAP_AUDIENCES");
        let off =
            AuthConfig::from_source(&MapSource::from_pairs([("AUTH_MODE", "off")])).expect("off");
        let e = IapConfig::from_source(
            &MapSource::from_pairs([("AUTH_IAP_AUDIENCES", "/projects/1/apps/p")]),
            &off,
        )
        .expect_err("IAP needs verification");
        assert_eq!(e.name, "AUTH_IAP_AUDIENCES");
        let none = IapConfig::from_source(&MapSource::default(), &auth()).expect("off");
        assert!(!none.enabled());
    }
}
