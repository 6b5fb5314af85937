//! Graceful shutdown of the real `caller` binary: SIGTERM while a client is half-way through
//! its body. The request is still forwarded and answered 201, new connections are refused at
//! once, idle connections are closed, and the process exits 0 within `SHUTDOWN_GRACE_MS`.

use std::time::Duration;

use testkit::child::{Proc, free_port};
use testkit::drain;
use testkit::emu::Emu;
use testkit::in_process::spawn_called;
use testkit::raw::Raw;

use crate::helpers::caller_spec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_half_sent_request_finish_refuses_new_connections_and_exits_zero() {
    let grace = Duration::from_millis(3000);
    let emu = Emu::start().await;
    let called = spawn_called(&emu, &[]).await;
    let port = free_port();
    let spec = caller_spec(&emu, port, &called.base).with("SHUTDOWN_GRACE_MS", "3000");
    let mut caller = Proc::start(&spec, port).await;
    let token = emu.user_token(&caller.base);

    let idle = drain::idle_connection(&caller.addr).await;
    // 100 Continue comes after authentication: the request is admitted and in its handler.
    let body = br#"{"foo":"sent across SIGTERM","n":1}"#;
    let half = body.len() / 2;
    let auth = format!("Bearer {token}");
    let mut slow = Raw::start_post(
        &caller.addr,
        body.len(),
        &[
            ("Authorization", &auth),
            ("Idempotency-Key", "across-sigterm"),
        ],
    )
    .await;
    slow.send(&body[..half]).await.expect("first half");

    let term = drain::sigterm(&caller, idle).await;
    let res = drain::finish_created(&mut slow, &body[half..], Duration::from_secs(10)).await;
    let entity = res.json();
    assert_eq!(entity["caller"], emu.sa().as_str());
    assert_eq!(entity["body"]["bar"], "sent across SIGTERM");
    let exited_after = term.exits_zero_within(&mut caller, grace).await;

    // The forwarded write is in called's store.
    let id = entity["id"].as_str().expect("id");
    let stored = called.get_as_sa(&emu, &format!("/entities/{id}")).await;
    assert_eq!(stored, entity);
    term.report("caller", exited_after);
}
