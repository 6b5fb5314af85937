//! Bad credentials against the running caller (verify mode) and called (platform mode).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

use local::checks::{Problem, assert_problem};
use local::emu::{Emu, USER};
use local::in_process::{spawn_called, spawn_caller, spawn_chain};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

fn claims(aud: &str) -> Value {
    json!({"iss": "https://accounts.google.com", "aud": aud, "sub": "1234", "email": USER,
           "email_verified": true, "iat": now(), "exp": now() + 600})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().expect("object").remove(key);
    v
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
    let stripped = format!("{}.{}.SIGNATURE_REMOVED_BY_GOOGLE", parts[0], parts[1]);
    let bearer = |t: &str| format!("Bearer {t}");
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("missing header", None, 401, "Bearer"),
        (
            "basic scheme",
            Some("Basic dXNlcjpwYXNz".into()),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "empty bearer",
            Some("Bearer ".into()),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "garbage",
            Some(bearer("garbage")),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "two parts",
            Some(bearer(&format!("{}.{}", parts[0], parts[1]))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "four parts",
            Some(bearer(&format!("{good}.x"))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "alg none",
            Some(bearer(&alg_none)),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "hs256 with public key",
            Some(bearer(&hs256)),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "unknown kid",
            Some(bearer(&unknown_kid)),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "known kid, wrong key",
            Some(bearer(&wrong_key)),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "tampered payload",
            Some(bearer(&tampered)),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "wrong aud",
            Some(bearer(&emu.mint_with(claims("https://other.example")))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "wrong iss",
            Some(bearer(&emu.mint_with(with(
                claims(&aud),
                "iss",
                json!("https://evil.example"),
            )))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "expired",
            Some(bearer(&emu.mint_with(with(
                with(claims(&aud), "exp", json!(now() - 600)),
                "iat",
                json!(now() - 4000),
            )))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "iat in the future",
            Some(bearer(&emu.mint_with(with(
                claims(&aud),
                "iat",
                json!(now() + 600),
            )))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "nbf in the future",
            Some(bearer(&emu.mint_with(with(
                claims(&aud),
                "nbf",
                json!(now() + 600),
            )))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "exp as a string",
            Some(bearer(&emu.mint_with(with(
                claims(&aud),
                "exp",
                json!((now() + 600).to_string()),
            )))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "aud as a number",
            Some(bearer(&emu.mint_with(with(claims(&aud), "aud", json!(42))))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "no exp",
            Some(bearer(&emu.mint_with(without(claims(&aud), "exp")))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "no email_verified",
            Some(bearer(
                &emu.mint_with(without(claims(&aud), "email_verified")),
            )),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "email_verified false",
            Some(bearer(&emu.mint_with(with(
                claims(&aud),
                "email_verified",
                json!(false),
            )))),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "stripped signature in verify mode",
            Some(bearer(&stripped)),
            401,
            "Bearer error=\"invalid_token\"",
        ),
        (
            "principal not allowed",
            Some(bearer(&emu.mint(
                "intruder@example.com",
                &aud,
                Duration::from_secs(60),
            ))),
            403,
            "Bearer error=\"insufficient_scope\"",
        ),
    ];
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
    let strip = |t: &str| {
        let p: Vec<&str> = t.split('.').collect();
        format!("{}.{}.SIGNATURE_REMOVED_BY_GOOGLE", p[0], p[1])
    };
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/", called.base))
            .json(&json!({"bar": "x"}));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let good = emu
        .emulator
        .mint(&sa, &called.base, Duration::from_secs(60));
    let res = post(vec![("authorization", format!("Bearer {}", strip(&good)))])
        .await
        .expect("send");
    assert_eq!(res.status(), 201, "stripped signature with valid claims");
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["caller"], sa);
    let wrong_aud = emu
        .emulator
        .mint(&sa, "https://other.example", Duration::from_secs(60));
    let res = post(vec![(
        "authorization",
        format!("Bearer {}", strip(&wrong_aud)),
    )])
    .await
    .expect("send");
    assert_problem(res, 401).await;
    let intruder = emu.emulator.mint(
        "intruder@example.com",
        &called.base,
        Duration::from_secs(60),
    );
    let res = post(vec![(
        "authorization",
        format!("Bearer {}", strip(&intruder)),
    )])
    .await
    .expect("send");
    assert_problem(res, 403).await;
    // A real signature is verified as in verify mode.
    let forged = format!("{}x", &good[..good.len() - 1]);
    let res = post(vec![("authorization", format!("Bearer {forged}"))])
        .await
        .expect("send");
    assert_problem(res, 401).await;
    // Both headers: only X-Serverless-Authorization counts.
    let res = post(vec![
        ("authorization", format!("Bearer {}", strip(&intruder))),
        (
            "x-serverless-authorization",
            format!("Bearer {}", strip(&good)),
        ),
    ])
    .await
    .expect("send");
    assert_eq!(res.status(), 201);
    let res = post(vec![
        ("authorization", format!("Bearer {}", strip(&good))),
        (
            "x-serverless-authorization",
            format!("Bearer {}", strip(&intruder)),
        ),
    ])
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
