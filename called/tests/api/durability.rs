//! Acknowledged writes survive SIGKILL: the real binary, killed and restarted on the same store
//! (SQLite file, or PostgreSQL schema).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::child::{Proc, Spec};
use tokio::process::Command;

use crate::backend_tests;
use crate::helpers::{Backend, fresh_store};

backend_tests!(acknowledged_writes_survive_sigkill);

/// The real binary without authentication on `database_url`, ready: the process and its base URL.
async fn start(database_url: &str) -> (Proc, String) {
    let spec = Spec::new(
        env!("CARGO_BIN_EXE_called"),
        &[("AUTH_MODE", "off"), ("DATABASE_URL", database_url)],
    );
    let called = Proc::start_anywhere(&spec).await;
    let base = called.base.clone();
    (called, base)
}

async fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let (url, _scratch) = fresh_store(backend).await;
    let client = reqwest::Client::new();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..3 {
        let (mut child, base) = start(&url).await;
        let before = acknowledged.lock().expect("lock").len();
        // Eight writers keep going until the process dies under them.
        let mut writers = Vec::new();
        for w in 0..8 {
            let (client, base, acked) = (client.clone(), base.clone(), acknowledged.clone());
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let Ok(res) = client
                        .post(format!("{base}/"))
                        .json(&json!({"bar": format!("r{round}-w{w}-{i}")}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if res.status() != 201 {
                        return;
                    }
                    let Ok(v) = res.json::<Value>().await else {
                        return;
                    };
                    if let Some(id) = v["id"].as_str() {
                        acked.lock().expect("lock").push(id.to_owned());
                    }
                }
            }));
        }
        for _ in 0..400 {
            if acknowledged.lock().expect("lock").len() >= before + 30 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.child.start_kill().expect("SIGKILL");
        let _ = child.child.wait().await;
        for w in writers {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("writer ends")
                .expect("join");
        }
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 90,
        "writes were acknowledged in every round"
    );
    let (_child, base) = start(&url).await;
    for id in &acknowledged {
        let res = client
            .get(format!("{base}/entities/{id}"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 200, "acknowledged entity {id} was lost");
    }
}

/// The real binary run with only `env` in its environment, to its end: its output.
async fn called_with_only(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_called"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run")
}

#[tokio::test]
async fn bad_settings_exit_2_naming_the_variable() {
    let out = called_with_only(&[("AUTH_MODE", "sometimes")]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTH_MODE"));
    let out = called_with_only(&[("AUTH_MODE", "off"), ("PORT", "http")]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT"));
    let out = Command::new(env!("CARGO_BIN_EXE_called"))
        .arg("--help")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "PORT",
        "DATABASE_URL",
        "AUTH_MODE",
        "MAX_BODY_BYTES",
        "SHUTDOWN_GRACE_MS",
        "LOG_FORMAT",
    ] {
        assert!(help.contains(var), "--help lists {var}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/called.db", dir.path().display());
    let (child, base) = start(&url).await;
    let pid = child.pid;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .post(format!("{base}/"))
            .json(&json!({"bar": "x"}))
            .send()
            .await
            .expect("post")
            .status(),
        201
    );
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let mut child = child;
    let exit = tokio::time::timeout(Duration::from_secs(9), child.child.wait())
        .await
        .expect("exits within grace")
        .expect("wait");
    assert_eq!(exit.code(), Some(0));
    assert!(
        client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_err(),
        "new connections refused"
    );
}

/// SQLite's WAL is checkpointed into the database file under sustained writes, so it stays
/// bounded: a WAL that is never checkpointed grows by every page of every commit (hundreds of
/// MB a minute under load) and, on Cloud Run's in-memory disk, ends in an out-of-memory kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_under_sustained_writes() {
    use called::store::{Store, StoreSettings};
    let (url, _scratch) = fresh_store(Backend::Sqlite).await;
    let store = Store::open(&url, &StoreSettings::default())
        .await
        .expect("open");
    let body = json!({"bar": "x".repeat(200)});
    for round in 0..40 {
        let inserts: Vec<_> = (0..250)
            .map(|i| {
                let store = store.clone();
                let new = crate::helpers::new_entity_at(
                    "2026-01-01T00:00:00.000000Z",
                    "sa@example.com",
                    None,
                    &format!("k-{round}-{i}"),
                    body.clone(),
                );
                tokio::spawn(async move { store.insert(new).await })
            })
            .collect();
        for insert in inserts {
            insert.await.expect("task").expect("insert");
        }
    }
    let path = url.trim_start_matches("sqlite://");
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (db, wal) = (size(path), size(&format!("{path}-wal")));
    store.close().await;
    // 10 000 rows of ~300 bytes: several MB in the database file once checkpointed.
    assert!(
        db > 2 * 1024 * 1024,
        "rows never checkpointed: db {db} B, wal {wal} B"
    );
    assert!(wal < 16 * 1024 * 1024, "the WAL grew to {wal} B");
}
