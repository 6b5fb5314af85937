//! Issue 12.7 — one list request can kill an instance. Attack: store 200 entities of 1 MB and
//! ask for `GET /entities?limit=1000` (the old code held all of them, parsed, plus the
//! response: 52 MB → 623 MB RSS; four at once 1.99 GB, past Cloud Run's 512 MiB). Pages are now
//! bounded by `MAX_PAGE_BYTES` as well as by count, and rows are fetched in bounded batches.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, ids_and_next, page_path, spawn_with};
use testkit::checks::loud;

backend_tests!(following_next_under_a_byte_budget_returns_every_entity_once);

/// Entities of mixed sizes (some alone larger than the budget); every page stays within the
/// budget unless it holds a single entity, and following `next` returns each entity once.
async fn following_next_under_a_byte_budget_returns_every_entity_once(backend: Backend) {
    let budget = 4096;
    let app = spawn_with(backend, |s| s.with("MAX_PAGE_BYTES", budget.to_string())).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let pad = "p".repeat([10, 700, 1500, 5000][i % 4]);
        let res = app
            .post_json(&json!({"bar": format!("n{i}"), "pad": pad}), None)
            .await;
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.expect("json");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    for limit in [1000, 3] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 100, "pagination does not end");
            let page: Value = app
                .get(&page_path(limit, after.as_deref()))
                .await
                .json()
                .await
                .expect("page");
            let items = page["items"].as_array().expect("items");
            assert!(!items.is_empty() && items.len() <= limit);
            let bytes: usize = items.iter().map(|e| e.to_string().len()).sum();
            assert!(
                items.len() == 1 || bytes <= budget,
                "{} entities of {bytes} bytes in one page",
                items.len()
            );
            let (page_ids, next) = ids_and_next(&page);
            seen.extend(page_ids);
            after = next;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(seen, ids, "limit {limit}: every entity once, oldest first");
        assert!(pages > 10, "the byte budget cut pages: {pages}");
    }
}

/// `VmHWM` (peak RSS) of `pid`, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// The issue's exact load against the real binary (SQLite file, default `MAX_PAGE_BYTES`):
/// 200 entities of 1,000,000 bytes, then `GET /entities?limit=1000` followed to the end, once
/// alone and then four at once. Peak RSS stays under 200 MiB and every entity comes back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_200_one_megabyte_entities_keeps_peak_rss_under_200_mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_called"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .env("AUTH_MODE", "off")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/called.db", dir.path().display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn called");
    let pid = child.id().expect("pid");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "called never became ready");

    // 1,000,000 bytes each: within the default MAX_BODY_BYTES (1 MiB).
    let prefix = r#"{"bar":"big","pad":""#;
    let pad = 1_000_000 - prefix.len() - 2;
    let mut ids = Vec::new();
    for i in 0..200 {
        let body = format!(
            "{prefix}{}{}\"}}",
            (b'a' + (i % 26) as u8) as char,
            "x".repeat(pad - 1)
        );
        assert_eq!(body.len(), 1_000_000);
        let res = client
            .post(format!("{base}/"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.expect("json");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let after_inserts = peak_kib(pid);

    let list_all = |client: reqwest::Client, base: String| async move {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1000 {
            let url = format!("{base}{}", page_path(1000, after.as_deref()));
            let res = client.get(url).send().await.expect("list");
            assert_eq!(res.status(), 200);
            let page: Value = res.json().await.expect("page");
            let (ids, next) = ids_and_next(&page);
            assert!(!ids.is_empty());
            seen.extend(ids);
            after = next;
            if after.is_none() {
                return seen;
            }
        }
        panic!("pagination did not end");
    };
    let seen = list_all(client.clone(), base.clone()).await;
    assert_eq!(seen, ids, "every entity once, oldest first");
    let after_one = peak_kib(pid);
    let four: Vec<_> = (0..4)
        .map(|_| tokio::spawn(list_all(client.clone(), base.clone())))
        .collect();
    for t in four {
        assert_eq!(t.await.expect("join"), ids);
    }
    let after_four = peak_kib(pid);
    loud(&format!(
        "peak RSS of called: {} MiB after 200 inserts, {} MiB after one list of them, {} MiB after four at once",
        after_inserts / 1024,
        after_one / 1024,
        after_four / 1024
    ));
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    assert!(after_one < 200 * 1024, "one list: peak {after_one} KiB");
    assert!(after_four < 200 * 1024, "four lists: peak {after_four} KiB");
}
