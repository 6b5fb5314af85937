//! The one readiness wait: poll a URL until it answers the expected status, within
//! [`READY_WITHIN`]. Used for services in this process and for child processes alike. And
//! the client with a timeout that tests use so that no request hangs.
//!
//! The wait itself ([`poll_status`], [`READY_WITHIN`], [`POLL_EVERY`]) lives in `local::ready`,
//! which the `local` binary uses too; it is re-exported here so that there is still one.

use std::time::Duration;

pub use local::ready::{POLL_EVERY, READY_WITHIN, poll_status};

/// An HTTP client whose every request gives up after `timeout` (a test never hangs on one).
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
}

/// Waits until `url` answers `status`; panics after [`READY_WITHIN`].
pub async fn wait_for(url: &str, status: u16) {
    if let Err(e) = poll_status(url, status, || None).await {
        panic!("{e}");
    }
}

/// Waits until `{base}/health/ready` answers 200; panics after [`READY_WITHIN`].
pub async fn wait_ready(base: &str) {
    wait_for(&format!("{base}/health/ready"), 200).await;
}
