//! Bad input: every case gets its contract status and a problem body; nothing is stored.

use serde_json::json;

use crate::backend_tests;
use testkit::checks::assert_problem;

use crate::helpers::{Backend, spawn_app, spawn_with};

backend_tests!(
    bad_bodies_are_rejected_and_nothing_is_stored,
    body_over_limit_is_413,
    routes_and_methods,
    bad_idempotency_keys,
    valid_post_roundtrip
);

async fn bad_bodies_are_rejected_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let json = Some("application/json");
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (json, b"not json".to_vec(), 400, "not valid JSON"),
        (json, b"[1,2]".to_vec(), 400, "must be a JSON object"),
        (json, b"".to_vec(), 400, "empty"),
        (json, b"{}".to_vec(), 400, "missing required field \"bar\""),
        (
            json,
            br#"{"foo":"x"}"#.to_vec(),
            400,
            "missing required field \"bar\"",
        ),
        (json, br#"{"bar":""}"#.to_vec(), 400, "\"bar\""),
        (
            json,
            br#"{"bar":42}"#.to_vec(),
            400,
            "\"bar\" must be a string",
        ),
        (json, br#"{"bar":null}"#.to_vec(), 400, "\"bar\""),
        (
            json,
            format!(r#"{{"bar":"{}"}}"#, "x".repeat(1025)).into_bytes(),
            400,
            "at most 1024",
        ),
        (
            json,
            b"{\"bar\":\"\xff\xfe\"}".to_vec(),
            400,
            "not valid JSON",
        ),
        (json, "[".repeat(10_000).into_bytes(), 400, "not valid JSON"),
        (
            json,
            format!("{}{{\"bar\":\"x\"}}", "{\"a\":".repeat(5000)).into_bytes(),
            400,
            "not valid JSON",
        ),
        (
            Some("text/plain"),
            br#"{"bar":"x"}"#.to_vec(),
            415,
            "Content-Type",
        ),
        (None, br#"{"bar":"x"}"#.to_vec(), 415, "Content-Type"),
    ];
    for (ct, body, status, needle) in cases {
        let res = app.post_raw(ct, body).await;
        let detail = assert_problem(res, status).await.assert_complete().detail;
        assert!(
            detail.contains(needle),
            "{detail:?} should mention {needle:?}"
        );
    }
    assert_eq!(app.row_count().await, 0);
    // 1024 characters (multi-byte) is still fine.
    let ok = app.post_json(&json!({"bar": "é".repeat(1024)}), None).await;
    assert_eq!(ok.status(), 201);
}

async fn body_over_limit_is_413(backend: Backend) {
    let app = spawn_with(backend, |s| s.with("MAX_BODY_BYTES", "1024")).await;
    let big = format!(r#"{{"bar":"x","pad":"{}"}}"#, "p".repeat(2000));
    let res = app
        .post_raw(Some("application/json"), big.into_bytes())
        .await;
    assert_problem(res, 413).await.assert_complete();
    // Without Content-Length (chunked), the limit still holds while reading.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(vec![b' '; 4096])]);
    let res = app
        .client
        .post(format!("{}/", app.base))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("send");
    assert_problem(res, 413).await.assert_complete();
    assert_eq!(app.row_count().await, 0);
}

async fn routes_and_methods(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(app.get("/nope").await, 404)
        .await
        .assert_complete();
    assert_problem(app.get("/").await, 405)
        .await
        .assert_complete();
    let res = app
        .client
        .delete(format!("{}/entities", app.base))
        .send()
        .await
        .expect("send");
    assert_problem(res, 405).await.assert_complete();
    assert_eq!(app.get("/health/live").await.status(), 200);
    assert_eq!(app.get("/health/ready").await.status(), 200);
}

async fn bad_idempotency_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"bar": "x"});
    let long = "k".repeat(300);
    for key in ["", long.as_str(), "has space"] {
        let detail = assert_problem(app.post_json(&body, Some(key)).await, 400)
            .await
            .assert_complete()
            .detail;
        assert!(detail.contains("Idempotency-Key"), "{detail}");
    }
    assert_eq!(app.row_count().await, 0);
}

async fn valid_post_roundtrip(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app
        .post_json(&json!({"bar": "hello", "extra": {"n": 1}}), None)
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        res.headers()["x-request-id"]
            .to_str()
            .is_ok_and(|s| !s.is_empty())
    );
    let created: serde_json::Value = res.json().await.expect("json");
    assert_eq!(created["body"], json!({"bar": "hello", "extra": {"n": 1}}));
    assert_eq!(created["caller"], serde_json::Value::Null);
    let id = uuid::Uuid::parse_str(created["id"].as_str().expect("id")).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(location, format!("/entities/{id}"));
    let fetched: serde_json::Value = app.get(&location).await.json().await.expect("json");
    assert_eq!(fetched, created);
    assert_eq!(app.row_count().await, 1);
}
