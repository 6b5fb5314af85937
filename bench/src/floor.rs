//! What both floor binaries share: the port setting and the loopback listener.

use std::net::{Ipv4Addr, SocketAddr};

/// The port from `PORT` (default `default`), or an error naming the variable.
///
/// # Errors
/// When `PORT` is set but is not a port number.
pub fn port(default: u16) -> anyhow::Result<u16> {
    match std::env::var("PORT") {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("PORT must be a port number, got {v:?}")),
        Err(_) => Ok(default),
    }
}

/// Binds `127.0.0.1:port` (loopback only: the floor is a benchmark, not a service).
///
/// # Errors
/// When the port cannot be bound.
pub async fn bind(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Serves `router` on `listener` with `TCP_NODELAY` on every connection (as the real services
/// do), until the process is killed.
///
/// # Errors
/// When the server fails.
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}
