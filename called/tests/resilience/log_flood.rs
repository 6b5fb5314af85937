//! Issue 20 items 2 and 3 against the real `called` binary with Cloud Logging JSON: requests
//! without a token carrying TABs in `X-Request-Id`, `User-Agent` and `X-Forwarded-For` (each
//! TAB escaped to 6 bytes, the values repeated in every line of the request; the issue sent
//! 120 KB each, here 20 KB each keeps the head under the 64 KiB the server reads). The log
//! bytes per request stay bounded, every line is valid JSON under Cloud Logging's entry limit,
//! and the raw id is never echoed. With a stdout nobody reads (a 64 KiB pipe) the service keeps
//! answering, `/health/live` included; lines beyond the bound are dropped and counted (the
//! count is written once stdout is read again), and SIGTERM still exits within the grace.

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinSet;

use testkit::child::{Proc, free_port};
use testkit::emu::Emu;
use testkit::in_process::sqlite_store;

use crate::helpers::called_verifying;

/// Cloud Logging refuses entries over 256 KiB.
const CLOUD_LOGGING_ENTRY_LIMIT: usize = 256 * 1024;

/// TABs in each header: three of them stay under the 64 KiB head the server reads (a larger
/// head is refused with 431 before any log line); unescaped, one such line would be ~360 KB.
const TABS: usize = 20_000;

/// TABs in each header of the floods: still past what a line keeps of a header value, so
/// each request logs as much as with [`TABS`], for far less parsing.
const FLOOD_TABS: usize = 1_000;

/// `x`, `n` TABs, `x` (leading and trailing TABs would be trimmed as whitespace).
fn tabs(n: usize) -> HeaderValue {
    HeaderValue::from_str(&format!("x{}x", "\t".repeat(n))).expect("a header value")
}

/// One attack request: `POST /` without a token, the three headers full of TABs; its status
/// and the `X-Request-Id` it was answered with.
async fn attack(client: &reqwest::Client, base: &str, tabs: &HeaderValue) -> (u16, String) {
    let res = client
        .post(format!("{base}/"))
        .header("x-request-id", tabs.clone())
        .header("user-agent", tabs.clone())
        .header("x-forwarded-for", tabs.clone())
        .header("content-type", "application/json")
        .body(r#"{"bar":"x"}"#)
        .send()
        .await
        .expect("the attack request is answered");
    let id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (res.status().as_u16(), id)
}

/// `n` attack requests, `concurrency` at a time, each answered 401 within ten seconds.
async fn flood(base: &str, n: usize, concurrency: usize) {
    let client = testkit::ready::client_with_timeout(Duration::from_secs(10));
    let tabs = tabs(FLOOD_TABS);
    let mut set = JoinSet::new();
    for worker in 0..concurrency {
        let (client, base, tabs) = (client.clone(), base.to_owned(), tabs.clone());
        set.spawn(async move {
            for _ in (worker..n).step_by(concurrency) {
                assert_eq!(attack(&client, &base, &tabs).await.0, 401);
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.expect("attacker");
    }
}

/// The real `called` binary verifying against `emu` (SQLite in the returned folder), JSON logs
/// at `info`, with `extra` settings; stdout captured, or left unread.
async fn start(emu: &Emu, unread: bool, extra: &[(&str, &str)]) -> (Proc, tempfile::TempDir) {
    let (database_url, dir) = sqlite_store();
    let port = free_port();
    let mut spec = called_verifying(emu, port, &database_url)
        .with("RUST_LOG", "info")
        .with("LOG_FORMAT", "json");
    for (k, v) in extra {
        spec = spec.with(k, *v);
    }
    let spec = if unread {
        spec.stdout_unread()
    } else {
        spec.capture()
    };
    (Proc::start(&spec, port).await, dir)
}

/// `/health/live` answers 200 within `bound`, five times in a row; the slowest.
async fn live_within(base: &str, bound: Duration) -> Duration {
    let client = testkit::ready::client_with_timeout(bound);
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let res = client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("/health/live not answered within {bound:?}: {e}"));
        assert_eq!(res.status(), 200);
        slowest = slowest.max(t.elapsed());
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_tab_filled_headers_do_not_amplify_logs() {
    let emu = Emu::start().await;
    let (called, _dir) = start(&emu, false, &[]).await;
    let client = testkit::ready::client_with_timeout(Duration::from_secs(10));
    let tabs = tabs(TABS);
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (status, id) = attack(&client, &called.base, &tabs).await;
        assert_eq!(status, 401);
        // The raw id is replaced by a new UUID, which is what is echoed.
        assert!(
            id.len() == 36 && uuid::Uuid::parse_str(&id).is_ok(),
            "echoed X-Request-Id: {} bytes {:?}…",
            id.len(),
            id.get(..40)
        );
        ids.push(id);
    }
    // A well-formed id is kept and echoed as sent.
    let res = client
        .get(format!("{}/health/live", called.base))
        .header("x-request-id", "req-0123_ABC.z")
        .send()
        .await
        .expect("live");
    assert_eq!(res.headers()["x-request-id"], "req-0123_ABC.z");

    let lines = called.stop_cleanly().await;
    let mut of_attacks = 0usize;
    for line in &lines {
        assert!(
            line.len() < CLOUD_LOGGING_ENTRY_LIMIT && line.len() < 64 * 1024,
            "a line of {} bytes",
            line.len()
        );
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "not one JSON object ({e}): {}",
                &line[..line.len().min(300)]
            )
        });
        if v["request_id"]
            .as_str()
            .is_some_and(|r| ids.iter().any(|id| id == r))
        {
            of_attacks += line.len() + 1;
        }
        assert!(
            !line.contains(&"\\\\u{9}".repeat(200)),
            "a long run of escaped TABs reached the log"
        );
    }
    let per_request = of_attacks / ids.len();
    testkit::checks::loud(&format!(
        "called: {per_request} bytes of log per request with 20 KB of TABs in each of three headers"
    ));
    assert!(
        per_request <= 8 * 1024,
        "{per_request} bytes of log per attack request"
    );
    for id in &ids {
        let replaced = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["request_id"] == id.as_str())
            .find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("X-Request-Id replaced"))
            })
            .unwrap_or_else(|| panic!("no line says request {id}'s X-Request-Id was replaced"));
        assert_eq!(replaced["replaced_request_id_bytes"], TABS + 2);
        let finished = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["request_id"] == id.as_str() && v["message"] == "request finished")
            .expect("the request log line");
        let ua = finished["httpRequest"]["userAgent"].as_str().expect("ua");
        assert!(
            ua.ends_with(&format!("…[truncated, {} bytes]", TABS + 2)),
            "{ua}"
        );
        assert!(ua.len() < 1024, "{}", ua.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_nobody_reads_never_stops_health_live() {
    let emu = Emu::start().await;
    let (called, _dir) = start(&emu, true, &[]).await;
    // About 4 MB of log lines for a 64 KiB pipe nobody reads: before the fix, the first few
    // dozen were answered, then everything hung.
    let t = Instant::now();
    flood(&called.base, 2_000, 4).await;
    let flooded = t.elapsed();
    let slowest = live_within(&called.base, Duration::from_secs(2)).await;
    testkit::checks::loud(&format!(
        "called, stdout never read: 2000 attack requests answered in {flooded:?}; /health/live then at most {slowest:?}"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_dropped_while_stdout_was_blocked_are_counted() {
    let emu = Emu::start().await;
    let (mut called, _dir) = start(&emu, true, &[]).await;
    flood(&called.base, 2_000, 4).await;
    let stdout = called.take_stdout().expect("stdout left unread");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut read = 0usize;
    let dropped = loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no line reported the dropped lines ({read} read)"))
            .expect("read stdout")
            .expect("stdout open");
        read += 1;
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "a torn or invalid line ({e}): {}",
                &line[..line.len().min(300)]
            )
        });
        if let Some(n) = v["dropped_lines"].as_u64() {
            assert_eq!(v["severity"], "WARNING");
            assert!(v["dropped_bytes"].as_u64().is_some_and(|b| b > 0), "{line}");
            break n;
        }
    };
    assert!(dropped > 0);
    // Lines flow again: a new request's line arrives.
    let res = reqwest::Client::new()
        .get(format!("{}/health/live", called.base))
        .header("x-request-id", "after-the-drop")
        .send()
        .await
        .expect("live");
    assert_eq!(res.status(), 200);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the line of the request made after the drop")
            .expect("read")
            .expect("open");
        let v: Value = serde_json::from_str(&line).expect("json");
        if v["request_id"] == "after-the-drop" {
            break;
        }
    }
    testkit::checks::loud(&format!(
        "called, stdout unread during 2000 attack requests: {dropped} lines dropped and reported; {read} lines read before the report"
    ));
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    called.sigterm().await;
    let (exit, _) = called.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(exit.code(), Some(0));
    reader.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_grace_even_with_stdout_blocked() {
    let grace = Duration::from_millis(3000);
    let emu = Emu::start().await;
    let (mut called, _dir) = start(&emu, true, &[("SHUTDOWN_GRACE_MS", "3000")]).await;
    flood(&called.base, 2_000, 4).await;
    called.sigterm().await;
    let signalled = Instant::now();
    let (exit, _) = called.wait_exit(grace + Duration::from_secs(5)).await;
    let exited_after = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM");
    assert!(
        exited_after < grace,
        "exited {exited_after:?} after SIGTERM with stdout blocked, beyond SHUTDOWN_GRACE_MS"
    );
    testkit::checks::loud(&format!(
        "called, stdout blocked: exited 0 {exited_after:?} after SIGTERM"
    ));
}
