//! The whole chain with real signed tokens.

use std::time::Duration;

use serde_json::{Value, json};

use testkit::checks::{Problem, assert_problem};
use testkit::emu::USER;
use testkit::in_process::spawn_chain;

use crate::helpers::{post, post_keyed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_travels_the_chain_and_is_stored_with_the_callers_identity() {
    let c = spawn_chain().await;
    let token = c.emu.user_token(&c.caller.base);
    let res = post(
        &c.caller.base,
        Some(&token),
        &json!({"foo": "hello", "extra": [1, 2]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "application/json");
    let entity: Value = res.json().await.expect("json");
    assert_eq!(entity["body"], json!({"bar": "hello", "extra": [1, 2]}));
    assert_eq!(entity["caller"], c.emu.sa());
    // The row is in called's store: read it back from called with called's own credentials.
    let id = entity["id"].as_str().expect("id");
    let stored = c.called.get_as_sa(&c.emu, &format!("/entities/{id}")).await;
    assert_eq!(stored, entity);
    // An end user's token is not accepted by called: only the caller's account is.
    let res = reqwest::Client::new()
        .get(format!("{}/entities/{id}", c.called.base))
        .bearer_auth(
            c.emu
                .emulator
                .mint(USER, &c.called.base, Duration::from_secs(60)),
        )
        .send()
        .await
        .expect("get");
    let Problem {
        www_authenticate: www,
        ..
    } = assert_problem(res, 403).await;
    assert_eq!(www.as_deref(), Some("Bearer error=\"insufficient_scope\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_fetch_the_token_at_most_twice() {
    let c = spawn_chain().await;
    let token = c.emu.user_token(&c.caller.base);
    let client = reqwest::Client::new();
    for i in 0..1000 {
        let res = client
            .post(format!("{}/", c.caller.base))
            .bearer_auth(&token)
            .json(&json!({"foo": format!("n{i}")}))
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 201);
    }
    let fetches = c.emu.emulator.identity_requests();
    assert!((1..=2).contains(&fetches), "{fetches} token fetches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_and_request_id_travel_through() {
    let c = spawn_chain().await;
    let token = c.emu.user_token(&c.caller.base);
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(format!("{}/", c.caller.base))
            .bearer_auth(&token)
            .header("idempotency-key", "client-key-1")
            .header("x-request-id", "req-123")
            .json(&json!({"foo": "once"}))
            .send()
    };
    let first = send().await.expect("post");
    assert_eq!(first.status(), 201);
    assert_eq!(first.headers()["x-request-id"], "req-123");
    let first: Value = first.json().await.expect("json");
    let again = send().await.expect("post");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.expect("json")["id"],
        first["id"]
    );
    let other = post_keyed(
        &c.caller.base,
        &token,
        "client-key-1",
        &json!({"foo": "different"}),
    )
    .await;
    assert_problem(other, 422).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_validates_foo() {
    let c = spawn_chain().await;
    let token = c.emu.user_token(&c.caller.base);
    let cases = [
        (json!({}), "missing required field \"foo\""),
        (json!({"foo": ""}), "\"foo\""),
        (json!({"foo": 7}), "\"foo\" must be a string"),
        (json!({"foo": "x".repeat(1025)}), "at most 1024"),
        (json!({"foo": "x", "bar": "y"}), "\"bar\""),
        (json!(["foo"]), "JSON object"),
    ];
    for (body, needle) in cases {
        let Problem { detail, .. } =
            assert_problem(post(&c.caller.base, Some(&token), &body).await, 400).await;
        assert!(
            detail.contains(needle),
            "{detail:?} should mention {needle:?}"
        );
    }
    let res = reqwest::Client::new()
        .post(format!("{}/", c.caller.base))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{\"foo\":\"x\"}")
        .send()
        .await
        .expect("post");
    assert_problem(res, 415).await;
    // Authentication comes first: no token, bad body → 401.
    assert_problem(post(&c.caller.base, None, &json!({})).await, 401).await;
    assert_eq!(
        c.emu.emulator.identity_requests(),
        1,
        "only the warm-up fetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_are_served_without_authentication() {
    let c = spawn_chain().await;
    for base in [&c.caller.base, &c.called.base] {
        let res = reqwest::get(format!("{base}/openapi.json"))
            .await
            .expect("get");
        assert_eq!(res.status(), 200);
        let doc: Value = res.json().await.expect("json");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        assert!(doc["paths"]["/"]["post"].is_object());
        assert!(doc["components"]["securitySchemes"]["google_id_token"].is_object());
    }
}

/// Issue 12 item 9 through both hops: a number past f64's precision reaches called's store
/// with every digit, and a body differing only there is not a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_numbers_keep_every_digit_through_the_chain() {
    let c = spawn_chain().await;
    let token = c.emu.user_token(&c.caller.base);
    let send = |body: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/", c.caller.base))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("idempotency-key", "digits")
            .body(body)
            .send()
    };
    let res = send(r#"{"foo":"x","amount":12345678901234567890123,"rate":0.10}"#)
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let text = res.text().await.expect("body");
    assert!(
        text.contains(r#""amount":12345678901234567890123,"rate":0.10"#),
        "every digit kept: {text}"
    );
    let res = send(r#"{"foo":"x","amount":12345678901234567890999,"rate":0.10}"#)
        .await
        .expect("post");
    assert_problem(res, 422).await;
}

/// Issue 11 through both hops: the caller forwards its client's token, called verifies it and
/// stores on whose behalf; the same user repeating its key gets the replay. (Two end users
/// sharing a key: `called/tests/api/identity.rs`, where a forwarder sends both.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_user_travels_the_chain_and_owns_its_key() {
    let c = spawn_chain().await;
    let as_user = |email: &str| {
        c.emu
            .emulator
            .mint(email, &c.caller.base, Duration::from_secs(600))
    };
    let body = json!({"foo": "same body"});
    let send = |token: String| {
        let (base, body) = (&c.caller.base, &body);
        async move { post_keyed(base, &token, "shared-key", body).await }
    };
    let mine = send(c.emu.user_token(&c.caller.base)).await;
    assert_eq!(mine.status(), 201);
    let mine: Value = mine.json().await.expect("json");
    assert_eq!(mine["on_behalf_of"], USER);
    assert_eq!(mine["caller"], c.emu.sa());
    // An end user the caller does not admit is refused before anything is forwarded.
    let stranger = send(as_user("stranger@example.com")).await;
    assert_problem(stranger, 403).await;
    let again = send(c.emu.user_token(&c.caller.base)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.expect("json"), mine);
}
