//! Tokens never reach the logs: the real `caller` binary at `RUST_LOG=trace` with Cloud Logging
//! JSON. It fetches an ID token from the emulator and forwards it; clients send valid, forged,
//! expired, misdirected and unauthorised tokens. No captured line holds any JWT.

use std::time::Duration;

use serde_json::{Value, json};

use testkit::checks::assert_no_tokens;
use testkit::child::{Proc, free_port};
use testkit::emu::{Emu, USER};
use testkit::in_process::spawn_called;

use crate::helpers::caller_spec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_never_logs_a_token_even_at_trace_level() {
    let emu = Emu::start().await;
    let called = spawn_called(&emu, &[]).await;
    let port = free_port();
    let spec = caller_spec(&emu, port, &called.base)
        .with("RUST_LOG", "trace")
        .with("LOG_FORMAT", "json")
        .capture();
    let caller = Proc::start(&spec, port).await;
    let audience = caller.base.clone();
    let good = emu.user_token(&audience);
    let bad = emu.refused_tokens(USER, &audience, &good);
    // What caller forwards is minted by the emulator for called; any JWT is caught by `eyJ`.
    let tokens = bad.all_with(&good);

    let client = testkit::ready::client_with_timeout(Duration::from_secs(15));
    let base = &caller.base;
    let post = |token: &str, key: &str| {
        client
            .post(format!("{base}/"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .header("cookie", format!("session={token}"))
            .json(&json!({"foo": "hello"}))
            .send()
    };
    let res = post(&good, "log-1").await.expect("post");
    assert_eq!(res.status(), 201);
    let entity: Value = res.json().await.expect("json");
    assert_eq!(entity["caller"], emu.sa().as_str());
    assert_eq!(post(&good, "log-1").await.expect("replay").status(), 201);
    assert_eq!(post(&good, "log-2").await.expect("post").status(), 201);
    for (token, status) in bad.with_statuses() {
        assert_eq!(post(token, "log-3").await.expect("post").status(), status);
    }
    // A body error with a valid token, and a token sent where it does not belong.
    let res = client
        .post(format!("{base}/"))
        .bearer_auth(&good)
        .json(&json!({"bar": "not allowed here"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    let res = client
        .get(format!("{base}/health/ready?access_token={good}"))
        .send()
        .await
        .expect("ready");
    assert_eq!(res.status(), 200);

    let lines = caller.stop_cleanly().await;
    assert_no_tokens("caller", &lines, &tokens);
}
