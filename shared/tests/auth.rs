//! Token verification and the key-set cache against the metadata-server emulator, over real
//! HTTP on loopback. Cache ages are driven by jumping Tokio's clock (`pause`/`advance`/`resume`)
//! between requests, never while one is in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use emulator::{Emulator, EmulatorConfig, IdentityFault, JWKS_PATH};
use invoker_auth::verify::{JwksCache, STRIPPED_SIGNATURE, Signature, Verifier};
use invoker_auth::{AuthError, Claims};
use shared::auth::AuthConfig;
use shared::config::MapSource;
use testkit::claims::{now, strip, with, without};
use testkit::clock::{eventually, jump};
use testkit::emu::Emu;

const AUD: &str = "https://called.example";
const ISS: &str = "https://accounts.google.com";
const SA: &str = "caller@invoker-local.iam.gserviceaccount.com";
const HOUR: Duration = Duration::from_secs(3600);

struct Env {
    emu: Emulator,
    addr: SocketAddr,
    verifier: Both,
}

async fn env_with(cfg: EmulatorConfig) -> Env {
    let Emu {
        emulator: emu,
        addr,
    } = Emu::start_with(cfg).await;
    let verifier = verifier_at(&testkit::wiring::jwks_url(addr), &[]);
    Env {
        emu,
        addr,
        verifier,
    }
}

impl Env {
    /// The claims of `token`, verified with its signature required; panics naming `what`.
    async fn accepts(&self, token: &str, what: &str) -> Arc<Claims> {
        self.verifier
            .verify(token, Signature::Required)
            .await
            .expect(what)
    }

    /// Why `token` is refused with its signature required.
    async fn refuses(&self, token: &str) -> String {
        reason(self.verifier.verify(token, Signature::Required).await)
    }

    /// Why `token` is refused in platform mode (signature stripped by Cloud Run).
    async fn refuses_stripped(&self, token: &str) -> String {
        reason(
            self.verifier
                .verify(token, Signature::StrippedByCloudRun)
                .await,
        )
    }
}

/// A verifier for [`AUD`], any principal, the key set at `jwks`, plus the settings `extra`.
/// One key-set cache and a verifier per signature rule on it, as a service builds them.
struct Both {
    required: Verifier,
    stripped: Verifier,
    keys: JwksCache,
}

impl Both {
    async fn verify(&self, token: &str, rule: Signature) -> Result<Arc<Claims>, AuthError> {
        match rule {
            Signature::Required => self.required.verify(token).await,
            _ => self.stripped.verify(token).await,
        }
    }

    fn keys(&self) -> &JwksCache {
        &self.keys
    }

    async fn ready(&self) -> bool {
        self.required.ready().await
    }
}

fn verifier_at(jwks: &str, extra: &[(&str, &str)]) -> Both {
    let mut src = MapSource::from_pairs([
        ("AUTH_AUDIENCES", AUD),
        ("AUTH_ALLOW_ANY_PRINCIPAL", "true"),
        ("AUTH_JWKS_URL", jwks),
    ]);
    for (k, v) in extra {
        src = src.with(k, *v);
    }
    let auth = AuthConfig::from_source(&src).expect("auth config");
    let keys = auth.key_set(reqwest::Client::new());
    let on = |rule| auth.verifier(&auth.audiences, rule, Arc::new(keys.clone()));
    Both {
        required: on(Signature::Required),
        stripped: on(Signature::StrippedByCloudRun),
        keys,
    }
}

async fn env() -> Env {
    env_with(EmulatorConfig::default()).await
}

/// An emulator publishing its key set with `max-age` `max_age`, and a token the verifier has
/// accepted once (so the set is cached).
async fn warm_with_max_age(max_age: Duration) -> (Env, String) {
    let e = env_with(EmulatorConfig {
        jwks_max_age: max_age,
        ..EmulatorConfig::default()
    })
    .await;
    let token = e.emu.mint(SA, AUD, HOUR);
    e.accepts(&token, "valid").await;
    (e, token)
}

/// Valid claims for [`AUD`]; tests change one thing at a time.
fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISS, "aud": AUD, "sub": "1234567890", "azp": "1234567890",
        "iat": now, "exp": now + 600, "email": SA, "email_verified": true,
    })
}

/// Why a token was refused (a 401 reason: not a key outage, not an allow-list refusal).
fn reason(r: Result<Arc<Claims>, AuthError>) -> String {
    match r {
        Err(e) if e.kind() == invoker_auth::ErrorKind::Unauthenticated => e.to_string(),
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

fn parts(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let e = env().await;
    let token = e.emu.mint(SA, AUD, HOUR);
    let c = e.accepts(&token, "valid").await;
    assert_eq!(c.email.as_deref(), Some(SA));
    assert_eq!(c.email_verified, Some(true));
    assert_eq!(c.aud, AUD);
    assert_eq!(c.iss, ISS);
    assert!(c.sub.len() > 10 && c.sub.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(c.exp - c.iat, 3600);
    // The same token again: served from the cache, no new fetch.
    e.accepts(&token, "valid again").await;
    assert_eq!(e.emu.jwks_requests(), 1);
    assert_eq!(e.verifier.keys().fetch_count(), 1);
    assert!(e.verifier.ready().await);
}

#[tokio::test]
async fn email_verified_may_be_a_string() {
    let e = env().await;
    let t = e
        .emu
        .mint_with(with(claims(), "email_verified", json!("true")));
    assert_eq!(e.accepts(&t, "ok").await.email_verified, Some(true));
    let t = e
        .emu
        .mint_with(with(claims(), "email_verified", json!("false")));
    assert_eq!(e.accepts(&t, "ok").await.email_verified, Some(false));
    let t = e.emu.mint_with(without(claims(), "email_verified"));
    assert_eq!(e.accepts(&t, "ok").await.email_verified, None);
    let t = e
        .emu
        .mint_with(with(claims(), "email_verified", json!("maybe")));
    e.refuses(&t).await;
}

#[tokio::test]
async fn claims_are_checked() {
    let e = env().await;
    let n = now();
    let cases = [
        (
            "wrong aud",
            with(claims(), "aud", json!("https://other.example")),
            "audience",
        ),
        (
            "wrong iss",
            with(claims(), "iss", json!("https://evil.example")),
            "issuer",
        ),
        (
            "expired",
            with(
                with(claims(), "exp", json!(n - 3600)),
                "iat",
                json!(n - 7200),
            ),
            "expired",
        ),
        (
            "iat in the future",
            with(claims(), "iat", json!(n + 600)),
            "future",
        ),
        (
            "nbf in the future",
            with(claims(), "nbf", json!(n + 600)),
            "nbf",
        ),
        (
            "exp as a string",
            with(claims(), "exp", json!((n + 600).to_string())),
            "type",
        ),
        ("aud as a number", with(claims(), "aud", json!(42)), "type"),
        ("iat missing", without(claims(), "iat"), "iat"),
        ("exp missing", without(claims(), "exp"), "exp"),
        ("iss missing", without(claims(), "iss"), "iss"),
        ("aud missing", without(claims(), "aud"), "aud"),
        ("negative exp", with(claims(), "exp", json!(-1)), "type"),
        ("claims not an object", json!([1, 2]), "type"),
    ];
    for (what, claims, expected) in cases {
        let token = e.emu.mint_with(claims);
        let r = e.refuses(&token).await;
        assert!(r.contains(expected), "{what}: {r}");
        assert!(!r.contains(&token), "{what}: reason contains the token");
    }
    // Inside the 60 s skew: accepted.
    let t = e.emu.mint_with(with(claims(), "iat", json!(n + 30)));
    e.accepts(&t, "iat within skew").await;
    let t = e.emu.mint_with(with(claims(), "exp", json!(n - 30)));
    e.accepts(&t, "exp within skew").await;
    let t = e.emu.mint_with(with(claims(), "nbf", json!(n + 30)));
    e.accepts(&t, "nbf within skew").await;
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let e = env().await;
    let good = e.emu.mint(SA, AUD, HOUR);
    let p = parts(&good);
    let two = format!("{}.{}", p[0], p[1]);
    let four = format!("{good}.{}", p[2]);
    let long = "a".repeat(20_000);
    for bad in [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "..",
        "a..c",
        two.as_str(),
        four.as_str(),
        &format!("{}.{}.", p[0], p[1]),
        &format!("{}.{}.!!!", p[0], p[1]),
        &format!("e30.{}.{}", p[1], p[2]),
        &format!("{}.!!.{}", p[0], p[2]),
        long.as_str(),
    ] {
        e.refuses(bad).await;
        e.refuses_stripped(bad).await;
    }
}

#[tokio::test]
async fn alg_none_and_foreign_algorithms_are_rejected() {
    let e = env().await;
    let kid = e.emu.current_kid();
    let payload = B64.encode(serde_json::to_vec(&claims()).expect("json"));
    for alg in ["none", "None", "HS256", "RS512", "PS256", "EdDSA"] {
        let header = B64.encode(json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string());
        for sig in ["", "e30", STRIPPED_SIGNATURE] {
            let token = format!("{header}.{payload}.{sig}");
            e.refuses(&token).await;
            e.refuses_stripped(&token).await;
        }
    }
    // RSA-signed but claiming another algorithm in the header.
    let t = e
        .emu
        .sign_with_header(json!({"alg": "RS384", "kid": kid, "typ": "JWT"}), claims());
    e.refuses(&t).await;
    // ES256 is allowed only for EC keys; this kid is an RSA key.
    let header = B64.encode(json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string());
    let token = format!("{header}.{payload}.e30");
    assert!(e.refuses(&token).await.contains("does not match"));
    // No kid.
    let t = e
        .emu
        .sign_with_header(json!({"alg": "RS256", "typ": "JWT"}), claims());
    assert!(e.refuses(&t).await.contains("kid"));
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    let e = env().await;
    let jwks = e.emu.public_jwks();
    let jwk = &jwks["keys"][0];
    let kid = jwk["kid"].as_str().expect("kid");
    let n = B64.decode(jwk["n"].as_str().expect("n")).expect("n bytes");
    let jwk_text = jwk.to_string();
    let header = B64.encode(json!({"alg": "HS256", "kid": kid, "typ": "JWT"}).to_string());
    let payload = B64.encode(claims().to_string());
    let message = format!("{header}.{payload}");
    for secret in [n.as_slice(), jwk_text.as_bytes()] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        let token = format!("{message}.{}", B64.encode(tag.as_ref()));
        let r = e.refuses(&token).await;
        assert!(r.contains("algorithm"), "{r}");
    }
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_rejected() {
    let e = env().await;
    let stranger = Emulator::new(EmulatorConfig::default());
    // Warm the cache.
    e.accepts(&e.emu.mint(SA, AUD, HOUR), "valid").await;
    // Known kid, signature from another key.
    let header = json!({"alg": "RS256", "kid": e.emu.current_kid(), "typ": "JWT"});
    let forged = stranger.sign_with_header(header, claims());
    assert!(e.refuses(&forged).await.contains("signature"));
    assert!(e.refuses_stripped(&forged).await.contains("signature"));
    // Tampered payload: another principal under the original signature.
    let good = e.emu.mint(SA, AUD, HOUR);
    let p = parts(&good);
    let evil = B64.encode(with(claims(), "email", json!("admin@example.com")).to_string());
    let tampered = format!("{}.{evil}.{}", p[0], p[2]);
    assert!(e.refuses(&tampered).await.contains("signature"));
    // Signature bytes flipped.
    let mut sig = B64.decode(p[2]).expect("sig");
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", p[0], p[1], B64.encode(sig));
    assert!(e.refuses(&flipped).await.contains("signature"));
}

#[tokio::test]
async fn unknown_kid_refetches_once_per_cooldown() {
    let e = env().await;
    let stranger = Emulator::new(EmulatorConfig::default());
    e.accepts(&e.emu.mint(SA, AUD, HOUR), "valid").await;
    assert_eq!(e.emu.jwks_requests(), 1);
    let unknown = stranger.mint(SA, AUD, HOUR);
    assert_eq!(e.refuses(&unknown).await, "unknown signing key");
    assert_eq!(e.emu.jwks_requests(), 2, "one refetch for the unknown kid");
    // A flood within the cooldown, sequential and concurrent: no more fetches.
    for _ in 0..50 {
        e.refuses(&unknown).await;
    }
    let flood = (0..50).map(|_| e.verifier.verify(&unknown, Signature::Required));
    for r in futures_util::future::join_all(flood).await {
        reason(r);
    }
    assert_eq!(e.emu.jwks_requests(), 2, "cooldown holds");
    // Known keys still work meanwhile.
    e.accepts(&e.emu.mint(SA, AUD, HOUR), "valid").await;
    // After the cooldown, one more refetch.
    jump(Duration::from_secs(31)).await;
    e.refuses(&unknown).await;
    e.refuses(&unknown).await;
    assert_eq!(e.emu.jwks_requests(), 3);
}

#[tokio::test]
async fn concurrent_cold_requests_share_one_fetch() {
    let e = env().await;
    let token = e.emu.mint(SA, AUD, HOUR);
    let all = (0..32).map(|_| e.verifier.verify(&token, Signature::Required));
    for r in futures_util::future::join_all(all).await {
        r.expect("valid");
    }
    assert_eq!(e.emu.jwks_requests(), 1);
}

#[tokio::test]
async fn stripped_signatures_only_in_platform_mode() {
    let e = env().await;
    let good = strip(&e.emu.mint(SA, AUD, HOUR));
    assert!(e.refuses(&good).await.contains("removed"));
    let c = e
        .verifier
        .verify(&good, Signature::StrippedByCloudRun)
        .await
        .expect("platform mode");
    assert_eq!(c.email.as_deref(), Some(SA));
    // The claims are still checked.
    let n = now();
    for (what, bad) in [
        ("aud", with(claims(), "aud", json!("https://other.example"))),
        ("iss", with(claims(), "iss", json!("https://evil.example"))),
        (
            "exp",
            with(
                with(claims(), "exp", json!(n - 3600)),
                "iat",
                json!(n - 7200),
            ),
        ),
        ("iat", with(claims(), "iat", json!(n + 600))),
        ("nbf", with(claims(), "nbf", json!(n + 600))),
        ("exp type", with(claims(), "exp", json!("soon"))),
        ("iat missing", without(claims(), "iat")),
    ] {
        let token = strip(&e.emu.mint_with(bad));
        let r = e.refuses_stripped(&token).await;
        assert!(!r.is_empty(), "{what}");
    }
    // Stripped tokens never touch the key set.
    assert_eq!(e.emu.jwks_requests(), 0);
    // A real signature in platform mode is verified.
    let real = e.emu.mint(SA, AUD, HOUR);
    e.verifier
        .verify(&real, Signature::StrippedByCloudRun)
        .await
        .expect("signed");
    let forged = Emulator::new(EmulatorConfig::default()).sign_with_header(
        json!({"alg": "RS256", "kid": e.emu.current_kid(), "typ": "JWT"}),
        claims(),
    );
    assert!(e.refuses_stripped(&forged).await.contains("signature"));
    // Lower-case or padded variants are not the marker.
    let p = parts(&real);
    let odd = format!("{}.{}.signature_removed_by_google", p[0], p[1]);
    e.refuses_stripped(&odd).await;
}

#[tokio::test]
async fn key_rotation_is_picked_up_without_restart() {
    let e = env().await;
    let before = e.emu.mint(SA, AUD, HOUR);
    e.accepts(&before, "old key").await;
    let old_kid = e.emu.current_kid();
    let new_kid = e.emu.rotate();
    assert_ne!(old_kid, new_kid);
    let after = e.emu.mint(SA, AUD, HOUR);
    e.accepts(&after, "new key").await;
    e.accepts(&before, "old key still published").await;
    assert_eq!(e.emu.jwks_requests(), 2);
}

#[tokio::test]
async fn key_set_down_at_start_then_recovers() {
    let e = env().await;
    e.emu.set_jwks_down(true);
    let token = e.emu.mint(SA, AUD, HOUR);
    assert!(matches!(
        e.verifier.verify(&token, Signature::Required).await,
        Err(AuthError::KeysUnavailable(_))
    ));
    assert!(!e.verifier.ready().await);
    assert!(!e.verifier.keys().has_keys());
    // Forged tokens are never accepted either.
    let forged = Emulator::new(EmulatorConfig::default()).mint(SA, AUD, HOUR);
    assert!(
        e.verifier
            .verify(&forged, Signature::Required)
            .await
            .is_err()
    );
    let fetches = e.emu.jwks_requests();
    assert_eq!(fetches, 1, "failure backoff: one attempt");
    e.emu.set_jwks_down(false);
    // Still inside the failure backoff: no new attempt, still unavailable.
    assert!(matches!(
        e.verifier.verify(&token, Signature::Required).await,
        Err(AuthError::KeysUnavailable(_))
    ));
    assert_eq!(e.emu.jwks_requests(), fetches);
    jump(Duration::from_secs(6)).await;
    e.accepts(&token, "recovered").await;
    assert!(e.verifier.ready().await);
    assert_eq!(e.emu.jwks_requests(), fetches + 1);
}

#[tokio::test]
async fn cached_keys_serve_while_the_key_set_is_down() {
    let (e, token) = warm_with_max_age(Duration::from_secs(60)).await;
    e.emu.set_jwks_down(true);
    jump(Duration::from_secs(61)).await;
    // Stale: served at once, refreshed in the background (which fails).
    e.accepts(&token, "stale key served").await;
    eventually("a background refresh", || e.emu.jwks_requests() == 2).await;
    for _ in 0..20 {
        e.accepts(&token, "stale key served").await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        e.emu.jwks_requests(),
        2,
        "no retry inside the failure backoff"
    );
    jump(Duration::from_secs(6)).await;
    e.accepts(&token, "stale key served").await;
    eventually("a retry", || e.emu.jwks_requests() == 3).await;
    // Back up: the next retry succeeds and the set is fresh again.
    e.emu.set_jwks_down(false);
    jump(Duration::from_secs(6)).await;
    e.accepts(&token, "valid").await;
    eventually("a successful refresh", || e.emu.jwks_requests() == 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        e.accepts(&token, "valid").await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(e.emu.jwks_requests(), 4, "fresh again");
}

#[tokio::test]
async fn cache_control_max_age_is_honoured() {
    let (e, token) = warm_with_max_age(Duration::from_secs(120)).await;
    jump(Duration::from_secs(100)).await;
    e.accepts(&token, "fresh").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(e.emu.jwks_requests(), 1, "still fresh at 100 s");
    jump(Duration::from_secs(30)).await;
    e.accepts(&token, "stale but served").await;
    eventually("a background refresh", || e.emu.jwks_requests() == 2).await;
}

#[tokio::test]
async fn stalled_key_set_times_out_without_accepting() {
    // A listener that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let verifier = verifier_at(&format!("http://{addr}/certs"), &[]);
    let emu = Emulator::new(EmulatorConfig::default());
    let token = emu.mint(SA, AUD, HOUR);
    let started = std::time::Instant::now();
    let r = verifier.verify(&token, Signature::Required).await;
    assert!(matches!(r, Err(AuthError::KeysUnavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

// ---- the emulator's own HTTP surface ----

async fn get(addr: SocketAddr, path: &str, flavor: bool) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if flavor {
        req = req.header("Metadata-Flavor", "Google");
    }
    req.send().await.expect("request")
}

fn payload(token: &str) -> Value {
    let p = parts(token);
    assert_eq!(p.len(), 3, "a JWT");
    serde_json::from_slice(&B64.decode(p[1]).expect("b64")).expect("json")
}

const IDENTITY: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";

#[tokio::test]
async fn identity_endpoint_behaves_like_google() {
    let e = env().await;
    let q = format!("{IDENTITY}?audience={AUD}");

    let r = get(e.addr, &q, false).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["metadata-flavor"], "Google");

    let r = get(e.addr, IDENTITY, true).await;
    assert_eq!(r.status(), 400);
    let r = get(e.addr, &format!("{IDENTITY}?audience="), true).await;
    assert_eq!(r.status(), 400);
    let r = get(e.addr, &format!("{q}&format=weird"), true).await;
    assert_eq!(r.status(), 400);

    let r = get(e.addr, &format!("{q}&format=standard"), true).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["metadata-flavor"], "Google");
    let standard = r.text().await.expect("body");
    let c = payload(&standard);
    assert!(c.get("email").is_none(), "standard has no email");
    for k in ["iss", "aud", "azp", "sub", "iat", "exp"] {
        assert!(c.get(k).is_some(), "{k}");
    }
    assert_eq!(c["aud"], AUD);
    assert_eq!(
        c["exp"].as_u64().expect("exp") - c["iat"].as_u64().expect("iat"),
        3600
    );
    let v = e.accepts(&standard, "verifies").await;
    assert_eq!(v.email, None);

    let full = get(e.addr, &format!("{q}&format=full"), true)
        .await
        .text()
        .await
        .expect("body");
    let c = payload(&full);
    assert_eq!(c["email"], SA);
    assert_eq!(c["email_verified"], true);
    let v = e.accepts(&full, "verifies").await;
    assert_eq!(v.email.as_deref(), Some(SA));
    assert_eq!(v.sub, c["sub"].as_str().expect("sub"));

    // The account email in place of `default`; another account is not found.
    let by_email = IDENTITY.replace("default", SA);
    let r = get(e.addr, &format!("{by_email}?audience={AUD}"), true).await;
    assert_eq!(r.status(), 200);
    let other = IDENTITY.replace("default", "someone@else.iam.gserviceaccount.com");
    let r = get(e.addr, &format!("{other}?audience={AUD}"), true).await;
    assert_eq!(r.status(), 404);
    assert_eq!(e.emu.identity_requests(), 8);
}

#[tokio::test]
async fn other_metadata_routes() {
    let e = env().await;
    let r = get(e.addr, "/", false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["metadata-flavor"], "Google");
    let email = "/computeMetadata/v1/instance/service-accounts/default/email";
    assert_eq!(get(e.addr, email, false).await.status(), 403);
    assert_eq!(
        get(e.addr, email, true).await.text().await.expect("body"),
        SA
    );
    let project = "/computeMetadata/v1/project/project-id";
    assert_eq!(get(e.addr, project, false).await.status(), 403);
    assert_eq!(
        get(e.addr, project, true).await.text().await.expect("body"),
        "invoker-local"
    );
    let r = get(e.addr, "/nothing/here", true).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["metadata-flavor"], "Google");

    let r = get(e.addr, JWKS_PATH, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=3600, must-revalidate, no-transform"
    );
    let jwks: Value = r.json().await.expect("json");
    assert_eq!(jwks, e.emu.public_jwks());
    assert_eq!(jwks["keys"][0]["kid"], e.emu.current_kid().as_str());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    e.emu.set_jwks_down(true);
    assert_eq!(get(e.addr, JWKS_PATH, false).await.status(), 503);
    assert_eq!(e.emu.jwks_requests(), 2);
}

#[tokio::test]
async fn identity_faults() {
    let e = env().await;
    let q = format!("{IDENTITY}?audience={AUD}&format=full");

    e.emu.set_identity_fault(IdentityFault::Unavailable);
    assert_eq!(get(e.addr, &q, true).await.status(), 503);
    assert_eq!(get(e.addr, &q, true).await.status(), 503);

    e.emu.set_identity_fault(IdentityFault::ForbiddenOnce);
    assert_eq!(get(e.addr, &q, true).await.status(), 403);
    let r = get(e.addr, &q, true).await;
    assert_eq!(r.status(), 200);
    e.verifier
        .verify(&r.text().await.expect("body"), Signature::Required)
        .await
        .expect("normal after one 403");

    e.emu.set_identity_fault(IdentityFault::GarbageOnce);
    let r = get(e.addr, &q, true).await;
    assert_eq!(r.status(), 200);
    let garbage = r.text().await.expect("body");
    assert_ne!(garbage.split('.').count(), 3);
    let r = get(e.addr, &q, true).await;
    e.verifier
        .verify(&r.text().await.expect("body"), Signature::Required)
        .await
        .expect("normal after garbage");

    e.emu.set_identity_fault(IdentityFault::Expired);
    let expired = get(e.addr, &q, true).await.text().await.expect("body");
    assert!(payload(&expired)["exp"].as_u64().expect("exp") < now());
    assert!(e.refuses(&expired).await.contains("expired"));

    e.emu.set_identity_fault(IdentityFault::Stall);
    let stalled = reqwest::Client::new()
        .get(format!("http://{}{q}", e.addr))
        .header("Metadata-Flavor", "Google")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(stalled.expect_err("stalls").is_timeout());

    e.emu.set_identity_fault(IdentityFault::None);
    assert_eq!(get(e.addr, &q, true).await.status(), 200);
}

/// The string `key` of the JSON object answered.
async fn string_field(r: reqwest::Response, key: &str) -> String {
    r.json::<Value>().await.expect("json")[key]
        .as_str()
        .expect(key)
        .to_owned()
}

#[tokio::test]
async fn emulator_control_routes() {
    let e = env().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", e.addr);

    let r = http
        .post(url("/emulator/mint"))
        .json(&json!({"email": "jane@example.com", "audience": AUD, "lifetime_secs": 120}))
        .send()
        .await
        .expect("mint");
    assert_eq!(r.status(), 200);
    let token = string_field(r, "token").await;
    let c = e.accepts(&token, "verifies").await;
    assert_eq!(c.email.as_deref(), Some("jane@example.com"));
    assert_eq!(c.email_verified, Some(true));
    assert_eq!(c.exp - c.iat, 120);

    let r = http
        .post(url("/emulator/mint"))
        .json(&json!({"email": "jane@example.com", "audience": AUD, "email_verified": false}))
        .send()
        .await
        .expect("mint");
    let token = string_field(r, "token").await;
    let c = e.accepts(&token, "verifies").await;
    assert_eq!(c.email_verified, Some(false));

    for bad in [
        json!({"email": "jane", "audience": AUD}),
        json!({"email": "jane@example.com", "audience": ""}),
        json!({"email": "jane@example.com", "audience": AUD, "lifetime_secs": 0}),
        json!({"audience": AUD}),
    ] {
        let r = http
            .post(url("/emulator/mint"))
            .json(&bad)
            .send()
            .await
            .expect("mint");
        assert_eq!(r.status(), 400, "{bad}");
    }

    let old = e.emu.current_kid();
    let r = http
        .post(url("/emulator/rotate"))
        .send()
        .await
        .expect("rotate");
    let kid = string_field(r, "kid").await;
    assert_ne!(kid, old);
    assert_eq!(e.emu.current_kid(), kid);
    let kids: Vec<_> = e.emu.public_jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    assert_eq!(kids, [kid, old]);

    let r = http
        .post(url("/emulator/faults"))
        .json(&json!({"identity": "forbidden_once", "jwks_down": true}))
        .send()
        .await
        .expect("faults");
    assert_eq!(r.status(), 200);
    assert_eq!(e.emu.identity_fault(), IdentityFault::ForbiddenOnce);
    assert!(e.emu.jwks_down());
    let r = http
        .post(url("/emulator/faults"))
        .json(&json!({"identity": "sometimes"}))
        .send()
        .await
        .expect("faults");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn google_client_library_reads_tokens_from_the_emulator() {
    use google_cloud_auth::credentials::idtoken::mds::{Builder, Format};
    let e = env().await;
    let creds = Builder::new(AUD)
        .with_endpoint(format!("http://{}", e.addr))
        .with_format(Format::Full)
        .build()
        .expect("credentials");
    let token = creds.id_token().await.expect("id token");
    let c = e.accepts(&token, "verifies").await;
    assert_eq!(c.email.as_deref(), Some(SA));
}

#[tokio::test]
async fn warm_verification_is_fast() {
    let e = env().await;
    let token = e.emu.mint(SA, AUD, HOUR);
    e.accepts(&token, "warm up").await;
    let n = 200;
    let started = std::time::Instant::now();
    for _ in 0..n {
        e.accepts(&token, "valid").await;
    }
    let each = started.elapsed() / n;
    eprintln!("warm verification (debug build): {each:?} each");
    assert!(each < Duration::from_millis(5), "{each:?}");
    assert_eq!(e.emu.jwks_requests(), 1);
}

#[tokio::test]
async fn es256_keys_verify_only_es256_tokens() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec key");
    let point = pair.public_key().as_ref().to_vec();
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "ec1",
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
    }]});
    let router = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let verifier = verifier_at(&format!("http://{addr}/certs"), &[]);

    let sign = |alg: &str| {
        let header = B64.encode(json!({"alg": alg, "kid": "ec1", "typ": "JWT"}).to_string());
        let message = format!("{header}.{}", B64.encode(claims().to_string()));
        let sig = pair
            .sign(&SystemRandom::new(), message.as_bytes())
            .expect("sign");
        format!("{message}.{}", B64.encode(sig.as_ref()))
    };
    let c = verifier
        .verify(&sign("ES256"), Signature::Required)
        .await
        .expect("ES256 token");
    assert_eq!(c.email.as_deref(), Some(SA));
    // The key says ES256: an RS256 header on the same kid is refused.
    assert!(
        reason(verifier.verify(&sign("RS256"), Signature::Required).await)
            .contains("does not match")
    );
}

/// A remembered token (signature checked once) still goes through every claim check and needs
/// its key to be published: expiry and key removal act as on first sight.
#[tokio::test]
async fn remembered_tokens_are_rechecked_and_die_with_their_key() {
    let e = env().await;
    let short = e.emu.mint_with(with(
        with(claims(), "exp", json!(now() + 2)),
        "iat",
        json!(now()),
    ));
    e.accepts(&short, "valid now").await;
    let old = e.emu.mint(SA, AUD, HOUR);
    e.accepts(&old, "valid").await;
    e.accepts(&old, "remembered").await;
    // Past exp + leeway (60 s), the remembered token is refused like any other.
    let strict = verifier_at(
        &format!("http://{}{JWKS_PATH}", e.addr),
        &[("AUTH_CLOCK_SKEW_SECS", "0")],
    );
    strict
        .verify(&short, Signature::Required)
        .await
        .expect("valid now");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(reason(strict.verify(&short, Signature::Required).await).contains("expired"));
    // Rotate until the old key is no longer published; a token under the newest key makes the
    // verifier refetch the set; the remembered old token then fails with its key.
    for _ in 0..3 {
        let emu = e.emu.clone();
        tokio::task::spawn_blocking(move || emu.rotate())
            .await
            .expect("rotate");
    }
    let new = e.emu.mint(SA, AUD, HOUR);
    e.accepts(&new, "new key picked up").await;
    assert!(
        e.verifier.verify(&old, Signature::Required).await.is_err(),
        "its key is gone"
    );
}
