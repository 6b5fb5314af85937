//! The outbound HTTP client: built once per process (connection pool, rustls, timeouts) and
//! injected into everything that calls out (token source, key set, the called service).

use std::time::Duration;

/// Builds the process-wide client. `connect_timeout` bounds TCP+TLS setup; per-request
/// deadlines are set by each caller.
pub fn client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("invoker/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "falling back to a default HTTP client");
            reqwest::Client::new()
        })
}
