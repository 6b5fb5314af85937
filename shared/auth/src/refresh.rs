//! The one way this crate keeps a value fetched from elsewhere: [`Refresher`].
//!
//! The ID-token cache, the key-set cache (and, in the services built on this crate, the
//! readiness probe) are all the same problem — a value that comes from the network, is good for
//! a while, must not be fetched by every request at once, and must never leave the process
//! stuck after a failure. One primitive solves it once:
//!
//! - **Hot path**: a read lock and a clone — no await, no allocation of its own.
//! - **Usable window**: a value is served while `now < expires_at`; past it, never.
//! - **Refresh ahead**: from `refresh_at` on, one background task refetches while requests
//!   keep getting the current value; if it fails it retries with backoff until it succeeds or
//!   the value expires.
//! - **Single flight**: without a usable value, every waiting request shares one fetch, which
//!   runs in a task of its own (a request that gives up does not cancel it for the others) and
//!   is bounded by [`RefreshOptions::attempt_timeout`].
//! - **Bounded waits**: a request waits at most [`RefreshOptions::max_wait`] in all.
//! - **Backoff**: after consecutive failures, attempts are spaced by [`Backoff`]; while backing
//!   off, a request fails at once with the last error (or, with
//!   [`RefreshOptions::wait_out_backoff`], waits for the next attempt if it comes within its
//!   budget).
//! - **Never stuck**: a success resets everything; a fetch that panics counts as a failure.
//!
//! Time is `tokio::time`, so tests pause and advance it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// A fetched value and its two deadlines.
#[derive(Debug, Clone)]
pub struct Fresh<T> {
    /// The value.
    pub value: T,
    /// From this instant on, a background refresh starts (the value is still served).
    pub refresh_at: Instant,
    /// From this instant on, the value is never served.
    pub expires_at: Instant,
}

impl<T> Fresh<T> {
    /// A value good for `ttl` from now, refreshed only when it expires.
    pub fn for_duration(value: T, ttl: Duration) -> Self {
        let expires_at = Instant::now() + ttl;
        Self {
            value,
            refresh_at: expires_at,
            expires_at,
        }
    }
}

/// Spacing of attempts after consecutive failures: `initial × 2^(failures − 1)`, capped at
/// `max`; with `jitter`, a random delay between half and all of that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Randomize each delay between half and all of its nominal value (spreads the retries of
    /// many instances).
    pub jitter: bool,
}

impl Backoff {
    /// The delay after `failures` consecutive failures (`failures ≥ 1`).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        if self.jitter {
            base / 2 + base.mul_f64(fastrand::f64() / 2.0)
        } else {
            base
        }
    }
}

/// Tuning of a [`Refresher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshOptions {
    /// Bound on one fetch.
    pub attempt_timeout: Duration,
    /// Bound on the total time one request waits without a usable value.
    pub max_wait: Duration,
    /// Spacing of attempts after failures.
    pub backoff: Backoff,
    /// While backing off: `true` waits for the next attempt when it comes within
    /// [`RefreshOptions::max_wait`]; `false` fails at once with the last error.
    pub wait_out_backoff: bool,
}

/// Why a fetch produced no result of its own; the error type of a [`Refresher`] converts from
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Interrupted {
    /// The fetch, or the wait for it, took longer than the bound.
    #[error("no result within {0:?}")]
    TimedOut(Duration),
    /// The fetch ended without a result (it panicked or its task was cancelled).
    #[error("the fetch ended without a result")]
    Aborted,
}

/// What a fetch returns.
pub type FetchFuture<T, E> = Pin<Box<dyn Future<Output = Result<Fresh<T>, E>> + Send + 'static>>;

type FetchFn<T, E> = dyn Fn() -> FetchFuture<T, E> + Send + Sync;

/// A value fetched by one function, kept and refreshed by the rules in the [module
/// docs](self). Cheap to clone (shared state).
pub struct Refresher<T, E> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Clone for Refresher<T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<T, E> {
    fetch: Box<FetchFn<T, E>>,
    opts: RefreshOptions,
    /// Lock order: `flight` before `current`.
    current: RwLock<Option<Fresh<T>>>,
    flight: Mutex<Flight<T, E>>,
    refreshing: AtomicBool,
    attempts: AtomicU64,
}

/// What an attempt publishes: `None` until it finishes.
type Outcome<T, E> = Option<Result<T, E>>;

struct Flight<T, E> {
    /// The attempt in progress, if any; everyone who needs a value waits on it.
    inflight: Option<watch::Receiver<Outcome<T, E>>>,
    /// Consecutive failed attempts.
    failures: u32,
    /// No new attempt before this (backoff after failures).
    not_before: Option<Instant>,
    /// Error of the last attempt, while it failed.
    last_error: Option<E>,
    /// Start of the last attempt asked for by [`Refresher::refresh`].
    last_forced: Option<Instant>,
}

impl<T, E> Default for Flight<T, E> {
    fn default() -> Self {
        Self {
            inflight: None,
            failures: 0,
            not_before: None,
            last_error: None,
            last_forced: None,
        }
    }
}

/// What a request without a usable value does next.
enum Step<T, E> {
    Serve(T),
    Wait(watch::Receiver<Outcome<T, E>>),
    Sleep(Instant),
    Fail(E),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T, E> fmt::Debug for Refresher<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher")
            .field("opts", &self.inner.opts)
            .field("attempts", &self.attempts())
            .finish_non_exhaustive()
    }
}

impl<T, E> Refresher<T, E> {
    /// Fetch attempts started so far.
    pub fn attempts(&self) -> u64 {
        self.inner.attempts.load(Ordering::Relaxed)
    }

    /// The options this refresher runs with.
    pub fn options(&self) -> &RefreshOptions {
        &self.inner.opts
    }
}

impl<T, E> Refresher<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + From<Interrupted> + 'static,
{
    /// A refresher of the value `fetch` produces. Nothing is fetched until the first
    /// [`Refresher::get`].
    pub fn new<F, Fut>(opts: RefreshOptions, fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Fresh<T>, E>> + Send + 'static,
    {
        Self {
            inner: Arc::new(Inner {
                fetch: Box::new(move || Box::pin(fetch())),
                opts,
                current: RwLock::new(None),
                flight: Mutex::new(Flight::default()),
                refreshing: AtomicBool::new(false),
                attempts: AtomicU64::new(0),
            }),
        }
    }

    /// A usable value: the current one (starting a background refresh when it is due), else
    /// the result of the shared fetch, waiting at most [`RefreshOptions::max_wait`].
    ///
    /// # Errors
    /// The fetch's error; [`Interrupted::TimedOut`] (converted) when the wait ran out; the last
    /// error at once while backing off.
    pub async fn get(&self) -> Result<T, E> {
        if let Some(value) = self.inner.serve_current(Instant::now()) {
            return Ok(value);
        }
        self.inner.wait_for_value().await
    }

    /// The usable value now, if any; fetches nothing and starts no refresh.
    pub fn current(&self) -> Option<T> {
        self.inner.usable(Instant::now()).map(|(v, _)| v)
    }

    /// Fetches again now although a value may be usable (for example: a key id the current key
    /// set does not know) — at most once per `min_interval`, never while backing off, joining
    /// a fetch already in flight — and waits for it (at most [`RefreshOptions::max_wait`]).
    /// Returns whether a fetch finished successfully during the call.
    pub async fn refresh(&self, min_interval: Duration) -> bool {
        let rx = {
            let mut flight = lock(&self.inner.flight);
            let now = Instant::now();
            if let Some(rx) = &flight.inflight {
                rx.clone()
            } else if flight.not_before.is_some_and(|nb| nb > now)
                || flight
                    .last_forced
                    .is_some_and(|t| now.saturating_duration_since(t) < min_interval)
            {
                return false;
            } else {
                flight.last_forced = Some(now);
                self.inner.start_attempt(&mut flight)
            }
        };
        let deadline = Instant::now() + self.inner.opts.max_wait;
        matches!(
            tokio::time::timeout_at(deadline, wait_outcome(rx)).await,
            Ok(Ok(_))
        )
    }

    /// Forgets the current value: the next [`Refresher::get`] fetches (for a value the other
    /// side stopped accepting).
    pub fn invalidate(&self) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Forgets the current value if `stale` says so (for example: it is the very value the other
    /// side just refused — not a newer one another request already fetched).
    pub fn invalidate_if(&self, stale: impl FnOnce(&T) -> bool) {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|f| stale(&f.value)) {
            *current = None;
        }
    }

    /// How long until the next attempt is allowed, when there is no usable value and the
    /// refresher is backing off after failures; `None` otherwise. For a `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        let now = Instant::now();
        if self.inner.usable(now).is_some() {
            return None;
        }
        let flight = lock(&self.inner.flight);
        flight
            .not_before
            .filter(|nb| *nb > now)
            .map(|nb| nb.duration_since(now))
    }

    /// Consecutive failed attempts (0 after a success).
    pub fn failures(&self) -> u32 {
        lock(&self.inner.flight).failures
    }
}

impl<T, E> Inner<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + From<Interrupted> + 'static,
{
    /// The value if it may be served at `now`, and whether it is due for refresh.
    fn usable(&self, now: Instant) -> Option<(T, bool)> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let fresh = current.as_ref()?;
        (now < fresh.expires_at).then(|| (fresh.value.clone(), now >= fresh.refresh_at))
    }

    /// The hot path: the value, starting a background refresh when it is due.
    fn serve_current(self: &Arc<Self>, now: Instant) -> Option<T> {
        let (value, due) = self.usable(now)?;
        if due {
            self.trigger_refresh();
        }
        Some(value)
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
                handle.spawn(Arc::clone(self).refresh_loop());
            }
            // Not in a runtime: no background refresh; a later get fetches in the foreground.
            Err(_) => self.refreshing.store(false, Ordering::Release),
        }
    }

    /// Refreshes ahead of expiry: retries with backoff until a new value is in or the current
    /// one expires (then requests fetch in the foreground).
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
            let Some((expires_at, refresh_at)) = self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|c| (c.expires_at, c.refresh_at))
            else {
                return;
            };
            if now >= expires_at || now < refresh_at {
                // expired (the foreground takes over) or already refreshed
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
            match next {
                Ok(rx) => {
                    // The attempt bounds itself and records its own outcome.
                    let _ = wait_outcome(rx).await;
                }
                Err(not_before) => tokio::time::sleep_until(not_before.min(expires_at)).await,
            }
        }
    }

    /// Starts an attempt (the caller holds the flight lock and saw none in flight).
    fn start_attempt(
        self: &Arc<Self>,
        flight: &mut Flight<T, E>,
    ) -> watch::Receiver<Outcome<T, E>> {
        let (tx, rx) = watch::channel(None);
        flight.inflight = Some(rx.clone());
        self.attempts.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(Arc::clone(self).attempt(tx));
        rx
    }

    /// One fetch, bounded by `attempt_timeout`, in its own task.
    async fn attempt(self: Arc<Self>, tx: watch::Sender<Outcome<T, E>>) {
        /// Records a failure if the attempt ends without finishing (the fetch panicked).
        struct Unfinished<'a, T, E>(Option<&'a Inner<T, E>>)
        where
            T: Clone + Send + Sync + 'static,
            E: Clone + Send + Sync + From<Interrupted> + 'static;
        impl<T, E> Drop for Unfinished<'_, T, E>
        where
            T: Clone + Send + Sync + 'static,
            E: Clone + Send + Sync + From<Interrupted> + 'static,
        {
            fn drop(&mut self) {
                if let Some(inner) = self.0 {
                    let _ = inner.record(Err(Interrupted::Aborted.into()));
                }
            }
        }
        let mut guard = Unfinished(Some(&*self));
        let timeout = self.opts.attempt_timeout;
        let result = match tokio::time::timeout(timeout, (self.fetch)()).await {
            Ok(r) => r,
            Err(_) => Err(Interrupted::TimedOut(timeout).into()),
        };
        guard.0 = None;
        let outcome = self.record(result);
        let _ = tx.send(Some(outcome));
    }

    /// Records an attempt's result: keeps a value and resets the backoff, or counts the
    /// failure and sets the next allowed attempt. Clears the in-flight slot.
    fn record(&self, result: Result<Fresh<T>, E>) -> Result<T, E> {
        let mut flight = lock(&self.flight);
        flight.inflight = None;
        match result {
            Ok(fresh) => {
                let value = fresh.value.clone();
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(fresh);
                flight.failures = 0;
                flight.not_before = None;
                flight.last_error = None;
                Ok(value)
            }
            Err(e) => {
                flight.failures = flight.failures.saturating_add(1);
                let delay = self.opts.backoff.delay(flight.failures);
                flight.not_before = Some(Instant::now() + delay);
                flight.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// What a request without a usable value does next (one decision under the flight lock).
    fn next_step(self: &Arc<Self>, budget_end: Instant) -> Step<T, E> {
        let mut flight = lock(&self.flight);
        let now = Instant::now();
        if let Some((value, due)) = self.usable(now) {
            drop(flight);
            if due {
                self.trigger_refresh();
            }
            return Step::Serve(value);
        }
        if let Some(rx) = &flight.inflight {
            return Step::Wait(rx.clone());
        }
        if let Some(nb) = flight.not_before.filter(|nb| *nb > now) {
            if !self.opts.wait_out_backoff || nb >= budget_end {
                return Step::Fail(
                    flight
                        .last_error
                        .clone()
                        .unwrap_or_else(|| Interrupted::Aborted.into()),
                );
            }
            return Step::Sleep(nb);
        }
        Step::Wait(self.start_attempt(&mut flight))
    }

    /// The slow path: share the in-flight fetch (or start one, or wait out a short backoff),
    /// never longer than `max_wait` in total.
    async fn wait_for_value(self: &Arc<Self>) -> Result<T, E> {
        let max_wait = self.opts.max_wait;
        let budget_end = Instant::now() + max_wait;
        loop {
            match self.next_step(budget_end) {
                Step::Serve(value) => return Ok(value),
                Step::Fail(e) => return Err(e),
                Step::Sleep(until) => tokio::time::sleep_until(until).await,
                Step::Wait(rx) => {
                    return match tokio::time::timeout_at(budget_end, wait_outcome(rx)).await {
                        Ok(result) => result,
                        Err(_) => Err(Interrupted::TimedOut(max_wait).into()),
                    };
                }
            }
        }
    }
}

/// The outcome an attempt publishes.
async fn wait_outcome<T: Clone, E: Clone + From<Interrupted>>(
    mut rx: watch::Receiver<Outcome<T, E>>,
) -> Result<T, E> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome
            .clone()
            .unwrap_or_else(|| Err(Interrupted::Aborted.into())),
        Err(_) => Err(Interrupted::Aborted.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Error {
        Down,
        Interrupted(Interrupted),
    }

    impl From<Interrupted> for Error {
        fn from(i: Interrupted) -> Self {
            Self::Interrupted(i)
        }
    }

    fn opts(wait_out_backoff: bool) -> RefreshOptions {
        RefreshOptions {
            attempt_timeout: Duration::from_secs(5),
            max_wait: Duration::from_secs(5),
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(8),
                jitter: false,
            },
            wait_out_backoff,
        }
    }

    /// A refresher whose n-th fetch (from 1) returns `n`, good for `ttl`, after `delay`;
    /// fetches listed in `fail` fail.
    fn counting(
        ttl: Duration,
        delay: Duration,
        fail: &'static [u32],
        wait_out_backoff: bool,
    ) -> (Refresher<u32, Error>, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&calls);
        let r = Refresher::new(opts(wait_out_backoff), move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(delay).await;
                if fail.contains(&n) {
                    return Err(Error::Down);
                }
                let now = Instant::now();
                Ok(Fresh {
                    value: n,
                    refresh_at: now + ttl / 2,
                    expires_at: now + ttl,
                })
            }
        });
        (r, calls)
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            jitter: true,
        };
        let mut last = Duration::ZERO;
        for failures in 1..40 {
            let d = b.delay(failures);
            assert!(d <= Duration::from_secs(10), "{failures}: {d:?}");
            if failures > 1 {
                assert!(d >= last / 2, "{failures}: {d:?} after {last:?}");
            }
            last = d;
        }
        assert!(b.delay(1) >= Duration::from_millis(100));
        assert!(b.delay(u32::MAX) <= Duration::from_secs(10));
        let fixed = Backoff { jitter: false, ..b };
        assert_eq!(fixed.delay(1), Duration::from_millis(200));
        assert_eq!(fixed.delay(3), Duration::from_millis(800));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_gets_share_one_fetch_and_the_value_is_kept() {
        let (r, calls) = counting(
            Duration::from_secs(60),
            Duration::from_millis(100),
            &[],
            false,
        );
        let all = (0..50).map(|_| r.get());
        for v in futures_util::future::join_all(all).await {
            assert_eq!(v, Ok(1));
        }
        assert_eq!(r.get().await, Ok(1));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(r.attempts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_ahead_serves_the_old_value_meanwhile_and_expiry_is_final() {
        let (r, calls) = counting(Duration::from_secs(60), Duration::from_secs(1), &[], false);
        assert_eq!(r.get().await, Ok(1));
        tokio::time::advance(Duration::from_secs(31)).await;
        let before = Instant::now();
        assert_eq!(r.get().await, Ok(1), "served at once while refreshing");
        assert_eq!(Instant::now(), before);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(r.get().await, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        r.invalidate_if(|v| *v == 1);
        assert_eq!(r.current(), Some(2), "not the value it was asked about");
        r.invalidate_if(|v| *v == 2);
        assert_eq!(r.current(), None);
        assert_eq!(r.get().await, Ok(3));
        r.invalidate();
        assert_eq!(r.current(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_fail_fast_then_recover() {
        let (r, calls) = counting(Duration::from_secs(60), Duration::ZERO, &[1, 2], false);
        assert_eq!(r.get().await, Err(Error::Down));
        assert_eq!(
            r.get().await,
            Err(Error::Down),
            "inside the backoff: fails at once"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(r.retry_after(), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(r.get().await, Err(Error::Down));
        assert_eq!(r.failures(), 2);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(r.get().await, Ok(3));
        assert_eq!(r.failures(), 0);
        assert_eq!(r.retry_after(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_out_a_short_backoff_within_the_budget() {
        let (r, calls) = counting(Duration::from_secs(60), Duration::ZERO, &[1], true);
        assert_eq!(r.get().await, Err(Error::Down));
        let before = Instant::now();
        assert_eq!(r.get().await, Ok(2), "waited out the 1 s backoff");
        assert_eq!(Instant::now() - before, Duration::from_secs(1));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_fetch_times_out_and_a_panicking_one_is_a_failure() {
        let stalls = Arc::new(AtomicU32::new(0));
        let s = Arc::clone(&stalls);
        let r: Refresher<u32, Error> = Refresher::new(opts(true), move || {
            let n = s.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => std::future::pending().await,
                    1 => panic!("fetch panicked"),
                    _ => Ok(Fresh::for_duration(n, Duration::from_secs(60))),
                }
            }
        });
        assert_eq!(
            r.get().await,
            Err(Error::Interrupted(Interrupted::TimedOut(
                Duration::from_secs(5)
            )))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(r.get().await, Err(Error::Interrupted(Interrupted::Aborted)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(r.get().await, Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn forced_refreshes_are_spaced_and_joined() {
        let (r, calls) = counting(
            Duration::from_secs(600),
            Duration::from_millis(10),
            &[],
            false,
        );
        assert_eq!(r.get().await, Ok(1));
        let all = (0..20).map(|_| r.refresh(Duration::from_secs(30)));
        let done = futures_util::future::join_all(all).await;
        assert!(done.iter().any(|d| *d));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one forced fetch for all");
        assert!(
            !r.refresh(Duration::from_secs(30)).await,
            "inside the interval"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(r.refresh(Duration::from_secs(30)).await);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(r.current(), Some(3));
    }
}
