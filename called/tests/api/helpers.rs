//! `spawn_app()` and typed helpers shared by every test.

use std::net::SocketAddr;

use called::Config;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use shared::config::MapSource;
use sqlx::Connection;
use tokio::sync::oneshot;

/// Which store a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub backend: Backend,
    dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, |s| s).await
}

pub async fn spawn_with(backend: Backend, f: impl FnOnce(MapSource) -> MapSource) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}/data/called.db", dir.path().display()),
    };
    spawn_on(backend, database_url, Some(dir), f).await
}

/// Starts the app on an existing store (restart tests).
pub async fn spawn_on(
    backend: Backend,
    database_url: String,
    dir: Option<tempfile::TempDir>,
    f: impl FnOnce(MapSource) -> MapSource,
) -> TestApp {
    shared::telemetry::init_for_tests();
    let src = f(
        MapSource::from_pairs([("AUTH_MODE", "off")]).with("DATABASE_URL", database_url.clone())
    );
    let cfg = Config::from_source(&src).expect("valid test config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(called::run(cfg, listener, async {
        let _ = rx.await;
    }));
    let app = TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        database_url,
        backend,
        dir,
        shutdown: Some(tx),
        handle: Some(handle),
    };
    app.wait_ready().await;
    app
}

impl TestApp {
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self
                .client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("app at {} never became ready", self.base);
    }

    pub async fn post_json(&self, body: &Value, key: Option<&str>) -> Response {
        let mut req = self.client.post(format!("{}/", self.base)).json(body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        req.send().await.expect("request")
    }

    pub async fn post_raw(&self, content_type: Option<&str>, body: Vec<u8>) -> Response {
        let mut req = self.client.post(format!("{}/", self.base)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    /// Rows in the store, counted with a separate connection.
    pub async fn row_count(&self) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .expect("connect");
                sqlx::query_scalar("SELECT COUNT(*) FROM entities")
                    .fetch_one(&mut c)
                    .await
                    .expect("count")
            }
        }
    }

    /// Stops the server the way SIGTERM would, waits for it, and hands back the store's
    /// location so a test can start again on it.
    pub async fn stop(mut self) -> (String, Option<tempfile::TempDir>) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("run ok");
        }
        (self.database_url.clone(), self.dir.take())
    }
}

/// Asserts a problem+json body with `status`, returning its detail.
pub async fn assert_problem(res: Response, status: u16) -> String {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let v: Value = res.json().await.expect("problem json");
    assert_eq!(v["status"], status);
    assert!(v["type"].is_string() && v["title"].is_string());
    v["detail"].as_str().expect("detail").to_owned()
}

/// Expands one async test function per backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
    };
}
