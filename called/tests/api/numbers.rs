//! Issue 12.9 — large numbers lose digits. Attack: a body whose number rounds to the same
//! `f64` as a stored one is replayed instead of refused, and the stored amount is not what was
//! sent. Every JSON value is now stored, hashed and returned exactly as received, on both
//! backends alike. Responses are compared as text: parsing them into `serde_json::Value` would
//! round again.

use crate::backend_tests;
use crate::helpers::{Backend, spawn_app};
use testkit::checks::assert_problem;

backend_tests!(
    a_number_differing_past_f64_precision_is_not_replayed_and_keeps_its_digits,
    every_value_is_returned_exactly_as_received,
    a_repeated_key_is_refused,
);

async fn post(app: &crate::helpers::TestApp, body: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    req.send().await.expect("request")
}

/// The `"body":…` member of an entity's JSON text (the body is the last member).
fn body_text(entity: &str) -> &str {
    let start = entity.find(r#""body":"#).expect("body member") + 7;
    &entity[start..entity.len() - 1]
}

async fn a_number_differing_past_f64_precision_is_not_replayed_and_keeps_its_digits(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let sent = r#"{"bar":"pay","amount":12345678901234567890123}"#;
    let res = post(&app, sent, Some("K")).await;
    assert_eq!(res.status(), 201);
    let created = res.text().await.expect("text");
    assert_eq!(
        body_text(&created),
        sent,
        "stored as 1.2345678901234568e+22 before"
    );
    // Rounds to the same f64: the old hash matched and it was replayed.
    let other = r#"{"bar":"pay","amount":12345678901234567890999}"#;
    assert_problem(post(&app, other, Some("K")).await, 422)
        .await
        .assert_complete();
    let again = post(&app, sent, Some("K")).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.expect("text"), created);
    let id = created.split('"').nth(3).expect("id").to_owned();
    let read = app.get_text(&format!("/entities/{id}")).await;
    assert_eq!(body_text(&read), sent);
    let page = app.get_text("/entities").await;
    assert!(page.contains(sent), "{page}");
    assert_eq!(app.row_count().await, 1);
}

async fn every_value_is_returned_exactly_as_received(backend: Backend) {
    let app = spawn_app(backend).await;
    // Key order as sent (not sorted, not jsonb's order), notation and digits as sent, string
    // escapes as sent; only the whitespace between tokens goes.
    let sent = "{ \"zeta\": 1.0E+2, \"bar\": \"x\\u00e9\\n\",\n  \"a\": [-0, 0.10000000000000000555111512312578270211815834045, 1e300, 123456789012345678901234567890.123456789],\n \"m\": {\"y\": 18446744073709551616, \"b\": true, \"c\": null} }";
    let compact = r#"{"zeta":1.0E+2,"bar":"x\u00e9\n","a":[-0,0.10000000000000000555111512312578270211815834045,1e300,123456789012345678901234567890.123456789],"m":{"y":18446744073709551616,"b":true,"c":null}}"#;
    let res = post(&app, sent, Some("exact")).await;
    assert_eq!(res.status(), 201);
    let created = res.text().await.expect("text");
    assert_eq!(body_text(&created), compact);
    let id = created.split('"').nth(3).expect("id").to_owned();
    let read = app.get_text(&format!("/entities/{id}")).await;
    assert_eq!(read, created, "read back byte for byte");
    // The same value with other whitespace and key order is the same body: a replay.
    let reordered = r#"{"m":{"c":null,"b":true,"y":18446744073709551616},"a":[-0,0.10000000000000000555111512312578270211815834045,1e300,123456789012345678901234567890.123456789],"bar":"x\u00e9\n","zeta":1.0E+2}"#;
    let again = post(&app, reordered, Some("exact")).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.expect("text"), created);
    // Another notation of the "same" number is another body.
    let renoted = compact.replace("1.0E+2", "100");
    assert_problem(post(&app, &renoted, Some("exact")).await, 422)
        .await
        .assert_complete();
    // Beyond f64's range the validator cannot parse the number: a clear 400, never a
    // silently changed value (a documented limit).
    let detail = assert_problem(post(&app, r#"{"bar":"x","n":1e400}"#, None).await, 400)
        .await
        .assert_complete()
        .detail;
    assert!(detail.contains("number out of range"), "{detail}");
}

/// `{"bar":"","bar":"x"}` passed validation on its last `bar` but would be stored with both;
/// a reader that keeps the first sees an invalid entity. Refused instead.
async fn a_repeated_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        r#"{"bar":"","bar":"x"}"#,
        r#"{"bar":"x","n":{"a":1,"a":2}}"#,
        r#"{"bar":"x","b\u0061r":"y"}"#,
    ] {
        let detail = assert_problem(post(&app, body, None).await, 400)
            .await
            .assert_complete()
            .detail;
        assert!(detail.contains("same key twice"), "{detail}");
    }
    assert_eq!(app.row_count().await, 0);
}
