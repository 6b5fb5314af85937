//! Issue 11 item 2: `called` verifies the forwarded end-user token (`X-Forwarded-Authorization`)
//! fully, and only from forwarders it trusts. Against a running service — a router with the
//! real [`Authenticator`] on 127.0.0.1:0 echoing the extracted [`Principal`] — with tokens
//! minted by the metadata-server emulator.

use std::time::Duration;

use serde_json::{Value, json};

use emulator::{Emulator, EmulatorConfig};
use shared::auth::{AuthConfig, EndUsers, ForwardedConfig, ServiceAuth};
use shared::config::MapSource;
use testkit::claims::{hand_made, now, strip, with};
use testkit::emu::Emu;

/// called's own audience.
const AUD: &str = "https://called.example";
/// The caller's URL: the audience of its clients' tokens.
const CALLER_AUD: &str = "https://caller.example";
const ISS: &str = "https://accounts.google.com";
/// The trusted forwarder (the caller's service account).
const SA: &str = "caller@invoker-local.iam.gserviceaccount.com";
/// Allowed to call, but not trusted to forward.
const OTHER: &str = "batch@invoker-local.iam.gserviceaccount.com";
const USER: &str = "alice@gmail.com";

struct Env {
    emu: Emulator,
    jwks: String,
}

async fn env() -> Env {
    let emu = Emu::start().await;
    Env {
        jwks: emu.jwks_url(),
        emu: emu.emulator,
    }
}

impl Env {
    /// A token of `email` for called, valid ten minutes.
    fn token(&self, email: &str) -> String {
        self.emu.mint(email, AUD, Duration::from_secs(600))
    }
}

fn source(jwks: &str, pairs: &[(&str, &str)]) -> MapSource {
    let mut src = MapSource::from_pairs([
        ("AUTH_AUDIENCES", AUD),
        ("AUTH_JWKS_URL", jwks),
        ("AUTH_ALLOWED_PRINCIPALS", &format!("{SA},{OTHER}")),
        ("AUTH_FORWARDERS", SA),
        ("AUTH_FORWARDED_AUDIENCES", CALLER_AUD),
    ]);
    for (k, v) in pairs {
        src = src.with(k, *v);
    }
    src
}

/// called's authentication settings, forwarded part included (as `called::Config` builds them).
fn config(src: &MapSource) -> ServiceAuth {
    let auth = AuthConfig::from_source(src).expect("auth config");
    let forwarded = ForwardedConfig::from_source(src, &auth).expect("forwarded config");
    ServiceAuth::new(
        &auth,
        reqwest::Client::new(),
        EndUsers::Forwarded(&forwarded),
    )
}

/// Starts the echo service ([`testkit::echo`]) and returns its base URL.
async fn serve(env: &Env, pairs: &[(&str, &str)]) -> String {
    testkit::echo::serve_with(config(&source(&env.jwks, pairs))).await
}

/// A new emulator, the echo service with `pairs`, and a token of the trusted forwarder.
async fn start(pairs: &[(&str, &str)]) -> (Env, String, String) {
    let e = env().await;
    let base = serve(&e, pairs).await;
    let sa = e.token(SA);
    (e, base, sa)
}

/// POSTs with the principal's `token` and each of `forwarded` as `X-Forwarded-Authorization`.
async fn post(base: &str, token: &str, forwarded: &[&str]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/"))
        .bearer_auth(token)
        .json(&json!({"bar": "x"}));
    for f in forwarded {
        req = req.header("x-forwarded-authorization", format!("Bearer {f}"));
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The end user's claims: a token the caller's client got for the caller.
fn user_claims() -> Value {
    let now = now();
    json!({
        "iss": ISS, "aud": CALLER_AUD, "sub": "42", "azp": "42",
        "iat": now, "exp": now + 600, "email": USER, "email_verified": true,
    })
}

fn expired() -> Value {
    let n = now();
    with(
        with(user_claims(), "iat", json!(n - 7200)),
        "exp",
        json!(n - 3600),
    )
}

async fn assert_refused(base: &str, token: &str, forwarded: &str, what: &str) {
    let (status, body) = post(base, token, &[forwarded]).await;
    assert_eq!(status, 401, "{what}: {body}");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(detail.contains("forwarded"), "{what}: {body}");
}

#[tokio::test]
async fn forwarded_end_user_from_a_trusted_forwarder_is_verified() {
    let (e, base, sa) = start(&[]).await;
    let user = e.emu.mint_with(user_claims());
    let (status, body) = post(&base, &sa, &[&user]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["caller"], SA);
    assert_eq!(body["on_behalf_of"], USER);
    // Without the header: no end user.
    let (status, body) = post(&base, &sa, &[]).await;
    assert_eq!(status, 201);
    assert_eq!(body["on_behalf_of"], Value::Null);
    // Lower-cased like every principal.
    let upper = e
        .emu
        .mint_with(with(user_claims(), "email", json!("Alice@GMail.com")));
    assert_eq!(post(&base, &sa, &[&upper]).await.1["on_behalf_of"], USER);
}

#[tokio::test]
async fn forged_or_mismatched_forwarded_tokens_are_refused() {
    let (e, base, sa) = start(&[]).await;
    let foreign = Emulator::new(EmulatorConfig::default());
    let n = now();
    for (what, token) in [
        ("forged signature", foreign.mint_with(user_claims())),
        (
            "other audience (called's own)",
            e.emu.mint_with(with(user_claims(), "aud", json!(AUD))),
        ),
        (
            "other issuer",
            e.emu
                .mint_with(with(user_claims(), "iss", json!("https://evil.example"))),
        ),
        ("expired", e.emu.mint_with(expired())),
        (
            "unverified email",
            e.emu
                .mint_with(with(user_claims(), "email_verified", json!(false))),
        ),
        (
            "no email",
            e.emu.mint_with({
                let mut c = user_claims();
                c.as_object_mut().expect("object").remove("email");
                c
            }),
        ),
        (
            "ten-year lifetime",
            e.emu
                .mint_with(with(user_claims(), "exp", json!(n + 10 * 365 * 86400))),
        ),
        (
            "malformed email",
            e.emu
                .mint_with(with(user_claims(), "email", json!("a@b@gmail.com"))),
        ),
        (
            "control character in the email",
            e.emu
                .mint_with(with(user_claims(), "email", json!("a\n@gmail.com"))),
        ),
        (
            "stripped signature (AUTH_FORWARDED_MODE=verify)",
            strip(&e.emu.mint_with(user_claims())),
        ),
        ("hand-made unsigned", hand_made(&user_claims())),
        ("not a JWT", "garbage".to_owned()),
    ] {
        assert_refused(&base, &sa, &token, what).await;
    }
    // Not a bearer value at all.
    let (status, body) = reqwest::Client::new()
        .post(format!("{base}/"))
        .bearer_auth(&sa)
        .header("x-forwarded-authorization", "Basic abc")
        .json(&json!({"bar": "x"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("send");
    assert_eq!(status, 401, "{:?}", body.text().await);
}

#[tokio::test]
async fn repeated_forwarded_header_is_refused() {
    let (e, base, sa) = start(&[]).await;
    let alice = e.emu.mint_with(user_claims());
    let mallory = e
        .emu
        .mint_with(with(user_claims(), "email", json!("mallory@gmail.com")));
    let (status, body) = post(&base, &sa, &[&alice, &mallory]).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("more than once"),
        "{body}"
    );
}

#[tokio::test]
async fn forwarded_header_from_an_untrusted_principal_is_ignored() {
    let e = env().await;
    let base = serve(&e, &[]).await;
    let other = e.token(OTHER);
    let user = e.emu.mint_with(user_claims());
    let foreign = Emulator::new(EmulatorConfig::default()).mint_with(user_claims());
    for forwarded in [&user, &foreign] {
        let (status, body) = post(&base, &other, &[forwarded]).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["caller"], OTHER);
        assert_eq!(body["on_behalf_of"], Value::Null);
    }
    // With no forwarders configured the header is ignored from everyone.
    let none = serve(&e, &[("AUTH_FORWARDERS", "")]).await;
    let sa = e.token(SA);
    let (status, body) = post(&none, &sa, &[&foreign]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["on_behalf_of"], Value::Null);
}

#[tokio::test]
async fn platform_mode_still_verifies_the_forwarded_token() {
    let e = env().await;
    let base = serve(
        &e,
        &[("AUTH_MODE", "platform"), ("AUTH_PLATFORM_TRUSTED", "true")],
    )
    .await;
    // The caller's own token was stripped by Cloud Run in front of called: accepted on claims.
    let sa = strip(&e.token(SA));
    let good = e.emu.mint_with(user_claims());
    let (status, body) = post(&base, &sa, &[&good]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["on_behalf_of"], USER);
    // Cloud Run's IAM never looks at X-Forwarded-Authorization: it is verified in full.
    let foreign = Emulator::new(EmulatorConfig::default()).mint_with(user_claims());
    assert_refused(&base, &sa, &foreign, "forged").await;
    assert_refused(&base, &sa, &strip(&good), "stripped").await;
    assert_refused(&base, &sa, &hand_made(&user_claims()), "hand-made").await;
    assert_refused(&base, &sa, &e.emu.mint_with(expired()), "expired").await;
}

#[tokio::test]
async fn forwarded_platform_mode_accepts_only_stripped_tokens_with_good_claims() {
    let (e, base, sa) = start(&[("AUTH_FORWARDED_MODE", "platform")]).await;
    // The caller ran behind Cloud Run's IAM check, which stripped its client's signature.
    let stripped = strip(&e.emu.mint_with(user_claims()));
    let (status, body) = post(&base, &sa, &[&stripped]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["on_behalf_of"], USER);
    let wrong_aud = strip(&e.emu.mint_with(with(user_claims(), "aud", json!(AUD))));
    assert_refused(&base, &sa, &wrong_aud, "stripped, wrong audience").await;
    assert_refused(
        &base,
        &sa,
        &strip(&e.emu.mint_with(expired())),
        "stripped, expired",
    )
    .await;
    let unverified = hand_made(&with(user_claims(), "email_verified", json!(false)));
    assert_refused(&base, &sa, &unverified, "stripped, unverified").await;
    // Any other signature is still verified.
    let foreign = Emulator::new(EmulatorConfig::default()).mint_with(user_claims());
    assert_refused(&base, &sa, &foreign, "forged signed").await;
    let good = e.emu.mint_with(user_claims());
    assert_eq!(post(&base, &sa, &[&good]).await.0, 201);
}

#[test]
fn forwarded_settings_are_validated_at_start() {
    let jwks = "http://127.0.0.1:9/certs";
    let check = |pairs: &[(&str, &str)]| {
        let src = source(jwks, pairs);
        let auth = AuthConfig::from_source(&src).expect("auth config");
        ForwardedConfig::from_source(&src, &auth)
    };
    let e = check(&[("AUTH_FORWARDED_AUDIENCES", "")]).expect_err("audiences required");
    assert_eq!(e.name, "AUTH_FORWARDED_AUDIENCES");
    let e = check(&[("AUTH_FORWARDERS", "nobody")]).expect_err("bad entry");
    assert_eq!(e.name, "AUTH_FORWARDERS");
    let e = check(&[("AUTH_FORWARDED_MODE", "trust")]).expect_err("bad mode");
    assert_eq!(e.name, "AUTH_FORWARDED_MODE");
    let e = check(&[("AUTH_MODE", "off")]).expect_err("off has no principal to trust");
    assert_eq!(e.name, "AUTH_FORWARDERS");
    let none = check(&[("AUTH_FORWARDERS", ""), ("AUTH_FORWARDED_AUDIENCES", "")])
        .expect("empty = ignored");
    assert!(none.forwarders.is_empty());
}
