//! PostgreSQL-only behaviour: concurrent migrations, the unix-socket URL, cross-instance
//! idempotency, outages (terminated backends, unreachable server) and recovery.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use called::store::{
    Entity, InsertOutcome, NewEntity, Store, StoreSettings, is_postgres_url, pg_connect_options,
};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, Mutex};
use tokio::task::JoinHandle;

use crate::helpers::{
    Backend, PgSchema, Scratch, pg_or_skip, spawn_keyed_post, spawn_on, spawn_with,
};

/// Skips (loudly) without `TEST_DATABASE_URL`.
macro_rules! require_pg {
    ($name:literal) => {
        if pg_or_skip(concat!(module_path!(), "::", $name)).is_none() {
            return;
        }
    };
}

fn entity(bar: &str) -> NewEntity {
    NewEntity {
        entity: Entity {
            id: uuid::Uuid::now_v7(),
            created_at: "2025-01-02T03:04:05.123456Z".into(),
            caller: None,
            on_behalf_of: None,
            body: serde_json::value::RawValue::from_string(json!({"bar": bar}).to_string())
                .expect("json"),
        },
        idempotency: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_migrate_one_empty_schema_at_once() {
    require_pg!("four_instances_migrate_one_empty_schema_at_once");
    let schema = PgSchema::create().await;
    let url = schema.url();
    let barrier = Arc::new(Barrier::new(4));
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                Store::open(&url, &StoreSettings::default()).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        let store = s
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("a concurrent start failed: {e}"));
        stores.push(store);
    }
    for (i, store) in stores.iter().enumerate() {
        let outcome = store
            .insert(entity(&format!("s{i}")))
            .await
            .expect("insert");
        assert!(matches!(outcome, InsertOutcome::Created(_)));
    }
    let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut c)
        .await
        .expect("migrations table in the test schema");
    assert_eq!(
        applied,
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .expect("migrations")
            .count() as i64,
        "each migration applied exactly once"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM entities")
        .fetch_one(&mut c)
        .await
        .expect("count");
    assert_eq!(rows, 4);
    for store in stores {
        store.close().await;
    }
}

/// The Cloud SQL form `postgres://user@localhost/db?host=/socket/dir`, against the local
/// server's socket directory (`TEST_DATABASE_SOCKET_DIR`, default `/var/run/postgresql`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_url_works() {
    require_pg!("unix_socket_url_works");
    let dir =
        std::env::var("TEST_DATABASE_SOCKET_DIR").unwrap_or_else(|_| "/var/run/postgresql".into());
    let admin = url::Url::parse(&crate::helpers::admin_url()).expect("url");
    let port = admin.port().unwrap_or(5432);
    if !std::path::Path::new(&format!("{dir}/.s.PGSQL.{port}")).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no PostgreSQL socket in {dir} under CI=true"
        );
        testkit::checks::loud(&format!(
            "SKIPPED (no socket {dir}/.s.PGSQL.{port}): api::postgres::unix_socket_url_works"
        ));
        return;
    }
    let schema = PgSchema::create().await;
    let mut socket_url = admin.clone();
    socket_url.set_host(Some("localhost")).expect("host");
    let socket_url = crate::helpers::with_query(
        socket_url.as_str(),
        &[("host", &dir), ("port", &port.to_string())],
    );
    let url = schema.url_on(&socket_url);
    assert!(is_postgres_url(&url));
    let opts = pg_connect_options(&url, &StoreSettings::default()).expect("parses");
    assert_eq!(
        opts.get_socket().map(|p| p.display().to_string()),
        Some(dir.clone())
    );
    let app = spawn_on(Backend::Postgres, url, Some(Scratch::Schema(schema)), |s| s).await;
    let res = app.post_json(&json!({"bar": "via socket"}), None).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.get(&format!("/entities/{id}")).await.status(), 200);
    // The app's pooled connections are unix-socket sessions: no client address.
    let mut c = sqlx::PgConnection::connect(&crate::helpers::admin_url())
        .await
        .expect("connect");
    let (socket, tcp): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE client_addr IS NULL), \
                COUNT(*) FILTER (WHERE client_addr IS NOT NULL) \
         FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(app.pg_schema().expect("schema"))
    .fetch_one(&mut c)
    .await
    .expect("pg_stat_activity");
    assert!(socket >= 1 && tcp == 0, "socket={socket} tcp={tcp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_set_on_every_connection() {
    require_pg!("statement_timeout_is_set_on_every_connection");
    let schema = PgSchema::create().await;
    let settings = StoreSettings {
        statement_timeout: Duration::from_millis(750),
        ..StoreSettings::default()
    };
    let opts = pg_connect_options(&schema.url(), &settings).expect("parses");
    let mut c = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("connect");
    let (timeout, path, app): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('search_path'), \
                current_setting('application_name')",
    )
    .fetch_one(&mut c)
    .await
    .expect("settings");
    assert_eq!(timeout, "750ms");
    assert_eq!(path, schema.name, "URL options are kept");
    assert_eq!(app, schema.name);
    let err = sqlx::query("SELECT pg_sleep(2)")
        .execute(&mut c)
        .await
        .expect_err("cancelled by statement_timeout");
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("57014"),
        "query_canceled"
    );
}

/// The in-flight guard is per instance; across instances the unique index decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_on_two_instances_stores_one() {
    require_pg!("same_key_on_two_instances_stores_one");
    let a = spawn_with(Backend::Postgres, |s| s).await;
    let b = spawn_on(Backend::Postgres, a.database_url.clone(), None, |s| s).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        tasks.push(spawn_keyed_post(
            &a.client,
            base,
            "shared-key".into(),
            json!({"bar": "same"}),
        ));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        match t.await.expect("join") {
            (201, body) => {
                ids.insert(body["id"].as_str().expect("id").to_owned());
            }
            (409, _) => {}
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "every 201 is the first entity");
    assert_eq!(a.row_count().await, 1);
    let reused = b
        .post_json(&json!({"bar": "other"}), Some("shared-key"))
        .await;
    assert_eq!(reused.status(), 422);
}

#[derive(Debug)]
enum Outcome {
    Created(String),
    Unavailable { retry_after: bool, detail: String },
    Other(String),
}

/// Kills this app's database sessions over and over under steady write load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_mid_load_give_503_then_recover() {
    require_pg!("terminated_backends_mid_load_give_503_then_recover");
    let app = spawn_with(Backend::Postgres, |s| s.with("DATABASE_TIMEOUT_MS", "1000")).await;
    let app_name = app.pg_schema().expect("schema").to_owned();
    let client = testkit::ready::client_with_timeout(Duration::from_secs(8));
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut writers = Vec::new();
    for w in 0..6 {
        let (client, base, stop, outcomes) = (
            client.clone(),
            app.base.clone(),
            stop.clone(),
            outcomes.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let res = client
                    .post(format!("{base}/"))
                    .json(&json!({"bar": format!("w{w}-{i}")}))
                    .send()
                    .await;
                let outcome = match res {
                    Err(e) => Outcome::Other(format!("transport: {e}")),
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let retry_after = res.headers().contains_key("retry-after");
                        let body: Value = res.json().await.unwrap_or(Value::Null);
                        match status {
                            201 => Outcome::Created(body["id"].as_str().unwrap_or("").to_owned()),
                            503 => Outcome::Unavailable {
                                retry_after,
                                detail: body["detail"].as_str().unwrap_or("").to_owned(),
                            },
                            other => Outcome::Other(format!("{other}: {body}")),
                        }
                    }
                };
                outcomes.lock().await.push(outcome);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut admin = sqlx::PgConnection::connect(&crate::helpers::admin_url())
        .await
        .expect("connect");
    let mut terminated = 0usize;
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(1500) {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND application_name = $1",
        )
        .bind(&app_name)
        .fetch_all(&mut admin)
        .await
        .expect("terminate");
        terminated += killed.into_iter().filter(|k| *k).count();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("writers never hang")
            .expect("join");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().await);
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for o in &outcomes {
        match o {
            Outcome::Created(id) => acked.push(id.clone()),
            Outcome::Unavailable {
                retry_after,
                detail,
            } => {
                unavailable += 1;
                assert!(retry_after, "503 without Retry-After");
                assert_eq!(detail, "the store is unavailable; retry shortly");
            }
            Outcome::Other(what) => panic!("neither 201 nor 503: {what}"),
        }
    }
    eprintln!(
        "outage: {} requests, {} created, {unavailable} unavailable, {terminated} sessions terminated",
        outcomes.len(),
        acked.len()
    );
    assert!(terminated > 0, "the test killed sessions");
    assert!(unavailable > 0, "the outage was visible as 503s");
    assert!(!acked.is_empty());
    // Recovery without a restart: readiness and writes.
    assert_eq!(app.get("/health/ready").await.status(), 200);
    for i in 0..20 {
        let res = app
            .post_json(&json!({"bar": format!("after-{i}")}), None)
            .await;
        assert_eq!(res.status(), 201, "POST after the outage");
        acked.push(
            res.json::<Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // No acknowledged row lost.
    let mut c = sqlx::PgConnection::connect(&app.database_url)
        .await
        .expect("connect");
    let stored: HashSet<String> = sqlx::query_scalar("SELECT id::text FROM entities")
        .fetch_all(&mut c)
        .await
        .expect("ids")
        .into_iter()
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged entity {id} was lost");
    }
}

/// What the proxy between the app and the test server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Forwards both ways.
    Up,
    /// Server down (restart): open connections closed, new ones refused (port closed).
    Refused,
    /// Network partition: open connections and new ones accepted but silent (nothing passes,
    /// nothing closes), so only the app's own timeouts end its waits.
    Blackhole,
}

/// A TCP proxy to the test server on a fixed 127.0.0.1 port, switchable between [`Link`]s.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    link: tokio::sync::watch::Sender<Link>,
    accept: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (link, _) = tokio::sync::watch::channel(Link::Up);
        let proxy = Self {
            addr,
            upstream,
            link,
            accept: std::sync::Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, mut link) = (self.upstream.clone(), self.link.subscribe());
        let task = tokio::spawn(async move {
            loop {
                let mut client = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => return,
                    },
                    // Refused: drop the listener (the port closes) until restored.
                    _ = link.wait_for(|l| *l == Link::Refused) => return,
                };
                let (upstream, mut link) = (upstream.clone(), link.clone());
                tokio::spawn(async move {
                    if *link.borrow() == Link::Up
                        && let Ok(mut server) = TcpStream::connect(&upstream).await
                    {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                            _ = link.wait_for(|l| *l != Link::Up) => {}
                        }
                    }
                    // Blackhole: hold the sockets open, silent; anything else closes them.
                    let _ = link.wait_for(|l| *l != Link::Blackhole).await;
                });
            }
        });
        *self.accept.lock().expect("lock") = Some(task);
    }

    async fn set(&self, link: Link) {
        let was = *self.link.borrow();
        self.link.send_replace(link);
        if was == Link::Refused && link != Link::Refused {
            // Reopen the same port (SO_REUSEADDR is set by tokio on Unix).
            let listener = TcpListener::bind(self.addr)
                .await
                .expect("rebind proxy port");
            self.serve(listener);
        } else if link == Link::Refused {
            let task = self.accept.lock().expect("lock").take();
            if let Some(task) = task {
                // The accept loop drops the listener: the port refuses from now on.
                let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.link.send_replace(Link::Refused);
        if let Some(task) = self.accept.lock().expect("lock").take() {
            task.abort();
        }
    }
}

async fn wait_for_status(app: &crate::helpers::TestApp, path: &str, status: u16) -> Duration {
    let started = Instant::now();
    loop {
        let res = app.get(path).await;
        if res.status().as_u16() == status {
            if status == 503 {
                assert!(res.headers().contains_key("retry-after"));
            }
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{path} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /health/ready` follows the database through a server outage (port closed) and a
/// network partition (silence): 503 with Retry-After, requests fail within the configured
/// timeouts instead of hanging, and everything recovers when the link returns, without a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_without_restart() {
    require_pg!("readiness_follows_the_database_without_restart");
    let schema = PgSchema::create().await;
    let admin = url::Url::parse(&crate::helpers::admin_url()).expect("url");
    let upstream = format!(
        "{}:{}",
        admin.host_str().unwrap_or("127.0.0.1"),
        admin.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    let mut via_proxy = admin.clone();
    via_proxy.set_host(Some("127.0.0.1")).expect("host");
    via_proxy.set_port(Some(proxy.addr.port())).expect("port");
    let url = schema.url_on(via_proxy.as_str());
    let app = spawn_on(Backend::Postgres, url, Some(Scratch::Schema(schema)), |s| {
        s.with("DATABASE_TIMEOUT_MS", "500")
            .with("DATABASE_STATEMENT_TIMEOUT_MS", "1000")
    })
    .await;
    let first = app.post_json(&json!({"bar": "before"}), None).await;
    assert_eq!(first.status(), 201);
    let first_id = first.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    for (i, outage) in [Link::Refused, Link::Blackhole].into_iter().enumerate() {
        proxy.set(outage).await;
        let down_after = wait_for_status(&app, "/health/ready", 503).await;
        let started = Instant::now();
        let res = app.post_json(&json!({"bar": "during"}), None).await;
        let post_took = started.elapsed();
        assert_eq!(res.status(), 503, "{outage:?}");
        assert!(res.headers().contains_key("retry-after"));
        // Bounded by acquire (0.5 s) + statement (1 s) timeouts, never a hang.
        assert!(
            post_took < Duration::from_secs(3),
            "{outage:?}: {post_took:?}"
        );
        let res = app.get(&format!("/entities/{first_id}")).await;
        assert_eq!(res.status(), 503, "{outage:?}: reads fail too");
        assert_eq!(app.get("/health/live").await.status(), 200);

        proxy.set(Link::Up).await;
        let up_after = wait_for_status(&app, "/health/ready", 200).await;
        testkit::checks::loud(&format!(
            "{outage:?}: ready 503 after {down_after:?}, POST 503 in {post_took:?}, \
             200 again {up_after:?} after the link returned"
        ));
        let res = app
            .post_json(&json!({"bar": format!("after-{i}")}), None)
            .await;
        assert_eq!(res.status(), 201, "{outage:?}: writes recover");
        assert_eq!(
            app.get(&format!("/entities/{first_id}")).await.status(),
            200
        );
    }
    assert_eq!(
        app.row_count().await,
        3,
        "nothing from the outages was stored"
    );
}

/// Same answers from both backends: the served body and timestamp are what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_roundtrips_exactly_on_both_backends() {
    let body = json!({
        "bar": "é ü 日本 😀 \"quoted\" \\ back\\u0000slash",
        "n": [0, -1, 1.5, 1e2, 0.1, 18446744073709551615u64, i64::MIN, 1e300, 5e-324],
        "nested": {"z": null, "a": [true, false, {}], "": "empty key"},
    });
    let mut served = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if matches!(backend, Backend::Postgres)
            && pg_or_skip(concat!(
                module_path!(),
                "::entity_roundtrips_exactly_on_both_backends"
            ))
            .is_none()
        {
            continue;
        }
        let app = spawn_with(backend, |s| s).await;
        let created = app.post_json(&body, Some("k")).await;
        assert_eq!(created.status(), 201);
        let created = created.text().await.expect("text");
        let v: Value = serde_json::from_str(&created).expect("json");
        let id = v["id"].as_str().expect("id");
        let fetched = app.get_text(&format!("/entities/{id}")).await;
        assert_eq!(
            fetched, created,
            "{backend:?}: GET answers what POST answered"
        );
        let replayed = app
            .post_json(&body, Some("k"))
            .await
            .text()
            .await
            .expect("text");
        assert_eq!(
            replayed, created,
            "{backend:?}: replay answers the same bytes"
        );
        let listed: Value = app.get("/entities").await.json().await.expect("json");
        assert_eq!(listed["items"][0], v);
        assert_eq!(v["body"], body);
        let at = v["created_at"].as_str().expect("created_at");
        assert!(at.len() == 27 && at.ends_with('Z'), "{at}");
        served.push(v["body"].to_string());
    }
    served.dedup();
    assert_eq!(served.len(), 1, "both backends serve identical bodies");
}
