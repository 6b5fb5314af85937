//! Time-dependent tests: Tokio's clock jumped forward between requests, and a bounded real-time
//! wait for something another task does.

use std::time::Duration;

/// Moves Tokio's clock forward by `d` (no request may be in flight).
pub async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

/// Waits (real time, about three seconds at most) until `cond` holds; panics naming `what`.
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..300 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
