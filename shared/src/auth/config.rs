//! Authentication settings (`AUTH_*`), declared once for `--help` and the parser.

use std::time::Duration;

use crate::config::{ConfigError, Reader, Setting, Source, require_secure_transport};

use std::sync::Arc;

use invoker_auth::AllowList;
use invoker_auth::verify::{JwksCache, KeySource, MemoLimits, Signature, Verifier};

use super::mode::AuthMode;

/// Validated authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `AUTH_MODE`.
    pub mode: AuthMode,
    /// `AUTH_AUDIENCES`: accepted `aud` values.
    pub audiences: Vec<String>,
    /// `AUTH_ALLOWED_PRINCIPALS` (or anyone with `AUTH_ALLOW_ANY_PRINCIPAL=true`); empty
    /// only when the mode is off.
    pub allowed: AllowList,
    /// `AUTH_ALLOW_ANY_PRINCIPAL`.
    pub allow_any_principal: bool,
    /// `AUTH_JWKS_URL`.
    pub jwks_url: String,
    /// `AUTH_IAP_JWKS_URL`: IAP's signing keys, used only where IAP assertions are accepted.
    pub iap_jwks_url: String,
    /// `AUTH_ISSUERS`.
    pub issuers: Vec<String>,
    /// `AUTH_CLOCK_SKEW_SECS`.
    pub clock_skew_secs: u64,
    /// `AUTH_MAX_TOKEN_LIFETIME_SECS`: tokens with `exp - iat` above this plus the skew are refused.
    pub max_token_lifetime_secs: u64,
    /// `AUTH_JWKS_MAX_STALE_SECS`: how long past their expiry cached keys still serve while
    /// the key-set endpoint is down.
    pub jwks_max_stale: Duration,
    /// `AUTH_TOKEN_MEMO_BYTES`: bytes the memo of verified tokens may take (0 = no memo).
    pub token_memo_bytes: u64,
    /// `AUTH_MODE=platform` off Cloud Run (`K_SERVICE` unset), allowed by
    /// `AUTH_PLATFORM_TRUSTED=true`: warned about loudly at start.
    pub platform_off_cloud_run: bool,
}

/// Google's key set for ID tokens.
pub const GOOGLE_JWKS_URL: &str = invoker_auth::verify::GOOGLE_JWKS_URL;
/// Identity-Aware Proxy's key set for its signed headers.
pub const IAP_JWKS_URL: &str = invoker_auth::verify::IAP_JWKS_URL;
/// Issuers Google puts in ID tokens (`AUTH_ISSUERS`'s default).
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
    /// `AUTH_IAP_JWKS_URL`.
    pub const AUTH_IAP_JWKS_URL: Setting = Setting::new(
        "AUTH_IAP_JWKS_URL",
        IAP_JWKS_URL,
        "Identity-Aware Proxy's signing keys (ES256), same cache rules as AUTH_JWKS_URL; used only where IAP assertions are accepted (caller: AUTH_IAP_AUDIENCES; called: forwarded IAP assertions)",
    );
    /// `AUTH_ISSUERS`.
    pub const AUTH_ISSUERS: Setting =
        Setting::new("AUTH_ISSUERS", GOOGLE_ISSUERS, "accepted iss values");
    /// `AUTH_CLOCK_SKEW_SECS`.
    pub const AUTH_CLOCK_SKEW_SECS: Setting =
        Setting::new("AUTH_CLOCK_SKEW_SECS", "60", "leeway on exp, nbf and iat");
    /// `AUTH_MAX_TOKEN_LIFETIME_SECS`.
    pub const AUTH_MAX_TOKEN_LIFETIME_SECS: Setting = Setting::new(
        "AUTH_MAX_TOKEN_LIFETIME_SECS",
        "3600",
        "tokens with exp - iat above this (plus the clock skew) are refused; Google's live one hour",
    );
    /// `AUTH_JWKS_MAX_STALE_SECS`.
    pub const AUTH_JWKS_MAX_STALE_SECS: Setting = Setting::new(
        "AUTH_JWKS_MAX_STALE_SECS",
        "86400",
        "how long past their expiry cached signing keys are still used while the key-set endpoint is down (then 503)",
    );
    /// `AUTH_TOKEN_MEMO_BYTES`.
    pub const AUTH_TOKEN_MEMO_BYTES: Setting = Setting::new(
        "AUTH_TOKEN_MEMO_BYTES",
        "16777216",
        "bytes the memo of verified tokens may take (a token seen before skips its signature check; every claim is checked again); about 65,536 tokens at the default; 0 turns it off",
    );
    /// `AUTH_PLATFORM_TRUSTED`.
    pub const AUTH_PLATFORM_TRUSTED: Setting = Setting::new(
        "AUTH_PLATFORM_TRUSTED",
        "false",
        "allow AUTH_MODE=platform where K_SERVICE is not set (anyone reaching the port can then claim any identity; warns loudly)",
    );
    /// `ALLOW_INSECURE_HTTP`.
    pub const ALLOW_INSECURE_HTTP: Setting = Setting::new(
        "ALLOW_INSECURE_HTTP",
        "false",
        "allow http:// URLs to hosts other than localhost, 127.0.0.0/8 and [::1] (AUTH_JWKS_URL, AUTH_IAP_JWKS_URL, CALLED_URL)",
    );
    /// The settings [`AuthConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[
        Self::AUTH_MODE,
        Self::AUTH_AUDIENCES,
        Self::AUTH_ALLOWED_PRINCIPALS,
        Self::AUTH_ALLOW_ANY_PRINCIPAL,
        Self::AUTH_JWKS_URL,
        Self::AUTH_IAP_JWKS_URL,
        Self::AUTH_ISSUERS,
        Self::AUTH_CLOCK_SKEW_SECS,
        Self::AUTH_MAX_TOKEN_LIFETIME_SECS,
        Self::AUTH_JWKS_MAX_STALE_SECS,
        Self::AUTH_TOKEN_MEMO_BYTES,
        Self::AUTH_PLATFORM_TRUSTED,
        Self::ALLOW_INSECURE_HTTP,
    ];

    /// Reads and validates the authentication settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let mode: AuthMode = r.parse(&Self::AUTH_MODE)?;
        let allow_any_principal = r.bool(&Self::AUTH_ALLOW_ANY_PRINCIPAL)?;
        let audiences = r.list(&Self::AUTH_AUDIENCES);
        let listed = principal_list(&r, &Self::AUTH_ALLOWED_PRINCIPALS)?;
        let allow_insecure_http = r.bool(&Self::ALLOW_INSECURE_HTTP)?;
        let jwks_url = key_set_url(&r, &Self::AUTH_JWKS_URL, allow_insecure_http)?;
        let iap_jwks_url = key_set_url(&r, &Self::AUTH_IAP_JWKS_URL, allow_insecure_http)?;
        let mut issuers = r.list(&Self::AUTH_ISSUERS);
        if issuers.is_empty() {
            issuers = GOOGLE_ISSUERS.split(',').map(str::to_owned).collect();
        }
        let clock_skew_secs = r.int_in(&Self::AUTH_CLOCK_SKEW_SECS, 0..=600)?;
        let max_token_lifetime_secs =
            r.int_in(&Self::AUTH_MAX_TOKEN_LIFETIME_SECS, 1..=7 * 86_400)?;
        let jwks_max_stale =
            Duration::from_secs(r.int_in(&Self::AUTH_JWKS_MAX_STALE_SECS, 0..=30 * 86_400)?);
        let token_memo_bytes = r.int_in(&Self::AUTH_TOKEN_MEMO_BYTES, 0..=1 << 30)?;
        let platform_trusted = r.bool(&Self::AUTH_PLATFORM_TRUSTED)?;
        let on_cloud_run = r.ambient("K_SERVICE").is_some();
        if mode == AuthMode::Platform && !on_cloud_run && !platform_trusted {
            return Err(ConfigError::invalid(
                "AUTH_MODE",
                "platform",
                "platform mode accepts unsigned tokens and is safe only behind Cloud Run's IAM check, but K_SERVICE is not set (not on Cloud Run); use AUTH_MODE=verify, or set AUTH_PLATFORM_TRUSTED=true if only a checking proxy can reach this port",
            ));
        }
        if mode != AuthMode::Off {
            if audiences.is_empty() {
                return Err(ConfigError::missing(
                    "AUTH_AUDIENCES",
                    "required unless AUTH_MODE=off: the aud values this service accepts (its own URL)",
                ));
            }
            if listed.is_empty() && !allow_any_principal {
                return Err(ConfigError::missing(
                    "AUTH_ALLOWED_PRINCIPALS",
                    "required unless AUTH_MODE=off or AUTH_ALLOW_ANY_PRINCIPAL=true: any Google account can mint a token for any audience, so name who may call",
                ));
            }
        }
        let allowed = if allow_any_principal {
            AllowList::any()
        } else {
            listed
        };
        Ok(Self {
            mode,
            audiences,
            allowed,
            allow_any_principal,
            jwks_url,
            iap_jwks_url,
            issuers,
            clock_skew_secs,
            max_token_lifetime_secs,
            jwks_max_stale,
            token_memo_bytes,
            platform_off_cloud_run: mode == AuthMode::Platform && !on_cloud_run,
        })
    }

    /// Settings for `AUTH_MODE=off` (tests, local experiments).
    pub fn off() -> Self {
        Self {
            mode: AuthMode::Off,
            audiences: Vec::new(),
            allowed: AllowList::new(Vec::new()),
            allow_any_principal: false,
            jwks_url: GOOGLE_JWKS_URL.to_owned(),
            iap_jwks_url: IAP_JWKS_URL.to_owned(),
            issuers: GOOGLE_ISSUERS.split(',').map(str::to_owned).collect(),
            clock_skew_secs: 60,
            max_token_lifetime_secs: 3600,
            jwks_max_stale: Duration::from_secs(86_400),
            token_memo_bytes: MemoLimits::default().max_bytes,
            platform_off_cloud_run: false,
        }
    }
}

impl AuthConfig {
    /// The key-set cache these settings describe (`AUTH_JWKS_URL`, `AUTH_JWKS_MAX_STALE_SECS`),
    /// fetched with `http`.
    pub fn key_set(&self, http: reqwest::Client) -> JwksCache {
        JwksCache::builder(self.jwks_url.clone())
            .http_client(http)
            .max_stale(self.jwks_max_stale)
            .build()
    }

    /// IAP's key-set cache (`AUTH_IAP_JWKS_URL`, `AUTH_JWKS_MAX_STALE_SECS`), fetched with
    /// `http`. Nothing is fetched until the first IAP assertion.
    pub fn iap_key_set(&self, http: reqwest::Client) -> JwksCache {
        JwksCache::builder(self.iap_jwks_url.clone())
            .http_client(http)
            .max_stale(self.jwks_max_stale)
            .build()
    }

    /// The library's IAP verifier for assertions minted for `audiences`, on `keys`: IAP's
    /// documented rules (issuer `https://cloud.google.com/iap`, ES256, 30 s skew, 10-minute
    /// life), with this service's memo bound.
    pub fn iap_verifier(&self, audiences: &[String], keys: Arc<dyn KeySource>) -> Verifier {
        Verifier::iap(audiences.iter().cloned())
            .shared_keys(keys)
            .memo(self.memo_limits())
            .build()
    }

    fn memo_limits(&self) -> MemoLimits {
        MemoLimits {
            // An entry weighs at least 256 bytes: the byte budget bounds the count too.
            max_entries: usize::try_from(self.token_memo_bytes / 256).unwrap_or(usize::MAX),
            max_bytes: self.token_memo_bytes,
        }
    }

    /// The library verifier these settings describe (`AUTH_ISSUERS`, `AUTH_CLOCK_SKEW_SECS`,
    /// `AUTH_MAX_TOKEN_LIFETIME_SECS`) for tokens minted for `audiences`, on `keys`.
    pub fn verifier(
        &self,
        audiences: &[String],
        signature: Signature,
        keys: Arc<dyn KeySource>,
    ) -> Verifier {
        Verifier::builder(audiences.iter().cloned())
            .issuers(self.issuers.iter().cloned())
            .leeway(Duration::from_secs(self.clock_skew_secs))
            .max_lifetime(Duration::from_secs(self.max_token_lifetime_secs))
            .shared_keys(keys)
            .signature(signature)
            .memo(self.memo_limits())
            .build()
    }
}

/// A key-set URL setting: http(s) with a host, and https unless loopback or
/// `ALLOW_INSECURE_HTTP=true`.
fn key_set_url(
    r: &Reader<'_>,
    setting: &Setting,
    allow_insecure_http: bool,
) -> Result<String, ConfigError> {
    let url: String = r.parse(setting)?;
    match url::Url::parse(&url) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            require_secure_transport(setting.name, &u, allow_insecure_http)?;
            Ok(url)
        }
        _ => Err(ConfigError::invalid(
            setting.name,
            url,
            "must be an http(s) URL",
        )),
    }
}

/// Parses a comma list of allow-list entries (`AUTH_ALLOWED_PRINCIPALS` syntax) from `setting`.
///
/// # Errors
/// A [`ConfigError`] naming the setting and the entry that is neither an email nor `*@domain`.
pub fn principal_list(r: &Reader<'_>, setting: &Setting) -> Result<AllowList, ConfigError> {
    AllowList::parse(r.list(setting)).map_err(|e| {
        ConfigError::invalid(
            setting.name,
            r.raw(setting).unwrap_or_default(),
            e.to_string(),
        )
    })
}
