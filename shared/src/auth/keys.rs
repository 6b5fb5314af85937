//! Key-set (JWKS) cache: Cache-Control aware (`no-cache`/`no-store` revalidate every
//! [`REVALIDATE_AFTER`]), one fetch in flight at a time, a cooldown on refetches for unknown
//! key ids, stale keys kept while the endpoint is down — but at most `AUTH_JWKS_MAX_STALE_SECS`
//! past their expiry, then 503 — and a bounded response size ([`MAX_KEY_SET_BYTES`]).
//!
//! The hot path (a known `kid`) takes a read lock for a map lookup and never waits on the
//! network: a stale set is served while a background task refreshes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

use crate::auth::AuthError;

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
/// Minimum time between a failed fetch and the next attempt while stale keys are still served.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// Freshness of a response marked `Cache-Control: no-cache` or `no-store`: revalidated at the
/// same floor as unknown key ids.
pub const REVALIDATE_AFTER: Duration = UNKNOWN_KID_COOLDOWN;
/// Largest key-set response read (Google's is a few KiB); a larger one is a failed fetch.
pub const MAX_KEY_SET_BYTES: usize = 256 * 1024;
/// The same while no key was ever fetched: every request is answered 503 until one is, so try
/// again sooner (still at most one attempt per second, however many requests wait).
pub const COLD_FAILURE_BACKOFF: Duration = Duration::from_secs(1);

/// A public key from the key set, with the one algorithm it may verify.
#[derive(Debug, Clone)]
pub struct VerificationKey {
    /// The key material.
    pub key: DecodingKey,
    /// `RS256` for RSA keys, `ES256` for EC P-256 keys; taken from the key, never the token.
    pub algorithm: Algorithm,
}

/// Cache of the signing keys published at one JWKS URL; cheap to clone.
#[derive(Clone)]
pub struct KeySetCache {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    http: reqwest::Client,
    /// How long past its freshness the last good set is still used (`AUTH_JWKS_MAX_STALE_SECS`).
    max_stale: Duration,
    state: RwLock<State>,
    /// Held for the duration of a fetch: the single flight.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Fetches finished (successfully or not); lets queued callers see that one just ran.
    completed: AtomicU64,
    /// HTTP fetches attempted.
    fetches: AtomicU64,
    /// A background refresh task exists.
    refreshing: AtomicBool,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<VerificationKey>>,
    /// When the last good set stops being fresh; `None` before the first success.
    fresh_until: Option<Instant>,
    /// No fetch before this instant (after a failure).
    retry_not_before: Option<Instant>,
    /// Start of the last fetch caused by an unknown `kid`.
    unknown_kid_fetch_at: Option<Instant>,
}

impl State {
    fn is_stale(&self, now: Instant) -> bool {
        self.fresh_until.is_none_or(|t| now >= t)
    }

    /// Past freshness plus `max_stale`: the keys must not be used any more.
    fn is_expired(&self, now: Instant, max_stale: Duration) -> bool {
        self.fresh_until.is_some_and(|t| now >= t + max_stale)
    }

    fn may_fetch(&self, now: Instant) -> bool {
        self.retry_not_before.is_none_or(|t| now >= t)
    }
}

/// What a lookup that missed does next.
enum OnMiss {
    /// Fetch (or join the fetch in flight) and look again.
    Fetch,
    /// Only wait for a fetch already in flight, then look again.
    Join,
}

impl std::fmt::Debug for KeySetCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySetCache")
            .field("url", &self.inner.url)
            .field("keys", &self.read().keys.len())
            .field("fetches", &self.fetch_count())
            .finish()
    }
}

impl KeySetCache {
    /// A cache of the key set at `url`, fetched with `http` (nothing is fetched yet); stale
    /// keys serve for at most a day past their expiry.
    pub fn new(url: String, http: reqwest::Client) -> Self {
        Self::with_max_stale(url, http, Duration::from_secs(86_400))
    }

    /// The same, with stale keys served for at most `max_stale` past their expiry while the
    /// endpoint is down (then [`AuthError::KeysUnavailable`]).
    pub fn with_max_stale(url: String, http: reqwest::Client, max_stale: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                url,
                http,
                max_stale,
                state: RwLock::new(State::default()),
                fetch_lock: tokio::sync::Mutex::new(()),
                completed: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// HTTP fetches attempted so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Whether at least one usable key is cached (fresh, or stale within the bound).
    pub fn has_keys(&self) -> bool {
        let state = self.read();
        !state.keys.is_empty() && !state.is_expired(Instant::now(), self.inner.max_stale)
    }

    /// One fetch attempt (joining one in flight); failures are only logged.
    pub async fn warm_up(&self) {
        self.fetch_shared(self.completed()).await;
    }

    /// Whether keys are available, fetching them first when there are none and the failure
    /// backoff allows. For readiness checks.
    pub async fn ensure_loaded(&self) -> bool {
        let seen = self.completed();
        if self.has_keys() {
            return true;
        }
        if self.read().may_fetch(Instant::now()) {
            self.fetch_shared(seen).await;
        } else {
            self.join_in_flight().await;
        }
        self.has_keys()
    }

    /// The key with id `kid`.
    ///
    /// A cached key is returned at once (a stale set is refreshed in the background). An
    /// unknown `kid` refetches the set at most once per [`UNKNOWN_KID_COOLDOWN`].
    ///
    /// # Errors
    /// [`AuthError::KeysUnavailable`] when no key set was ever fetched;
    /// [`AuthError::Invalid`] when the set does not contain `kid`.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerificationKey>, AuthError> {
        // Read before the state: a fetch that lands after this point is not repeated.
        let seen = self.completed();
        let now = Instant::now();
        let max_stale = self.inner.max_stale;
        let on_miss = {
            let state = self.read();
            let expired = state.is_expired(now, max_stale);
            if !expired && let Some(key) = state.keys.get(kid) {
                let key = Arc::clone(key);
                let refresh = state.is_stale(now) && state.may_fetch(now);
                drop(state);
                if refresh {
                    self.spawn_refresh();
                }
                return Ok(key);
            }
            let may_fetch = state.may_fetch(now);
            drop(state);
            match (expired, may_fetch) {
                (true, true) => OnMiss::Fetch,
                (true, false) => OnMiss::Join,
                (false, _) => self.decide_on_miss(now),
            }
        };
        match on_miss {
            OnMiss::Fetch => self.fetch_shared(seen).await,
            OnMiss::Join => self.join_in_flight().await,
        }
        let state = self.read();
        if state.is_expired(Instant::now(), max_stale) {
            return Err(AuthError::KeysUnavailable(
                "the cached signing keys are past AUTH_JWKS_MAX_STALE_SECS and the key set cannot be refreshed".into(),
            ));
        }
        match state.keys.get(kid) {
            Some(key) => Ok(Arc::clone(key)),
            None if state.keys.is_empty() => Err(AuthError::KeysUnavailable(
                "the signing key set could not be fetched yet".into(),
            )),
            None => Err(AuthError::Invalid("unknown signing key".into())),
        }
    }

    /// Decides, under the write lock, whether this miss may start a fetch.
    fn decide_on_miss(&self, now: Instant) -> OnMiss {
        let mut state = self.write();
        if !state.may_fetch(now) {
            return OnMiss::Join;
        }
        if state.keys.is_empty() {
            return OnMiss::Fetch;
        }
        let cooled_down = state
            .unknown_kid_fetch_at
            .is_none_or(|t| now.saturating_duration_since(t) >= UNKNOWN_KID_COOLDOWN);
        if cooled_down {
            state.unknown_kid_fetch_at = Some(now);
            return OnMiss::Fetch;
        }
        let stale = state.is_stale(now);
        drop(state);
        if stale {
            self.spawn_refresh();
        }
        OnMiss::Join
    }

    /// Starts a background refresh unless one is already running.
    fn spawn_refresh(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.fetch_shared(this.completed()).await;
            this.inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// Waits for the fetch in flight, if any.
    async fn join_in_flight(&self) {
        if self.inner.fetch_lock.try_lock().is_err() {
            drop(self.inner.fetch_lock.lock().await);
        }
    }

    fn completed(&self) -> u64 {
        self.inner.completed.load(Ordering::Acquire)
    }

    /// Fetches the set unless a fetch completed since the caller read `seen` (then the caller
    /// just looks again): concurrent callers share one fetch.
    async fn fetch_shared(&self, seen: u64) {
        let _guard = self.inner.fetch_lock.lock().await;
        if self.inner.completed.load(Ordering::Acquire) != seen {
            return;
        }
        self.fetch_once().await;
        self.inner.completed.fetch_add(1, Ordering::AcqRel);
    }

    async fn fetch_once(&self) {
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = match tokio::time::timeout(FETCH_TIMEOUT, self.download()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no complete answer within {}s",
                FETCH_TIMEOUT.as_secs()
            )),
        };
        let mut state = self.write();
        match result {
            Ok((keys, ttl)) => {
                let count = keys.len();
                state.keys = keys;
                state.fresh_until = Some(started + ttl);
                state.retry_not_before = None;
                drop(state);
                tracing::debug!(url = %self.inner.url, keys = count, fresh_secs = ttl.as_secs(), "signing keys fetched");
            }
            Err(error) => {
                let cached = state.keys.len();
                let backoff = if cached > 0 {
                    FAILURE_BACKOFF
                } else {
                    COLD_FAILURE_BACKOFF
                };
                state.retry_not_before = Some(Instant::now() + backoff);
                drop(state);
                if cached > 0 {
                    tracing::warn!(url = %self.inner.url, %error, cached_keys = cached, "cannot refresh signing keys; serving the cached ones");
                } else {
                    tracing::warn!(url = %self.inner.url, %error, "cannot fetch signing keys; tokens cannot be verified yet");
                }
            }
        }
    }

    async fn download(&self) -> Result<(HashMap<String, Arc<VerificationKey>>, Duration), String> {
        let resp = self
            .inner
            .http
            .get(&self.inner.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
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

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long a response stays fresh: [`REVALIDATE_AFTER`] with `no-cache` or `no-store`, else
/// `Cache-Control: max-age` minus `Age`, clamped to [[`MIN_MAX_AGE`], [`MAX_MAX_AGE`]];
/// [`DEFAULT_MAX_AGE`] without a max-age.
fn freshness(headers: &http::HeaderMap) -> Duration {
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
    let bad = |e: jsonwebtoken::errors::Error| format!("key {kid}: {e}");
    let (key, algorithm) = match (jwk.kty.as_str(), jwk.alg.as_deref(), jwk.crv.as_deref()) {
        ("RSA", None | Some("RS256"), _) => {
            let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
                return Err(format!("RSA key {kid} lacks n or e"));
            };
            (
                DecodingKey::from_rsa_components(n, e).map_err(bad)?,
                Algorithm::RS256,
            )
        }
        ("EC", None | Some("ES256"), Some("P-256")) => {
            let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
                return Err(format!("EC key {kid} lacks x or y"));
            };
            (
                DecodingKey::from_ec_components(x, y).map_err(bad)?,
                Algorithm::ES256,
            )
        }
        (kty, alg, _) => {
            return Err(format!("key {kid}: unsupported kty {kty} / alg {alg:?}"));
        }
    };
    Ok((kid, VerificationKey { key, algorithm }))
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
        assert_eq!(keys["r1"].algorithm, Algorithm::RS256);
        assert_eq!(keys["e1"].algorithm, Algorithm::ES256);
        assert!(parse_jwks(b"{\"nope\": 1}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[tokio::test]
    async fn no_keys_without_a_server() {
        // Port 9 on loopback: nothing listens there, so the fetch fails fast.
        let cache = KeySetCache::new("http://127.0.0.1:9/certs".into(), reqwest::Client::new());
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
        assert!(!cache.ensure_loaded().await);
        assert_eq!(cache.fetch_count(), 1);
    }
}
