//! Property: for any valid body and any `Idempotency-Key`, sending it N times (2 to 6) in any
//! interleaving — waves of concurrent duplicates, then sequential retries — stores exactly one
//! row and answers the same entity every time it answers 201. A concurrent duplicate may get
//! 409 (still in flight), and a later retry then gets that same entity.
//!
//! `PROPTEST_CASES=N` runs more cases (default 32).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use shared::config::MapSource;
use sqlx::Connection;

use testkit::in_process::{Service, sqlite_store};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body: `"bar"` of 1 to 40 printable characters plus up to three other fields.
fn body() -> impl Strategy<Value = Value> {
    ("\\PC{1,40}", btree_map("[a-z_]{1,8}", json_value(), 0..4)).prop_map(
        |(bar, extra): (String, BTreeMap<String, Value>)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            m.insert("bar".into(), Value::String(bar));
            Value::Object(m)
        },
    )
}

/// How N sends are grouped: wave sizes summing to N, each wave sent concurrently.
fn waves() -> impl Strategy<Value = Vec<usize>> {
    (2usize..=6)
        .prop_flat_map(|n| vec(any::<bool>(), n - 1))
        .prop_map(|cuts| {
            let mut waves = vec![1];
            for cut in cuts {
                if cut {
                    waves.push(1);
                } else if let Some(last) = waves.last_mut() {
                    *last += 1;
                }
            }
            waves
        })
}

struct Answer {
    status: u16,
    replayed: bool,
    body: Value,
}

async fn send(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> Answer {
    let res = client
        .post(url)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").is_some();
    let body = res.json().await.expect("JSON answer");
    Answer {
        status,
        replayed,
        body,
    }
}

#[test]
fn any_interleaving_of_replays_stores_one_row_and_answers_one_entity() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (database_url, _dir) = sqlite_store();
    let called = rt.block_on(async {
        let called = Service::called(|_| {
            MapSource::from_pairs([("AUTH_MODE", "off")]).with("DATABASE_URL", database_url.clone())
        })
        .await;
        testkit::ready::wait_ready(&called.base).await;
        called
    });
    let base = called.base.clone();
    let client = testkit::ready::client_with_timeout(std::time::Duration::from_secs(10));
    let url = format!("{base}/");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    // Every case (and every shrinking step) gets a key of its own.
    let case = AtomicUsize::new(0);
    let result = runner.run(&(body(), "[!-~]{1,64}", waves()), |(body, key, waves)| {
        let key = format!("{}-{key}", case.fetch_add(1, Ordering::Relaxed));
        rt.block_on(check(&client, &url, &database_url, &key, &body, &waves))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn check(
    client: &reqwest::Client,
    url: &str,
    database_url: &str,
    key: &str,
    body: &Value,
    waves: &[usize],
) -> Result<(), TestCaseError> {
    let mut answers = Vec::new();
    for &n in waves {
        let wave =
            futures_util::future::join_all((0..n).map(|_| send(client, url, key, body))).await;
        answers.extend(wave);
    }
    // A final sequential retry always gets the entity (nothing is in flight any more).
    let last = send(client, url, key, body).await;
    prop_assert_eq!(last.status, 201, "retry after the waves: {}", last.body);
    prop_assert!(last.replayed, "the retry is a replay");
    answers.push(last);

    let mut entity: Option<&Value> = None;
    let mut created = 0;
    for a in &answers {
        match a.status {
            201 => {
                if !a.replayed {
                    created += 1;
                }
                match entity {
                    None => entity = Some(&a.body),
                    Some(first) => prop_assert_eq!(first, &a.body, "same entity every time"),
                }
            }
            409 => prop_assert_eq!(&a.body["status"], 409),
            other => prop_assert!(false, "unexpected {}: {}", other, a.body),
        }
    }
    prop_assert_eq!(created, 1, "exactly one answer is the original 201");
    let entity = entity.expect("at least the retry answered 201");
    prop_assert_eq!(&entity["body"], body, "the stored body is the sent body");

    let mut c = sqlx::SqliteConnection::connect(database_url)
        .await
        .expect("open");
    let (rows, id): (i64, Option<String>) =
        sqlx::query_as("SELECT COUNT(*), MIN(id) FROM entities WHERE idem_key = ?")
            .bind(key)
            .fetch_one(&mut c)
            .await
            .expect("count");
    let _ = c.close().await;
    prop_assert_eq!(rows, 1, "one row for the key");
    prop_assert_eq!(id.as_deref(), entity["id"].as_str());
    Ok(())
}
