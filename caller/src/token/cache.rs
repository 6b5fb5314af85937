//! The one token cache in front of every [`TokenSource`].
//!
//! - Hot path: a read lock on the current token and an `Arc` clone — no await, no allocation.
//! - A token is served only while `now + expiry_margin < exp`; one that is already inside the
//!   margin when fetched is refused.
//! - Inside the refresh-ahead window, one background refresh starts; requests keep getting the
//!   cached token at once. If it fails, the refresher retries with backoff until it succeeds or
//!   the token can no longer be served.
//! - Without a valid token, requests share one in-flight fetch (single flight), each waits at
//!   most `fetch_timeout` in total, and gets the fetch's error if it fails.
//! - After consecutive failures, attempts are spaced by jittered exponential backoff
//!   (`retry_initial` doubling up to `retry_max`); a request that would have to wait past its
//!   own `fetch_timeout` for the next attempt fails at once with the last error instead.
//! - Nothing is ever poisoned: a success resets the backoff and caching resumes.
//!
//! Timing uses `tokio::time` (so tests can pause time): a token's remaining lifetime, computed
//! from `SystemTime` when it is fetched, becomes a `tokio::time::Instant` deadline.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::{IdToken, TokenError, TokenSource, rfc3339};

/// A token claiming to live longer than this is cached as if it expired then (defends the
/// deadline arithmetic against absurd `exp` values; Google's tokens live one hour).
const MAX_CACHED_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Tuning of a [`TokenCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// Bound on each fetch attempt, and on the total time a request without a valid cached
    /// token waits. Default 5 s.
    pub fetch_timeout: Duration,
    /// Start a background refresh when less than this remains before `exp`. Default 5 min.
    /// For short-lived tokens the refresh starts no earlier than halfway through the servable
    /// lifetime, so a refresh never triggers the next one at once.
    pub refresh_ahead: Duration,
    /// A token with less than this left is never served (nor cached). Default 30 s: covers
    /// clock skew and the time the request takes to reach the receiver.
    pub expiry_margin: Duration,
    /// First backoff delay after a failure. Default 200 ms.
    pub retry_initial: Duration,
    /// Largest backoff delay. Default 10 s.
    pub retry_max: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            fetch_timeout: Duration::from_secs(5),
            refresh_ahead: Duration::from_secs(300),
            expiry_margin: Duration::from_secs(30),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
        }
    }
}

/// Caches the token of one [`TokenSource`]. Cheap to clone (shared state).
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    source: Arc<dyn TokenSource>,
    opts: CacheOptions,
    /// Lock order: `flight` before `current`.
    current: RwLock<Option<Cached>>,
    flight: Mutex<Flight>,
    refreshing: AtomicBool,
    fetches: AtomicU64,
}

#[derive(Clone)]
struct Cached {
    token: IdToken,
    /// Served while `now < serve_until` (`exp` minus the margin).
    serve_until: Instant,
    /// From then on, a get starts a background refresh.
    refresh_at: Instant,
}

/// What an attempt publishes: `None` until it finishes.
type Outcome = Option<Result<IdToken, TokenError>>;

#[derive(Default)]
struct Flight {
    /// The attempt in progress, if any; everyone who needs a token waits on it.
    inflight: Option<watch::Receiver<Outcome>>,
    /// Consecutive failed attempts.
    failures: u32,
    /// No new attempt before this (backoff after failures).
    not_before: Option<Instant>,
    /// Error of the last attempt, while it failed.
    last_error: Option<TokenError>,
}

/// What a request without a valid token does next.
enum Step {
    Serve(IdToken),
    Wait(watch::Receiver<Outcome>),
    Sleep(Instant),
    Fail(TokenError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenCache {
    /// A cache in front of `source`. Nothing is fetched until the first [`TokenCache::get`] or
    /// [`TokenCache::warm_up`].
    pub fn new(source: Arc<dyn TokenSource>, opts: CacheOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                opts,
                current: RwLock::new(None),
                flight: Mutex::new(Flight::default()),
                refreshing: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// A valid token: the cached one while it is valid (starting a background refresh when it
    /// is close to expiry), else the result of the shared in-flight fetch.
    ///
    /// Without a valid cached token this waits at most `fetch_timeout`.
    ///
    /// # Errors
    /// The fetch's error ([`TokenError::Timeout`] when it did not finish in time), or the last
    /// error at once while backing off and the next attempt is further away than
    /// `fetch_timeout` (see [`TokenCache::retry_after`]).
    pub async fn get(&self) -> Result<IdToken, TokenError> {
        if let Some(token) = self.inner.serve_cached(Instant::now()) {
            return Ok(token);
        }
        self.inner.wait_for_token().await
    }

    /// One attempt to fill the cache, for startup. Errors are only logged.
    pub async fn warm_up(&self) {
        match self.get().await {
            Ok(token) => tracing::info!(
                source = self.inner.source.kind(),
                expires_at = %rfc3339(token.expires_at()),
                "ID token ready"
            ),
            Err(e) => tracing::warn!(
                source = self.inner.source.kind(),
                error = %e,
                "no ID token at startup; will retry on demand"
            ),
        }
    }

    /// Fetch attempts made against the source so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Whether a token that may be served is cached now.
    pub fn has_valid_token(&self) -> bool {
        self.inner.valid(Instant::now()).is_some()
    }

    /// How long until the next fetch attempt is allowed, when there is no valid token and the
    /// cache is backing off after failures; `None` otherwise. For a `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        let now = Instant::now();
        if self.inner.valid(now).is_some() {
            return None;
        }
        let flight = lock(&self.inner.flight);
        flight
            .not_before
            .filter(|nb| *nb > now)
            .map(|nb| nb.duration_since(now))
    }

    /// The options this cache runs with.
    pub fn options(&self) -> &CacheOptions {
        &self.inner.opts
    }

    /// The source behind this cache.
    pub fn source(&self) -> &Arc<dyn TokenSource> {
        &self.inner.source
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &self.inner.source)
            .field("opts", &self.inner.opts)
            .field("has_valid_token", &self.has_valid_token())
            .field("fetch_count", &self.fetch_count())
            .finish()
    }
}

impl Inner {
    /// The cached token if it may be served at `now`, and whether it is due for refresh.
    fn valid(&self, now: Instant) -> Option<(IdToken, bool)> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let cached = current.as_ref()?;
        (now < cached.serve_until).then(|| (cached.token.clone(), now >= cached.refresh_at))
    }

    /// The hot path: the cached token, starting a background refresh when it is due.
    fn serve_cached(self: &Arc<Self>, now: Instant) -> Option<IdToken> {
        let (token, due) = self.valid(now)?;
        if due {
            self.trigger_refresh();
        }
        Some(token)
    }

    /// Starts the background refresher unless it already runs.
    fn trigger_refresh(self: &Arc<Self>) {
        if self.refreshing.load(Ordering::Relaxed)
            || self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(self.clone().refresh_loop());
            }
            // Not in a runtime: no background refresh; a later get fetches in the foreground.
            Err(_) => self.refreshing.store(false, Ordering::Release),
        }
    }

    /// Refreshes ahead of expiry: retries with backoff until a new token is cached or the
    /// current one can no longer be served (then requests fetch in the foreground).
    async fn refresh_loop(self: Arc<Self>) {
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reset = Reset(&self.refreshing);
        loop {
            let now = Instant::now();
            let Some((serve_until, refresh_at)) = self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|c| (c.serve_until, c.refresh_at))
            else {
                return;
            };
            if now >= serve_until || now < refresh_at {
                // expired (foreground takes over) or already refreshed
                return;
            }
            let next = {
                let mut flight = lock(&self.flight);
                match (&flight.inflight, flight.not_before) {
                    (Some(rx), _) => Ok(rx.clone()),
                    (None, Some(nb)) if nb > now => Err(nb),
                    (None, _) => Ok(self.start_attempt(&mut flight)),
                }
            };
            let rx = match next {
                Ok(rx) => rx,
                Err(not_before) => {
                    tokio::time::sleep_until(not_before.min(serve_until)).await;
                    continue;
                }
            };
            // The attempt bounds itself by fetch_timeout; its outcome is recorded by it.
            let _ = wait_outcome(rx).await;
        }
    }

    /// Starts an attempt (the caller holds the flight lock and saw none in flight).
    fn start_attempt(self: &Arc<Self>, flight: &mut Flight) -> watch::Receiver<Outcome> {
        let (tx, rx) = watch::channel(None);
        flight.inflight = Some(rx.clone());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(self.clone().attempt(tx));
        rx
    }

    /// One fetch against the source, bounded by `fetch_timeout`, in its own task (so a request
    /// that gives up does not cancel it for the others).
    async fn attempt(self: Arc<Self>, tx: watch::Sender<Outcome>) {
        /// Records a failure if the attempt ends without finishing (the source panicked).
        struct Unfinished<'a>(Option<&'a Inner>);
        impl Drop for Unfinished<'_> {
            fn drop(&mut self) {
                if let Some(inner) = self.0 {
                    let _ = inner.record(Err(TokenError::Unavailable(
                        "token source failed unexpectedly".to_owned(),
                    )));
                }
            }
        }
        let mut guard = Unfinished(Some(&*self));
        let fetched = tokio::time::timeout(self.opts.fetch_timeout, self.source.fetch()).await;
        let result = match fetched {
            Ok(Ok(token)) => self.admit(token),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TokenError::Timeout(self.opts.fetch_timeout)),
        };
        guard.0 = None;
        let outcome = self.record(result);
        let _ = tx.send(Some(outcome));
    }

    /// Checks a fetched token's lifetime and computes its deadlines.
    fn admit(&self, token: IdToken) -> Result<Cached, TokenError> {
        let margin = self.opts.expiry_margin;
        let remaining = token
            .expires_at()
            .duration_since(SystemTime::now())
            .map_err(|_| TokenError::Malformed("token already expired"))?
            .min(MAX_CACHED_LIFETIME);
        if remaining <= margin {
            return Err(TokenError::Malformed(
                "token expires within the safety margin",
            ));
        }
        let now = Instant::now();
        let servable = remaining - margin;
        let serve_until = now + servable;
        let deadline = now + remaining;
        let ahead = deadline.checked_sub(self.opts.refresh_ahead).unwrap_or(now);
        let refresh_at = ahead.max(now + servable / 2);
        Ok(Cached {
            token,
            serve_until,
            refresh_at,
        })
    }

    /// Records an attempt's result: caches a token and resets the backoff, or counts the
    /// failure and sets the next allowed attempt. Clears the in-flight slot.
    fn record(&self, result: Result<Cached, TokenError>) -> Result<IdToken, TokenError> {
        let mut flight = lock(&self.flight);
        flight.inflight = None;
        match result {
            Ok(cached) => {
                let token = cached.token.clone();
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
                if flight.failures > 0 {
                    tracing::info!(
                        source = self.source.kind(),
                        after_failures = flight.failures,
                        "token source recovered"
                    );
                }
                flight.failures = 0;
                flight.not_before = None;
                flight.last_error = None;
                tracing::info!(
                    source = self.source.kind(),
                    detail = ?self.source,
                    expires_at = %rfc3339(token.expires_at()),
                    "fetched ID token"
                );
                Ok(token)
            }
            Err(e) => {
                flight.failures = flight.failures.saturating_add(1);
                let delay = self.backoff(flight.failures);
                flight.not_before = Some(Instant::now() + delay);
                flight.last_error = Some(e.clone());
                tracing::warn!(
                    source = self.source.kind(),
                    detail = ?self.source,
                    error = %e,
                    consecutive_failures = flight.failures,
                    next_attempt_in_ms = delay.as_millis() as u64,
                    "ID token fetch failed"
                );
                Err(e)
            }
        }
    }

    /// Jittered exponential backoff after `failures` consecutive failures: a delay between half
    /// and all of `retry_initial × 2^(failures-1)`, capped at `retry_max`.
    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self
            .opts
            .retry_initial
            .saturating_mul(1u32 << exp)
            .min(self.opts.retry_max);
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }

    /// What a request without a valid token does next (one decision under the flight lock).
    fn next_step(self: &Arc<Self>, budget_end: Instant) -> Step {
        let mut flight = lock(&self.flight);
        let now = Instant::now();
        if let Some((token, due)) = self.valid(now) {
            drop(flight);
            if due {
                self.trigger_refresh();
            }
            return Step::Serve(token);
        }
        if let Some(rx) = &flight.inflight {
            return Step::Wait(rx.clone());
        }
        if let Some(nb) = flight.not_before.filter(|nb| *nb > now) {
            if nb >= budget_end {
                return Step::Fail(flight.last_error.clone().unwrap_or_else(|| {
                    TokenError::Unavailable("backing off after failures".to_owned())
                }));
            }
            return Step::Sleep(nb);
        }
        Step::Wait(self.start_attempt(&mut flight))
    }

    /// The slow path: share the in-flight fetch (or start one, or wait out a short backoff),
    /// never longer than `fetch_timeout` in total.
    async fn wait_for_token(self: &Arc<Self>) -> Result<IdToken, TokenError> {
        let timeout = self.opts.fetch_timeout;
        let budget_end = Instant::now() + timeout;
        loop {
            match self.next_step(budget_end) {
                Step::Serve(token) => return Ok(token),
                Step::Fail(e) => return Err(e),
                Step::Sleep(until) => tokio::time::sleep_until(until).await,
                Step::Wait(rx) => {
                    return match tokio::time::timeout_at(budget_end, wait_outcome(rx)).await {
                        Ok(result) => result,
                        Err(_) => Err(TokenError::Timeout(timeout)),
                    };
                }
            }
        }
    }
}

/// The outcome an attempt publishes.
async fn wait_outcome(mut rx: watch::Receiver<Outcome>) -> Result<IdToken, TokenError> {
    let ended = || TokenError::Unavailable("token fetch ended without a result".to_owned());
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(ended())),
        Err(_) => Err(ended()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::token::TokenFuture;

    /// What the fake does on one call.
    #[derive(Clone, Debug)]
    enum Act {
        /// A token living this many seconds from now (negative: already expired).
        Token(i64),
        Fail(TokenError),
        /// Never answers.
        Stall,
        Panic,
    }

    /// A scripted [`TokenSource`]: plays `script`, then repeats `then`.
    #[derive(Debug)]
    struct Fake {
        script: Mutex<VecDeque<Act>>,
        then: Mutex<Act>,
        delay: Duration,
        calls: AtomicU64,
    }

    impl Fake {
        fn new(script: impl IntoIterator<Item = Act>, then: Act) -> Arc<Self> {
            Self::with_delay(script, then, Duration::ZERO)
        }

        fn with_delay(
            script: impl IntoIterator<Item = Act>,
            then: Act,
            delay: Duration,
        ) -> Arc<Self> {
            Arc::new(Self {
                script: Mutex::new(script.into_iter().collect()),
                then: Mutex::new(then),
                delay,
                calls: AtomicU64::new(0),
            })
        }

        fn set_then(&self, act: Act) {
            *self.then.lock().expect("lock") = act;
        }

        fn calls(&self) -> u64 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl TokenSource for Fake {
        fn fetch(&self) -> TokenFuture<'_> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let act = self
                .script
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or_else(|| self.then.lock().expect("lock").clone());
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                match act {
                    Act::Token(secs) => {
                        let now = SystemTime::now();
                        let at = if secs >= 0 {
                            now + Duration::from_secs(secs.unsigned_abs())
                        } else {
                            now - Duration::from_secs(secs.unsigned_abs())
                        };
                        Ok(IdToken::new(format!("token-{n}"), at))
                    }
                    Act::Fail(e) => Err(e),
                    Act::Stall => std::future::pending().await,
                    Act::Panic => panic!("fake source panicked (expected by the test)"),
                }
            })
        }

        fn kind(&self) -> &'static str {
            "fake"
        }
    }

    const HOUR: i64 = 3600;

    fn cache(fake: &Arc<Fake>) -> TokenCache {
        TokenCache::new(fake.clone(), CacheOptions::default())
    }

    fn forbidden() -> TokenError {
        TokenError::Rejected(http::StatusCode::FORBIDDEN)
    }

    fn down() -> TokenError {
        TokenError::Unavailable("connection refused".to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn cached_token_is_served_without_refetch() {
        let fake = Fake::new([], Act::Token(HOUR));
        let cache = cache(&fake);
        assert!(!cache.has_valid_token());
        for _ in 0..1000 {
            assert_eq!(cache.get().await.expect("token").value(), "token-1");
        }
        assert_eq!(fake.calls(), 1);
        assert_eq!(cache.fetch_count(), 1);
        assert!(cache.has_valid_token());
        let dbg = format!("{cache:?}");
        assert!(!dbg.contains("token-1"), "{dbg}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_gets_on_an_empty_cache_share_one_fetch() {
        let fake = Fake::with_delay([], Act::Token(HOUR), Duration::from_millis(100));
        let cache = cache(&fake);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        for task in tasks {
            let token = task.await.expect("join").expect("token");
            assert_eq!(token.value(), "token-1");
        }
        assert_eq!(fake.calls(), 1);
        assert_eq!(cache.fetch_count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_gets_share_one_fetch_on_threads() {
        let fake = Fake::with_delay([], Act::Token(HOUR), Duration::from_millis(50));
        let cache = cache(&fake);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("token");
        }
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_ahead_runs_once_in_the_background() {
        let fake = Fake::with_delay([], Act::Token(HOUR), Duration::from_secs(1));
        let cache = cache(&fake);
        assert_eq!(cache.get().await.expect("first").value(), "token-1");
        // 4 min 59 s left: inside the 5 min refresh-ahead window
        tokio::time::sleep(Duration::from_secs(3600 - 299)).await;
        let before = Instant::now();
        for _ in 0..50 {
            assert_eq!(cache.get().await.expect("cached").value(), "token-1");
            tokio::task::yield_now().await;
        }
        assert_eq!(Instant::now(), before, "gets must not wait for the refresh");
        assert_eq!(cache.fetch_count(), 2, "exactly one background refresh");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(cache.get().await.expect("refreshed").value(), "token-2");
        for _ in 0..100 {
            cache.get().await.expect("token");
        }
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_from_the_source_is_never_served() {
        // already expired, then inside the 30 s margin, then good
        let fake = Fake::new([Act::Token(-10), Act::Token(10)], Act::Token(HOUR));
        let cache = cache(&fake);
        let err = cache.get().await.expect_err("expired");
        assert!(
            matches!(err, TokenError::Malformed(m) if m.contains("expired")),
            "{err:?}"
        );
        assert!(!cache.has_valid_token());
        let err = cache.get().await.expect_err("inside the margin");
        assert!(
            matches!(err, TokenError::Malformed(m) if m.contains("margin")),
            "{err:?}"
        );
        assert!(!cache.has_valid_token());
        assert_eq!(cache.get().await.expect("good one").value(), "token-3");
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_error_or_garbage_answer_is_followed_by_success() {
        for bad in [
            forbidden(),
            TokenError::Malformed("not a JWT (expected three parts)"),
        ] {
            let fake = Fake::new([Act::Fail(bad.clone())], Act::Token(HOUR));
            let cache = cache(&fake);
            let err = cache.get().await.expect_err("first fails");
            assert_eq!(err.to_string(), bad.to_string());
            let started = Instant::now();
            let token = cache.get().await.expect("next call succeeds");
            assert_eq!(token.value(), "token-2");
            // it waited out the short first backoff, nothing more
            assert!(
                started.elapsed() <= Duration::from_millis(200),
                "{:?}",
                started.elapsed()
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stalling_source_times_out_within_fetch_timeout() {
        let fake = Fake::new([Act::Stall], Act::Token(HOUR));
        let cache = cache(&fake);
        let started = Instant::now();
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        for w in waiters {
            let err = w.await.expect("join").expect_err("stalled");
            assert!(matches!(err, TokenError::Timeout(_)), "{err:?}");
        }
        assert!(
            started.elapsed() <= Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(fake.calls(), 1, "one shared attempt");
        // the source answers again: the next get works
        assert_eq!(cache.get().await.expect("recovered").value(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn source_down_after_caching_keeps_serving_until_expiry() {
        let fake = Fake::new([Act::Token(HOUR)], Act::Fail(down()));
        let cache = cache(&fake);
        cache.get().await.expect("first");
        let start = Instant::now();
        // served for the whole servable lifetime (1 h minus the 30 s margin)
        while start.elapsed() < Duration::from_secs(3600 - 31) {
            let t = Instant::now();
            assert_eq!(cache.get().await.expect("still cached").value(), "token-1");
            assert_eq!(Instant::now(), t, "served without waiting");
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let refresh_attempts = fake.calls() - 1;
        assert!(
            refresh_attempts >= 10,
            "the refresher kept trying: {refresh_attempts}"
        );
        assert!(
            refresh_attempts <= 60,
            "backoff spaces the attempts: {refresh_attempts}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!cache.has_valid_token());
        let err = cache.get().await.expect_err("expired and source down");
        assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");

        fake.set_then(Act::Token(HOUR));
        let mut ok = false;
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if cache.get().await.is_ok() {
                ok = true;
                break;
            }
        }
        assert!(ok, "recovered within seconds");
    }

    #[tokio::test(start_paused = true)]
    async fn down_from_the_start_then_recovers_without_restart() {
        // The backoff's jitter is random; seed this thread's generator (the runtime is this
        // one thread) so the count of requests in the minute is the same on every run.
        fastrand::seed(7);
        let fake = Fake::new([], Act::Fail(down()));
        let cache = cache(&fake);
        cache.warm_up().await;
        let begin = Instant::now();
        let mut requests = 0;
        while begin.elapsed() < Duration::from_secs(60) {
            requests += 1;
            let started = Instant::now();
            cache.get().await.expect_err("down");
            assert!(
                started.elapsed() <= Duration::from_secs(5),
                "never waits longer than fetch_timeout: {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // a request every second or so for 60 s; backoff (capped at 10 s) keeps the attempts
        // well below the number of requests
        assert!(requests >= 20, "requests: {requests}");
        assert!(fake.calls() < 20, "attempts: {}", fake.calls());
        assert!(fake.calls() >= 5, "attempts: {}", fake.calls());

        fake.set_then(Act::Token(HOUR));
        let back = Instant::now();
        loop {
            if cache.get().await.is_ok() {
                break;
            }
            assert!(back.elapsed() < Duration::from_secs(12), "did not recover");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(cache.has_valid_token());
        assert_eq!(cache.retry_after(), None);
        let calls = fake.calls();
        for _ in 0..100 {
            cache.get().await.expect("cached again");
        }
        assert_eq!(fake.calls(), calls, "caching resumed");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_and_is_capped() {
        let fake = Fake::new([], Act::Fail(down()));
        let cache = cache(&fake);
        let mut last = Duration::ZERO;
        for failures in 1..=12 {
            let d = cache.inner.backoff(failures);
            assert!(d <= Duration::from_secs(10), "{failures}: {d:?}");
            if failures <= 5 {
                assert!(d >= last / 2, "{failures}: {d:?} after {last:?}");
            }
            last = d;
        }
        assert!(cache.inner.backoff(1) >= Duration::from_millis(100));
        assert!(cache.inner.backoff(u32::MAX) <= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn panicking_source_does_not_break_the_cache() {
        let fake = Fake::new([Act::Panic], Act::Token(HOUR));
        let cache = cache(&fake);
        let err = cache.get().await.expect_err("panicked");
        assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
        assert_eq!(cache.get().await.expect("next works").value(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_do_not_cause_a_refresh_storm() {
        let fake = Fake::new([], Act::Token(120));
        let cache = cache(&fake);
        for _ in 0..200 {
            cache.get().await.expect("token");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // refresh halfway through the 90 s servable lifetime: about every 45 s
        assert!(fake.calls() <= 6, "calls: {}", fake.calls());
        assert!(fake.calls() >= 4, "calls: {}", fake.calls());
    }

    #[tokio::test(start_paused = true)]
    async fn background_refresh_failure_retries_until_success() {
        let fake = Fake::new(
            [
                Act::Token(HOUR),
                Act::Fail(forbidden()),
                Act::Fail(down()),
                Act::Stall,
            ],
            Act::Token(HOUR),
        );
        let cache = cache(&fake);
        cache.get().await.expect("first");
        tokio::time::sleep(Duration::from_secs(3600 - 290)).await;
        assert_eq!(cache.get().await.expect("cached").value(), "token-1");
        // let the refresher work through its failures without any further get
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(cache.get().await.expect("refreshed").value(), "token-5");
        assert_eq!(fake.calls(), 5);
    }
}
