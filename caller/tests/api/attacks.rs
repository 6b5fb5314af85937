//! Bad credentials against the running caller (verify mode) and called (platform mode).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

use testkit::checks::{Problem, assert_problem};
use testkit::claims::{now, strip, with, without};
use testkit::emu::{Emu, USER};
use testkit::in_process::{spawn_called, spawn_caller, spawn_chain};

fn claims(aud: &str) -> Value {
    json!({"iss": "https://accounts.google.com", "aud": aud, "sub": "1234", "email": USER,
           "email_verified": true, "iat": now(), "exp": now() + 600})
}

async fn send(base: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/"))
        .json(&json!({"foo": "x"}));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_401_or_403_and_nothing_is_forwarded() {
    let c = spawn_chain().await;
    let aud = c.caller.base.clone();
    let emu = &c.emu.emulator;
    let good = emu.mint_with(claims(&aud));
    let parts: Vec<&str> = good.split('.').collect();
    let kid = emu.current_kid();
    let other = Emulator::new(EmulatorConfig::default());
    let n = emu.public_jwks()["keys"][0]["n"]
        .as_str()
        .expect("n")
        .to_owned();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims(&aud),
        &jsonwebtoken::EncodingKey::from_secret(&B64.decode(&n).expect("n")),
    )
    .expect("hs256");
    let alg_none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "kid": kid, "typ": "JWT"}).to_string()),
        B64.encode(claims(&aud).to_string())
    );
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(with(claims(&aud), "email", json!("boss@example.com")).to_string()),
        parts[2]
    );
    let unknown_kid = other.mint_with(claims(&aud));
    let wrong_key = other.sign_with_header(
        json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
        claims(&aud),
    );
    let stripped = strip(&good);
    let bearer = |t: &str| format!("Bearer {t}");
    let minted = |claims: Value| bearer(&emu.mint_with(claims));
    // Every one of these is a 401 with `error="invalid_token"`.
    let invalid: Vec<(&str, String)> = vec![
        ("basic scheme", "Basic dXNlcjpwYXNz".into()),
        ("empty bearer", "Bearer ".into()),
        ("garbage", bearer("garbage")),
        ("two parts", bearer(&format!("{}.{}", parts[0], parts[1]))),
        ("four parts", bearer(&format!("{good}.x"))),
        ("alg none", bearer(&alg_none)),
        ("hs256 with public key", bearer(&hs256)),
        ("unknown kid", bearer(&unknown_kid)),
        ("known kid, wrong key", bearer(&wrong_key)),
        ("tampered payload", bearer(&tampered)),
        ("wrong aud", minted(claims("https://other.example"))),
        (
            "wrong iss",
            minted(with(claims(&aud), "iss", json!("https://evil.example"))),
        ),
        (
            "expired",
            minted(with(
                with(claims(&aud), "exp", json!(now() - 600)),
                "iat",
                json!(now() - 4000),
            )),
        ),
        (
            "iat in the future",
            minted(with(claims(&aud), "iat", json!(now() + 600))),
        ),
        (
            "nbf in the future",
            minted(with(claims(&aud), "nbf", json!(now() + 600))),
        ),
        (
            "exp as a string",
            minted(with(claims(&aud), "exp", json!((now() + 600).to_string()))),
        ),
        (
            "aud as a number",
            minted(with(claims(&aud), "aud", json!(42))),
        ),
        ("no exp", minted(without(claims(&aud), "exp"))),
        (
            "no email_verified",
            minted(without(claims(&aud), "email_verified")),
        ),
        (
            "email_verified false",
            minted(with(claims(&aud), "email_verified", json!(false))),
        ),
        ("stripped signature in verify mode", bearer(&stripped)),
    ];
    let mut cases: Vec<(&str, Option<String>, u16, &str)> =
        vec![("missing header", None, 401, "Bearer")];
    cases.extend(
        invalid
            .into_iter()
            .map(|(name, auth)| (name, Some(auth), 401, "Bearer error=\"invalid_token\"")),
    );
    cases.push((
        "principal not allowed",
        Some(bearer(&emu.mint(
            "intruder@example.com",
            &aud,
            Duration::from_secs(60),
        ))),
        403,
        "Bearer error=\"insufficient_scope\"",
    ));
    for (name, auth, status, www) in cases {
        let res = send(&c.caller.base, auth.as_deref()).await;
        assert_eq!(res.status().as_u16(), status, "{name}");
        let Problem {
            detail,
            www_authenticate: got_www,
            ..
        } = assert_problem(res, status).await;
        assert_eq!(got_www.as_deref(), Some(www), "{name}");
        assert!(
            !detail.contains(parts[1]),
            "{name}: the body never echoes the token"
        );
    }
    // Lower-case scheme works; nothing above reached called.
    let ok = send(&c.caller.base, Some(&format!("bearer {good}"))).await;
    assert_eq!(ok.status(), 201);
    let page = c.called.get_as_sa(&c.emu, "/entities").await;
    assert_eq!(page["items"].as_array().expect("items").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_mode_accepts_stripped_signatures_on_valid_claims_only() {
    let emu = Emu::start().await;
    let called = spawn_called(
        &emu,
        &[("AUTH_MODE", "platform"), ("AUTH_PLATFORM_TRUSTED", "true")],
    )
    .await;
    let sa = emu.sa();
    // `POST /` with the bearer `token`, and `serverless` as X-Serverless-Authorization.
    let post = |token: &str, serverless: Option<&str>| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/", called.base))
            .bearer_auth(token)
            .json(&json!({"bar": "x"}));
        if let Some(t) = serverless {
            req = req.header("x-serverless-authorization", format!("Bearer {t}"));
        }
        req.send()
    };
    let good = emu
        .emulator
        .mint(&sa, &called.base, Duration::from_secs(60));
    let res = post(&strip(&good), None).await.expect("send");
    assert_eq!(res.status(), 201, "stripped signature with valid claims");
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["caller"], sa);
    let wrong_aud = emu
        .emulator
        .mint(&sa, "https://other.example", Duration::from_secs(60));
    let res = post(&strip(&wrong_aud), None).await.expect("send");
    assert_problem(res, 401).await;
    let intruder = emu.emulator.mint(
        "intruder@example.com",
        &called.base,
        Duration::from_secs(60),
    );
    let res = post(&strip(&intruder), None).await.expect("send");
    assert_problem(res, 403).await;
    // A real signature is verified as in verify mode.
    let forged = format!("{}x", &good[..good.len() - 1]);
    let res = post(&forged, None).await.expect("send");
    assert_problem(res, 401).await;
    // Both headers: only X-Serverless-Authorization counts.
    let res = post(&strip(&intruder), Some(&strip(&good)))
        .await
        .expect("send");
    assert_eq!(res.status(), 201);
    let res = post(&strip(&good), Some(&strip(&intruder)))
        .await
        .expect("send");
    assert_problem(res, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_with_auth_off_is_open_but_says_so() {
    let emu = Emu::start().await;
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, &[("AUTH_MODE", "off")]).await;
    let res = send(&caller.base, None).await;
    assert_eq!(res.status(), 201);
}
