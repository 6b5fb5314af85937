//! Micro-benchmarks of `called`'s request path below HTTP:
//!
//! - `body/parse_and_validate`: `shared::body::parse_exact_object` + `require_text("bar")`.
//! - `body/hash`: the canonical body hash stored with an `Idempotency-Key`.
//! - `store/insert_one`: one insert through [`Store`] (SQLite file, WAL, `synchronous=FULL`),
//!   awaited before the next — every insert is its own durable commit (one fsync).
//! - `store/insert_concurrent/N`: N inserts issued together; the writer groups them into as
//!   few commits as it can (group commit). Reported per insert (throughput = elements).
//! - `store/replay`: the same key and body again → `Replayed`, nothing stored.
//! - `writer/*`: an ablation below the store, on a raw sqlx connection with the same schema and
//!   pragmas: one transaction of N rows written as N single-row `INSERT`s (what the writer task
//!   does: each statement is a round trip to sqlx's SQLite worker thread) versus one multi-row
//!   `INSERT … RETURNING id` (one round trip).
//!
//! `cargo bench -p called --bench store`

use std::hint::black_box;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use called::idempotency::body_hash;
use called::store::{Entity, IdempotencyKey, InsertOutcome, NewEntity, Store, StoreSettings};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use serde_json::value::RawValue;
use shared::body::{parse_exact_object, require_text};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

const BODY: &[u8] = br#"{"bar":"hello from wrk"}"#;
const CALLER: &str = "caller@invoker-local.iam.gserviceaccount.com";

static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// An entity like the one `POST /` builds, with a fresh (or the given) idempotency key.
fn new_entity(key: Option<String>) -> NewEntity {
    let body = RawValue::from_string(json!({"bar": "hello from wrk"}).to_string()).expect("json");
    let key = key.unwrap_or_else(|| format!("k-{}", NEXT_KEY.fetch_add(1, Ordering::Relaxed)));
    NewEntity {
        idempotency: Some(IdempotencyKey {
            scope: CALLER.to_owned(),
            user: String::new(),
            key,
            body_hash: body_hash(&body),
        }),
        entity: Entity {
            id: Uuid::now_v7(),
            created_at: "2026-01-01T00:00:00.000000Z".to_owned(),
            caller: Some(CALLER.to_owned()),
            on_behalf_of: None,
            body,
        },
    }
}

fn body(c: &mut Criterion) {
    let mut g = c.benchmark_group("body");
    g.bench_function("parse_and_validate", |b| {
        b.iter(|| {
            let obj = parse_exact_object(black_box(BODY)).expect("object");
            require_text(&obj.map, "bar", 1024).expect("valid").len()
        });
    });
    let value = parse_exact_object(BODY).expect("json").raw;
    g.bench_function("hash", |b| b.iter(|| body_hash(black_box(&value))));
    g.finish();
}

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store = rt
        .block_on(Store::open(&url, &StoreSettings::default()))
        .expect("store opens");

    let mut g = c.benchmark_group("store");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));

    g.throughput(Throughput::Elements(1));
    g.bench_function("insert_one", |b| {
        b.iter(|| {
            let out = rt.block_on(store.insert(new_entity(None))).expect("insert");
            assert!(matches!(out, InsertOutcome::Created(_)));
        });
    });

    for n in [16u64, 64] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("insert_concurrent", n), &n, |b, &n| {
            b.iter(|| {
                let inserts = (0..n).map(|_| store.insert(new_entity(None)));
                let outs = rt.block_on(futures_util::future::join_all(inserts));
                assert!(
                    outs.iter()
                        .all(|o| matches!(o, Ok(InsertOutcome::Created(_))))
                );
            });
        });
    }

    let key = "replayed-key".to_owned();
    let first = rt
        .block_on(store.insert(new_entity(Some(key.clone()))))
        .expect("first insert");
    assert!(matches!(first, InsertOutcome::Created(_)));
    g.throughput(Throughput::Elements(1));
    g.bench_function("replay", |b| {
        b.iter(|| {
            let out = rt
                .block_on(store.insert(new_entity(Some(key.clone()))))
                .expect("replay");
            assert!(matches!(out, InsertOutcome::Replayed(_)));
        });
    });
    g.finish();
    rt.block_on(store.close());
}

const INSERT: &str =
    "INSERT INTO entities (id, created_at, caller, body, idem_scope, idem_key, body_hash) ";
const ON_CONFLICT: &str =
    " ON CONFLICT (idem_scope, idem_user, idem_key) WHERE idem_key IS NOT NULL DO NOTHING";

/// The columns of one row, as the SQLite store binds them.
fn row(n: &NewEntity) -> [Option<String>; 7] {
    let idem = n.idempotency.as_ref();
    [
        Some(n.entity.id.to_string()),
        Some(n.entity.created_at.clone()),
        n.entity.caller.clone(),
        Some(n.entity.body.to_string()),
        idem.map(|k| k.scope.clone()),
        idem.map(|k| k.key.clone()),
        idem.map(|k| k.body_hash.clone()),
    ]
}

async fn per_row(conn: &mut SqliteConnection, rows: &[NewEntity]) -> u64 {
    let sql = format!("{INSERT}VALUES (?, ?, ?, ?, ?, ?, ?){ON_CONFLICT}");
    let mut tx = conn.begin().await.expect("begin");
    let mut inserted = 0;
    for n in rows {
        let mut q = sqlx::query(&sql);
        for v in row(n) {
            q = q.bind(v);
        }
        inserted += q.execute(&mut *tx).await.expect("insert").rows_affected();
    }
    tx.commit().await.expect("commit");
    inserted
}

async fn multi_row(conn: &mut SqliteConnection, rows: &[NewEntity]) -> u64 {
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(INSERT);
    qb.push_values(rows, |mut b, n| {
        for v in row(n) {
            b.push_bind(v);
        }
    });
    qb.push(ON_CONFLICT);
    qb.push(" RETURNING id");
    // One statement: atomic and durable on its own (autocommit), one worker round trip.
    let ids = qb.build().fetch_all(&mut *conn).await.expect("insert");
    ids.len() as u64
}

fn writer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/writer.db", dir.path().display());
    let store = rt
        .block_on(Store::open(&url, &StoreSettings::default()))
        .expect("migrated");
    rt.block_on(store.close());
    let opts = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn = rt
        .block_on(SqliteConnection::connect_with(&opts))
        .expect("connection");

    let mut g = c.benchmark_group("writer");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for n in [1u64, 64] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("per_row_statements", n), &n, |b, &n| {
            b.iter(|| {
                let rows: Vec<NewEntity> = (0..n).map(|_| new_entity(None)).collect();
                assert_eq!(rt.block_on(per_row(&mut conn, &rows)), n);
            });
        });
        g.bench_with_input(BenchmarkId::new("multi_row_statement", n), &n, |b, &n| {
            b.iter(|| {
                let rows: Vec<NewEntity> = (0..n).map(|_| new_entity(None)).collect();
                assert_eq!(rt.block_on(multi_row(&mut conn, &rows)), n);
            });
        });
    }
    g.finish();
    rt.block_on(conn.close()).expect("close");
}

criterion_group!(benches, body, store, writer);
criterion_main!(benches);
