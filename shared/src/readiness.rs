//! A short-lived cache of a readiness result with one check in flight at a time.
//!
//! `/health/ready` needs no authentication and is exempt from the concurrency limit, so
//! without this every anonymous probe would cost an upstream call (the caller) or a store ping
//! (called): a cheap amplifier. With it, N concurrent probes cost at most one check per
//! [`ReadinessCache::ttl`]: probes arriving while a check runs wait for it and share its
//! result; probes within the TTL after it get the cached result at once.
//!
//! Time is `tokio::time`, so tests pause it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a readiness result is served before the next probe checks again.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// The last readiness result of type `T` and when it was obtained; cheap to clone (shared).
#[derive(Clone)]
pub struct ReadinessCache<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    ttl: Duration,
    /// Held for the whole check: that is the single flight.
    last: Mutex<Option<(Instant, T)>>,
    checks: AtomicU64,
}

impl<T> std::fmt::Debug for ReadinessCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCache")
            .field("ttl", &self.inner.ttl)
            .field("checks", &self.checks())
            .finish()
    }
}

impl<T> Default for ReadinessCache<T> {
    fn default() -> Self {
        Self::new(READINESS_TTL)
    }
}

impl<T> ReadinessCache<T> {
    /// A cache serving each result for `ttl` after its check finished.
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                ttl,
                last: Mutex::new(None),
                checks: AtomicU64::new(0),
            }),
        }
    }

    /// How long a result is served.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Checks run so far (finished or not).
    pub fn checks(&self) -> u64 {
        self.inner.checks.load(Ordering::Relaxed)
    }
}

impl<T: Clone> ReadinessCache<T> {
    /// The cached result while it is younger than the TTL; else runs `check` — unless another
    /// probe's check is in flight, in which case this waits for it and returns its result.
    ///
    /// `check` should bound itself (every check here has timeouts). If the probe running it
    /// is cancelled, the next waiting probe runs a new check: still one at a time.
    pub async fn get_or_check<F, Fut>(&self, check: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut last = self.inner.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < self.inner.ttl
        {
            return result.clone();
        }
        self.inner.checks.fetch_add(1, Ordering::Relaxed);
        let result = check().await;
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn slow_check(n: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        n
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_probes_share_one_check_in_flight() {
        let cache = ReadinessCache::<u64>::default();
        let probes: Vec<_> = (0..100)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get_or_check(|| slow_check(i)).await })
            })
            .collect();
        let mut results = Vec::new();
        for p in probes {
            results.push(p.await.expect("join"));
        }
        assert_eq!(cache.checks(), 1);
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "everyone got the one check's result"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_result_is_served_for_the_ttl_then_checked_again() {
        let cache = ReadinessCache::<u64>::new(Duration::from_secs(1));
        assert_eq!(cache.get_or_check(|| async { 1 }).await, 1);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(cache.get_or_check(|| async { 2 }).await, 1, "still cached");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get_or_check(|| async { 3 }).await, 3, "expired");
        assert_eq!(cache.checks(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_cached_too_and_recovery_shows_after_the_ttl() {
        let cache = ReadinessCache::<Result<(), &'static str>>::default();
        assert_eq!(
            cache.get_or_check(|| async { Err("down") }).await,
            Err("down")
        );
        assert_eq!(cache.get_or_check(|| async { Ok(()) }).await, Err("down"));
        tokio::time::advance(READINESS_TTL).await;
        assert_eq!(cache.get_or_check(|| async { Ok(()) }).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_check_does_not_wedge_the_cache() {
        let cache = ReadinessCache::<u64>::default();
        let stuck = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get_or_check(std::future::pending::<u64>).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        stuck.abort();
        let _ = stuck.await;
        assert_eq!(cache.get_or_check(|| async { 7 }).await, 7);
        assert_eq!(cache.checks(), 2);
    }
}
