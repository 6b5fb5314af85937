//! `spawn_app()` and typed helpers shared by every test; the server itself comes from the
//! test kit (`testkit`).
//!
//! PostgreSQL tests read `TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`);
//! each gets its own schema `t_<uuidv7>` (selected with `options=-c search_path=…` in the URL,
//! which also sets `application_name` to the schema name so a test can find its own
//! connections), dropped when the test ends. Without `TEST_DATABASE_URL` they print
//! `SKIPPED (TEST_DATABASE_URL not set): …` and pass.

use std::time::Duration;

use reqwest::Response;
use serde_json::Value;
use shared::config::MapSource;
use sqlx::Connection;
use testkit::checks::loud;
use testkit::in_process::Service;

/// Which store a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps a test's store alive while it runs: SQLite's temporary folder, or the PostgreSQL
/// schema (dropped when this is dropped).
pub enum Scratch {
    Dir {
        /// Deleted when dropped.
        _dir: tempfile::TempDir,
    },
    Schema(PgSchema),
}

impl Scratch {
    /// The PostgreSQL schema name (also the connections' `application_name`).
    pub fn schema(&self) -> Option<&str> {
        match self {
            Self::Dir { .. } => None,
            Self::Schema(s) => Some(&s.name),
        }
    }
}

/// `TEST_DATABASE_URL`, when set and non-empty.
pub fn test_database_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `TEST_DATABASE_URL`, or `None` after printing a loud SKIPPED line for `test`.
pub fn pg_or_skip(test: &str) -> Option<String> {
    let url = test_database_url();
    if url.is_none() {
        loud(&format!("SKIPPED (TEST_DATABASE_URL not set): {test}"));
    }
    url
}

/// The admin URL (`TEST_DATABASE_URL`); panics when unset (callers checked).
pub fn admin_url() -> String {
    test_database_url().expect("TEST_DATABASE_URL (checked by pg_or_skip)")
}

/// `url` with extra query parameters.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// A fresh, empty schema in the test database.
pub struct PgSchema {
    pub name: String,
    admin: String,
}

impl PgSchema {
    /// Creates `t_<uuidv7>` (the timestamp lets a later run sweep leftovers).
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sweep_stale_schemas(&mut c).await;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut c)
            .await
            .expect("create schema");
        let _ = c.close().await;
        Self { name, admin }
    }

    /// The URL of this schema: `TEST_DATABASE_URL` plus `options=-c search_path=…` and
    /// `application_name=…`, with `base` replacing the admin URL when given.
    pub fn url_on(&self, base: &str) -> String {
        with_query(
            base,
            &[
                ("options", &format!("-c search_path={}", self.name)),
                ("application_name", &self.name),
            ],
        )
    }

    /// The URL of this schema on the test server.
    pub fn url(&self) -> String {
        self.url_on(&self.admin)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query("SET lock_timeout = '3s'").execute(&mut c).await;
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

/// Drops `t_<uuidv7>` schemas more than an hour old (left by killed test runs).
async fn sweep_stale_schemas(c: &mut sqlx::PgConnection) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'",
    )
    .fetch_all(&mut *c)
    .await
    else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for name in names {
        let stale = uuid::Uuid::parse_str(&name[2..])
            .ok()
            .and_then(|u| u.get_timestamp())
            .map(|t| {
                let (secs, nanos) = t.to_unix();
                std::time::UNIX_EPOCH + Duration::new(secs, nanos) < hour_ago
            })
            .unwrap_or(false);
        if stale {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut *c)
                .await;
        }
    }
}

/// A new, empty store for `backend`: its `DATABASE_URL` and what keeps it alive.
pub async fn fresh_store(backend: Backend) -> (String, Scratch) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}/data/called.db", dir.path().display());
            (url, Scratch::Dir { _dir: dir })
        }
        Backend::Postgres => {
            let schema = PgSchema::create().await;
            (schema.url(), Scratch::Schema(schema))
        }
    }
}

/// called in this process (no authentication) on a store of its own, with a client.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub backend: Backend,
    dir: Option<Scratch>,
    service: Service,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, |s| s).await
}

pub async fn spawn_with(backend: Backend, f: impl FnOnce(MapSource) -> MapSource) -> TestApp {
    let (database_url, scratch) = fresh_store(backend).await;
    spawn_on(backend, database_url, Some(scratch), f).await
}

/// Starts the app on an existing store (restart tests).
pub async fn spawn_on(
    backend: Backend,
    database_url: String,
    dir: Option<Scratch>,
    f: impl FnOnce(MapSource) -> MapSource,
) -> TestApp {
    let src = f(
        MapSource::from_pairs([("AUTH_MODE", "off")]).with("DATABASE_URL", database_url.clone())
    );
    let service = Service::called(|_| src).await;
    let app = TestApp {
        base: service.base.clone(),
        client: reqwest::Client::new(),
        database_url,
        backend,
        dir,
        service,
    };
    testkit::ready::wait_ready(&app.base).await;
    app
}

impl TestApp {
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

    /// The body of `GET {path}`, as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("text")
    }

    /// Rows in the store, counted with a separate connection.
    pub async fn row_count(&self) -> i64 {
        // The same count over either backend's connection type.
        macro_rules! count_over {
            ($connection:ty) => {{
                let mut c = <$connection>::connect(&self.database_url)
                    .await
                    .expect("connect");
                sqlx::query_scalar("SELECT COUNT(*) FROM entities")
                    .fetch_one(&mut c)
                    .await
                    .expect("count")
            }};
        }
        match self.backend {
            Backend::Sqlite => count_over!(sqlx::SqliteConnection),
            // The URL selects this test's schema (search_path).
            Backend::Postgres => count_over!(sqlx::PgConnection),
        }
    }

    /// This test's PostgreSQL schema (and `application_name`), if on PostgreSQL.
    pub fn pg_schema(&self) -> Option<&str> {
        self.dir.as_ref().and_then(Scratch::schema)
    }

    /// Stops the server the way SIGTERM would, waits for it, and hands back the store's
    /// location so a test can start again on it.
    pub async fn stop(self) -> (String, Option<Scratch>) {
        self.service.stop().await.expect("run ok");
        (self.database_url, self.dir)
    }
}

/// Expands one async test function per backend: `sqlite::NAME` and `postgres::NAME` (which
/// says SKIPPED and passes when `TEST_DATABASE_URL` is not set).
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
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::pg_or_skip(concat!(module_path!(), "::", stringify!($name)))
                        .is_none()
                    {
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The path of one page of `GET /entities` with `limit`, after the cursor `after` if any.
pub fn page_path(limit: usize, after: Option<&str>) -> String {
    match after {
        Some(a) => format!("/entities?limit={limit}&after={a}"),
        None => format!("/entities?limit={limit}"),
    }
}

/// The ids of a page's items, in order, and its `next` cursor.
pub fn ids_and_next(page: &Value) -> (Vec<String>, Option<String>) {
    let ids = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    (ids, page["next"].as_str().map(str::to_owned))
}

/// A store insert: `body` by `caller` (for the end user `user`) under the idempotency key
/// `key`, created at `created_at`.
pub fn new_entity_at(
    created_at: &str,
    caller: &str,
    user: Option<&str>,
    key: &str,
    body: Value,
) -> called::store::NewEntity {
    let body = serde_json::value::RawValue::from_string(body.to_string()).expect("json");
    called::store::NewEntity {
        idempotency: Some(called::store::IdempotencyKey {
            scope: caller.to_owned(),
            user: user.unwrap_or_default().to_owned(),
            key: key.to_owned(),
            body_hash: called::idempotency::body_hash(&body),
        }),
        entity: called::store::Entity {
            id: uuid::Uuid::now_v7(),
            created_at: created_at.into(),
            caller: Some(caller.to_owned()),
            on_behalf_of: user.map(str::to_owned),
            body,
        },
    }
}

/// `POST {base}/` with `body` under the idempotency key `key`, on a task of its own: the status
/// and the JSON answer.
pub fn spawn_keyed_post(
    client: &reqwest::Client,
    base: &str,
    key: String,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let (client, url) = (client.clone(), format!("{base}/"));
    tokio::spawn(async move {
        let res = client
            .post(url)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.expect("json"))
    })
}
