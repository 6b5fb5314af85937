//! What one body costs the real `caller` binary, whatever its shape (issue 20, item 1).
//!
//! A valid megabyte of one-key objects (`{"foo":"x","a":[{"":0},{"":0},…]}`, ~150 000 of them)
//! used to raise the caller's peak RSS by ~107 MiB for one request, and eight at once by ~600
//! MiB: the validator built a whole `serde_json::Value` tree and kept it across the forward and
//! its retries. Now validation streams, the rename works on the exact text, and only the
//! renamed text is held across the forward.

use std::time::Duration;

use testkit::checks::{assert_tiny_objects_peak, tiny_objects};
use testkit::child::{Proc, free_port};
use testkit::emu::Emu;
use testkit::in_process::spawn_called;

use crate::helpers::caller_spec;

const MAX_BODY: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_of_tiny_objects_does_not_balloon_memory() {
    let emu = Emu::start().await;
    // called in this process, with room for the caller's renamed megabyte.
    let called = spawn_called(&emu, &[("REQUEST_TIMEOUT_MS", "120000")]).await;
    let port = free_port();
    let spec = caller_spec(&emu, port, &called.base)
        .with("CALL_TIMEOUT_MS", "120000")
        .with("REQUEST_TIMEOUT_MS", "120000");
    let caller = Proc::start(&spec, port).await;
    let auth = format!("Bearer {}", emu.user_token(&caller.base));
    let client = testkit::ready::client_with_timeout(Duration::from_secs(120));
    let url = format!("{}/", caller.base);
    let post = |body: String| {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        async move {
            let res = client
                .post(&url)
                .header("content-type", "application/json")
                .header("authorization", auth)
                .body(body)
                .send()
                .await
                .expect("post");
            let status = res.status().as_u16();
            let _ = res.bytes().await.expect("the answer");
            status
        }
    };
    // Warm token cache and pools, and a megabyte-sized body of the ordinary kind, in the
    // baseline.
    for _ in 0..10 {
        assert_eq!(post(r#"{"foo":"warm"}"#.into()).await, 201);
    }
    let flat = format!(r#"{{"foo":"x","pad":"{}"}}"#, "p".repeat(MAX_BODY - 64));
    assert_eq!(post(flat).await, 201);
    let base = caller.memory();

    let body = tiny_objects("foo", MAX_BODY);
    assert_eq!(post(body.clone()).await, 201);
    let one = caller.memory();

    let mut all = tokio::task::JoinSet::new();
    for _ in 0..8 {
        all.spawn(post(body.clone()));
    }
    let eight = all.join_all().await;
    assert!(eight.iter().all(|s| *s == 201), "{eight:?}");
    let after = caller.memory();

    assert_tiny_objects_peak(
        "caller",
        &base,
        &one,
        &after,
        "~+107 MiB for one, ~+600 MiB for eight",
    );
}
