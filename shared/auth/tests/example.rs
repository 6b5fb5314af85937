//! The README's example (`examples/protect.rs`, shown verbatim in the README) run for real: its
//! `app` router over HTTP on loopback, with the metadata-server emulator as Google (key set and
//! metadata server). Only the wiring of `main` differs: the key set and the metadata host are
//! the emulator's instead of Google's.

#[path = "../examples/protect.rs"]
#[allow(dead_code)]
mod example;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use emulator::{Emulator, EmulatorConfig, JWKS_PATH};
use invoker_auth::fetch::{CacheOptions, MetadataSource, TokenCache};
use invoker_auth::verify::{JwksCache, Verifier};
use invoker_auth::{AllowList, Authenticator};
use reqwest::StatusCode;
use serde_json::json;

use example::{Downstream, app};

/// The audience of the example service's callers (its own URL).
const AUD: &str = "https://me-abc-uc.a.run.app";
/// The one allowed caller: the emulator's default service account.
const ALLOWED: &str = "caller@invoker-local.iam.gserviceaccount.com";
/// A valid Google identity that is not on the allow-list.
const OTHER: &str = "intruder@example.com";
const TEN_MINUTES: Duration = Duration::from_secs(600);
const TIMEOUT: Duration = Duration::from_secs(5);

/// An emulator serving on 127.0.0.1:0.
async fn start_emulator() -> (Emulator, SocketAddr) {
    let emu = Emulator::new(EmulatorConfig::default());
    let (addr, _task) = emu
        .clone()
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    (emu, addr)
}

fn jwks_url(emu: SocketAddr) -> String {
    format!("http://{emu}{JWKS_PATH}")
}

/// Serves `router` on 127.0.0.1:0; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    format!("http://{addr}")
}

/// As the example's `main` builds it, with the emulator's key set instead of Google's.
fn authenticator(emu: SocketAddr, audience: &str, allowed: &str) -> Authenticator {
    let verifier = Verifier::builder([audience])
        .keys(JwksCache::builder(jwks_url(emu)).build())
        .build();
    Authenticator::builder(verifier)
        .allow(AllowList::parse([allowed]).expect("allow-list"))
        .build()
}

/// As the example's `main` builds it, with the emulator as the metadata server.
fn downstream(http: reqwest::Client, emu: SocketAddr, url: &str) -> Downstream {
    let source = MetadataSource::try_new(http.clone(), &emu.to_string(), url, TIMEOUT)
        .expect("metadata source");
    Downstream {
        http,
        url: url.to_owned(),
        tokens: TokenCache::new(Arc::new(source), CacheOptions::default()),
    }
}

/// The example's app, protected for [`AUD`] with [`ALLOWED`] allowed, served on loopback; its
/// downstream is a URL nothing listens on (only `/relay` would use it).
async fn example_app(emu: SocketAddr, http: &reqwest::Client) -> String {
    let unused = "http://127.0.0.1:9/";
    serve(app(
        authenticator(emu, AUD, ALLOWED),
        downstream(http.clone(), emu, unused),
    ))
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `GET {base}/whoami` with `token` (if any): status, `WWW-Authenticate`, body.
async fn whoami(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut req = http.get(format!("{base}/whoami"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("whoami");
    let status = res.status();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, www, res.text().await.expect("body"))
}

#[tokio::test]
async fn whoami_answers_the_allowed_caller_with_its_email() {
    let (emu, addr) = start_emulator().await;
    let http = client();
    let base = example_app(addr, &http).await;

    let token = emu.mint(ALLOWED, AUD, TEN_MINUTES);
    let (status, _, body) = whoami(&http, &base, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, format!("{ALLOWED}\n"));
}

#[tokio::test]
async fn whoami_refuses_a_verified_caller_not_on_the_allow_list_with_403() {
    let (emu, addr) = start_emulator().await;
    let http = client();
    let base = example_app(addr, &http).await;

    let token = emu.mint(OTHER, AUD, TEN_MINUTES);
    let (status, www, body) = whoami(&http, &base, Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(www.as_deref(), Some("Bearer error=\"insufficient_scope\""));
    assert!(body.contains("not allowed"), "{body}");
}

#[tokio::test]
async fn whoami_without_a_token_is_401_with_a_bare_bearer_challenge() {
    let (_emu, addr) = start_emulator().await;
    let http = client();
    let base = example_app(addr, &http).await;

    let (status, www, body) = whoami(&http, &base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(www.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn whoami_refuses_tokens_signed_by_another_key_with_401() {
    let (emu, addr) = start_emulator().await;
    let http = client();
    let base = example_app(addr, &http).await;
    // A second emulator: the same claims and header shape, another RSA key.
    let forger = Emulator::new(EmulatorConfig::default());

    // Under the forger's own kid (not in the key set) …
    let own_kid = forger.mint(ALLOWED, AUD, TEN_MINUTES);
    // … and under the real key's kid (the signature does not verify).
    let iat = now();
    let real_kid = forger.sign_with_header(
        json!({"alg": "RS256", "kid": emu.current_kid(), "typ": "JWT"}),
        json!({
            "iss": "https://accounts.google.com", "aud": AUD, "sub": "1", "email": ALLOWED,
            "email_verified": true, "iat": iat, "exp": iat + 600}),
    );
    // The genuine token first, so the key set is loaded.
    let good = emu.mint(ALLOWED, AUD, TEN_MINUTES);
    assert_eq!(whoami(&http, &base, Some(&good)).await.0, StatusCode::OK);

    for (what, token) in [("forger's kid", &own_kid), ("real kid", &real_kid)] {
        let (status, www, body) = whoami(&http, &base, Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(
            www.as_deref(),
            Some("Bearer error=\"invalid_token\""),
            "{what}"
        );
    }
}

#[tokio::test]
async fn whoami_refuses_an_expired_token_with_401() {
    let (emu, addr) = start_emulator().await;
    let http = client();
    let base = example_app(addr, &http).await;

    let expired = emu.mint_with(json!({
        "iss": "https://accounts.google.com", "aud": AUD, "sub": "1", "email": ALLOWED,
        "email_verified": true, "iat": now() - 7600, "exp": now() - 4000}));
    let (status, www, body) = whoami(&http, &base, Some(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(www.as_deref(), Some("Bearer error=\"invalid_token\""));
    assert!(body.contains("expired"), "{body}");
}

#[tokio::test]
async fn whoami_is_503_while_no_key_was_ever_fetched_and_the_key_set_is_down() {
    let (emu, addr) = start_emulator().await;
    emu.set_jwks_down(true);
    let http = client();
    // A fresh authenticator: it has never fetched a key.
    let base = example_app(addr, &http).await;

    let token = emu.mint(ALLOWED, AUD, TEN_MINUTES);
    let (status, www, body) = whoami(&http, &base, Some(&token)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(www, None, "a 503 challenges nobody");
}

#[tokio::test]
async fn health_needs_no_token() {
    let (_emu, addr) = start_emulator().await;
    let http = client();
    let base = example_app(addr, &http).await;

    let res = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.expect("body"), "ok\n");
}

#[tokio::test]
async fn relay_calls_the_downstream_service_with_a_fetched_token() {
    let (emu, addr) = start_emulator().await;
    let http = client();

    // The downstream service: says whether it got a Bearer token, and whose token for which
    // audience it is (verified against the emulator's key set, for its own URL).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let downstream_url = format!("http://{}", listener.local_addr().expect("addr"));
    let verifier = Verifier::builder([downstream_url.clone()])
        .keys(JwksCache::builder(jwks_url(addr)).build())
        .build();
    let echo = Router::new().route(
        "/",
        get(move |headers: HeaderMap| async move {
            let Some(token) = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
            else {
                return "no bearer token".to_owned();
            };
            match verifier.verify(token).await {
                Ok(claims) => format!("bearer token of {}", claims.email.as_deref().unwrap_or("?")),
                Err(e) => format!("bearer token refused: {e}"),
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, echo).await.expect("serve") });

    let base = serve(app(
        authenticator(addr, AUD, ALLOWED),
        downstream(http.clone(), addr, &downstream_url),
    ))
    .await;
    let caller = emu.mint(ALLOWED, AUD, TEN_MINUTES);

    for _ in 0..2 {
        let res = http
            .post(format!("{base}/relay"))
            .bearer_auth(&caller)
            .send()
            .await
            .expect("relay");
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.text().await.expect("body");
        // The emulator's service account is the identity of the tokens its metadata server
        // hands out: here it is also the allowed caller.
        assert_eq!(
            body,
            format!("bearer token of {}", emu.config().service_account)
        );
    }
    // The second relay used the cached token.
    assert_eq!(emu.identity_requests(), 1);

    // Refused callers never reach the downstream service.
    let res = http
        .post(format!("{base}/relay"))
        .send()
        .await
        .expect("relay");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(emu.identity_requests(), 1);
}
