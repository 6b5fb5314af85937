//! Verification of one token: shape, algorithm (from the key, never the token), signature,
//! then `iss`, `aud`, `exp`, `nbf`, `iat` with a leeway, and a maximum lifetime (`exp − iat`).
//!
//! With [`Signature::StrippedByCloudRun`] a token whose signature Cloud Run replaced with
//! [`STRIPPED_SIGNATURE`] is accepted on the same claim checks without a signature.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::keys::{Algorithm, JwksCache, KeySource};
use super::memo::{Memo, MemoLimits};
use crate::claims::Claims;
use crate::clock::{SharedClock, SystemClock};
use crate::error::AuthError;
use crate::identity::Identity;

/// The signature part Cloud Run puts in place of the real one after checking a token.
pub const STRIPPED_SIGNATURE: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// Issuers Google puts in ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// The `iss` of Identity-Aware Proxy's signed headers (`X-Goog-IAP-JWT-Assertion`).
pub const IAP_ISSUER: &str = "https://cloud.google.com/iap";

/// The clock skew IAP documents for its signed headers: 30 seconds on `exp` and `iat`.
pub const IAP_LEEWAY: Duration = Duration::from_secs(30);

/// The longest life of an IAP signed header: IAP documents 10 minutes (plus twice the skew,
/// which the leeway adds).
pub const IAP_MAX_LIFETIME: Duration = Duration::from_secs(600);

/// What kind of token a [`Verifier`] accepts: it fixes the algorithms, the issuer's defaults
/// and the rules that turn verified claims into an [`Identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenKind {
    /// A Google-signed OIDC ID token: RS256 (or ES256 where the key set says so), the email
    /// must be verified (`email_verified: true`).
    #[default]
    GoogleIdToken,
    /// Identity-Aware Proxy's signed header (`X-Goog-IAP-JWT-Assertion`): ES256 only, issuer
    /// [`IAP_ISSUER`], always a real signature (Cloud Run never strips it), and the person's
    /// `email` as IAP asserts it (IAP's assertions carry no `email_verified`: IAP only lets
    /// through people it authenticated).
    IapAssertion,
}

impl TokenKind {
    /// The algorithms accepted for this kind (the key's own algorithm must match too).
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Self::GoogleIdToken => &[Algorithm::RS256, Algorithm::ES256],
            Self::IapAssertion => &[Algorithm::ES256],
        }
    }
}

/// Longer tokens are refused before any parsing (Google ID tokens are about 1 KiB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Whether a token's signature must be checked. A named type, never a bare `bool`: the one
/// value that skips the cryptographic check says so where it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signature {
    /// The signature is verified against the key set; a stripped signature is refused.
    #[default]
    Required,
    /// Only behind Cloud Run's IAM check (which verified the token and then removed its
    /// signature): a signature that is exactly [`STRIPPED_SIGNATURE`] is accepted on the claims
    /// alone; any other signature is still verified. Anyone who can reach the service without
    /// passing Cloud Run's check can then claim any identity.
    StrippedByCloudRun,
}

/// Verifies Google-signed ID tokens for a set of audiences. Cheap to clone (shared state).
///
/// ```no_run
/// # async fn f(token: &str) -> Result<(), invoker_auth::AuthError> {
/// use invoker_auth::verify::Verifier;
/// let verifier = Verifier::builder(["https://my-service-abc-uc.a.run.app"]).build();
/// let claims = verifier.verify(token).await?;
/// println!("{} calls", claims.email.as_deref().unwrap_or("?"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Arc<dyn KeySource>,
    audiences: Vec<String>,
    issuers: Vec<String>,
    leeway: u64,
    max_lifetime: u64,
    signature: Signature,
    kind: TokenKind,
    clock: SharedClock,
    /// Tokens already verified, by the digest of their text: a caller presents the same token
    /// for up to an hour, and the signature check is most of a request's cost.
    memo: Memo,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.inner.keys)
            .field("audiences", &self.inner.audiences)
            .field("issuers", &self.inner.issuers)
            .field("leeway", &self.inner.leeway)
            .field("signature", &self.inner.signature)
            .field("kind", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Verifier`]; every setting but the audiences has a default.
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    audiences: Vec<String>,
    issuers: Vec<String>,
    leeway: Duration,
    max_lifetime: Duration,
    keys: Option<Arc<dyn KeySource>>,
    signature: Signature,
    kind: TokenKind,
    clock: Option<SharedClock>,
    memo: MemoLimits,
}

impl VerifierBuilder {
    /// Bounds of the memo of verified tokens (default [`MemoLimits::default`];
    /// [`MemoLimits::OFF`] verifies every token in full every time).
    pub fn memo(mut self, limits: MemoLimits) -> Self {
        self.memo = limits;
        self
    }

    /// Accepted `iss` values (default [`GOOGLE_ISSUERS`]).
    pub fn issuers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Leeway on `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Longest accepted `exp − iat` (plus the leeway); default one hour, the life of Google's
    /// ID tokens.
    pub fn max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime;
        self
    }

    /// Where signing keys come from (default: [`JwksCache::google`]).
    pub fn keys(self, keys: impl KeySource) -> Self {
        self.shared_keys(Arc::new(keys))
    }

    /// The same, for a source shared with other verifiers (one key-set cache for several).
    pub fn shared_keys(mut self, keys: Arc<dyn KeySource>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The signature rule (default [`Signature::Required`]). Read the warning on
    /// [`Signature::StrippedByCloudRun`] before changing it. Ignored for
    /// [`TokenKind::IapAssertion`], whose signature is always required.
    pub fn signature(mut self, signature: Signature) -> Self {
        self.signature = signature;
        self
    }

    /// The clock token times are checked against (default [`SystemClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The verifier. Nothing is fetched until the first token.
    pub fn build(self) -> Verifier {
        let kind = self.kind;
        Verifier {
            inner: Arc::new(Inner {
                keys: self.keys.unwrap_or_else(|| match kind {
                    TokenKind::GoogleIdToken => Arc::new(JwksCache::google()),
                    TokenKind::IapAssertion => Arc::new(JwksCache::iap()),
                }),
                audiences: self.audiences,
                issuers: self.issuers,
                leeway: self.leeway.as_secs(),
                max_lifetime: self.max_lifetime.as_secs(),
                signature: match kind {
                    TokenKind::GoogleIdToken => self.signature,
                    TokenKind::IapAssertion => Signature::Required,
                },
                kind,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                memo: Memo::new(self.memo),
            }),
        }
    }
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl Verifier {
    /// A builder for tokens minted for any of `audiences` (the `aud` claim: for Cloud Run,
    /// the service's URL). An empty list accepts nothing.
    pub fn builder<I, S>(audiences: I) -> VerifierBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        VerifierBuilder {
            audiences: audiences.into_iter().map(Into::into).collect(),
            issuers: GOOGLE_ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            leeway: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(3600),
            keys: None,
            signature: Signature::Required,
            kind: TokenKind::GoogleIdToken,
            clock: None,
            memo: MemoLimits::default(),
        }
    }

    /// A builder for Identity-Aware Proxy's signed headers minted for any of `audiences` —
    /// for IAP on a Cloud Run service `/projects/PROJECT_NUMBER/locations/REGION/services/SERVICE`,
    /// behind a load balancer `/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID`.
    ///
    /// Defaults follow IAP's documentation: issuer [`IAP_ISSUER`], ES256 only, keys from
    /// [`JwksCache::iap`], leeway [`IAP_LEEWAY`], maximum lifetime [`IAP_MAX_LIFETIME`]; the
    /// signature is always verified. Claims become an [`Identity`] through
    /// [`Identity::from_iap_claims`].
    ///
    /// ```no_run
    /// # async fn f(assertion: &str) -> Result<(), invoker_auth::AuthError> {
    /// use invoker_auth::verify::Verifier;
    /// let iap = Verifier::iap(["/projects/123456789012/locations/europe-west1/services/caller"]).build();
    /// let claims = iap.verify(assertion).await?;
    /// let person = iap.identity(&claims)?;
    /// println!("{} came through IAP", person.email);
    /// # Ok(()) }
    /// ```
    pub fn iap<I, S>(audiences: I) -> VerifierBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        VerifierBuilder {
            issuers: vec![IAP_ISSUER.to_owned()],
            leeway: IAP_LEEWAY,
            max_lifetime: IAP_MAX_LIFETIME,
            kind: TokenKind::IapAssertion,
            ..Self::builder(audiences)
        }
    }

    /// The kind of token this verifier accepts.
    pub fn kind(&self) -> TokenKind {
        self.inner.kind
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.inner.issuers
    }

    /// The identity in claims this verifier accepted, by the rules of its [`TokenKind`]:
    /// [`Identity::from_claims`] for ID tokens, [`Identity::from_iap_claims`] for IAP.
    ///
    /// # Errors
    /// [`AuthError::Email`] or [`AuthError::EmailUnverified`].
    pub fn identity(&self, claims: &Claims) -> Result<Identity, AuthError> {
        match self.inner.kind {
            TokenKind::GoogleIdToken => Identity::from_claims(claims),
            TokenKind::IapAssertion => Identity::from_iap_claims(claims),
        }
    }

    /// The key source (to share it with another verifier, or to warm it up).
    pub fn key_source(&self) -> &Arc<dyn KeySource> {
        &self.inner.keys
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// The signature rule.
    pub fn signature(&self) -> Signature {
        self.inner.signature
    }

    /// Whether tokens can be verified: keys are at hand, or a fetch now succeeds.
    pub async fn ready(&self) -> bool {
        self.inner.keys.ready().await
    }

    /// Verifies `token` and returns its claims.
    ///
    /// A token whose signature was already verified (the exact same text, within the memo's
    /// [`MemoLimits`]) skips only the signature computation: every claim check (expiry included)
    /// runs again, and the key that verified it must still be the one the key source returns
    /// for its `kid` — so rotation, removal and expiry act exactly as on a first sight.
    ///
    /// # Errors
    /// The [`AuthError`] naming the first check that failed (never containing the token).
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        let inner = &*self.inner;
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("token is too large"));
        }
        // Seen before, exactly: its header was checked then (the text is the same), so only
        // the key (still the one published under its kid?) and the claims are checked again.
        let digest = Memo::digest(token);
        if let Some(hit) = inner.memo.get(&digest) {
            if Arc::ptr_eq(&inner.keys.key(&hit.kid).await?, &hit.key) {
                if let Err(e) = self.check_claims(&hit.claims) {
                    inner.memo.remove(&digest);
                    return Err(e);
                }
                return Ok(Arc::clone(&hit.claims));
            }
            // Its key left the key set (or changed): forget it, and verify in full below.
            inner.memo.remove(&digest);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "a JWT has exactly three dot-separated parts",
            ));
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(AuthError::Malformed("token has an empty part"));
        }
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(AuthError::Malformed("malformed token header"))?;
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(AuthError::Algorithm("token algorithm is not allowed")),
        };
        if !inner.kind.algorithms().contains(&alg) {
            return Err(AuthError::Algorithm("token algorithm is not allowed"));
        }

        if signature == STRIPPED_SIGNATURE {
            if inner.signature == Signature::Required {
                return Err(AuthError::Signature(
                    "token signature was removed (by Cloud Run); this service requires a real signature",
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
            .ok_or(AuthError::Malformed("token header has no kid"))?;
        let key = inner.keys.key(kid).await?;
        if alg != key.algorithm() {
            return Err(AuthError::Algorithm(
                "token algorithm does not match its signing key",
            ));
        }
        let message_len = token.len() - signature.len() - 1;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Malformed("malformed token signature"))?;
        if !key.verifies(&token.as_bytes()[..message_len], &signature) {
            return Err(AuthError::Signature("signature does not verify"));
        }
        let claims = decode_claims(payload)?;
        self.check_claims(&claims)?;
        let claims = Arc::new(claims);
        inner.memo.insert(digest, Arc::clone(&claims), kid, key);
        Ok(claims)
    }

    /// Tokens remembered now (see [`VerifierBuilder::memo`]).
    pub fn remembered(&self) -> usize {
        self.inner.memo.len()
    }

    /// The claim checks, shared by signed and stripped tokens.
    fn check_claims(&self, c: &Claims) -> Result<(), AuthError> {
        let inner = &*self.inner;
        let now = inner.clock.unix_secs();
        let latest = now.saturating_add(inner.leeway);
        if !inner.issuers.contains(&c.iss) {
            return Err(AuthError::Issuer);
        }
        if !inner.audiences.contains(&c.aud) {
            return Err(AuthError::Audience);
        }
        if c.exp.saturating_add(inner.leeway) < now {
            return Err(AuthError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > latest) {
            return Err(AuthError::NotYetValid);
        }
        if c.iat > latest {
            return Err(AuthError::IssuedInFuture);
        }
        if c.exp.saturating_sub(c.iat) > inner.max_lifetime.saturating_add(inner.leeway) {
            return Err(AuthError::Lifetime);
        }
        Ok(())
    }
}

/// The `aud` and `iss` a token claims, decoded WITHOUT any verification — for choosing a
/// verifier by issuer and for telling a refused caller what its token said. `None` when the
/// token is not a JWT with a JSON payload carrying both as strings. Never trust the result.
pub fn unverified_aud_iss(token: &str) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct AudIss {
        aud: String,
        iss: String,
    }
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let c: AudIss = serde_json::from_slice(&bytes).ok()?;
    Some((c.aud, c.iss))
}

/// Decodes a token's payload.
fn decode_claims(payload: &str) -> Result<Claims, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::Malformed("malformed token payload"))?;
    Claims::from_json(&bytes)
}
