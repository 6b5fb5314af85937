//! HTTP routes of the emulator. Metadata routes answer like Google's metadata server (plain
//! text or JSON, `Metadata-Flavor: Google` required on requests and sent on every answer, 403
//! for requests carrying `X-Forwarded-For`), and only to requests addressed to a name the
//! metadata server is reached by; `/emulator/…` routes answer JSON and problem documents, and
//! only to requests addressed to a loopback `Host`. The key sets (Google's and IAP's) answer any
//! `Host`.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, Request, State};
use axum::middleware::{Next, from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::json;

use super::keys::{IapKey, SigningKey};
use super::metadata::{self, Alt, Endpoint, Entry};
use super::{
    EXPIRED_BY, Emulator, IAP_JWKS_PATH, IAP_PEM_PATH, IapAssertion, IdentityFault, JWKS_PATH,
    PEM_CERTS_PATH, is_email, now_secs,
};
use shared::problem::Problem;

const FLAVOR: &str = "metadata-flavor";
/// The root of the metadata tree.
const V1: &str = "/computeMetadata/v1";
/// Upper bound on `lifetime_secs` of `POST /emulator/mint`.
const MAX_MINT_LIFETIME: u64 = 86_400;
/// Google's metadata server sends text values with this media type.
const TEXT: &str = "application/text";

pub(super) fn router(emu: Emulator) -> Router {
    Router::new()
        .route("/", get(root))
        .route(JWKS_PATH, get(jwks))
        .route(PEM_CERTS_PATH, get(pem_certs))
        .route(IAP_JWKS_PATH, get(iap_jwks))
        .route(IAP_PEM_PATH, get(iap_public_keys))
        .route("/emulator/mint", post(mint))
        .route("/emulator/iap/assertion", post(mint_iap))
        .route("/emulator/rotate", post(rotate))
        .route("/emulator/faults", post(faults))
        .fallback(metadata)
        .layer(from_fn_with_state(emu.clone(), guard_host))
        .layer(map_response(google_headers))
        .with_state(emu)
}

/// The headers Google's metadata server sends on every answer.
async fn google_headers(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.insert(FLAVOR, HeaderValue::from_static("Google"));
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("Metadata Server for VM"),
    );
    headers.insert("x-xss-protection", HeaderValue::from_static("0"));
    headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    res
}

/// Which `Host`s a path answers. A web page that rebinds its own DNS name to 127.0.0.1 reaches
/// this port, but its requests still carry its own name as `Host`: refusing names other than
/// the ones below keeps it from minting tokens (metadata routes) or changing the emulator
/// (`/emulator/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostRule {
    /// `/emulator/*`: loopback names and addresses, or the bind address.
    Loopback,
    /// The metadata routes: [`HostRule::Loopback`]'s hosts and the names a metadata server is
    /// reached by (`metadata.google.internal`, `metadata`, `169.254.169.254`).
    Metadata,
    /// The key sets (public keys, nothing minted, nothing changed): any `Host`, as Google
    /// serves them to anyone.
    Any,
}

fn host_rule(path: &str) -> HostRule {
    if path.starts_with("/emulator/") {
        HostRule::Loopback
    } else if [JWKS_PATH, PEM_CERTS_PATH, IAP_JWKS_PATH, IAP_PEM_PATH].contains(&path) {
        HostRule::Any
    } else {
        HostRule::Metadata
    }
}

/// Refuses requests whose `Host` the path's [`HostRule`] does not admit: a problem document
/// for `/emulator/*`, Google's short text 403 for the metadata routes (`Metadata-Flavor:
/// Google` is added to every answer by [`google_headers`]).
async fn guard_host(State(emu): State<Emulator>, req: Request, next: Next) -> Response {
    let rule = host_rule(req.uri().path());
    if rule == HostRule::Any {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    if host
        .as_deref()
        .is_some_and(|h| host_admitted(h, emu.config().bind, rule))
    {
        return next.run(req).await;
    }
    let shown: String = host
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    tracing::warn!(host = %shown, path = %req.uri().path(), "request refused: Host is not one this emulator is reached by (DNS rebinding?)");
    if rule == HostRule::Loopback {
        return Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "the /emulator/* routes answer only requests addressed to a loopback host \
                 (localhost, 127.0.0.1, [::1]) or the emulator's bind address; Host {shown:?} \
                 is not (this is how a web page reaching the emulator through DNS \
                 rebinding looks)"
            ),
        )
        .into_response();
    }
    text(
        StatusCode::FORBIDDEN,
        "Request denied: the metadata server answers only requests addressed to it \
         (metadata.google.internal, metadata, 169.254.169.254, a loopback host or its bind \
         address).\n",
    )
}

/// Whether a `Host` value (`name[:port]`, `[v6][:port]`) is admitted by `rule`: loopback
/// (`localhost`, `127.0.0.0/8`, `[::1]`) or `bind` for both rules, and the metadata server's
/// names and address for [`HostRule::Metadata`].
fn host_admitted(host: &str, bind: Option<IpAddr>, rule: HostRule) -> bool {
    if rule == HostRule::Any {
        return true;
    }
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return false;
        }
        inside
    } else {
        match host.split_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let metadata = rule == HostRule::Metadata;
    if name.eq_ignore_ascii_case("localhost")
        || (metadata
            && (name.eq_ignore_ascii_case("metadata.google.internal")
                || name.eq_ignore_ascii_case("metadata")))
    {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()) => true,
        Ok(ip) => {
            ip.is_loopback() || Some(ip) == bind || (metadata && ip == IpAddr::from(METADATA_IP))
        }
        Err(_) => false,
    }
}

/// The metadata server's link-local address.
const METADATA_IP: [u8; 4] = [169, 254, 169, 254];

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body.into()).into_response()
}

fn json_text(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `None` when the request carries `Metadata-Flavor: Google` (or the legacy
/// `X-Google-Metadata-Request: True`), else the 403 Google sends.
fn require_flavor(headers: &HeaderMap) -> Option<Response> {
    let flavor = headers.get(FLAVOR).is_some_and(|v| v == "Google");
    let legacy = headers
        .get("x-google-metadata-request")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if flavor || legacy {
        None
    } else {
        Some(text(
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.\n",
        ))
    }
}

async fn root() -> Response {
    text(StatusCode::OK, "computeMetadata/\n")
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not Found\n")
}

/// Moved to the slashed directory path, query kept (as Google's server answers).
fn redirect_to_dir(uri: &Uri) -> Response {
    let location = match uri.query() {
        Some(q) => format!("{}/?{q}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    (
        StatusCode::MOVED_PERMANENTLY,
        [
            (header::LOCATION, location),
            (header::CONTENT_TYPE, TEXT.to_owned()),
        ],
        "Moved Permanently\n",
    )
        .into_response()
}

/// Query parameters of a metadata request, first value of each name.
struct Params(Vec<(String, String)>);

impl Params {
    fn from(uri: &Uri) -> Self {
        Self(
            Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map(|q| q.0)
                .unwrap_or_default(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every `/computeMetadata/…` path (the fallback: anything else is 404).
async fn metadata(
    State(emu): State<Emulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    if path != "/computeMetadata" && !path.starts_with("/computeMetadata/") {
        return not_found();
    }
    if is_identity_path(path) {
        // Every request that reaches the identity endpoint counts, refused ones too.
        emu.inner.identity_requests.fetch_add(1, Ordering::Relaxed);
    }
    if headers.contains_key("x-forwarded-for") {
        return text(
            StatusCode::FORBIDDEN,
            "Request denied: it carries X-Forwarded-For (the metadata server answers only \
             direct requests, never proxied ones).\n",
        );
    }
    if let Some(denied) = require_flavor(&headers) {
        return denied;
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    match path {
        "/computeMetadata" | V1 => return redirect_to_dir(&uri),
        "/computeMetadata/" => return text(StatusCode::OK, "v1/\n"),
        _ => {}
    }
    let Some(rest) = path.strip_prefix(V1).and_then(|r| r.strip_prefix('/')) else {
        return not_found();
    };
    let slashed = rest.is_empty() || rest.ends_with('/');
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() != rest.split('/').count() - usize::from(slashed) {
        return not_found(); // `//` inside the path
    }
    let tree = metadata::tree(emu.config());
    let Some(entry) = metadata::lookup(&tree, &segments) else {
        return not_found();
    };
    let params = Params::from(&uri);
    let alt = match params.get("alt") {
        None => Alt::Default,
        Some("json") => Alt::Json,
        Some("text") => Alt::Text,
        Some(_) => return text(StatusCode::BAD_REQUEST, "Invalid alt parameter.\n"),
    };
    let recursive = params
        .get("recursive")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match entry {
        Entry::Dir(_) if !slashed => redirect_to_dir(&uri),
        _ if slashed && !matches!(entry, Entry::Dir(_)) => not_found(),
        Entry::Endpoint(Endpoint::Token) => access_token(&emu, &params),
        Entry::Endpoint(Endpoint::Identity) => identity(&emu, &params).await,
        _ => {
            let rendered = metadata::render(entry, recursive, alt);
            if rendered.json {
                json_text(rendered.body)
            } else {
                text(StatusCode::OK, rendered.body)
            }
        }
    }
}

/// `/computeMetadata/v1/instance/service-accounts/{any account}/identity`.
fn is_identity_path(path: &str) -> bool {
    path.strip_prefix(V1)
        .and_then(|r| r.strip_prefix("/instance/service-accounts/"))
        .and_then(|r| r.strip_suffix("/identity"))
        .is_some_and(|account| !account.is_empty() && !account.contains('/'))
}

/// `…/service-accounts/*/token`: an opaque access token, as Google's JSON. It is not a JWT, so
/// no invoker service ever accepts it as an identity.
fn access_token(emu: &Emulator, params: &Params) -> Response {
    emu.inner.token_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(scopes) = params.get("scopes")
        && scopes.split(',').any(|s| s.trim().is_empty())
    {
        return text(StatusCode::BAD_REQUEST, "invalid scopes parameter\n");
    }
    let token = format!(
        "ya29.emulator-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let expires_in = emu
        .config()
        .token_lifetime
        .as_secs()
        .saturating_sub(1)
        .max(1);
    json_text(
        json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
            .to_string(),
    )
}

/// `…/service-accounts/*/identity?audience=…[&format=standard|full][&licenses=TRUE|FALSE]`.
async fn identity(emu: &Emulator, params: &Params) -> Response {
    let Some(audience) = params.get("audience").filter(|a| !a.trim().is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "non-empty audience parameter required\n",
        );
    };
    let full = match params.get("format") {
        None | Some("standard") => false,
        Some("full") => true,
        Some(_) => {
            return text(StatusCode::BAD_REQUEST, "format must be standard or full\n");
        }
    };
    if let Some(licenses) = params.get("licenses")
        && !(licenses.eq_ignore_ascii_case("true") || licenses.eq_ignore_ascii_case("false"))
    {
        return text(StatusCode::BAD_REQUEST, "licenses must be TRUE or FALSE\n");
    }
    let fault = emu.take_identity_fault();
    match fault {
        IdentityFault::Unavailable => {
            return text(StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n");
        }
        IdentityFault::ForbiddenOnce => {
            return text(StatusCode::FORBIDDEN, "forbidden (injected fault)\n");
        }
        IdentityFault::GarbageOnce => {
            return text(StatusCode::OK, "<html>this is not a JWT</html>");
        }
        IdentityFault::Stall => std::future::pending::<()>().await,
        IdentityFault::None | IdentityFault::Expired => {}
    }
    let lifetime = emu.config().token_lifetime.as_secs();
    let (iat, exp) = if fault == IdentityFault::Expired {
        let exp = now_secs().saturating_sub(EXPIRED_BY);
        (exp.saturating_sub(lifetime), exp)
    } else {
        let iat = now_secs();
        (iat, iat.saturating_add(lifetime))
    };
    let account = &emu.config().service_account;
    let claims = emu.claims(account, audience, iat, exp, full.then_some(true));
    let key = emu.current();
    match key.sign(&key.header(), &claims) {
        Ok(token) => text(StatusCode::OK, token),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "signing failed\n"),
    }
}

/// Counts a key-set request; `Some(503)` while the key set is down.
fn key_set_request(emu: &Emulator) -> Option<Response> {
    emu.inner.jwks_requests.fetch_add(1, Ordering::Relaxed);
    emu.jwks_down().then(|| {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "key set unavailable (injected fault)\n",
        )
    })
}

fn key_set_cache_control(emu: &Emulator) -> String {
    format!(
        "public, max-age={}, must-revalidate, no-transform",
        emu.config().jwks_max_age.as_secs()
    )
}

/// A key-set answer: the injected outage if any, else `body` of the emulator with the key
/// set's `Cache-Control`. `body` runs only when the set is up.
fn key_set_answer(
    down: Option<Response>,
    emu: &Emulator,
    body: fn(&Emulator) -> serde_json::Value,
) -> Response {
    if let Some(down) = down {
        return down;
    }
    (
        [(header::CACHE_CONTROL, key_set_cache_control(emu))],
        Json(body(emu)),
    )
        .into_response()
}

async fn jwks(State(emu): State<Emulator>) -> Response {
    key_set_answer(key_set_request(&emu), &emu, Emulator::public_jwks)
}

/// Counts a request to IAP's key set; `Some(503)` while it is down.
fn iap_key_set_request(emu: &Emulator) -> Option<Response> {
    emu.inner.iap_key_requests.fetch_add(1, Ordering::Relaxed);
    emu.iap_keys_down().then(|| {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "IAP key set unavailable (injected fault)\n",
        )
    })
}

async fn iap_jwks(State(emu): State<Emulator>) -> Response {
    key_set_answer(iap_key_set_request(&emu), &emu, Emulator::iap_jwks)
}

async fn iap_public_keys(State(emu): State<Emulator>) -> Response {
    key_set_answer(iap_key_set_request(&emu), &emu, Emulator::iap_public_keys)
}

async fn pem_certs(State(emu): State<Emulator>) -> Response {
    key_set_answer(key_set_request(&emu), &emu, Emulator::pem_certs)
}

#[derive(Deserialize)]
struct MintRequest {
    email: String,
    audience: String,
    lifetime_secs: Option<u64>,
    email_verified: Option<bool>,
}

async fn mint(
    State(emu): State<Emulator>,
    body: Result<Json<MintRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rejection) => return Problem::bad_request(rejection.body_text()).into_response(),
    };
    if !is_email(&req.email) {
        return Problem::bad_request("email must be an email address").into_response();
    }
    if req.audience.trim().is_empty() {
        return Problem::bad_request("audience must not be empty").into_response();
    }
    let lifetime = req
        .lifetime_secs
        .unwrap_or(emu.config().token_lifetime.as_secs());
    if !(1..=MAX_MINT_LIFETIME).contains(&lifetime) {
        return Problem::bad_request(format!(
            "lifetime_secs must be between 1 and {MAX_MINT_LIFETIME}"
        ))
        .into_response();
    }
    let iat = now_secs();
    let claims = emu.claims(
        &req.email,
        &req.audience,
        iat,
        iat.saturating_add(lifetime),
        Some(req.email_verified.unwrap_or(true)),
    );
    let key = emu.current();
    match key.sign(&key.header(), &claims) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IapMintRequest {
    email: String,
    audience: String,
    sub: Option<String>,
    hd: Option<String>,
    lifetime_secs: Option<u64>,
    issued_at: Option<u64>,
}

/// `POST /emulator/iap/assertion`: `{"assertion": JWT, "kid": …}`, an IAP assertion with
/// IAP's claims for `email` at `audience` (ten minutes unless `lifetime_secs`; `issued_at`
/// back-dates it for expired ones).
async fn mint_iap(
    State(emu): State<Emulator>,
    body: Result<Json<IapMintRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rejection) => return Problem::bad_request(rejection.body_text()).into_response(),
    };
    if !is_email(&req.email) {
        return Problem::bad_request("email must be an email address").into_response();
    }
    if req.audience.trim().is_empty() {
        return Problem::bad_request("audience must not be empty").into_response();
    }
    let mut assertion = IapAssertion::new(req.email, req.audience);
    assertion.sub = req.sub;
    assertion.hd = req.hd;
    assertion.issued_at = req.issued_at;
    if let Some(secs) = req.lifetime_secs {
        if !(1..=MAX_MINT_LIFETIME).contains(&secs) {
            return Problem::bad_request(format!(
                "lifetime_secs must be between 1 and {MAX_MINT_LIFETIME}"
            ))
            .into_response();
        }
        assertion.lifetime = std::time::Duration::from_secs(secs);
    }
    let key = emu.current_iap();
    match key.sign(&key.header(), &assertion.claims(now_secs())) {
        Ok(jwt) => Json(json!({ "assertion": jwt, "kid": key.kid() })).into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}

/// `POST /emulator/rotate`: a new Google signing key and a new IAP key; the replaced ones stay
/// published. `{"kid": new RSA kid, "iap_kid": new IAP kid}`.
async fn rotate(State(emu): State<Emulator>) -> Response {
    let keys = tokio::task::spawn_blocking(|| {
        Ok::<_, aws_lc_rs::error::Unspecified>((SigningKey::generate()?, IapKey::generate()?))
    })
    .await;
    match keys {
        Ok(Ok((key, iap_key))) => {
            let kid = emu.install(key);
            let iap_kid = emu.install_iap(iap_key);
            Json(json!({ "kid": kid, "iap_kid": iap_kid })).into_response()
        }
        _ => {
            tracing::error!("cannot generate a new signing key");
            Problem::internal().into_response()
        }
    }
}

#[derive(Deserialize)]
struct FaultsRequest {
    identity: Option<IdentityFault>,
    jwks_down: Option<bool>,
    iap_keys_down: Option<bool>,
}

async fn faults(
    State(emu): State<Emulator>,
    body: Result<Json<FaultsRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rejection) => return Problem::bad_request(rejection.body_text()).into_response(),
    };
    if let Some(fault) = req.identity {
        emu.set_identity_fault(fault);
    }
    if let Some(down) = req.jwks_down {
        emu.set_jwks_down(down);
    }
    if let Some(down) = req.iap_keys_down {
        emu.set_iap_keys_down(down);
    }
    tracing::info!(identity = ?emu.identity_fault(), jwks_down = emu.jwks_down(), iap_keys_down = emu.iap_keys_down(), "faults set");
    Json(json!({
        "identity": emu.identity_fault(),
        "jwks_down": emu.jwks_down(),
        "iap_keys_down": emu.iap_keys_down(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::{HostRule, host_admitted, host_rule};

    fn host_is_local(host: &str, bind: Option<std::net::IpAddr>) -> bool {
        host_admitted(host, bind, HostRule::Loopback)
    }

    #[test]
    fn loopback_hosts() {
        let bind = Some("10.1.2.3".parse().expect("ip"));
        for ok in [
            "localhost",
            "localhost:8085",
            "LOCALHOST.:1",
            "127.0.0.1",
            "127.0.0.1:8085",
            "127.9.9.9:1",
            "[::1]",
            "[::1]:8085",
            "[::ffff:127.0.0.1]:80",
            "10.1.2.3:8085",
        ] {
            assert!(host_is_local(ok, bind), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8085",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8085",
            "10.1.2.4",
            "[::2]:80",
            "127.0.0.1:80:80",
            "[::1]x",
            "0.0.0.0:8085",
        ] {
            assert!(!host_is_local(bad, bind), "{bad}");
        }
        assert!(!host_is_local("10.1.2.3", None));
    }

    #[test]
    fn metadata_hosts() {
        let bind = Some("10.1.2.3".parse().expect("ip"));
        let metadata = |h: &str| host_admitted(h, bind, HostRule::Metadata);
        for ok in [
            "metadata.google.internal",
            "METADATA.google.internal.:80",
            "metadata",
            "metadata:8085",
            "169.254.169.254",
            "169.254.169.254:80",
            "localhost:8085",
            "127.0.0.1:8085",
            "[::1]:8085",
            "10.1.2.3:8085",
        ] {
            assert!(metadata(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8085",
            "metadata.google.internal.evil.example",
            "metadata.evil.example",
            "169.254.169.253",
            "169.254.169.254.nip.io",
            "10.1.2.4",
            "0.0.0.0:8085",
        ] {
            assert!(!metadata(bad), "{bad}");
        }
        // The metadata names never open the control routes.
        for name in ["metadata.google.internal", "metadata", "169.254.169.254"] {
            assert!(!host_is_local(name, bind), "{name}");
        }
        assert!(host_admitted("evil.example", None, HostRule::Any));
    }

    #[test]
    fn rules_by_path() {
        assert_eq!(host_rule("/emulator/mint"), HostRule::Loopback);
        assert_eq!(host_rule("/oauth2/v3/certs"), HostRule::Any);
        assert_eq!(host_rule("/oauth2/v1/certs"), HostRule::Any);
        assert_eq!(host_rule("/iap/verify/public_key-jwk"), HostRule::Any);
        assert_eq!(host_rule("/iap/verify/public_key"), HostRule::Any);
        assert_eq!(host_rule("/emulator/iap/assertion"), HostRule::Loopback);
        for path in [
            "/",
            "/computeMetadata/v1/instance/service-accounts/default/identity",
            "/x",
        ] {
            assert_eq!(host_rule(path), HostRule::Metadata, "{path}");
        }
    }
}
