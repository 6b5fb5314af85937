//! Overload of the real `called` binary: with `MAX_CONCURRENT_REQUESTS=4` held by four slow
//! uploads, everything else gets 503 + `Retry-After` at once (slow-bodied excess included),
//! health stays green, resident memory stays bounded over a burst of 2 000 requests, and the
//! service serves normally again once the load is gone.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use testkit::checks::assert_problem_parts;
use testkit::raw::Raw;

use crate::helpers::start_open;

const LIMIT: usize = 4;
const BURST: usize = 2000;
const MIB: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_requests_get_503_at_once_memory_stays_bounded_and_service_recovers() {
    let limit = LIMIT.to_string();
    let (called, _dir) = start_open(&[
        ("MAX_CONCURRENT_REQUESTS", &limit),
        ("REQUEST_TIMEOUT_MS", "60000"),
    ])
    .await;
    let client = testkit::ready::client_with_timeout(Duration::from_secs(10));
    let url = format!("{}/", called.base);
    let body = json!({"bar": "x".repeat(512)});

    // Normal operation first, so the baseline includes a warm store and pools.
    for _ in 0..50 {
        let res = client.post(&url).json(&body).send().await.expect("post");
        assert_eq!(res.status(), 201);
    }
    let before = called.memory();

    // Four slow uploads take every permit (100 Continue: each one is inside its handler).
    let slow_body = br#"{"bar":"slow upload","pad":"0123456789"}"#;
    let half = slow_body.len() / 2;
    let mut holders = Vec::new();
    for _ in 0..LIMIT {
        let mut h = Raw::start_post(&called.addr, slow_body.len(), &[]).await;
        h.send(&slow_body[..half]).await.expect("half a body");
        holders.push(h);
    }

    // The excess is refused at once, with Retry-After, as a problem document.
    let mut slowest_refusal = Duration::ZERO;
    let refusals = futures_util::future::join_all((0..20).map(|_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let t = Instant::now();
            let res = client.post(&url).json(&body).send().await.expect("post");
            let took = t.elapsed();
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let ct = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = res.bytes().await.expect("body");
            (status, retry_after, ct, bytes, took)
        }
    }))
    .await;
    for (status, retry_after, ct, bytes, took) in refusals {
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&bytes));
        assert_problem_parts(status, ct.as_deref(), &bytes).assert_complete();
        let secs: u64 = retry_after
            .expect("Retry-After on overload")
            .parse()
            .expect("delta-seconds");
        assert!((1..=60).contains(&secs));
        assert!(took < Duration::from_secs(1), "refused in {took:?}");
        slowest_refusal = slowest_refusal.max(took);
    }
    // Health routes are exempt from the limit.
    assert_eq!(
        client
            .get(format!("{}/health/live", called.base))
            .send()
            .await
            .expect("live")
            .status(),
        200
    );

    // Slow-bodied excess: headers only, the body never comes. Refused without waiting for it.
    let mut stalled = Vec::new();
    for _ in 0..50 {
        stalled.push(Raw::stalled_post(&called.addr, 1000).await);
    }
    for raw in &mut stalled {
        let res = raw
            .read_response(Duration::from_secs(1))
            .await
            .expect("refused without its body");
        assert_eq!(res.status, 503);
        assert!(res.header("retry-after").is_some());
    }
    drop(stalled);

    // A burst of 2 000 at 64 concurrent: all refused, quickly, in bounded memory.
    let t = Instant::now();
    let statuses: Vec<(u16, Duration)> = futures_util::stream::iter(0..BURST)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                let t = Instant::now();
                let res = client.post(&url).json(&body).send().await.expect("post");
                let status = res.status().as_u16();
                let _ = res.bytes().await;
                (status, t.elapsed())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let burst_took = t.elapsed();
    let after = called.memory();
    let refused = statuses.iter().filter(|(s, _)| *s == 503).count();
    let slowest = statuses.iter().map(|(_, d)| *d).max().unwrap_or_default();
    assert_eq!(refused, BURST, "every request beyond the limit is refused");

    // The slow uploads were never disturbed: they finish and are stored.
    for h in &mut holders {
        h.send(&slow_body[half..]).await.expect("rest of the body");
        let res = h
            .read_response(Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    }
    drop(holders);
    // And the service is back to normal.
    for _ in 0..20 {
        let res = client.post(&url).json(&body).send().await.expect("post");
        assert_eq!(res.status(), 201, "recovered after the load");
    }
    let report = format!(
        "overload: slowest 503 of 20 {slowest_refusal:?}; burst of {BURST} refused in {burst_took:?} \
         (slowest {slowest:?}); VmRSS {} KiB -> {} KiB, VmHWM {} KiB -> {} KiB",
        before.rss_kib, after.rss_kib, before.hwm_kib, after.hwm_kib
    );
    testkit::checks::loud(&report);
    assert!(after.hwm_kib < 100 * MIB, "peak RSS bounded: {report}");
    assert!(
        after.rss_kib < before.rss_kib + 32 * MIB,
        "no growth with refused load: {report}"
    );
}
