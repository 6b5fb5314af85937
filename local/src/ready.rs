//! The one readiness wait: poll a URL until it answers the expected status, within
//! [`READY_WITHIN`]. The `local` binary waits with it for its caller; the test kit
//! (`testkit::ready`) re-exports it for services in a test's process and child processes alike.

use std::time::{Duration, Instant};

/// The one wait budget: how long anything may take to become ready.
pub const READY_WITHIN: Duration = Duration::from_secs(15);

/// Pause between two attempts (fine enough to measure start-to-ready).
pub const POLL_EVERY: Duration = Duration::from_millis(5);

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
