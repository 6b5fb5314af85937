//! The metadata server failing in every way it can: the caller degrades to 503, recovers by
//! itself, and never forwards an expired token.

use std::time::{Duration, Instant};

use emulator::IdentityFault;
use serde_json::json;

use testkit::checks::{Problem, assert_not_ready, assert_problem, until_created};
use testkit::emu::Emu;
use testkit::in_process::{Service, spawn_called, spawn_caller, spawn_chain};

use crate::helpers::post;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_after_a_token_was_cached_is_invisible() {
    let c = spawn_chain().await;
    let token = c.emu.user_token(&c.caller.base);
    assert_eq!(
        post(&c.caller.base, Some(&token), &json!({"foo": "a"}))
            .await
            .status(),
        201
    );
    c.emu
        .emulator
        .set_identity_fault(IdentityFault::Unavailable);
    for i in 0..20 {
        assert_eq!(
            post(
                &c.caller.base,
                Some(&token),
                &json!({"foo": format!("b{i}")})
            )
            .await
            .status(),
            201
        );
    }
    assert_eq!(
        c.emu.emulator.identity_requests(),
        1,
        "no inline fetch while a valid token is cached"
    );
}

/// The chain with the emulator's identity endpoint failing with `fault` from the start, the
/// caller with `extra`: emulator, called, caller, and an end user's token for the caller.
async fn with_fault(
    fault: IdentityFault,
    extra: &[(&str, &str)],
) -> (Emu, Service, Service, String) {
    let emu = Emu::start().await;
    emu.emulator.set_identity_fault(fault);
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, extra).await;
    let token = emu.user_token(&caller.base);
    (emu, called, caller, token)
}

/// Posts every `pause` until the caller answers 201 (503 until then), within `within`.
async fn recovers(caller: &Service, token: &str, what: &str, within: Duration, pause: Duration) {
    let body = json!({"foo": "x"});
    until_created(what, within, pause, || {
        post(&caller.base, Some(token), &body)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_from_the_start_is_503_then_recovers_without_restart() {
    let (emu, _called, caller, token) = with_fault(IdentityFault::Unavailable, &[]).await;
    let Problem { retry_after, .. } = assert_problem(
        post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
        503,
    )
    .await;
    assert!(retry_after.is_some(), "503 carries Retry-After");
    assert_not_ready(&caller.base).await;
    emu.emulator.set_identity_fault(IdentityFault::None);
    recovers(
        &caller,
        &token,
        "metadata server back",
        Duration::from_secs(15),
        Duration::from_millis(200),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_answer_is_followed_by_the_next_good_one() {
    for fault in [IdentityFault::ForbiddenOnce, IdentityFault::GarbageOnce] {
        let (_emu, _called, caller, token) = with_fault(fault, &[]).await;
        recovers(
            &caller,
            &token,
            &format!("{fault:?}"),
            Duration::from_secs(5),
            Duration::from_millis(100),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_metadata_server_is_503_within_the_fetch_timeout() {
    let (_emu, _called, caller, token) =
        with_fault(IdentityFault::Stall, &[("TOKEN_FETCH_TIMEOUT_MS", "500")]).await;
    let start = Instant::now();
    assert_problem(
        post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
        503,
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_never_forwarded() {
    let (emu, called, caller, token) = with_fault(IdentityFault::Expired, &[]).await;
    for _ in 0..3 {
        assert_problem(
            post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
            503,
        )
        .await;
    }
    let page = called.get_as_sa(&emu, "/entities").await;
    assert_eq!(
        page["items"].as_array().expect("items").len(),
        0,
        "nothing reached called"
    );
}
