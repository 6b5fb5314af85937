//! Graceful shutdown of the real `called` binary: SIGTERM while a request is half-way through
//! its body. The request completes 201 and is stored, new connections are refused at once,
//! idle connections are closed, and the process exits 0 within `SHUTDOWN_GRACE_MS` — also when
//! a client never finishes.

use std::time::{Duration, Instant};

use testkit::child::Proc;
use testkit::drain;
use testkit::in_process::sqlite_store;
use testkit::raw::Raw;

use crate::helpers::{called_open, rows, start_open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_half_sent_request_finish_refuses_new_connections_and_exits_zero() {
    let grace = Duration::from_millis(3000);
    let (database_url, _dir) = sqlite_store();
    let spec = called_open(&database_url).with("SHUTDOWN_GRACE_MS", "3000");
    let mut called = Proc::start_anywhere(&spec).await;

    // An idle keep-alive connection (one request done) and a request half-way through its body.
    let idle = drain::idle_connection(&called.addr).await;
    let body = br#"{"bar":"sent across SIGTERM","n":12345}"#;
    let half = body.len() / 2;
    let mut slow = Raw::start_post(&called.addr, body.len(), &[]).await;
    slow.send(&body[..half]).await.expect("first half");

    let term = drain::sigterm(&called, idle).await;
    let res = drain::finish_created(&mut slow, &body[half..], Duration::from_secs(5)).await;
    let id = res.json()["id"].as_str().expect("id").to_owned();
    let exited_after = term.exits_zero_within(&mut called, grace).await;
    assert!(
        rows(&database_url).await.iter().any(|(row, _)| *row == id),
        "the request answered during the drain is stored"
    );
    term.report("called", exited_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stuck_request_still_exits_zero_within_the_grace() {
    let grace = Duration::from_millis(1000);
    let (mut called, _dir) = start_open(&[
        ("SHUTDOWN_GRACE_MS", "1000"),
        ("REQUEST_TIMEOUT_MS", "60000"),
    ])
    .await;
    let mut stuck = Raw::start_post(&called.addr, 100, &[]).await;
    stuck.send(b"{\"bar\":").await.expect("a few bytes");

    called.sigterm().await;
    let signalled = Instant::now();
    let (exit, _) = called.wait_exit(grace + Duration::from_secs(3)).await;
    let exited_after = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM");
    assert!(
        exited_after >= grace - Duration::from_millis(100),
        "waited for the in-flight request ({exited_after:?})"
    );
    assert!(
        exited_after < grace + Duration::from_millis(1500),
        "bounded by SHUTDOWN_GRACE_MS ({exited_after:?})"
    );
    stuck
        .closed_within(Duration::from_secs(2))
        .await
        .expect("the stuck connection is closed with the process");
}
