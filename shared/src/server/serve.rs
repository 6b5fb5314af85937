//! The accept loop: HTTP/1.1 with a header-read timeout, a bounded header buffer, a cap on open
//! connections, and a drain bounded by the grace period once shutdown is asked for.
//!
//! Connections beyond [`Limits::max_connections`] are still accepted — never left unread in
//! the kernel's backlog, where a health probe would wait behind an attacker's idle connections
//! until one of them times out. The first [`RESERVED_CONNECTIONS`] of them are served one
//! request each, with a short header timeout and a small buffer: `/health/*` goes to the
//! router (so probes keep answering while the cap is reached), anything else gets 503 with
//! `Retry-After`. Past the reserve a connection is closed as soon as it is accepted. Memory
//! held by connections is therefore bounded by about `max_connections` × [`MAX_BUF_BYTES`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::problem::Problem;

/// Most bytes hyper buffers for one connection (request line and headers included: larger
/// heads get 431). hyper's default is about 408 KiB; requests need far less — an
/// `Authorization` JWT is 1–2 KiB, and heads up to 32 KiB are served.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// Connections served beyond [`Limits::max_connections`], one request each, answering only
/// `/health/*` (anything else: 503).
pub const RESERVED_CONNECTIONS: usize = 16;

/// Header-read timeout of a reserved connection (capped by the configured one).
const RESERVED_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Buffer of a reserved connection: hyper's minimum, plenty for a probe's request.
const RESERVED_BUF_BYTES: usize = 8 * 1024;

/// At most one warning per this long while connections are at the cap.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Default of [`Limits::max_connections`] (`MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Bounds of the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection that does not finish its request headers in time is closed; so is a
    /// keep-alive connection idle that long (this is the server's idle timeout).
    pub header_read_timeout: Duration,
    /// Open connections served at once (`MAX_CONNECTIONS`).
    pub max_connections: usize,
}

impl From<Duration> for Limits {
    /// The given header-read timeout and [`DEFAULT_MAX_CONNECTIONS`].
    fn from(header_read_timeout: Duration) -> Self {
        Self {
            header_read_timeout,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl From<&ServerConfig> for Limits {
    fn from(cfg: &ServerConfig) -> Self {
        Self {
            header_read_timeout: cfg.header_read_timeout,
            max_connections: cfg.max_connections,
        }
    }
}

/// Binds `0.0.0.0:port` (or any address), with a clear error naming the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting (the listener
/// is closed, so new connections are refused) and waits for in-flight requests for at most
/// `grace`. Idle keep-alive connections are closed at once. Returns when drained or when the
/// grace period is over. `limits`: a header-read timeout (with [`DEFAULT_MAX_CONNECTIONS`]),
/// or `&ServerConfig` (`HEADER_READ_TIMEOUT_MS`, `MAX_CONNECTIONS`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
    limits: impl Into<Limits>,
) -> std::io::Result<()> {
    let limits: Limits = limits.into();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUF_BYTES)
        .keep_alive(true);
    let mut reserved_builder = hyper::server::conn::http1::Builder::new();
    reserved_builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.min(RESERVED_HEADER_READ_TIMEOUT))
        .max_buf_size(RESERVED_BUF_BYTES)
        .keep_alive(false);
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let reserve = Arc::new(Semaphore::new(RESERVED_CONNECTIONS));
    let mut last_warning: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (permit, reserved) = if let Ok(p) = Arc::clone(&open).try_acquire_owned() {
                    (p, false)
                } else {
                    if last_warning.is_none_or(|t| t.elapsed() >= CAP_WARNING_EVERY) {
                        last_warning = Some(std::time::Instant::now());
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "MAX_CONNECTIONS open connections: further ones answer only /health/* (then close) or are closed at once"
                        );
                    }
                    match Arc::clone(&reserve).try_acquire_owned() {
                        Ok(p) => (p, true),
                        Err(_) => {
                            drop(stream);
                            continue;
                        }
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(remote));
                    let router = router.clone();
                    async move {
                        if reserved && !req.uri().path().starts_with("/health/") {
                            return Ok(Problem::unavailable(
                                "too many open connections; retry shortly",
                                1,
                            )
                            .into_response());
                        }
                        router.oneshot(req.map(axum::body::Body::new)).await
                    }
                });
                let b = if reserved { &reserved_builder } else { &builder };
                let conn = graceful.watch(b.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all in-flight requests finished"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over with requests still in flight"),
    }
    Ok(())
}
