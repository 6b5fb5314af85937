//! The metadata server failing in every way it can: the caller degrades to 503, recovers by
//! itself, and never forwards an expired token.

use std::time::{Duration, Instant};

use emulator::IdentityFault;
use serde_json::json;

use local::checks::{Problem, assert_problem};
use local::emu::Emu;
use local::in_process::{spawn_called, spawn_caller, spawn_chain};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_from_the_start_is_503_then_recovers_without_restart() {
    let emu = Emu::start().await;
    emu.emulator.set_identity_fault(IdentityFault::Unavailable);
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, &[]).await;
    let token = emu.user_token(&caller.base);
    let Problem { retry_after, .. } = assert_problem(
        post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
        503,
    )
    .await;
    assert!(retry_after.is_some(), "503 carries Retry-After");
    assert_problem(
        reqwest::get(format!("{}/health/ready", caller.base))
            .await
            .expect("ready"),
        503,
    )
    .await;
    emu.emulator.set_identity_fault(IdentityFault::None);
    let start = Instant::now();
    loop {
        let res = post(&caller.base, Some(&token), &json!({"foo": "x"})).await;
        if res.status() == 201 {
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(start.elapsed() < Duration::from_secs(15), "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_answer_is_followed_by_the_next_good_one() {
    for fault in [IdentityFault::ForbiddenOnce, IdentityFault::GarbageOnce] {
        let emu = Emu::start().await;
        emu.emulator.set_identity_fault(fault);
        let called = spawn_called(&emu, &[]).await;
        let caller = spawn_caller(&emu, &called.base, &[]).await;
        let token = emu.user_token(&caller.base);
        let start = Instant::now();
        loop {
            let res = post(&caller.base, Some(&token), &json!({"foo": "x"})).await;
            if res.status() == 201 {
                break;
            }
            assert_eq!(res.status(), 503, "{fault:?}");
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{fault:?}: did not recover"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_metadata_server_is_503_within_the_fetch_timeout() {
    let emu = Emu::start().await;
    emu.emulator.set_identity_fault(IdentityFault::Stall);
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, &[("TOKEN_FETCH_TIMEOUT_MS", "500")]).await;
    let token = emu.user_token(&caller.base);
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
    let emu = Emu::start().await;
    emu.emulator.set_identity_fault(IdentityFault::Expired);
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, &[]).await;
    let token = emu.user_token(&caller.base);
    for _ in 0..3 {
        assert_problem(
            post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
            503,
        )
        .await;
    }
    let sa_token = emu
        .emulator
        .mint(&emu.sa(), &called.base, Duration::from_secs(60));
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/entities", called.base))
        .bearer_auth(sa_token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        page["items"].as_array().expect("items").len(),
        0,
        "nothing reached called"
    );
}
