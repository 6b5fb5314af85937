//! Slow clients against the real `called` binary: connections that never finish their headers
//! are closed at `HEADER_READ_TIMEOUT_MS` while everyone else is served, and a request whose
//! body stalls is answered 503 at `REQUEST_TIMEOUT_MS`, giving its concurrency permit back.

use std::time::{Duration, Instant};

use serde_json::json;

use testkit::checks::assert_problem_parts;
use testkit::raw::Raw;

use crate::helpers::start_open;

const HEADER_READ_TIMEOUT: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_headers_are_cut_off_at_the_header_read_timeout_while_others_are_served() {
    let (called, _dir) = start_open(&[
        ("HEADER_READ_TIMEOUT_MS", "500"),
        ("MAX_CONCURRENT_REQUESTS", "8"),
    ])
    .await;
    let host = called.addr.clone();
    // Three kinds of slowloris, 15 of each: silent, half a request line, headers without the
    // blank line that ends them.
    let partials = [
        String::new(),
        "POST / HTT".to_owned(),
        format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nX-Slow: 1"),
    ];
    let mut loris = Vec::new();
    for i in 0..45 {
        let partial = partials[i % 3].clone();
        let addr = called.addr.clone();
        loris.push(tokio::spawn(async move {
            let mut raw = Raw::connect(&addr).await.expect("connect");
            let sent = Instant::now();
            if !partial.is_empty() {
                raw.send(partial.as_bytes()).await.expect("partial head");
            }
            let closed = raw.closed_within(Duration::from_secs(5)).await;
            (i % 3, sent.elapsed(), closed)
        }));
    }

    // Meanwhile, normal clients are served promptly.
    let client = testkit::ready::client_with_timeout(Duration::from_secs(5));
    let mut slowest_normal = Duration::ZERO;
    for i in 0..10 {
        let t = Instant::now();
        let res = client
            .post(format!("{}/", called.base))
            .json(&json!({"bar": format!("normal {i}")}))
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 201);
        slowest_normal = slowest_normal.max(t.elapsed());
    }
    assert!(
        slowest_normal < HEADER_READ_TIMEOUT,
        "served while 45 slow connections were open ({slowest_normal:?})"
    );

    let mut closed_after = Vec::new();
    for l in loris {
        let (kind, elapsed, closed) = l.await.expect("slowloris task");
        let (_, bytes) = closed
            .unwrap_or_else(|_| panic!("kind {kind}: connection still open after {elapsed:?}"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            bytes.is_empty() || text.starts_with("HTTP/1.1 408"),
            "kind {kind}: closed with nothing or a 408, got {text:?}"
        );
        assert!(
            elapsed <= HEADER_READ_TIMEOUT + Duration::from_millis(1500),
            "kind {kind}: closed after {elapsed:?}"
        );
        assert!(
            elapsed >= HEADER_READ_TIMEOUT / 2,
            "kind {kind}: closed by the timeout, not at once ({elapsed:?})"
        );
        closed_after.push(elapsed);
    }
    let (min, max) = (
        closed_after.iter().min().copied().unwrap_or_default(),
        closed_after.iter().max().copied().unwrap_or_default(),
    );
    testkit::checks::loud(&format!(
        "slowloris headers: 45 connections closed after {min:?}..{max:?} \
         (HEADER_READ_TIMEOUT_MS=500); slowest normal request meanwhile {slowest_normal:?}"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_503_at_the_request_timeout_and_frees_its_permit() {
    let (called, _dir) = start_open(&[
        ("REQUEST_TIMEOUT_MS", "1000"),
        ("MAX_CONCURRENT_REQUESTS", "2"),
    ])
    .await;
    let client = testkit::ready::client_with_timeout(Duration::from_secs(5));
    let post = || {
        client
            .post(format!("{}/", called.base))
            .json(&json!({"bar": "x"}))
            .send()
    };

    // Two uploads stall after a few bytes of their body: one announced with
    // `Expect: 100-continue` (so it is known to be inside its handler), one without.
    let started = Instant::now();
    let mut with_expect = Raw::start_post(&called.addr, 100, &[]).await;
    with_expect.send(b"{\"bar\":").await.expect("a few bytes");
    let mut without = Raw::stalled_post(&called.addr, 100).await;

    // They hold both permits for now... (poll: the second one is admitted asynchronously, and
    // later still when other tests load the machine; the stalled uploads hold their permits
    // for REQUEST_TIMEOUT_MS after admission, so polling longer cannot miss them)
    let mut saw_limit = false;
    for _ in 0..80 {
        let res = post().await.expect("post");
        if res.status() == 503 {
            saw_limit = true;
            break;
        }
        assert_eq!(res.status(), 201);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_limit, "two stalled uploads hold both permits");

    // ...until REQUEST_TIMEOUT_MS: then each gets a 503 problem, not a forever-held worker.
    for (name, raw) in [("expect", &mut with_expect), ("plain", &mut without)] {
        let res = raw
            .read_response(REQUEST_TIMEOUT + Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{name}: no answer to a stalled body: {e}"));
        let elapsed = started.elapsed();
        assert_eq!(res.status, 503, "{name}");
        assert_problem_parts(503, res.header("content-type"), &res.body).assert_complete();
        assert!(res.header("retry-after").is_some(), "{name}");
        assert!(
            elapsed >= REQUEST_TIMEOUT - Duration::from_millis(100)
                && elapsed < REQUEST_TIMEOUT + Duration::from_secs(2),
            "{name}: answered after {elapsed:?}"
        );
    }
    // Permits are back.
    let res = post().await.expect("post");
    assert_eq!(res.status(), 201, "the permits were released");
    testkit::checks::loud(&format!(
        "slowloris body: stalled uploads answered 503 after {:?} (REQUEST_TIMEOUT_MS=1000)",
        started.elapsed()
    ));
}
