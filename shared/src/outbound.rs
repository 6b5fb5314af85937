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
/// How long an idle pooled connection is kept: below the services' own idle timeout (their
/// server closes a keep-alive connection idle for `HEADER_READ_TIMEOUT_MS`, 10 s by default),
/// so the client drops an idle connection before the server does, instead of sending a
/// request on a connection the server is closing and spending a retry on it.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(8);
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

#[cfg(test)]
mod tests {
    use super::POOL_IDLE_TIMEOUT;
    use crate::config::{MapSource, ServerConfig};

    /// The server closes a connection idle for its header-read timeout; a client that keeps it
    /// longer sends a request at that mark on a closed connection and burns a retry. Two
    /// seconds of margin cover the time between the server's last byte and the client's
    /// return of the connection to its pool.
    #[test]
    fn client_idle_timeout_is_below_the_server_idle_timeout() {
        let server = ServerConfig::from_source(&MapSource::default()).expect("defaults");
        let server_idle = server.header_read_timeout;
        assert!(
            POOL_IDLE_TIMEOUT + std::time::Duration::from_secs(2) <= server_idle,
            "client keeps idle connections {POOL_IDLE_TIMEOUT:?}, server closes them at {server_idle:?}"
        );
    }
}
