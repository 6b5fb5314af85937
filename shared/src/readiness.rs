//! A short-lived cache of a readiness result with one check in flight at a time, on the auth
//! library's [`Refresher`] (the one single-flight cache of the project).
//!
//! `/health/ready` needs no authentication and is exempt from the concurrency limit, so
//! without this every anonymous probe would cost an upstream call (the caller) or a store ping
//! (called): a cheap amplifier. With it, N concurrent probes cost at most one check per
//! [`READINESS_TTL`]: probes arriving while a check runs wait for it and share its result;
//! probes within the TTL after it get the cached result at once. A check runs in a task of its
//! own (a probe that gives up does not cancel it) and is bounded by [`CHECK_TIMEOUT`].
//!
//! Time is `tokio::time`, so tests pause it.

use std::future::Future;
use std::time::Duration;

use invoker_auth::refresh::{Backoff, Fresh, Interrupted, RefreshOptions, Refresher};

/// How long a readiness result is served before the next probe checks again.
pub const READINESS_TTL: Duration = Duration::from_secs(1);
/// Bound on one check (each check's own steps have shorter timeouts).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The last readiness result of type `T`; cheap to clone (shared).
pub struct ReadinessCache<T> {
    inner: Refresher<T, Interrupted>,
}

impl<T> Clone for ReadinessCache<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for ReadinessCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCache")
            .field("checks", &self.checks())
            .finish()
    }
}

impl<T> ReadinessCache<T> {
    /// Checks run so far (finished or not).
    pub fn checks(&self) -> u64 {
        self.inner.attempts()
    }
}

impl<T: Clone + Send + Sync + 'static> ReadinessCache<T> {
    /// A cache serving each result of `check` for `ttl` after the check finished.
    pub fn new<F, Fut>(ttl: Duration, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let opts = RefreshOptions {
            attempt_timeout: CHECK_TIMEOUT,
            max_wait: CHECK_TIMEOUT,
            // A check that did not finish is retried no sooner than a result would be.
            backoff: Backoff {
                initial: ttl,
                max: ttl,
                jitter: false,
            },
            wait_out_backoff: false,
        };
        Self {
            inner: Refresher::new(opts, move || {
                let result = check();
                async move { Ok(Fresh::for_duration(result.await, ttl)) }
            }),
        }
    }

    /// The cached result while it is younger than the TTL; else the result of the check in
    /// flight (started now if none is).
    ///
    /// # Errors
    /// [`Interrupted`] when the check did not finish within [`CHECK_TIMEOUT`] (or panicked).
    pub async fn get(&self) -> Result<T, Interrupted> {
        self.inner.get().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A cache whose n-th check (from 1) answers `answer(n)` after `delay`.
    fn counting<T: Clone + Send + Sync + 'static>(
        ttl: Duration,
        delay: Duration,
        answer: fn(u64) -> T,
    ) -> ReadinessCache<T> {
        let n = Arc::new(AtomicU64::new(0));
        ReadinessCache::new(ttl, move || {
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(delay).await;
                answer(i)
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_probes_share_one_check_in_flight() {
        let cache = counting(READINESS_TTL, Duration::from_millis(300), |n| n);
        let probes: Vec<_> = (0..100)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get().await })
            })
            .collect();
        let mut results = Vec::new();
        for p in probes {
            results.push(p.await.expect("join").expect("checked"));
        }
        assert_eq!(cache.checks(), 1);
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "everyone got the one check's result"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_result_is_served_for_the_ttl_then_checked_again() {
        let cache = counting(Duration::from_secs(1), Duration::ZERO, |n| n);
        assert_eq!(cache.get().await, Ok(1));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(cache.get().await, Ok(1), "still cached");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get().await, Ok(2), "expired");
        assert_eq!(cache.checks(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_cached_too_and_recovery_shows_after_the_ttl() {
        let cache = counting(READINESS_TTL, Duration::ZERO, |n| {
            if n == 1 { Err("down") } else { Ok(()) }
        });
        assert_eq!(cache.get().await, Ok(Err("down")));
        assert_eq!(cache.get().await, Ok(Err("down")));
        tokio::time::advance(READINESS_TTL).await;
        assert_eq!(cache.get().await, Ok(Ok(())));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_or_cancelled_check_does_not_wedge_the_cache() {
        let n = Arc::new(AtomicU64::new(0));
        let cache = ReadinessCache::new(READINESS_TTL, move || {
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if i == 1 {
                    std::future::pending::<()>().await;
                }
                i
            }
        });
        let stuck = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        stuck.abort();
        let _ = stuck.await;
        assert_eq!(
            cache.get().await,
            Err(Interrupted::TimedOut(CHECK_TIMEOUT)),
            "bounded by the check timeout"
        );
        tokio::time::advance(READINESS_TTL).await;
        assert_eq!(cache.get().await, Ok(2));
        assert_eq!(cache.checks(), 2);
    }
}
