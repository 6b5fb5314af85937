//! Connection floods against the real `called` binary: `MAX_CONNECTIONS` caps the connections
//! served at once, a small reserve beyond it answers only `/health/*` (one request, a short
//! header timeout), anything past the reserve is closed as soon as it is accepted, and the
//! header buffer of a connection is bounded (64 KiB; heads up to 32 KiB are served).

use std::time::{Duration, Instant};

use serde_json::json;

use testkit::checks::assert_problem;
use testkit::raw::Raw;

use crate::helpers::start_open;

/// Connections served beyond `MAX_CONNECTIONS` (health checks only): the server's constant.
const RESERVED: usize = shared::server::serve::RESERVED_CONNECTIONS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_max_connections_are_refused() {
    let (called, _dir) =
        start_open(&[("MAX_CONNECTIONS", "8"), ("HEADER_READ_TIMEOUT_MS", "6000")]).await;
    let addr = called.addr.clone();
    // The readiness wait's connection is closed by now (its client is gone), freeing its slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Eight idle connections take every slot.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(Raw::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Forty more: the reserve's are closed by its 1 s header timeout, the rest at once.
    let extra = 40;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..extra {
        let mut raw = Raw::connect(&addr).await.expect("connect");
        tasks.push(tokio::spawn(async move {
            raw.closed_within(Duration::from_secs(4)).await
        }));
    }
    let mut at_once = 0;
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (after, bytes) = t
            .await
            .expect("task")
            .expect("an idle connection beyond MAX_CONNECTIONS stays open");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            bytes.is_empty() || text.starts_with("HTTP/1.1 408"),
            "closed with nothing or a 408: {text:?}"
        );
        if after < Duration::from_millis(500) {
            at_once += 1;
        }
        slowest = slowest.max(after);
    }
    assert!(
        at_once >= extra - RESERVED,
        "{at_once} of {extra} closed at once (reserve {RESERVED})"
    );
    assert!(
        start.elapsed() < Duration::from_millis(3000),
        "all closed within the reserve's header timeout: {:?}",
        start.elapsed()
    );
    // The eight are still open (their header timeout is 6 s).
    for raw in &mut held {
        assert!(
            raw.closed_within(Duration::from_millis(20)).await.is_err(),
            "a connection within MAX_CONNECTIONS was closed"
        );
    }

    // Health checks still answer (through the reserve), once per connection; anything else
    // is a 503 problem with Retry-After rather than a hang.
    let client = testkit::ready::client_with_timeout(Duration::from_secs(5));
    for path in ["/health/live", "/health/ready"] {
        let res = client
            .get(format!("{}{path}", called.base))
            .send()
            .await
            .expect("health");
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            res.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "{path}: one request per reserved connection"
        );
    }
    let res = client
        .post(format!("{}/", called.base))
        .json(&json!({"bar": "while full"}))
        .send()
        .await
        .expect("post");
    let problem = assert_problem(res, 503).await.assert_complete();
    assert!(problem.retry_after.is_some(), "503 with Retry-After");

    // Closing some frees their slots.
    held.truncate(4);
    testkit::checks::until_created(
        "a slot freed by a closed connection",
        Duration::from_secs(3),
        Duration::from_millis(50),
        || async {
            client
                .post(format!("{}/", called.base))
                .json(&json!({"bar": "after"}))
                .send()
                .await
                .expect("post")
        },
    )
    .await;
    testkit::checks::loud(&format!(
        "MAX_CONNECTIONS=8: {at_once} of {extra} extra idle connections closed at once, all within {slowest:?}; health answered through the reserve"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_do_not_grow_memory() {
    let (called, _dir) = start_open(&[("MAX_CONNECTIONS", "8")]).await;
    let addr = called.addr.clone();
    let before = called.memory();
    // 400 connections, each sending 60 KiB of a head it never finishes (under the 64 KiB
    // buffer, so none is refused for size): without a cap each holds its buffer 10 s.
    let mut partial = b"GET /health/live HTTP/1.1\r\nX-Pad: ".to_vec();
    partial.resize(60 * 1024, b'a');
    let mut open = Vec::new();
    for _ in 0..400 {
        let Ok(mut raw) = Raw::connect(&addr).await else {
            continue;
        };
        let _ = raw.send(&partial).await; // a connection closed at once may refuse the bytes
        open.push(raw);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = called.memory();
    let grown_kib = after.rss_kib.saturating_sub(before.rss_kib);
    testkit::checks::loud(&format!(
        "400 connections with 60 KiB unfinished heads, MAX_CONNECTIONS=8: RSS {} -> {} KiB (+{grown_kib} KiB)",
        before.rss_kib, after.rss_kib
    ));
    assert!(
        grown_kib < 8 * 1024,
        "RSS grew by {grown_kib} KiB with 400 connections held"
    );
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_32_kib_head_is_served_and_a_head_past_the_buffer_gets_431() {
    let (called, _dir) = start_open(&[]).await;
    let client = testkit::ready::client_with_timeout(Duration::from_secs(5));
    let post = |pad: usize| {
        client
            .post(format!("{}/", called.base))
            .header("x-pad", "a".repeat(pad))
            .json(&json!({"bar": "big head"}))
            .send()
    };
    assert_eq!(post(32 * 1024).await.expect("32 KiB head").status(), 201);
    // Past the buffer: refused by the HTTP layer itself (or the connection is cut).
    match post(128 * 1024).await {
        Ok(res) => assert_eq!(res.status(), 431),
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
}
