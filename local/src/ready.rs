//! The one readiness wait: poll a URL until it answers the expected status, within
//! [`READY_WITHIN`]. Used for services in this process and for child processes alike. And
//! the client with a timeout that tests use so that no request hangs.

use std::time::{Duration, Instant};

/// The one wait budget: how long anything may take to become ready.
pub const READY_WITHIN: Duration = Duration::from_secs(15);

/// Pause between two attempts (fine enough to measure start-to-ready).
pub const POLL_EVERY: Duration = Duration::from_millis(5);

/// An HTTP client whose every request gives up after `timeout` (a test never hangs on one).
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
}

/// Polls `url` until it answers `status`; `Ok` with how long that took. Between attempts,
/// `gone` may report that the server will never answer (a child that exited): `Err` with its
/// reason at once. `Err` as well when [`READY_WITHIN`] passes first.
pub async fn poll_status(
    url: &str,
    status: u16,
    mut gone: impl FnMut() -> Option<String>,
) -> Result<Duration, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let start = Instant::now();
    while start.elapsed() < READY_WITHIN {
        if let Ok(r) = client.get(url).send().await
            && r.status().as_u16() == status
        {
            return Ok(start.elapsed());
        }
        if let Some(why) = gone() {
            return Err(format!("{url}: {why}"));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Err(format!(
        "{url} never answered {status} within {READY_WITHIN:?}"
    ))
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
