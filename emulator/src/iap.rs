//! IAP signed-header assertions as Identity-Aware Proxy writes them for a request it lets
//! through: `iss` [`IAP_ISSUER`], `aud` the protected resource (for IAP on a Cloud Run service
//! [`iap_cloud_run_audience`]; behind a load balancer
//! `/projects/NUMBER/global/backendServices/ID`), `sub` `accounts.google.com:<numeric id>`,
//! `email`, `hd` for a Workspace user, `iat`, and `exp` ten minutes later. Also the Cloud Run
//! side of IAP: its service agent's ID token, whose signature Cloud Run strips.

use std::time::Duration;

use serde_json::{Value, json};

/// The `iss` of IAP's assertions.
pub const IAP_ISSUER: &str = "https://cloud.google.com/iap";

/// IAP's service agent in the emulated project (number `000000000000`): the identity in the ID
/// token IAP presents to a Cloud Run service in `X-Serverless-Authorization`.
pub const IAP_SERVICE_AGENT: &str = "service-000000000000@gcp-sa-iap.iam.gserviceaccount.com";

/// What Cloud Run puts in place of a token's signature once it has checked it.
pub const STRIPPED_SIGNATURE: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// `exp − iat` of IAP's assertions.
pub const IAP_ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The `aud` IAP gives a Cloud Run service it protects:
/// `/projects/PROJECT_NUMBER/locations/REGION/services/SERVICE`.
pub fn iap_cloud_run_audience(project_number: &str, region: &str, service: &str) -> String {
    format!("/projects/{project_number}/locations/{region}/services/{service}")
}

/// The `sub` IAP gives `email`: `accounts.google.com:` and a stable 21-digit id (the same id as
/// the emulator's ID tokens for that email).
pub fn iap_subject(email: &str) -> String {
    format!("accounts.google.com:{}", crate::subject(email))
}

/// `token` with its signature replaced by [`STRIPPED_SIGNATURE`], as Cloud Run hands a checked
/// token to the container.
pub fn strip_signature(token: &str) -> String {
    let signed = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
    format!("{signed}.{STRIPPED_SIGNATURE}")
}

/// The claims of one IAP assertion. [`IapAssertion::new`] gives what IAP writes for a person;
/// the other fields are there to write the assertions a verifier must refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IapAssertion {
    /// `email`: the person.
    pub email: String,
    /// `aud`: the protected resource.
    pub audience: String,
    /// `sub`; `None`: [`iap_subject`] of the email.
    pub sub: Option<String>,
    /// `hd`, the Workspace domain; `None`: no `hd` claim (a consumer account).
    pub hd: Option<String>,
    /// `iat` in seconds since the epoch; `None`: now.
    pub issued_at: Option<u64>,
    /// `exp − iat`; IAP's is [`IAP_ASSERTION_LIFETIME`].
    pub lifetime: Duration,
    /// `iss`; IAP's is [`IAP_ISSUER`].
    pub issuer: String,
}

impl IapAssertion {
    /// What IAP writes for `email` at `audience`: issued now, valid ten minutes.
    pub fn new(email: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            audience: audience.into(),
            sub: None,
            hd: None,
            issued_at: None,
            lifetime: IAP_ASSERTION_LIFETIME,
            issuer: IAP_ISSUER.to_owned(),
        }
    }

    /// With `hd` (the person's Workspace domain).
    #[must_use]
    pub fn with_hd(mut self, hd: impl Into<String>) -> Self {
        self.hd = Some(hd.into());
        self
    }

    /// With `sub` given instead of derived from the email.
    #[must_use]
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// Issued at `iat` (seconds since the epoch) instead of now.
    #[must_use]
    pub fn with_issued_at(mut self, iat: u64) -> Self {
        self.issued_at = Some(iat);
        self
    }

    /// With `exp − iat` = `lifetime`.
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// With `iss` = `issuer`.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The claims, with `iat` = `issued_at` or else `now`.
    pub fn claims(&self, now: u64) -> Value {
        let iat = self.issued_at.unwrap_or(now);
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.sub.clone().unwrap_or_else(|| iap_subject(&self.email)),
            "email": self.email,
            "iat": iat,
            "exp": iat.saturating_add(self.lifetime.as_secs()),
            "identity_source": "GOOGLE",
        });
        if let (Some(hd), Some(map)) = (&self.hd, claims.as_object_mut()) {
            map.insert("hd".into(), json!(hd));
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_as_iap_writes_them() {
        let c = IapAssertion::new("alice@example.com", "/projects/1/global/backendServices/2")
            .with_issued_at(1_000)
            .claims(5_000);
        assert_eq!(c["iss"], IAP_ISSUER);
        assert_eq!(c["aud"], "/projects/1/global/backendServices/2");
        assert_eq!(c["email"], "alice@example.com");
        assert_eq!(c["iat"], 1_000);
        assert_eq!(c["exp"], 1_600);
        assert!(c.get("hd").is_none());
        let sub = c["sub"].as_str().expect("sub");
        let id = sub.strip_prefix("accounts.google.com:").expect("prefix");
        assert!(
            id.len() == 21 && id.bytes().all(|b| b.is_ascii_digit()),
            "{sub}"
        );
        let c = IapAssertion::new("bob@corp.example", "aud")
            .with_hd("corp.example")
            .with_sub("accounts.google.com:7")
            .with_issuer("https://elsewhere.example")
            .with_lifetime(Duration::from_secs(36_000))
            .claims(10);
        assert_eq!(c["hd"], "corp.example");
        assert_eq!(c["sub"], "accounts.google.com:7");
        assert_eq!(c["iss"], "https://elsewhere.example");
        assert_eq!(c["iat"], 10);
        assert_eq!(c["exp"], 36_010);
    }

    #[test]
    fn audiences_and_stripping() {
        assert_eq!(
            iap_cloud_run_audience("000000000000", "local", "caller"),
            "/projects/000000000000/locations/local/services/caller"
        );
        assert_eq!(strip_signature("a.b.c"), "a.b.SIGNATURE_REMOVED_BY_GOOGLE");
        assert_eq!(iap_subject("A@example.com"), iap_subject("a@example.com"));
    }
}
