//! Signing keys: the [`KeySource`] trait a [`Verifier`](super::Verifier) asks for a key by id,
//! and [`JwksCache`], the default — a JSON Web Key Set fetched over HTTP(S) and kept by the
//! crate's one [`Refresher`]:
//!
//! - fresh for the response's `Cache-Control: max-age` minus `Age` (clamped to
//!   [[`MIN_MAX_AGE`], [`MAX_MAX_AGE`]], [`DEFAULT_MAX_AGE`] without one; `no-cache`/`no-store`
//!   revalidate every [`REVALIDATE_AFTER`]), then refreshed in the background while the stale
//!   set keeps serving;
//! - stale keys serve while the endpoint is down, but at most `max_stale` past freshness — then
//!   [`AuthError::KeysUnavailable`] (never acceptance);
//! - one fetch in flight at a time, each bounded by [`FETCH_TIMEOUT`] and [`MAX_KEY_SET_BYTES`];
//! - an unknown `kid` refetches at most once per [`UNKNOWN_KID_COOLDOWN`];
//! - after a failure, attempts are spaced 1 s, 2 s, 4 s, then every 5 s.
//!
//! The hot path (a known `kid`) is a read lock and a map lookup; it never waits on the network.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::time::Instant;

use crate::error::AuthError;
use crate::refresh::{Backoff, Fresh, Interrupted, RefreshOptions, Refresher};

/// Google's key set for ID tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Identity-Aware Proxy's key set for its signed headers (ES256, JWKS form).
pub const IAP_JWKS_URL: &str = "https://www.gstatic.com/iap/verify/public_key-jwk";
/// Bound on one fetch of the key set (connect, headers and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Freshness when the response has no usable `Cache-Control: max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Lower bound on the freshness taken from `Cache-Control`.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(60);
/// Upper bound on the freshness taken from `Cache-Control`.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Minimum time between two refetches triggered by an unknown `kid`.
pub const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// Freshness of a response marked `Cache-Control: no-cache` or `no-store`.
pub const REVALIDATE_AFTER: Duration = UNKNOWN_KID_COOLDOWN;
/// Largest key-set response read (Google's is a few KiB); a larger one is a failed fetch.
pub const MAX_KEY_SET_BYTES: usize = 256 * 1024;
/// Default bound on serving stale keys while the endpoint is down.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(86_400);
/// Spacing of fetch attempts after failures.
pub const FAILURE_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(5),
    jitter: false,
};

/// The signature algorithms a key may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of 2048 to 8192 bits): Google's ID tokens.
    RS256,
    /// ECDSA on P-256 with SHA-256: IAP's signed headers.
    ES256,
}

impl Algorithm {
    /// The JOSE name (`RS256`, `ES256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }
}

/// A public key from a key set, parsed once (not per verification), with the one algorithm it
/// may verify — taken from the key, never from the token.
#[derive(Clone)]
pub struct VerificationKey {
    algorithm: Algorithm,
    key: ParsedPublicKey,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// An RS256 key from a JWK's base64url `n` and `e`.
    ///
    /// # Errors
    /// A message when the components are not base64url or not an RSA key of 2048–8192 bits.
    pub fn rsa(n: &str, e: &str) -> Result<Self, String> {
        let n = URL_SAFE_NO_PAD
            .decode(n)
            .map_err(|_| "n is not base64url")?;
        let e = URL_SAFE_NO_PAD
            .decode(e)
            .map_err(|_| "e is not base64url")?;
        let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "an RS256 key has 2048 to 8192 bits, not about {bits}"
            ));
        }
        let der = der_sequence(&[der_integer(&n), der_integer(&e)].concat());
        let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der)
            .map_err(|e| format!("not a usable RSA key: {e}"))?;
        Ok(Self {
            algorithm: Algorithm::RS256,
            key,
        })
    }

    /// An ES256 key from a JWK's base64url P-256 `x` and `y`.
    ///
    /// # Errors
    /// A message when the coordinates are not base64url or not a point on P-256.
    pub fn ec_p256(x: &str, y: &str) -> Result<Self, String> {
        let x = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| "x is not base64url")?;
        let y = URL_SAFE_NO_PAD
            .decode(y)
            .map_err(|_| "y is not base64url")?;
        if x.len() != 32 || y.len() != 32 {
            return Err("P-256 coordinates are 32 bytes each".into());
        }
        let point = [&[4u8][..], &x, &y].concat();
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .map_err(|e| format!("not a P-256 point: {e}"))?;
        Ok(Self {
            algorithm: Algorithm::ES256,
            key,
        })
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether `signature` (raw bytes: PKCS#1 v1.5 for RS256, `r‖s` for ES256) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

/// DER `INTEGER` of an unsigned big-endian number.
fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let digits = &bytes[start.min(bytes.len())..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    der_tlv(0x02, &content)
}

fn der_sequence(content: &[u8]) -> Vec<u8> {
    der_tlv(0x30, content)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// What [`KeySource::key`] returns.
pub type KeyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send + 'a>>;
/// What [`KeySource::ready`] returns.
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Where a [`Verifier`](super::Verifier) gets signing keys. Implement it to verify against
/// keys from elsewhere (a file, a secret store, a fixed set in tests).
pub trait KeySource: Send + Sync + fmt::Debug + 'static {
    /// The key with id `kid`. The same `Arc` for as long as the key is unchanged: a verifier
    /// remembers tokens checked with a key only while the source still returns that key.
    ///
    /// # Errors
    /// [`AuthError::UnknownKey`] when the set has no such key; [`AuthError::KeysUnavailable`]
    /// when no keys can be had now.
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a>;

    /// Whether keys are at hand (fetching them first when there are none). For readiness.
    fn ready(&self) -> ReadyFuture<'_> {
        Box::pin(async { true })
    }
}

type KeyMap = Arc<HashMap<String, Arc<VerificationKey>>>;

/// A fixed set of keys (from a JWKS document): for tests, or keys distributed out of band.
#[derive(Debug, Clone)]
pub struct StaticKeys {
    keys: KeyMap,
}

impl StaticKeys {
    /// Parses a JWKS document (`{"keys": [...]}`); entries that are not RS256/ES256 signing
    /// keys are skipped.
    ///
    /// # Errors
    /// A message when the document is not a JWKS or has no usable key.
    pub fn from_jwks(document: &[u8]) -> Result<Self, String> {
        let keys = parse_jwks(document)?;
        if keys.is_empty() {
            return Err("the key set has no usable RS256 or ES256 signing key".into());
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }
}

impl KeySource for StaticKeys {
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a> {
        let key = self.keys.get(kid).cloned().ok_or(AuthError::UnknownKey);
        Box::pin(async move { key })
    }
}

/// One fetch of the key set failed (the cause is logged where it happens; requests see
/// [`AuthError::KeysUnavailable`]).
#[derive(Debug, Clone, Copy)]
struct FetchError;

impl From<Interrupted> for FetchError {
    fn from(i: Interrupted) -> Self {
        match i {
            Interrupted::TimedOut(d) => tracing::warn!(
                error = %format_args!("no complete answer within {}s", d.as_secs()),
                "cannot fetch signing keys"
            ),
            _ => tracing::warn!(error = %i, "cannot fetch signing keys"),
        }
        Self
    }
}

/// The key set at one JWKS URL, cached; cheap to clone:
///
/// - fresh for the response's `Cache-Control: max-age` minus `Age` (clamped to
///   [[`MIN_MAX_AGE`], [`MAX_MAX_AGE`]], [`DEFAULT_MAX_AGE`] without one; `no-cache`/`no-store`
///   revalidate every [`REVALIDATE_AFTER`]), then refreshed in the background while the stale
///   set keeps serving;
/// - stale keys serve while the endpoint is down, but at most `max_stale` past freshness — then
///   [`AuthError::KeysUnavailable`] (never acceptance);
/// - one fetch in flight at a time, each bounded by [`FETCH_TIMEOUT`] and [`MAX_KEY_SET_BYTES`];
/// - an unknown `kid` refetches at most once per [`UNKNOWN_KID_COOLDOWN`];
/// - after a failure, attempts are spaced 1 s, 2 s, 4 s, then every 5 s.
#[derive(Clone)]
pub struct JwksCache {
    url: Arc<str>,
    refresher: Refresher<KeyMap, FetchError>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .field("keys", &self.refresher.current().map_or(0, |k| k.len()))
            .field("fetches", &self.fetch_count())
            .finish()
    }
}

/// Builds a [`JwksCache`].
#[derive(Debug, Clone)]
pub struct JwksCacheBuilder {
    url: String,
    http: Option<reqwest::Client>,
    max_stale: Duration,
}

impl JwksCacheBuilder {
    /// The HTTP client to fetch with (default: a client that follows no redirects, with a
    /// 5 s connect timeout). Pass your process-wide client to share its pool.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// How long past their freshness cached keys still serve while the endpoint is down
    /// (default [`DEFAULT_MAX_STALE`]); then [`AuthError::KeysUnavailable`].
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// The cache. Nothing is fetched until the first key is asked for.
    pub fn build(self) -> JwksCache {
        let http = self.http.unwrap_or_else(default_client);
        let url: Arc<str> = self.url.into();
        let max_stale = self.max_stale;
        let opts = RefreshOptions {
            attempt_timeout: FETCH_TIMEOUT,
            max_wait: FETCH_TIMEOUT,
            backoff: FAILURE_BACKOFF,
            wait_out_backoff: false,
        };
        let fetch_url = Arc::clone(&url);
        let refresher = Refresher::new(opts, move || {
            let http = http.clone();
            let url = Arc::clone(&fetch_url);
            async move {
                let started = Instant::now();
                match download(&http, &url).await {
                    Ok((keys, ttl)) => {
                        tracing::debug!(url = %url, keys = keys.len(), fresh_secs = ttl.as_secs(), "signing keys fetched");
                        Ok(Fresh {
                            value: Arc::new(keys),
                            refresh_at: started + ttl,
                            expires_at: started + ttl + max_stale,
                        })
                    }
                    Err(error) => {
                        tracing::warn!(
                            event = "key_set_fetch_failed",
                            url = %url,
                            %error,
                            "cannot fetch signing keys"
                        );
                        Err(FetchError)
                    }
                }
            }
        });
        JwksCache { url, refresher }
    }
}

/// The client [`JwksCacheBuilder`] uses when none is given.
fn default_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // Building fails only when the TLS backend cannot start; a client without our
        // settings would follow redirects, so keep the settings and let fetches fail instead.
        .unwrap_or_else(|_| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a reqwest client without options")
        })
}

impl JwksCache {
    /// A builder for the key set at `url`.
    pub fn builder(url: impl Into<String>) -> JwksCacheBuilder {
        JwksCacheBuilder {
            url: url.into(),
            http: None,
            max_stale: DEFAULT_MAX_STALE,
        }
    }

    /// Google's ID-token key set ([`GOOGLE_JWKS_URL`]) with default settings.
    pub fn google() -> Self {
        Self::builder(GOOGLE_JWKS_URL).build()
    }

    /// Identity-Aware Proxy's key set ([`IAP_JWKS_URL`]) with default settings.
    pub fn iap() -> Self {
        Self::builder(IAP_JWKS_URL).build()
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// HTTP fetches attempted so far.
    pub fn fetch_count(&self) -> u64 {
        self.refresher.attempts()
    }

    /// Whether at least one usable key is cached (fresh, or stale within the bound).
    pub fn has_keys(&self) -> bool {
        self.refresher.current().is_some_and(|k| !k.is_empty())
    }

    /// One fetch attempt unless keys are at hand; failures are only logged. Call at startup so
    /// the first request does not wait.
    pub async fn warm_up(&self) {
        let _ = self.refresher.get().await;
    }

    async fn lookup(&self, kid: &str) -> Result<Arc<VerificationKey>, AuthError> {
        const UNAVAILABLE: AuthError =
            AuthError::KeysUnavailable("the signing key set cannot be fetched now");
        let keys = self.refresher.get().await.map_err(|_| UNAVAILABLE)?;
        if let Some(key) = keys.get(kid) {
            return Ok(Arc::clone(key));
        }
        drop(keys);
        self.refresher.refresh(UNKNOWN_KID_COOLDOWN).await;
        let keys = self.refresher.current().ok_or(UNAVAILABLE)?;
        keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
    }
}

impl KeySource for JwksCache {
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a> {
        Box::pin(self.lookup(kid))
    }

    fn ready(&self) -> ReadyFuture<'_> {
        Box::pin(async move { self.refresher.get().await.is_ok() })
    }
}

async fn download(
    http: &reqwest::Client,
    url: &str,
) -> Result<(HashMap<String, Arc<VerificationKey>>, Duration), String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP status {}", resp.status()));
    }
    let ttl = freshness(resp.headers());
    let too_large = || format!("the key set is larger than {MAX_KEY_SET_BYTES} bytes");
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_KEY_SET_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_KEY_SET_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let keys = parse_jwks(&body)?;
    if keys.is_empty() {
        return Err("the key set has no usable RS256 or ES256 signing key".into());
    }
    Ok((keys, ttl))
}

/// How long a response stays fresh: [`REVALIDATE_AFTER`] with `no-cache` or `no-store`, else
/// `Cache-Control: max-age` minus `Age`, clamped to [[`MIN_MAX_AGE`], [`MAX_MAX_AGE`]];
/// [`DEFAULT_MAX_AGE`] without a max-age.
pub fn freshness(headers: &http::HeaderMap) -> Duration {
    let directives = || {
        headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
    };
    if directives().any(|d| {
        let name = d.split('=').next().unwrap_or("").trim();
        name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store")
    }) {
        return REVALIDATE_AFTER;
    }
    let max_age = directives().find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        value.trim().trim_matches('"').parse::<u64>().ok()
    });
    let Some(max_age) = max_age else {
        return DEFAULT_MAX_AGE;
    };
    let age = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_secs(max_age.saturating_sub(age)).clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

#[derive(serde::Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS document; entries that are not RS256/ES256 signing keys are skipped.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerificationKey>>, String> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::with_capacity(set.keys.len());
    for value in set.keys {
        match serde_json::from_value::<RawJwk>(value)
            .map_err(|e| e.to_string())
            .and_then(to_key)
        {
            Ok((kid, key)) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(reason) => tracing::debug!(%reason, "skipping a JWKS entry"),
        }
    }
    Ok(keys)
}

fn to_key(jwk: RawJwk) -> Result<(String, VerificationKey), String> {
    let kid = jwk.kid.filter(|k| !k.is_empty()).ok_or("no kid")?;
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!("key {kid} is not for signatures"));
    }
    let bad = |e: String| format!("key {kid}: {e}");
    let key = match (jwk.kty.as_str(), jwk.alg.as_deref(), jwk.crv.as_deref()) {
        ("RSA", None | Some("RS256"), _) => {
            let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
                return Err(format!("RSA key {kid} lacks n or e"));
            };
            VerificationKey::rsa(n, e).map_err(bad)?
        }
        ("EC", None | Some("ES256"), Some("P-256")) => {
            let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
                return Err(format!("EC key {kid} lacks x or y"));
            };
            VerificationKey::ec_p256(x, y).map_err(bad)?
        }
        (kty, alg, _) => {
            return Err(format!("key {kid}: unsupported kty {kty} / alg {alg:?}"));
        }
    };
    Ok((kid, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn freshness_follows_cache_control_minus_age() {
        assert_eq!(freshness(&headers(&[])), DEFAULT_MAX_AGE);
        assert_eq!(
            freshness(&headers(&[(
                "cache-control",
                "public, max-age=21600, must-revalidate"
            )])),
            Duration::from_secs(21600)
        );
        assert_eq!(
            freshness(&headers(&[
                ("cache-control", "public, MAX-AGE=600"),
                ("age", "100")
            ])),
            Duration::from_secs(500)
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=10")])),
            MIN_MAX_AGE
        );
        assert_eq!(
            freshness(&headers(&[
                ("cache-control", "max-age=100"),
                ("age", "500")
            ])),
            MIN_MAX_AGE
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=999999")])),
            MAX_MAX_AGE
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "public, max-age=bogus")])),
            DEFAULT_MAX_AGE
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "no-cache, max-age=bogus")])),
            REVALIDATE_AFTER
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=86400, No-Store")])),
            REVALIDATE_AFTER
        );
    }

    #[test]
    fn jwks_parsing_takes_the_algorithm_from_the_key() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw", "e": "AQAB"},
            {"kty": "EC", "kid": "e1", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "e2", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
            {"kty": 7},
            "not an object"
        ]});
        let keys = parse_jwks(&serde_json::to_vec(&doc).expect("json")).expect("parsed");
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["e1", "r1"]);
        assert_eq!(keys["r1"].algorithm(), Algorithm::RS256);
        assert_eq!(keys["e1"].algorithm(), Algorithm::ES256);
        assert!(
            VerificationKey::rsa("AQAB", "AQAB").is_err(),
            "too short for RS256"
        );
        assert!(VerificationKey::ec_p256("AA", "AA").is_err());
        assert!(parse_jwks(b"{\"nope\": 1}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
        assert!(StaticKeys::from_jwks(br#"{"keys": []}"#).is_err());
    }

    #[tokio::test]
    async fn no_keys_without_a_server() {
        // Port 9 on loopback: nothing listens there, so the fetch fails fast.
        let cache = JwksCache::builder("http://127.0.0.1:9/certs").build();
        assert!(!cache.has_keys());
        assert!(matches!(
            cache.key("k").await,
            Err(AuthError::KeysUnavailable(_))
        ));
        assert_eq!(cache.fetch_count(), 1);
        // Within the failure backoff: no new fetch, still unavailable.
        assert!(matches!(
            cache.key("k").await,
            Err(AuthError::KeysUnavailable(_))
        ));
        assert!(!cache.ready().await);
        assert_eq!(cache.fetch_count(), 1);
    }
}
