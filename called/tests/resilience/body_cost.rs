//! What one body costs the real `called` binary, whatever its shape (issue 20, items 1 and 4).
//!
//! - A valid megabyte of one-key objects (`{"bar":"x","a":[{"":0},{"":0},…]}`, ~150 000 of
//!   them) used to raise called's peak RSS by ~109 MiB for one request: the validator built a
//!   whole `serde_json::Value` tree (~630 bytes per 7-byte object) and kept it across the store
//!   insert. Now validation streams and only the exact text is kept: the peak grows by a few
//!   MiB per request.
//! - A megabyte nested 127 deep with an `Idempotency-Key` used to be hashed at depth × size
//!   cost, on the runtime's worker (two in flight raised `/health/live` to ~1 s). Now
//!   the hash is linear and large bodies are hashed on the blocking pool: health stays
//!   answerable while two are in flight.

use std::time::{Duration, Instant};

use testkit::checks::{assert_tiny_objects_peak, tiny_objects};

use crate::helpers::start_open;

const MAX_BODY: usize = 1024 * 1024;

async fn post(client: &reqwest::Client, url: &str, body: String, key: &str) -> u16 {
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body)
        .send()
        .await
        .expect("post");
    let status = res.status().as_u16();
    let _ = res.bytes().await.expect("the answer");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_of_tiny_objects_does_not_balloon_memory() {
    let (called, _dir) = start_open(&[]).await;
    let client = testkit::ready::client_with_timeout(Duration::from_secs(120));
    let url = format!("{}/", called.base);
    // A warm store and pools, and a megabyte-sized body of the ordinary kind, in the baseline.
    for i in 0..20 {
        let status = post(&client, &url, r#"{"bar":"warm"}"#.into(), &format!("w{i}")).await;
        assert_eq!(status, 201);
    }
    let flat = format!(r#"{{"bar":"x","pad":"{}"}}"#, "p".repeat(MAX_BODY - 64));
    assert_eq!(post(&client, &url, flat, "flat").await, 201);
    let base = called.memory();

    let body = tiny_objects("bar", MAX_BODY);
    assert_eq!(post(&client, &url, body.clone(), "one").await, 201);
    let one = called.memory();

    let eight = futures_util::future::join_all((0..8).map(|i| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move { post(&client, &url, body, &format!("eight-{i}")).await }
    }))
    .await;
    assert!(eight.iter().all(|s| *s == 201), "{eight:?}");
    let after = called.memory();

    assert_tiny_objects_peak("called", &base, &one, &after, "~+109 MiB for one");
}

/// `{"bar":"x","z":{"z":…{"pad":[0,0,…]}…,"a":0},"a":0}`: `depth` objects around an array of
/// zeros, about `size` bytes. Each level's keys are out of order (`z` before `a`), so the hash
/// reorders every level; the many small values are what made re-parsing each level slow.
fn deeply_nested(field: &str, depth: usize, size: usize) -> String {
    let open = r#"{"z":"#;
    let close = r#","a":0}"#;
    let head = format!(r#"{{"{field}":"x","z":"#);
    let zeros = (size - head.len() - (depth - 1) * (open.len() + close.len()) - 32) / 2;
    let mut body = String::with_capacity(size);
    body.push_str(&head);
    for _ in 1..depth {
        body.push_str(open);
    }
    body.push_str(r#"{"pad":["#);
    for i in 0..zeros {
        body.push_str(if i == 0 { "0" } else { ",0" });
    }
    body.push_str("]}");
    for _ in 0..depth {
        body.push_str(close);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_bodies_with_idempotency_keys_leave_health_answering() {
    let (called, _dir) = start_open(&[("REQUEST_TIMEOUT_MS", "120000")]).await;
    let client = testkit::ready::client_with_timeout(Duration::from_secs(120));
    let url = format!("{}/", called.base);
    let body = deeply_nested("bar", 125, MAX_BODY);
    assert!(body.len() <= MAX_BODY);
    serde_json::from_str::<serde_json::Value>(&body).expect("valid JSON within the depth limit");

    let health = format!("{}/health/live", called.base);
    let posts = futures_util::future::join_all((0..2).map(|i| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move { post(&client, &url, body, &format!("deep-{i}")).await }
    }));
    let probes = async {
        // Health checks while both are in flight (and a little after).
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now();
            let res = client.get(&health).send().await.expect("health");
            assert_eq!(res.status(), 200);
            slowest = slowest.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        slowest
    };
    let (statuses, slowest) = tokio::join!(posts, probes);
    assert_eq!(statuses, [201, 201]);
    eprintln!("slowest /health/live with two deep bodies in flight: {slowest:?}");
    // Generous: a shared, noisy machine and a debug build.
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");

    // The same body and key again: replayed (the hash is stable), not stored twice.
    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .header("idempotency-key", "deep-0")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
}
