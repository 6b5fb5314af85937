//! Another process holds the SQLite write lock: every insert of the real `called` binary fails
//! (503 with `Retry-After`), and readiness says so after a few failures instead of staying 200
//! while reads still work; once the lock is released, one successful commit (a write, or the
//! writer's own probe when no write comes) makes it ready again.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use testkit::checks::assert_problem;

use crate::helpers::start_open;

/// Busy timeout of called's writer: each insert gives up on the lock this fast.
const DATABASE_TIMEOUT_MS: &str = "200";

/// Another process's connection to the same file holding `BEGIN IMMEDIATE` (the write lock).
fn hold_write_lock(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).expect("open the SQLite file");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    conn
}

/// Polls `/health/ready` until it answers `status` (within `limit`); the time it took.
async fn ready_becomes(
    client: &reqwest::Client,
    base: &str,
    status: u16,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .expect("ready")
            .status()
            .as_u16();
        if got == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "readiness still {got} after {limit:?}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(client: &reqwest::Client, base: &str, i: usize) -> reqwest::Response {
    client
        .post(format!("{base}/"))
        .json(&json!({"bar": format!("write {i}")}))
        .send()
        .await
        .expect("post")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_503_while_another_process_holds_the_sqlite_write_lock() {
    let (called, dir) = start_open(&[("DATABASE_TIMEOUT_MS", DATABASE_TIMEOUT_MS)]).await;
    let base = called.base.clone();
    let client = testkit::ready::client_with_timeout(Duration::from_secs(10));
    assert_eq!(post(&client, &base, 0).await.status(), 201);

    let lock = hold_write_lock(&dir.path().join("called.db"));
    // One failed insert does not flip readiness (no flapping on a moment's contention).
    let first = post(&client, &base, 1).await;
    let problem = assert_problem(first, 503).await.assert_complete();
    assert!(problem.retry_after.is_some(), "503 with Retry-After");
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the cached result
    ready_becomes(&client, &base, 200, Duration::from_secs(3)).await;

    // Every insert fails while the lock is held: 503, nothing acknowledged...
    for i in 2..5 {
        let res = post(&client, &base, i).await;
        let problem = assert_problem(res, 503).await.assert_complete();
        assert!(problem.retry_after.is_some(), "503 with Retry-After");
    }
    // ...and readiness follows within its cache second.
    let took = ready_becomes(&client, &base, 503, Duration::from_secs(3)).await;
    let not_ready = testkit::checks::assert_not_ready(&base).await;
    assert!(
        not_ready.detail.contains("commit"),
        "names the cause: {}",
        not_ready.detail
    );
    // It stays 503 while the lock is held (the writer's probes fail too): no flapping.
    let held = Instant::now();
    while held.elapsed() < Duration::from_millis(2500) {
        let status = client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .expect("ready")
            .status();
        assert_eq!(status, 503, "ready again while the lock is still held");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The lock is released: one successful write, and readiness is back.
    lock.execute_batch("ROLLBACK").expect("release the lock");
    drop(lock);
    assert_eq!(post(&client, &base, 5).await.status(), 201);
    let back = ready_becomes(&client, &base, 200, Duration::from_secs(3)).await;
    testkit::checks::loud(&format!(
        "sqlite write lock held by another process: readiness 503 {took:?} after the third failed insert, 200 again {back:?} after the first commit"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_recovers_without_writes_once_the_sqlite_write_lock_is_released() {
    let (called, dir) = start_open(&[("DATABASE_TIMEOUT_MS", DATABASE_TIMEOUT_MS)]).await;
    let base = called.base.clone();
    let client = testkit::ready::client_with_timeout(Duration::from_secs(10));
    let lock = hold_write_lock(&dir.path().join("called.db"));
    for i in 0..3 {
        assert_eq!(post(&client, &base, i).await.status(), 503);
    }
    ready_becomes(&client, &base, 503, Duration::from_secs(3)).await;
    lock.execute_batch("ROLLBACK").expect("release the lock");
    drop(lock);
    // No write arrives (an instance out of rotation gets none): the writer's probe commit,
    // asked for by the readiness check, makes it ready again.
    ready_becomes(&client, &base, 200, Duration::from_secs(4)).await;
    assert_eq!(post(&client, &base, 3).await.status(), 201);
}
