//! Idempotency-Key semantics under concurrency.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::backend_tests;
use testkit::checks::assert_problem;

use crate::helpers::{Backend, spawn_app, spawn_keyed_post, spawn_on};

backend_tests!(
    replay_survives_restart,
    replay_returns_first_entity,
    different_body_is_422,
    distinct_keys_concurrently_store_all,
    same_key_concurrently_stores_one
);

async fn replay_returns_first_entity(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"bar": "x", "a": 1, "b": 2});
    let first = app.post_json(&body, Some("key-1")).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    // Same body with keys in another order is the same body.
    let again = app
        .post_raw(
            Some("application/json"),
            br#"{"b":2,"a":1,"bar":"x"}"#.to_vec(),
        )
        .await;
    assert_eq!(again.status(), 201, "no key: a new entity");
    let replay = app
        .post_json(&json!({"b": 2, "a": 1, "bar": "x"}), Some("key-1"))
        .await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.headers()["location"].to_str().expect("loc"),
        format!("/entities/{}", first["id"].as_str().expect("id"))
    );
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay, first);
    assert_eq!(app.row_count().await, 2);
}

async fn different_body_is_422(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.post_json(&json!({"bar": "x"}), Some("k"))
            .await
            .status(),
        201
    );
    assert_problem(app.post_json(&json!({"bar": "y"}), Some("k")).await, 422)
        .await
        .assert_complete();
    assert_eq!(app.row_count().await, 1);
}

async fn distinct_keys_concurrently_store_all(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        tasks.push(spawn_keyed_post(
            &app.client,
            &app.base,
            format!("key-{i}"),
            json!({"bar": format!("v{i}")}),
        ));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").0, 201);
    }
    assert_eq!(app.row_count().await, 200);
}

async fn same_key_concurrently_stores_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(spawn_keyed_post(
            &app.client,
            &app.base,
            "the-same-key".into(),
            json!({"bar": "same"}),
        ));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let (status, body) = t.await.expect("join");
        match status {
            201 => {
                ids.insert(body["id"].as_str().expect("id").to_owned());
            }
            409 => assert_eq!(body["status"], 409),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "every 201 is the first entity");
    assert_eq!(app.row_count().await, 1);
}

async fn replay_survives_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let first: Value = app
        .post_json(&json!({"bar": "x"}), Some("k-restart"))
        .await
        .json()
        .await
        .expect("json");
    let (url, dir) = app.stop().await;
    let app = spawn_on(backend, url, dir, |s| s).await;
    let replay = app.post_json(&json!({"bar": "x"}), Some("k-restart")).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.expect("json"), first);
    assert_eq!(app.row_count().await, 1);
}
