//! Reading back: by id and keyset pagination.

use serde_json::{Value, json};

use crate::backend_tests;
use testkit::checks::assert_problem;

use crate::helpers::{Backend, ids_and_next, page_path, spawn_app};

backend_tests!(
    pagination_is_oldest_first_and_complete,
    get_unknown_and_bad_ids,
    bad_list_parameters
);

async fn pagination_is_oldest_first_and_complete(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let res = app.post_json(&json!({"bar": format!("n{i}")}), None).await;
        let v: Value = res.json().await.expect("json");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = page_path(10, after.as_deref());
        let page: Value = app.get(&path).await.json().await.expect("page");
        let (page_ids, next) = ids_and_next(&page);
        assert!(page_ids.len() <= 10);
        seen.extend(page_ids);
        after = next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(seen, ids, "every entity once, oldest first");
    let all: Value = app.get("/entities").await.json().await.expect("page");
    assert_eq!(all["items"].as_array().expect("items").len(), 25);
    assert_eq!(all["next"], Value::Null);
}

async fn get_unknown_and_bad_ids(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(
        app.get(&format!("/entities/{}", uuid::Uuid::now_v7()))
            .await,
        404,
    )
    .await
    .assert_complete();
    assert_problem(app.get("/entities/garbage").await, 404)
        .await
        .assert_complete();
}

async fn bad_list_parameters(backend: Backend) {
    let app = spawn_app(backend).await;
    for q in ["limit=0", "limit=abc", "limit=1001", "after=garbage"] {
        let detail = assert_problem(app.get(&format!("/entities?{q}")).await, 400)
            .await
            .assert_complete()
            .detail;
        let field = q.split('=').next().expect("name");
        assert!(detail.contains(field), "{detail}");
    }
}
