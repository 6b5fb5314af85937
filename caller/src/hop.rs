//! The one hop this service makes on every request: a pooled HTTP client to `CALLED_URL`,
//! built directly on hyper's connection pool (`hyper_util`'s client) with rustls.
//!
//! Why not the shared `reqwest` client (which the token source, key set and readiness probe
//! still use): on the hot path reqwest adds, per request, a redirect layer that re-parses the
//! answer's URL (`url::Url::parse`, IDNA host processing), proxy matching, its own boxed
//! request, body and timeout types and a second clone of the URL — about a fifth of this
//! service's CPU per request in `bench/profile.sh` (`bench/RESULTS.md`). This client does
//! only what the forward needs, with the same guarantees:
//!
//! - **no redirects** are followed (hyper's client never follows one; a 3xx is the caller's
//!   502, see [`crate::forward`]);
//! - TLS with rustls and the platform's certificate verifier — the same verifier and crypto
//!   provider reqwest uses — with HTTP/2 offered by ALPN on `https://` (as reqwest does) and
//!   HTTP/1.1 on `http://`;
//! - `TCP_NODELAY`, one timeout over connecting (DNS, TCP and the TLS handshake together, as
//!   reqwest's `connect_timeout`), up to 256 idle pooled connections kept 8 s (the shared
//!   client's pool settings: below called's 10 s idle timeout, so a request never goes out on
//!   a connection called is closing);
//! - the request's deadline is the caller's (`CALL_TIMEOUT_MS`), enforced around the whole
//!   exchange by [`crate::forward::Forwarder`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_platform_verifier::BuilderVerifierExt;

/// The `User-Agent` of every forward (the shared client's).
pub const USER_AGENT: HeaderValue = HeaderValue::from_static(shared::outbound::USER_AGENT);

/// A pooled client for the hop to the called service; cheap to clone.
#[derive(Clone)]
pub struct HopClient {
    client: Client<Bounded, Full<Bytes>>,
}

impl std::fmt::Debug for HopClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopClient").finish_non_exhaustive()
    }
}

/// Why a forward got no answer (the connection failed, or was closed mid-answer).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HopError {
    message: String,
    timed_out: bool,
}

impl HopError {
    /// `context: e: its source: …`, and whether any of them is an I/O time-out.
    fn new(context: &str, e: &(dyn std::error::Error + 'static)) -> Self {
        let is_timeout = |e: &(dyn std::error::Error + 'static)| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        };
        let mut message = format!("{context}: {e}");
        let mut timed_out = is_timeout(e);
        let mut source = e.source();
        while let Some(inner) = source {
            timed_out |= is_timeout(inner);
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        Self { message, timed_out }
    }

    /// Whether connecting timed out (the forward answers it as the deadline, 504).
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }
}

impl HopClient {
    /// A client whose connections time out after `connect_timeout` (TCP and TLS set-up).
    ///
    /// # Errors
    /// When the platform's certificate verifier cannot be set up (no usable root store).
    pub fn new(connect_timeout: Duration) -> Result<Self, rustls::Error> {
        // The process's default provider when one was installed, else aws-lc-rs: the same
        // choice reqwest makes, so both clients verify alike.
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        let connector = Bounded {
            inner: hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_all_versions()
                .wrap_connector(tcp),
            timeout: connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(shared::outbound::POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(shared::outbound::POOL_MAX_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { client })
    }

    /// Sends `req` and reads the whole answer. Not bounded in time: the caller wraps it in
    /// its deadline.
    ///
    /// # Errors
    /// [`HopError`] with the transport failure (never the URL or a header).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Bytes>, HopError> {
        let res = self
            .client
            .request(req)
            .await
            .map_err(|e| HopError::new("transport", &e))?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| HopError::new("reading the answer", &e))?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The TLS connector with one bound over DNS, TCP and the TLS handshake (`HttpConnector`'s own
/// timeout covers only TCP `connect`). One boxed future per new connection, not per request.
#[derive(Clone)]
struct Bounded {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

impl tower::Service<Uri> for Bounded {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting timed out after {} ms", timeout.as_millis()),
                )) as BoxError),
            }
        })
    }
}
