//! The key-set endpoint failing and rotating, seen through called.

use std::time::Duration;

use serde_json::json;

use testkit::checks::{Problem, assert_problem};
use testkit::emu::Emu;
use testkit::in_process::spawn_called;

async fn post_as_caller(emu: &Emu, base: &str, token: &str) -> reqwest::Response {
    let _ = emu;
    reqwest::Client::new()
        .post(format!("{base}/"))
        .bearer_auth(token)
        .json(&json!({"bar": "x"}))
        .send()
        .await
        .expect("post")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_set_down_at_start_is_503_then_recovers() {
    let emu = Emu::start().await;
    emu.emulator.set_jwks_down(true);
    let called = spawn_called(&emu, &[]).await;
    let token = emu
        .emulator
        .mint(&emu.sa(), &called.base, Duration::from_secs(600));
    let Problem {
        retry_after: retry, ..
    } = assert_problem(post_as_caller(&emu, &called.base, &token).await, 503).await;
    assert!(retry.is_some());
    emu.emulator.set_jwks_down(false);
    testkit::checks::until_created(
        "key set back",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || post_as_caller(&emu, &called.base, &token),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_set_down_after_caching_and_rotation() {
    let emu = Emu::start().await;
    let called = spawn_called(&emu, &[]).await;
    let old = emu
        .emulator
        .mint(&emu.sa(), &called.base, Duration::from_secs(600));
    assert_eq!(post_as_caller(&emu, &called.base, &old).await.status(), 201);
    emu.emulator.set_jwks_down(true);
    assert_eq!(
        post_as_caller(&emu, &called.base, &old).await.status(),
        201,
        "cached keys keep working"
    );
    emu.emulator.set_jwks_down(false);
    let before = emu.emulator.jwks_requests();
    let kid = {
        let e = emu.emulator.clone();
        tokio::task::spawn_blocking(move || e.rotate())
            .await
            .expect("rotate")
    };
    let new = emu
        .emulator
        .mint(&emu.sa(), &called.base, Duration::from_secs(600));
    assert!(new.len() > 10 && kid == emu.emulator.current_kid());
    assert_eq!(
        post_as_caller(&emu, &called.base, &new).await.status(),
        201,
        "new kid picked up without restart"
    );
    assert_eq!(
        post_as_caller(&emu, &called.base, &old).await.status(),
        201,
        "old key still accepted"
    );
    // A flood of unknown-kid tokens refetches at most once per 30 s.
    let stranger = emulator::Emulator::new(Default::default());
    let forged = stranger.mint(&emu.sa(), &called.base, Duration::from_secs(600));
    for _ in 0..50 {
        assert_problem(post_as_caller(&emu, &called.base, &forged).await, 401).await;
    }
    let fetched = emu.emulator.jwks_requests() - before;
    assert!(
        fetched <= 2,
        "{fetched} key-set fetches for one rotation and a flood"
    );
}
