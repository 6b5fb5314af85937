//! The outbound HTTP client: built once per process (connection pool, rustls, timeouts) and
//! injected into everything that calls out (token source, key set, the called service).
//!
//! It never follows redirects: a 3xx from the called service, the metadata server or the key
//! set endpoint is answered as it is (and treated as a failure by each of them). Following one
//! would re-send a body, an `Idempotency-Key` and trace headers to a host nobody configured.

use std::time::Duration;

/// Builds the process-wide client. `connect_timeout` bounds TCP+TLS setup; per-request
/// deadlines are set by each caller.
pub fn client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("invoker/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "falling back to a default HTTP client");
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
}
