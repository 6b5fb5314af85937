//! The outbound HTTP client: built once per process (connection pool, rustls, timeouts) and
//! injected into everything that calls out (token source, key set, readiness probes). The
//! caller's per-request hop to the called service has a leaner client of its own
//! (`caller::hop`) with the same settings, taken from the constants here.
//!
//! It never follows redirects: a 3xx from the called service, the metadata server or the key
//! set endpoint is answered as it is (and treated as a failure by each of them). Following one
//! would re-send a body, an `Idempotency-Key` and trace headers to a host nobody configured.

use std::time::Duration;

/// `User-Agent` of every outbound request.
pub const USER_AGENT: &str = concat!("invoker/", env!("CARGO_PKG_VERSION"));
/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Most idle pooled connections per host.
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// The bound on setting up a connection (DNS, TCP and TLS) the services use.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the process-wide client. `connect_timeout` bounds TCP+TLS setup; per-request
/// deadlines are set by each caller.
///
/// # Errors
/// When the TLS backend cannot start. There is no fallback: a default client would follow
/// redirects and lack the timeouts, so the binary stops at startup instead.
pub fn client(connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
}
