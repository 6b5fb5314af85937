//! Verification of Google-signed OIDC ID tokens: shape, algorithm (from the key, never the
//! token), signature, then `iss`, `aud`, `exp`, `nbf` and `iat` with the configured clock skew,
//! and a lifetime (`exp - iat`) of at most `AUTH_MAX_TOKEN_LIFETIME_SECS` (plus the skew).
//!
//! In platform mode a token whose signature Cloud Run replaced with
//! [`STRIPPED_SIGNATURE`] is accepted on the same claim checks without a signature.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Deserializer};

use crate::auth::keys::{KeySetCache, VerificationKey};
use crate::auth::{AuthConfig, AuthError, Signature};

/// The signature part Cloud Run puts in place of the real one after checking a token.
pub const STRIPPED_SIGNATURE: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// Longer tokens are refused before any parsing (Google ID tokens are about 1 KiB).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Claims of a Google ID token that this service uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// Issuer (`https://accounts.google.com`).
    pub iss: String,
    /// Audience: the URL or client id the token was minted for.
    pub aud: String,
    /// Subject: Google's stable numeric id of the principal.
    pub sub: String,
    /// Authorized party, when present.
    #[serde(default)]
    pub azp: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Not-before, seconds since the epoch, when present.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Email of the principal (only in `format=full` tokens).
    #[serde(default)]
    pub email: Option<String>,
    /// Hosted domain: the Google Workspace / Cloud Identity domain of a user account.
    #[serde(default)]
    pub hd: Option<String>,
    /// Whether Google verified the email; accepts `true` or `"true"` (and the `false` forms).
    #[serde(default, deserialize_with = "bool_or_string")]
    pub email_verified: Option<bool>,
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(d)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Flag::Text(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Flag::Text(_)) => Err(serde::de::Error::custom(
            "email_verified must be true or false",
        )),
    }
}

/// Most tokens whose signature check is remembered (see [`Verifier::verify`]).
const VERIFIED_CAPACITY: usize = 1024;

/// A token whose signature was checked, and the key that checked it (published under `kid`).
struct Verified {
    claims: Arc<Claims>,
    kid: Arc<str>,
    key: Arc<VerificationKey>,
}

type VerifiedMap = HashMap<Box<str>, Verified, foldhash::fast::RandomState>;

/// Verifies ID tokens against the configured key set, audiences and issuers.
pub struct Verifier {
    keys: KeySetCache,
    audiences: Vec<String>,
    issuers: Vec<String>,
    leeway: u64,
    /// `AUTH_MAX_TOKEN_LIFETIME_SECS`.
    max_lifetime: u64,
    rs256: Validation,
    es256: Validation,
    /// Tokens already verified, by their exact text: a caller presents the same token for
    /// up to an hour, and the RSA check is most of a request's cost. Hashed with foldhash
    /// (randomly seeded): a ~1 KiB token costs a fraction of SipHash's time, three times per
    /// request, and only verified tokens are ever stored.
    verified: RwLock<VerifiedMap>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys)
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds a verifier; `http` is the shared outbound client used for the key set. Nothing
    /// is fetched until the first token (or [`KeySetCache::warm_up`]).
    pub fn new(cfg: &AuthConfig, http: reqwest::Client) -> Self {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.set_audience(&cfg.audiences);
            v.set_issuer(&cfg.issuers);
            v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
            v.leeway = cfg.clock_skew_secs;
            v.validate_exp = true;
            v.validate_nbf = true;
            v.validate_aud = true;
            v
        };
        Self {
            keys: KeySetCache::with_max_stale(cfg.jwks_url.clone(), http, cfg.jwks_max_stale),
            audiences: cfg.audiences.clone(),
            issuers: cfg.issuers.clone(),
            leeway: cfg.clock_skew_secs,
            max_lifetime: cfg.max_token_lifetime_secs,
            rs256: validation(Algorithm::RS256),
            es256: validation(Algorithm::ES256),
            verified: RwLock::new(VerifiedMap::default()),
        }
    }

    /// The same checks and the same key set, for tokens minted for `audiences` instead (the
    /// forwarded end user's token is for the forwarder, not for this service).
    pub fn for_audiences(&self, audiences: &[String]) -> Self {
        let mut rs256 = self.rs256.clone();
        rs256.set_audience(audiences);
        let mut es256 = self.es256.clone();
        es256.set_audience(audiences);
        Self {
            keys: self.keys.clone(),
            audiences: audiences.to_vec(),
            issuers: self.issuers.clone(),
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
            rs256,
            es256,
            verified: RwLock::new(VerifiedMap::default()),
        }
    }

    /// The key-set cache (counters, warm-up).
    pub fn keys(&self) -> &KeySetCache {
        &self.keys
    }

    /// Whether tokens can be verified: keys are cached, or a fetch now succeeds.
    pub async fn ready(&self) -> bool {
        self.keys.ensure_loaded().await
    }

    /// Verifies `token` and returns its claims.
    ///
    /// With [`Signature::StrippedByCloudRun`] (platform mode) a token whose signature is exactly
    /// [`STRIPPED_SIGNATURE`] is accepted on its claims alone; any other signature is verified.
    ///
    /// A token whose signature was already verified (the exact same text, up to
    /// 1024 remembered) skips only the signature computation: the header checks and every
    /// claim check (expiry included) run again, and the key that verified it must still be the
    /// one the key set publishes under its `kid` — so rotation, removal and expiry act exactly
    /// as on a first sight.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] with a short reason (never the token), or
    /// [`AuthError::KeysUnavailable`] when no signing keys could be fetched yet.
    pub async fn verify(
        &self,
        token: &str,
        signature_rule: Signature,
    ) -> Result<Arc<Claims>, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("token is too large"));
        }
        // Seen before, exactly: its header was checked then (the text is the same), so only
        // the key (still the one published under its kid?) and the claims are checked again.
        if let Some((kid, key, claims)) = self.remembered(token)
            && Arc::ptr_eq(&self.keys.key(&kid).await?, &key)
        {
            self.check_claims(&claims)?;
            return Ok(claims);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("a JWT has exactly three dot-separated parts"));
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(invalid("token has an empty part"));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token header"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid("token algorithm is not allowed"));
        }

        if signature == STRIPPED_SIGNATURE {
            if signature_rule == Signature::Required {
                return Err(invalid(
                    "token signature was removed; such tokens are accepted only behind Cloud Run (AUTH_MODE=platform)",
                ));
            }
            let claims = decode_claims(payload)?;
            self.check_claims(&claims)?;
            return Ok(Arc::new(claims));
        }

        let kid = header
            .kid
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid("token header has no kid"))?;
        let key = self.keys.key(kid).await?;
        if header.alg != key.algorithm {
            return Err(invalid("token algorithm does not match its signing key"));
        }
        let validation = if key.algorithm == Algorithm::ES256 {
            &self.es256
        } else {
            &self.rs256
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, validation).map_err(reason)?;
        // jsonwebtoken does not check `iat`; the other checks repeat cheaply.
        self.check_claims(&data.claims)?;
        let claims = Arc::new(data.claims);
        self.remember(token, &claims, kid, key);
        Ok(claims)
    }

    /// What verified `token` before, if it did: its kid, the key and the claims.
    fn remembered(&self, token: &str) -> Option<(Arc<str>, Arc<VerificationKey>, Arc<Claims>)> {
        let verified = self.verified.read().unwrap_or_else(PoisonError::into_inner);
        let hit = verified.get(token)?;
        Some((hit.kid.clone(), hit.key.clone(), hit.claims.clone()))
    }

    fn remember(&self, token: &str, claims: &Arc<Claims>, kid: &str, key: Arc<VerificationKey>) {
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAPACITY {
            // Crude but bounded: every entry is re-earned with one full verification.
            verified.clear();
        }
        verified.insert(
            token.into(),
            Verified {
                claims: claims.clone(),
                kid: kid.into(),
                key,
            },
        );
    }

    /// The claim checks, shared by signed and stripped tokens.
    fn check_claims(&self, c: &Claims) -> Result<(), AuthError> {
        let now = now_secs();
        let latest = now.saturating_add(self.leeway);
        if !self.issuers.contains(&c.iss) {
            return Err(invalid("wrong issuer"));
        }
        if !self.audiences.contains(&c.aud) {
            return Err(invalid("wrong audience"));
        }
        if c.exp.saturating_add(self.leeway) < now {
            return Err(invalid("token expired"));
        }
        if c.nbf.is_some_and(|nbf| nbf > latest) {
            return Err(invalid("token not valid yet (nbf)"));
        }
        if c.iat > latest {
            return Err(invalid("token issued in the future (iat)"));
        }
        if c.exp.saturating_sub(c.iat) > self.max_lifetime.saturating_add(self.leeway) {
            return Err(invalid(
                "token lifetime (exp - iat) is longer than AUTH_MAX_TOKEN_LIFETIME_SECS allows",
            ));
        }
        Ok(())
    }
}

fn invalid(reason: &str) -> AuthError {
    AuthError::Invalid(reason.to_owned())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Decodes the payload of a token whose signature was stripped.
fn decode_claims(payload: &str) -> Result<Claims, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| invalid("malformed token payload"))?;
    serde_json::from_slice(&bytes).map_err(|e| claims_error(&e))
}

fn claims_error(e: &serde_json::Error) -> AuthError {
    let msg = e.to_string();
    if msg.starts_with("missing field") {
        // "missing field `iat`": names the claim, contains nothing from the token.
        let field = msg.split('`').nth(1).unwrap_or("?");
        AuthError::Invalid(format!("missing {field} claim"))
    } else if e.is_syntax() || e.is_eof() {
        invalid("token payload is not JSON")
    } else {
        invalid("a claim has the wrong type")
    }
}

/// Maps a jsonwebtoken failure to a short reason.
fn reason(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature => invalid("signature does not verify"),
        ErrorKind::ExpiredSignature => invalid("token expired"),
        ErrorKind::ImmatureSignature => invalid("token not valid yet (nbf)"),
        ErrorKind::InvalidIssuer => invalid("wrong issuer"),
        ErrorKind::InvalidAudience => invalid("wrong audience"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            invalid("token algorithm is not allowed")
        }
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
            AuthError::Invalid(format!("missing or malformed {c} claim"))
        }
        ErrorKind::Json(e) => claims_error(e),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            invalid("malformed token")
        }
        _ => invalid("token cannot be verified"),
    }
}
