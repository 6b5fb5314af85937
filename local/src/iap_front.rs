//! The IAP front: what Identity-Aware Proxy does in front of a Cloud Run service, on loopback,
//! so that `caller` can be run and tested as it runs behind IAP.
//!
//! For every request it
//! 1. takes the signed-in person from the development header [`USER_HEADER`]
//!    (`X-Local-Iap-User: alice@example.com`) — without it, 401, where IAP would send the browser
//!    to Google's sign-in page;
//! 2. drops what a client may not send past IAP: every `x-goog-*` header (IAP strips them),
//!    `X-Serverless-Authorization`, the development header itself and the hop-by-hop headers;
//! 3. adds what IAP and Cloud Run add: `X-Goog-IAP-JWT-Assertion` (an ES256 assertion minted by
//!    the emulator for the person, `aud` the IAP audience), `X-Serverless-Authorization: Bearer
//!    <IAP service agent's ID token for the caller's URL, signature stripped as Cloud Run
//!    does>`, the unsigned `X-Goog-Authenticated-User-Email` / `-Id` (to show they are never
//!    trusted: anyone reaching the container directly can write them), and `X-Forwarded-For` /
//!    `X-Forwarded-Proto`;
//! 4. proxies the request to the caller and streams the answer back.
//!
//! The client's own `Authorization` header passes through untouched, as IAP passes it on.
//! The front authorises no one: the person it names is whoever the header says, so the caller's
//! own allow-list is what decides (as IAP's IAM check would, one step earlier). It listens only
//! on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use emulator::{Emulator, IapAssertion, iap_subject};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use shared::problem::Problem;

/// The development header naming the signed-in person (IAP learns it from Google's sign-in).
pub const USER_HEADER: &str = "x-local-iap-user";

/// IAP's signed assertion of the person.
pub const ASSERTION_HEADER: &str = "x-goog-iap-jwt-assertion";

/// The header Cloud Run checks; behind IAP it holds IAP's service agent's ID token.
pub const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

/// The unsigned person headers IAP also sends (`accounts.google.com:EMAIL` / `:ID`).
pub const UNSIGNED_EMAIL_HEADER: &str = "x-goog-authenticated-user-email";

/// See [`UNSIGNED_EMAIL_HEADER`].
pub const UNSIGNED_ID_HEADER: &str = "x-goog-authenticated-user-id";

/// How long the front waits for the caller's response head.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers meaningful only on one connection (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The front: the emulator that mints the assertions, the caller it forwards to, and the IAP
/// audience it writes. Cheap to clone.
#[derive(Clone)]
pub struct IapFront {
    emulator: Emulator,
    caller_url: String,
    authority: Authority,
    audience: String,
    client: Client<HttpConnector, Body>,
}

impl std::fmt::Debug for IapFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IapFront")
            .field("caller_url", &self.caller_url)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The caller's URL is not `http://HOST:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("the IAP front forwards to an http://HOST:PORT URL without a path, not {0:?}")]
pub struct BadCallerUrl(String);

impl IapFront {
    /// A front for the caller at `caller_url` (`http://127.0.0.1:PORT`, also the `aud` of the
    /// service agent's token), writing assertions for `audience` minted by `emulator`.
    ///
    /// # Errors
    /// If `caller_url` is not `http://HOST:PORT` (an optional trailing `/`).
    pub fn new(emulator: Emulator, caller_url: &str, audience: &str) -> Result<Self, BadCallerUrl> {
        let bad = || BadCallerUrl(caller_url.to_owned());
        let uri: Uri = caller_url.parse().map_err(|_| bad())?;
        if uri.scheme() != Some(&Scheme::HTTP) || !matches!(uri.path(), "" | "/") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?.clone();
        Ok(Self {
            emulator,
            caller_url: caller_url.trim_end_matches('/').to_owned(),
            authority,
            audience: audience.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// The IAP audience the front writes in its assertions.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The caller's URL.
    pub fn caller_url(&self) -> &str {
        &self.caller_url
    }

    /// Every path, every method: [`IapFront`]'s steps.
    pub fn router(&self) -> Router {
        Router::new().fallback(forward).with_state(self.clone())
    }

    /// Serves the front on `listener` until `shutdown` completes (in-flight requests get a
    /// second to finish).
    ///
    /// # Errors
    /// If the server fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        shared::server::serve(
            listener,
            self.router(),
            shutdown,
            Duration::from_secs(1),
            Duration::from_secs(10),
        )
        .await
    }
}

/// The person in [`USER_HEADER`]: `Err` with the answer when it is missing (401) or not one
/// email address (400).
fn person(headers: &HeaderMap) -> Result<String, Problem> {
    let mut values = headers.get_all(USER_HEADER).iter();
    let Some(value) = values.next() else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "nobody is signed in: IAP would send you to Google's sign-in page here. Locally, \
             name the signed-in person in the X-Local-Iap-User header, e.g. \
             -H 'X-Local-Iap-User: alice@example.com'",
        ));
    };
    let email = value.to_str().unwrap_or("").trim();
    let valid = values.next().is_none()
        && email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
        && email.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(email.to_owned())
    } else {
        Err(Problem::bad_request(
            "X-Local-Iap-User must be one email address, e.g. alice@example.com",
        ))
    }
}

/// Drops what never passes IAP: `x-goog-*`, `X-Serverless-Authorization`, the development
/// header, the hop-by-hop headers (and those `Connection` names), and `Host`.
fn strip_client_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with("x-goog-") || name == SERVERLESS_AUTHORIZATION || name == USER_HEADER
        })
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
    headers.remove(header::HOST);
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// A header value the front wrote itself (tokens, emails checked above: always valid).
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

async fn forward(State(front): State<IapFront>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let person = match person(&parts.headers) {
        Ok(p) => p,
        Err(refused) => return refused.into_response(),
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let headers = &mut parts.headers;
    strip_client_headers(headers);
    let assertion = front
        .emulator
        .mint_iap(&IapAssertion::new(&person, &front.audience));
    let agent = front.emulator.iap_service_agent_token(&front.caller_url);
    headers.insert(ASSERTION_HEADER, value(&assertion));
    headers.insert(SERVERLESS_AUTHORIZATION, value(&format!("Bearer {agent}")));
    headers.insert(
        UNSIGNED_EMAIL_HEADER,
        value(&format!("accounts.google.com:{person}")),
    );
    headers.insert(UNSIGNED_ID_HEADER, value(&iap_subject(&person)));
    if let Some(ip) = peer {
        let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {ip}"),
            None => ip.to_string(),
        };
        headers.insert("x-forwarded-for", value(&forwarded));
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = match Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(front.authority.clone())
        .path_and_query(path)
        .build()
    {
        Ok(uri) => uri,
        Err(_) => return Problem::bad_request("unusable request target").into_response(),
    };
    parts.version = Version::HTTP_11;
    let sent = tokio::time::timeout(
        UPSTREAM_TIMEOUT,
        front.client.request(Request::from_parts(parts, body)),
    )
    .await;
    match sent {
        Ok(Ok(res)) => {
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, caller = %front.caller_url, "IAP front: caller unreachable");
            Problem::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the IAP front could not reach the caller at {}",
                    front.caller_url
                ),
            )
            .into_response()
        }
        Err(_) => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the caller at {} did not answer within {} s",
                front.caller_url,
                UPSTREAM_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_person_header_is_required_and_one_email() {
        let mut h = HeaderMap::new();
        assert_eq!(person(&h).expect_err("missing").status, 401);
        for bad in [
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "a@b@example.com",
        ] {
            h.insert(USER_HEADER, HeaderValue::from_static(bad));
            assert_eq!(person(&h).expect_err(bad).status, 400, "{bad}");
        }
        h.insert(USER_HEADER, HeaderValue::from_static(" alice@example.com "));
        assert_eq!(person(&h).expect("valid"), "alice@example.com");
        h.append(USER_HEADER, HeaderValue::from_static("bob@example.com"));
        assert_eq!(person(&h).expect_err("two people").status, 400);
    }

    #[test]
    fn client_headers_that_never_pass_iap_are_dropped() {
        let mut h = HeaderMap::new();
        for (name, v) in [
            ("x-goog-iap-jwt-assertion", "forged"),
            (
                "X-Goog-Authenticated-User-Email",
                "accounts.google.com:admin@example.com",
            ),
            ("x-goog-anything", "x"),
            ("x-serverless-authorization", "Bearer forged"),
            ("x-local-iap-user", "alice@example.com"),
            ("connection", "close, x-private"),
            ("x-private", "hop"),
            ("transfer-encoding", "chunked"),
            ("host", "elsewhere"),
            ("authorization", "Bearer kept"),
            ("content-type", "application/json"),
            ("x-request-id", "kept"),
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value(v),
            );
        }
        strip_client_headers(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type", "x-request-id"]);
    }

    #[test]
    fn the_caller_url_is_an_origin() {
        let emu = Emulator::new(emulator::EmulatorConfig::default());
        let front = IapFront::new(emu.clone(), "http://127.0.0.1:8080/", "/aud").expect("ok");
        assert_eq!(front.caller_url(), "http://127.0.0.1:8080");
        for bad in [
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8080/x",
            "127.0.0.1:8080",
        ] {
            assert!(IapFront::new(emu.clone(), bad, "/aud").is_err(), "{bad}");
        }
    }
}
