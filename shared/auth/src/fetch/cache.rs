//! The one token cache in front of every [`TokenSource`], built on the crate's
//! [`Refresher`](crate::refresh::Refresher):
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
//! from the cache's [`Clock`] when it is fetched, becomes a `tokio::time::Instant` deadline.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{IdToken, TokenError, TokenSource, rfc3339};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::refresh::{Backoff, Fresh, Interrupted, RefreshOptions, Refresher};

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

impl CacheOptions {
    /// The backoff these options describe (jittered).
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.retry_initial,
            max: self.retry_max,
            jitter: true,
        }
    }
}

impl From<Interrupted> for TokenError {
    fn from(i: Interrupted) -> Self {
        match i {
            Interrupted::TimedOut(d) => Self::Timeout(d),
            _ => Self::Unavailable("token source failed unexpectedly".to_owned()),
        }
    }
}

/// Caches the token of one [`TokenSource`]. Cheap to clone (shared state).
///
/// ```no_run
/// # async fn f() -> Result<(), invoker_auth::fetch::TokenError> {
/// use std::sync::Arc;
/// use invoker_auth::fetch::{CacheOptions, MetadataSource, TokenCache, DEFAULT_METADATA_HOST};
/// let source = MetadataSource::try_new(
///     reqwest::Client::new(), DEFAULT_METADATA_HOST, "https://other-abc-uc.a.run.app",
///     std::time::Duration::from_secs(5),
/// )?;
/// let tokens = TokenCache::new(Arc::new(source), CacheOptions::default());
/// let token = tokens.get().await?; // cached, refreshed ahead of expiry
/// let mut req = http::Request::new(());
/// token.authorize(&mut req);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    source: Arc<dyn TokenSource>,
    refresher: Refresher<IdToken, TokenError>,
}

impl TokenCache {
    /// A cache in front of `source`. Nothing is fetched until the first [`TokenCache::get`] or
    /// [`TokenCache::warm_up`].
    pub fn new(source: Arc<dyn TokenSource>, opts: CacheOptions) -> Self {
        Self::with_clock(source, opts, Arc::new(SystemClock))
    }

    /// The same, reading token expiry against `clock`.
    pub fn with_clock(
        source: Arc<dyn TokenSource>,
        opts: CacheOptions,
        clock: SharedClock,
    ) -> Self {
        let refresh = RefreshOptions {
            attempt_timeout: opts.fetch_timeout,
            max_wait: opts.fetch_timeout,
            backoff: opts.backoff(),
            wait_out_backoff: true,
        };
        let fetch_source = Arc::clone(&source);
        let refresher = Refresher::new(refresh, move || {
            let source = Arc::clone(&fetch_source);
            let clock = Arc::clone(&clock);
            async move {
                let result = match source.fetch().await {
                    Ok(token) => admit(token, &opts, &*clock),
                    Err(e) => Err(e),
                };
                match &result {
                    Ok(fresh) => tracing::info!(
                        source = source.kind(),
                        detail = ?source,
                        expires_at = %rfc3339(fresh.value.expires_at()),
                        "fetched ID token"
                    ),
                    Err(error) => tracing::warn!(
                        event = "token_fetch_failed",
                        source = source.kind(),
                        detail = ?source,
                        %error,
                        "ID token fetch failed"
                    ),
                }
                result
            }
        });
        Self { source, refresher }
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
        self.refresher.get().await
    }

    /// One attempt to fill the cache, for startup. Errors are only logged.
    pub async fn warm_up(&self) {
        match self.get().await {
            Ok(token) => tracing::info!(
                source = self.source.kind(),
                expires_at = %rfc3339(token.expires_at()),
                "ID token ready"
            ),
            Err(e) => tracing::warn!(
                source = self.source.kind(),
                error = %e,
                "no ID token at startup; will retry on demand"
            ),
        }
    }

    /// Forgets the cached token: the next [`TokenCache::get`] fetches a new one.
    pub fn invalidate(&self) {
        self.refresher.invalidate();
    }

    /// Forgets the cached token if it is `refused` — the token the receiver just answered 401
    /// to — and not a newer one another request already fetched (so that many requests refused
    /// at once cause one fetch, not one each).
    pub fn invalidate_if_current(&self, refused: &IdToken) {
        self.refresher
            .invalidate_if(|cached| cached.value() == refused.value());
    }

    /// Fetch attempts made against the source so far.
    pub fn fetch_count(&self) -> u64 {
        self.refresher.attempts()
    }

    /// Whether a token that may be served is cached now.
    pub fn has_valid_token(&self) -> bool {
        self.refresher.current().is_some()
    }

    /// How long until the next fetch attempt is allowed, when there is no valid token and the
    /// cache is backing off after failures; `None` otherwise. For a `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        self.refresher.retry_after()
    }

    /// The options this cache runs with.
    pub fn options(&self) -> RefreshOptions {
        *self.refresher.options()
    }

    /// The source behind this cache.
    pub fn source(&self) -> &Arc<dyn TokenSource> {
        &self.source
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &self.source)
            .field("has_valid_token", &self.has_valid_token())
            .field("fetch_count", &self.fetch_count())
            .finish()
    }
}

/// Checks a fetched token's lifetime and computes its deadlines.
fn admit(
    token: IdToken,
    opts: &CacheOptions,
    clock: &dyn Clock,
) -> Result<Fresh<IdToken>, TokenError> {
    let margin = opts.expiry_margin;
    let remaining = token
        .expires_at()
        .duration_since(clock.now())
        .map_err(|_| TokenError::Malformed("token already expired"))?
        .min(MAX_CACHED_LIFETIME);
    if remaining <= margin {
        return Err(TokenError::Malformed(
            "token expires within the safety margin",
        ));
    }
    let now = Instant::now();
    let servable = remaining - margin;
    let expires_at = now + servable;
    let deadline = now + remaining;
    let ahead = deadline.checked_sub(opts.refresh_ahead).unwrap_or(now);
    let refresh_at = ahead.max(now + servable / 2);
    Ok(Fresh {
        value: token,
        refresh_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::fetch::TokenFuture;
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;
    use std::time::SystemTime;

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
            let d = cache.options().backoff.delay(failures);
            assert!(d <= Duration::from_secs(10), "{failures}: {d:?}");
            if failures <= 5 {
                assert!(d >= last / 2, "{failures}: {d:?} after {last:?}");
            }
            last = d;
        }
        assert!(cache.options().backoff.delay(1) >= Duration::from_millis(100));
        assert!(cache.options().backoff.delay(u32::MAX) <= Duration::from_secs(10));
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
