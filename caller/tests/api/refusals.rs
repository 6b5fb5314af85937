//! What the caller does when called refuses a token: its own (drop it, fetch a new one, retry
//! once inside the deadline; readiness proves called accepts it) or the end user's (the
//! client's problem, passed on as 401) — and duplicated credentials, refused outright.

use std::time::Duration;

use emulator::{EmulatorConfig, MAX_PUBLISHED_KEYS};
use serde_json::json;
use testkit::checks::assert_problem;
use testkit::clock::jump;
use testkit::emu::Emu;
use testkit::in_process::{spawn_called, spawn_caller};

use crate::helpers::post;

/// An emulator whose key set is fresh for 60 s (the least a verifier honours).
async fn short_lived_key_set() -> Emu {
    Emu::start_with(EmulatorConfig {
        jwks_max_age: Duration::from_secs(60),
        ..EmulatorConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_token_called_stopped_accepting_is_dropped_and_fetched_again_once() {
    let emu = short_lived_key_set().await;
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, &[]).await;
    let res = post(
        &caller.base,
        Some(&emu.user_token(&caller.base)),
        &json!({"foo": "before"}),
    )
    .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let fetched = emu.emulator.identity_requests();

    // The key that signed the caller's cached token leaves the key set.
    for _ in 0..MAX_PUBLISHED_KEYS {
        let e = emu.emulator.clone();
        tokio::task::spawn_blocking(move || e.rotate())
            .await
            .expect("rotate");
    }
    jump(Duration::from_secs(61)).await;
    // The first requests may still meet called's stale key set (and make it refresh in the
    // background); once called has the new set, the caller's cached token has no key there any
    // more: that request must still be 201, by a token fetched again exactly once.
    for i in 0..50 {
        let res = post(
            &caller.base,
            Some(&emu.user_token(&caller.base)),
            &json!({"foo": format!("after {i}")}),
        )
        .await;
        assert_eq!(
            res.status(),
            201,
            "request {i}: never a 502 for a refused own token"
        );
        if emu.emulator.identity_requests() > fetched {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        emu.emulator.identity_requests(),
        fetched + 1,
        "the refused token was fetched again exactly once"
    );
    // And it is kept: more requests fetch nothing.
    for i in 0..3 {
        let res = post(
            &caller.base,
            Some(&emu.user_token(&caller.base)),
            &json!({"foo": format!("later {i}")}),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    assert_eq!(emu.emulator.identity_requests(), fetched + 1);
    let ready = reqwest::get(format!("{}/health/ready", caller.base))
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_called_refuses_the_callers_token() {
    let emu = Emu::start().await;
    // called allows somebody else: the caller's token is valid but not welcome (403), and a
    // probe of an unauthenticated route would not notice.
    let called = spawn_called(
        &emu,
        &[(
            "AUTH_ALLOWED_PRINCIPALS",
            "someone-else@example.iam.gserviceaccount.com",
        )],
    )
    .await;
    let caller = spawn_caller(&emu, &called.base, &[]).await;
    let ready = reqwest::get(format!("{}/health/ready", caller.base))
        .await
        .expect("ready");
    assert_problem(ready, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_user_token_called_refuses_is_the_clients_401_not_a_502() {
    let emu = Emu::start().await;
    // called trusts the caller to forward end users, but only for another audience: every
    // forwarded token is refused.
    let sa = emu.sa();
    let called = spawn_called(
        &emu,
        &[
            ("AUTH_FORWARDERS", sa.as_str()),
            ("AUTH_FORWARDED_AUDIENCES", "https://elsewhere.example"),
        ],
    )
    .await;
    let caller = spawn_caller(&emu, &called.base, &[]).await;
    // Ready: the caller's own token is fetched (at start, in the background) and accepted.
    testkit::ready::wait_ready(&caller.base).await;
    let fetched_before = emu.emulator.identity_requests();
    let res = post(
        &caller.base,
        Some(&emu.user_token(&caller.base)),
        &json!({"foo": "x"}),
    )
    .await;
    let p = assert_problem(res, 401).await;
    assert!(
        p.detail.contains("X-Forwarded-Authorization"),
        "{}",
        p.detail
    );
    assert_eq!(
        p.www_authenticate.as_deref(),
        Some(invoker_auth::END_USER_INVALID_TOKEN)
    );
    assert_eq!(
        emu.emulator.identity_requests(),
        fetched_before,
        "the caller's own token was not dropped for its client's refusal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_authorization_header_is_refused() {
    let emu = Emu::start().await;
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, &[]).await;
    let good = emu.user_token(&caller.base);
    let res = reqwest::Client::new()
        .post(format!("{}/", caller.base))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", "Bearer forged")
        .json(&json!({"foo": "x"}))
        .send()
        .await
        .expect("post");
    let p = assert_problem(res, 401).await;
    assert!(p.detail.contains("more than once"), "{}", p.detail);
}
