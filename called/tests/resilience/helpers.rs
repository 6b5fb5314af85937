//! The pieces the resilience tests assemble: the emulator and caller in process, the real
//! `called` binary as a child, and reading its SQLite file afterwards.
#![allow(dead_code)]

use std::time::Duration;

use shared::config::MapSource;
use sqlx::Connection;
use tokio::sync::oneshot;

pub use crate::emu::Emu;
use crate::proc::Spec;

/// A fresh SQLite file: its `DATABASE_URL` and the folder that keeps it alive.
pub fn sqlite_store() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/called.db", dir.path().display());
    (url, dir)
}

/// The real `called` binary without authentication on `database_url`.
pub fn called_open(database_url: &str) -> Spec {
    Spec::new(
        env!("CARGO_BIN_EXE_called"),
        &[("AUTH_MODE", "off"), ("DATABASE_URL", database_url)],
    )
}

/// The real `called` binary verifying tokens against the emulator, allowing only its service
/// account, for the audience `http://127.0.0.1:{port}`.
pub fn called_verifying(emu: &Emu, port: u16, database_url: &str) -> Spec {
    Spec::new(
        env!("CARGO_BIN_EXE_called"),
        &[("AUTH_MODE", "verify"), ("DATABASE_URL", database_url)],
    )
    .with("AUTH_AUDIENCES", format!("http://127.0.0.1:{port}"))
    .with("AUTH_ALLOWED_PRINCIPALS", emu.sa())
    .with("AUTH_JWKS_URL", emu.jwks_url())
}

/// caller in this process, fetching tokens from the emulator by the metadata-server protocol
/// and forwarding to `called_base`. Stops when dropped.
pub struct InProcessCaller {
    pub base: String,
    _stop: oneshot::Sender<()>,
}

pub async fn spawn_caller(emu: &Emu, called_base: &str, extra: &[(&str, &str)]) -> InProcessCaller {
    let mut src = MapSource::from_pairs([("AUTH_MODE", "off"), ("TOKEN_SOURCE", "metadata")])
        .with("CALLED_URL", called_base)
        .with("GCE_METADATA_HOST", emu.addr.to_string());
    for (k, v) in extra {
        src = src.with(k, *v);
    }
    let cfg = caller::Config::from_source(&src).expect("caller config");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(caller::run(cfg, l, async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await
            && r.status() == 200
        {
            return InProcessCaller { base, _stop: tx };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("caller at {base} never became ready");
}

/// `(id, idem_key)` of every row, read with a separate connection.
pub async fn rows(database_url: &str) -> Vec<(String, Option<String>)> {
    let mut c = sqlx::SqliteConnection::connect(database_url)
        .await
        .expect("open the SQLite file");
    sqlx::query_as("SELECT id, idem_key FROM entities ORDER BY id")
        .fetch_all(&mut c)
        .await
        .expect("select")
}

/// Idempotency keys that own more than one row.
pub async fn duplicated_keys(database_url: &str) -> Vec<(String, i64)> {
    let mut c = sqlx::SqliteConnection::connect(database_url)
        .await
        .expect("open the SQLite file");
    sqlx::query_as(
        "SELECT idem_key, COUNT(*) FROM entities WHERE idem_key IS NOT NULL \
         GROUP BY idem_scope, idem_key HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut c)
    .await
    .expect("group by")
}

/// Asserts an `application/problem+json` body whose `status` matches the response's.
pub fn assert_problem(status: u16, content_type: Option<&str>, body: &[u8]) {
    assert_eq!(
        content_type,
        Some("application/problem+json"),
        "a {status} is a problem document"
    );
    let v: serde_json::Value = serde_json::from_slice(body).expect("problem JSON");
    assert_eq!(v["status"], status);
    assert!(v["title"].is_string() && v["detail"].is_string() && v["type"].is_string());
}
