//! Issue 12 "Hardening": one test per attack, against a running service — a router with the
//! real [`Authenticator`] behind the common layers on 127.0.0.1:0 that echoes the extracted
//! [`Principal`] — with tokens minted by the metadata-server emulator.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

use emulator::{Emulator, EmulatorConfig};
use shared::auth::AuthConfig;
use shared::config::MapSource;
use testkit::claims::{hand_made, now, with};
use testkit::clock::{eventually, jump};
use testkit::echo::serve;
use testkit::emu::Emu;

const AUD: &str = "https://called.example";
const ISS: &str = "https://accounts.google.com";
const SA: &str = "caller@invoker-local.iam.gserviceaccount.com";
const HOUR: Duration = Duration::from_secs(3600);

async fn emulator_with(cfg: EmulatorConfig) -> (Emulator, String) {
    let emu = Emu::start_with(cfg).await;
    let jwks = emu.jwks_url();
    (emu.emulator, jwks)
}

async fn emulator() -> (Emulator, String) {
    emulator_with(EmulatorConfig::default()).await
}

/// Settings for the service under test: `AUD`, the given JWKS URL, plus `pairs`.
fn auth(jwks: &str, pairs: &[(&str, &str)]) -> AuthConfig {
    let mut src = MapSource::from_pairs([("AUTH_AUDIENCES", AUD), ("AUTH_JWKS_URL", jwks)]);
    for (k, v) in pairs {
        src = src.with(k, *v);
    }
    AuthConfig::from_source(&src).expect("auth config")
}

async fn post_with(base: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/"))
        .json(&json!({"bar": "x"}));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post(base: &str, token: &str) -> (u16, Value) {
    post_with(base, &[("authorization", format!("Bearer {token}"))]).await
}

/// Valid claims for `email` at [`AUD`], ten minutes left.
fn claims(email: &str) -> Value {
    let now = now();
    json!({
        "iss": ISS, "aud": AUD, "sub": "1234567890", "azp": "1234567890",
        "iat": now, "exp": now + 600, "email": email, "email_verified": true,
    })
}

// ---- 1. platform mode off Cloud Run ----

#[test]
fn platform_mode_without_cloud_run_refuses_to_start() {
    let base = MapSource::from_pairs([
        ("AUTH_MODE", "platform"),
        ("AUTH_AUDIENCES", AUD),
        ("AUTH_ALLOW_ANY_PRINCIPAL", "true"),
    ]);
    let e = AuthConfig::from_source(&base).expect_err("platform mode off Cloud Run");
    assert_eq!(e.name, "AUTH_MODE");
    assert!(e.to_string().contains("AUTH_PLATFORM_TRUSTED"), "{e}");
    AuthConfig::from_source(&base.clone().with("K_SERVICE", "called")).expect("on Cloud Run");
    AuthConfig::from_source(&base.clone().with("AUTH_PLATFORM_TRUSTED", "true"))
        .expect("operator vouches for the network");
    let e = AuthConfig::from_source(&base.with("AUTH_PLATFORM_TRUSTED", "maybe"))
        .expect_err("bad bool");
    assert_eq!(e.name, "AUTH_PLATFORM_TRUSTED");
}

// ---- 2. unbounded token lifetime ----

#[tokio::test]
async fn ten_year_token_is_refused() {
    let (emu, jwks) = emulator().await;
    let base = serve(auth(&jwks, &[("AUTH_ALLOWED_PRINCIPALS", SA)])).await;
    let n = now();
    let ten_years = with(claims(SA), "exp", json!(n + 10 * 365 * 86400));
    let (status, body) = post(&base, &emu.mint_with(ten_years.clone())).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("lifetime"),
        "{body}"
    );
    // One hour (Google's) plus the skew is fine; a second more is not.
    let (status, _) = post(&base, &emu.mint(SA, AUD, HOUR)).await;
    assert_eq!(status, 201);
    let edge = with(
        with(claims(SA), "iat", json!(n - 60)),
        "exp",
        json!(n + 3600),
    );
    assert_eq!(post(&base, &emu.mint_with(edge)).await.0, 201);
    let over = with(
        with(claims(SA), "iat", json!(n - 61)),
        "exp",
        json!(n + 3600),
    );
    assert_eq!(post(&base, &emu.mint_with(over)).await.0, 401);

    // The bound is a setting, and it also holds in platform mode for stripped tokens.
    let strict = serve(auth(
        &jwks,
        &[
            ("AUTH_ALLOWED_PRINCIPALS", SA),
            ("AUTH_MAX_TOKEN_LIFETIME_SECS", "600"),
        ],
    ))
    .await;
    assert_eq!(post(&strict, &emu.mint(SA, AUD, HOUR)).await.0, 401);
    let platform = serve(auth(
        &jwks,
        &[
            ("AUTH_ALLOWED_PRINCIPALS", SA),
            ("AUTH_MODE", "platform"),
            ("AUTH_PLATFORM_TRUSTED", "true"),
        ],
    ))
    .await;
    assert_eq!(post(&platform, &hand_made(&ten_years)).await.0, 401);
    assert_eq!(post(&platform, &hand_made(&claims(SA))).await.0, 201);
}

// ---- 3. *@domain and hd ----

#[tokio::test]
async fn consumer_account_at_a_workspace_domain_is_refused() {
    let (emu, jwks) = emulator().await;
    let base = serve(auth(
        &jwks,
        &[(
            "AUTH_ALLOWED_PRINCIPALS",
            "*@example.com,*@p.iam.gserviceaccount.com,exact@gmail.com",
        )],
    ))
    .await;
    let user = claims("alice@example.com");
    // A consumer Google account on an @example.com address (no hd), or another Workspace.
    assert_eq!(post(&base, &emu.mint_with(user.clone())).await.0, 403);
    let other = with(user.clone(), "hd", json!("other.com"));
    assert_eq!(post(&base, &emu.mint_with(other)).await.0, 403);
    // The domain's own Workspace account.
    let member = with(user, "hd", json!("example.com"));
    let (status, body) = post(&base, &emu.mint_with(member)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["caller"], "alice@example.com");
    // Service accounts carry no hd and match on their email; exact emails are unchanged.
    let sa = claims("ci@p.iam.gserviceaccount.com");
    assert_eq!(post(&base, &emu.mint_with(sa)).await.0, 201);
    assert_eq!(
        post(&base, &emu.mint_with(claims("exact@gmail.com")))
            .await
            .0,
        201
    );
}

// ---- 4. loose email matching, stored as sent ----

#[tokio::test]
async fn malformed_email_claims_are_refused() {
    let (emu, jwks) = emulator().await;
    let base = serve(auth(&jwks, &[("AUTH_ALLOWED_PRINCIPALS", "*@example.com")])).await;
    let long = format!("{}@example.com", "a".repeat(300));
    for email in [
        " a@example.com",
        "a@example.com ",
        "a@b@example.com",
        "a\t@example.com",
        "a\u{7f}@example.com",
        "a\u{85}@example.com",
        "@example.com",
        "a@",
        long.as_str(),
    ] {
        let c = with(claims(email), "hd", json!("example.com"));
        let (status, body) = post(&base, &emu.mint_with(c)).await;
        assert_eq!(status, 401, "{email:?}: {body}");
        assert!(
            body["detail"].as_str().unwrap_or("").contains("email"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn mixed_case_email_is_matched_and_stored_lower_case() {
    let (emu, jwks) = emulator().await;
    let base = serve(auth(
        &jwks,
        &[("AUTH_ALLOWED_PRINCIPALS", "Alice@Example.com")],
    ))
    .await;
    let (status, body) = post(&base, &emu.mint_with(claims("ALICE@example.COM"))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["caller"], "alice@example.com");
}

// ---- 5. stale keys forever ----

#[tokio::test]
async fn withdrawn_key_is_not_trusted_past_the_stale_bound() {
    let (emu, jwks) = emulator_with(EmulatorConfig {
        jwks_max_age: Duration::from_secs(60),
        ..EmulatorConfig::default()
    })
    .await;
    let base = serve(auth(
        &jwks,
        &[
            ("AUTH_ALLOWED_PRINCIPALS", SA),
            ("AUTH_JWKS_MAX_STALE_SECS", "600"),
        ],
    ))
    .await;
    let token = emu.mint(SA, AUD, HOUR);
    assert_eq!(post(&base, &token).await.0, 201);
    emu.set_jwks_down(true);
    jump(Duration::from_secs(61)).await;
    assert_eq!(post(&base, &token).await.0, 201, "stale keys still serve");
    jump(Duration::from_secs(600)).await;
    let (status, body) = post(&base, &token).await;
    assert_eq!(
        status, 503,
        "past max-age + AUTH_JWKS_MAX_STALE_SECS: {body}"
    );
    // The endpoint is back: keys are fresh again.
    emu.set_jwks_down(false);
    jump(Duration::from_secs(6)).await;
    assert_eq!(post(&base, &token).await.0, 201);
}

/// A key-set endpoint under the test's control: the emulator's keys with the given headers
/// and padding.
async fn key_server(
    emu: &Emulator,
    cache_control: &'static str,
    pad: usize,
) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let emu = emu.clone();
    let counter = Arc::clone(&hits);
    let app = Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let emu = emu.clone();
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut doc = emu.public_jwks();
                doc["padding"] = json!("x".repeat(pad));
                (
                    [
                        (http::header::CACHE_CONTROL, cache_control),
                        (http::header::CONTENT_TYPE, "application/json"),
                    ],
                    doc.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/certs"), hits)
}

#[tokio::test]
async fn no_cache_key_set_is_revalidated() {
    let (emu, _) = emulator().await;
    for directive in ["no-cache", "no-store", "public, max-age=86400, no-cache"] {
        let (jwks, hits) = key_server(&emu, directive, 0).await;
        let base = serve(auth(&jwks, &[("AUTH_ALLOWED_PRINCIPALS", SA)])).await;
        let token = emu.mint(SA, AUD, HOUR);
        assert_eq!(post(&base, &token).await.0, 201);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        jump(Duration::from_secs(31)).await;
        assert_eq!(post(&base, &token).await.0, 201);
        eventually(&format!("a revalidation after {directive}"), || {
            hits.load(std::sync::atomic::Ordering::SeqCst) == 2
        })
        .await;
    }
}

#[tokio::test]
async fn oversized_key_set_is_refused() {
    let (emu, _) = emulator().await;
    let (jwks, hits) = key_server(&emu, "max-age=3600", 2 << 20).await;
    let base = serve(auth(&jwks, &[("AUTH_ALLOWED_PRINCIPALS", SA)])).await;
    let (status, body) = post(&base, &emu.mint(SA, AUD, HOUR)).await;
    assert_eq!(status, 503, "a 2 MiB key set is not loaded: {body}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

// ---- 6. cleartext ----

#[test]
fn cleartext_key_set_url_to_a_remote_host_is_refused() {
    let base = MapSource::from_pairs([
        ("AUTH_AUDIENCES", AUD),
        ("AUTH_ALLOW_ANY_PRINCIPAL", "true"),
    ]);
    for url in [
        "http://keys.example.com/certs",
        "http://10.0.0.7/certs",
        "http://[2001:db8::1]/certs",
        "http://localhost.evil.com/certs",
        "http://127.0.0.1.nip.io/certs",
    ] {
        let e = AuthConfig::from_source(&base.clone().with("AUTH_JWKS_URL", url)).expect_err(url);
        assert_eq!(e.name, "AUTH_JWKS_URL", "{url}");
        assert!(e.to_string().contains("ALLOW_INSECURE_HTTP"), "{e}");
        AuthConfig::from_source(
            &base
                .clone()
                .with("AUTH_JWKS_URL", url)
                .with("ALLOW_INSECURE_HTTP", "true"),
        )
        .expect("explicitly allowed");
    }
    for url in [
        "http://127.0.0.1:8080/certs",
        "http://127.1.2.3/certs",
        "http://localhost:9/certs",
        "http://LOCALHOST/certs",
        "http://[::1]:80/certs",
        "https://keys.example.com/certs",
    ] {
        AuthConfig::from_source(&base.clone().with("AUTH_JWKS_URL", url)).expect(url);
    }
}

// ---- 13. log spoofing ----

// Item 13 (log spoofing) is tested against the real `called` binary's logs:
// `called/tests/resilience/logs.rs` — `forged_log_line_in_an_email_claim_is_escaped`,
// `client_written_forwarded_for_is_not_the_logged_remote_ip`.
