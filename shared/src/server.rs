//! The HTTP server both services run: common layers and a serve loop with a bounded drain.
//!
//! Layers, outermost first: request id (`X-Request-Id`, generated when absent, echoed back) →
//! request span and access log → load shedding (503 + `Retry-After` beyond
//! `MAX_CONCURRENT_REQUESTS`, health routes exempt), early 413 on `Content-Length`, and a
//! whole-request timeout → body limit → the service's routes → 404/405 problem fallbacks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::body::too_large;
use crate::config::ServerConfig;
use crate::problem::{self, Problem};
use crate::telemetry;

#[derive(Debug)]
struct Limits {
    max_body_bytes: usize,
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

/// Wraps a service's routes with the common layers and problem fallbacks.
pub fn with_common_layers(router: Router, cfg: &ServerConfig) -> Router {
    let limits = Arc::new(Limits {
        max_body_bytes: cfg.max_body_bytes,
        in_flight: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
        request_timeout: cfg.request_timeout,
    });
    router
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(limits, guard))
        .layer(middleware::from_fn(observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn guard(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(Some(limits.max_body_bytes)).into_response();
    }
    let _permit = if req.uri().path().starts_with("/health/") {
        None
    } else {
        match limits.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::warn!("load shed: too many requests in flight");
                return Problem::unavailable(
                    "the service is at its concurrency limit; retry shortly",
                    1,
                )
                .into_response();
            }
        }
    };
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Problem::unavailable(
            format!(
                "the request did not complete within {} ms",
                limits.request_timeout.as_millis()
            ),
            1,
        )
        .into_response(),
    }
}

async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let headers = req.headers();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let remote_ip = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|s| s.trim().to_owned())
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        });
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        http.method = %req.method(),
        http.path = %req.uri().path(),
        http.user_agent = tracing::field::Empty,
        http.remote_ip = tracing::field::Empty,
        http.protocol = ?req.version(),
    );
    if let Some(tc) = telemetry::trace_context(headers) {
        span.record("trace_id", tc.trace_id.as_str());
        if let Some(s) = tc.span_id.as_deref() {
            span.record("span_id", s);
        }
    }
    if let Some(ua) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        span.record("http.user_agent", ua);
    }
    if let Some(ip) = remote_ip.as_deref() {
        span.record("http.remote_ip", ip);
    }
    let res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                http.status = status,
                http.latency_us = latency_us,
                "request finished"
            );
        } else {
            tracing::info!(
                http.status = status,
                http.latency_us = latency_us,
                "request finished"
            );
        }
    });
    res
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
/// grace period is over.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
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
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(remote));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
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

/// What [`service_main`] needs to know of a service's settings.
pub trait ServiceConfig {
    /// Logging settings.
    fn telemetry(&self) -> &crate::telemetry::TelemetryConfig;
    /// `PORT`.
    fn port(&self) -> u16;
}

/// The whole of a service binary's `main`: `--help`, settings (a bad one exits 2 before
/// binding, naming the variable), telemetry, the runtime, bind `0.0.0.0:PORT`, then `run`
/// until SIGTERM/SIGINT. Exit 0 after a clean drain, 1 on a runtime failure.
pub fn service_main<C, Fut>(
    name: &str,
    help: fn() -> String,
    load: fn(&dyn crate::config::Source) -> Result<C, crate::config::ConfigError>,
    run: impl FnOnce(C, TcpListener) -> Fut,
) -> std::process::ExitCode
where
    C: ServiceConfig,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;

    use crate::config::{Cli, Env, parse_cli};

    match parse_cli(std::env::args()) {
        Cli::Run => {}
        Cli::Help => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Cli::Unknown(arg) => {
            eprintln!("{name}: unknown argument {arg:?}; settings are environment variables\n");
            eprint!("{}", help());
            return ExitCode::from(2);
        }
    }
    let cfg = match load(&Env) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{name}: {e}\n(run `{name} --help` for every setting)");
            return ExitCode::from(2);
        }
    };
    telemetry::init(cfg.telemetry());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let addr = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, cfg.port()));
        let listener = bind(addr).await?;
        run(cfg, listener).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{name} failed");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
