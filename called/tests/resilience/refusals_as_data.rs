//! Refusals as data (issue 23): every authentication refusal of the real `called` binary is
//! ONE JSON log entry with an `auth` object — status, reason code, header, and where it helps
//! the presented `aud`/`iss`, the expected audiences, the verified principal — and never a
//! token, an unverified email or a raw control character. One request per reason code, the
//! caller's own token and the forwarded end user's; the entry is found by its request id.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use testkit::checks::secret_parts;
use testkit::child::{Proc, free_port};
use testkit::claims::now;
use testkit::emu::Emu;
use testkit::in_process::sqlite_store;

use crate::helpers::called_verifying;

/// The caller's URL: the audience of forwarded end-user tokens.
const CALLER_URL: &str = "https://caller-abc-ew.a.run.app";

/// An unverified email that must never be logged (it sits in tokens whose signature fails).
const FORGED: &str = "forged-victim@example.com";

/// One case: the request id, the headers, the status and the `auth` fields expected.
struct Case {
    id: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    reason: &'static str,
    header: &'static str,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// A JWT with `header` and `claims` and a signature that is not one.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.AAAA", b64(header), b64(claims))
}

fn entries_by_request(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("auth").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_one_entry_with_its_reason_code_and_no_token() {
    let emu = Emu::start().await;
    let (database_url, _dir) = sqlite_store();
    let port = free_port();
    let audience = format!("http://127.0.0.1:{port}");
    let sa = emu.sa();
    let spec = called_verifying(&emu, port, &database_url)
        .with_all(&testkit::wiring::forwarding(&sa, CALLER_URL))
        .with("LOG_FORMAT", "json")
        .with("RUST_LOG", "info")
        .capture();
    let called = Proc::start(&spec, port).await;

    let good = emu.sa_token(&audience);
    let claims = |email: &str, aud: &str| {
        json!({"iss": "https://accounts.google.com", "aud": aud, "sub": "1", "email": email,
               "email_verified": true, "iat": now(), "exp": now() + 600})
    };
    let mint = |c: Value| emu.emulator.mint_with(c);
    let set = |mut c: Value, k: &str, v: Value| {
        c[k] = v;
        c
    };
    let kid = good_kid(&good);
    let forged = tamper(&mint(claims(FORGED, &audience)));
    let hostile_aud =
        "https://x.example/\n{\"severity\":\"INFO\"}\u{1b}[31m".to_owned() + &"z".repeat(400);
    let user = |c: Value| {
        vec![
            ("authorization", format!("Bearer {good}")),
            ("x-forwarded-authorization", format!("Bearer {}", mint(c))),
        ]
    };
    let user_claims = |email: &str| claims(email, CALLER_URL);

    let bearer = |t: String| vec![("authorization", format!("Bearer {t}"))];
    let cases = vec![
        Case {
            id: "missing",
            headers: vec![],
            status: 401,
            reason: "missing",
            header: "authorization",
        },
        Case {
            id: "malformed",
            headers: bearer("not-a-jwt".into()),
            status: 401,
            reason: "malformed",
            header: "authorization",
        },
        Case {
            id: "algorithm",
            headers: bearer(unsigned(
                &json!({"alg": "HS256", "kid": kid}),
                &claims(FORGED, &audience),
            )),
            status: 401,
            reason: "algorithm",
            header: "authorization",
        },
        Case {
            id: "unknown-key",
            headers: bearer(unsigned(
                &json!({"alg": "RS256", "kid": "no-such-key"}),
                &claims(FORGED, &audience),
            )),
            status: 401,
            reason: "unknown_key",
            header: "authorization",
        },
        Case {
            id: "signature",
            headers: bearer(forged.clone()),
            status: 401,
            reason: "signature",
            header: "authorization",
        },
        Case {
            id: "expired",
            headers: bearer(mint(set(
                set(claims(&sa, &audience), "iat", json!(now() - 7600)),
                "exp",
                json!(now() - 4000),
            ))),
            status: 401,
            reason: "expired",
            header: "authorization",
        },
        Case {
            id: "not-yet-valid",
            headers: bearer(mint(set(
                claims(&sa, &audience),
                "nbf",
                json!(now() + 3000),
            ))),
            status: 401,
            reason: "not_yet_valid",
            header: "authorization",
        },
        Case {
            id: "issued-in-future",
            headers: bearer(mint(set(
                set(claims(&sa, &audience), "iat", json!(now() + 3000)),
                "exp",
                json!(now() + 3600),
            ))),
            status: 401,
            reason: "issued_in_future",
            header: "authorization",
        },
        Case {
            id: "lifetime",
            headers: bearer(mint(set(
                claims(&sa, &audience),
                "exp",
                json!(now() + 36_000),
            ))),
            status: 401,
            reason: "lifetime",
            header: "authorization",
        },
        Case {
            id: "issuer",
            headers: bearer(mint(set(
                claims(&sa, &audience),
                "iss",
                json!("https://issuer.example"),
            ))),
            status: 401,
            reason: "issuer",
            header: "authorization",
        },
        Case {
            id: "audience",
            headers: bearer(mint(claims(&sa, "https://api.custom-domain.example"))),
            status: 401,
            reason: "audience",
            header: "authorization",
        },
        Case {
            id: "hostile-audience",
            headers: bearer(mint(claims(&sa, &hostile_aud))),
            status: 401,
            reason: "audience",
            header: "authorization",
        },
        Case {
            id: "email",
            headers: bearer(mint(set(
                claims(&sa, &audience),
                "email",
                json!("not an email"),
            ))),
            status: 401,
            reason: "email",
            header: "authorization",
        },
        Case {
            id: "email-unverified",
            headers: bearer(mint(set(
                claims(&sa, &audience),
                "email_verified",
                json!(false),
            ))),
            status: 401,
            reason: "email_unverified",
            header: "authorization",
        },
        Case {
            id: "not-allowed",
            headers: bearer(mint(claims("intruder@example.com", &audience))),
            status: 403,
            reason: "not_allowed",
            header: "authorization",
        },
        Case {
            id: "forwarded-expired",
            headers: user(set(
                set(user_claims("dev@example.com"), "iat", json!(now() - 7600)),
                "exp",
                json!(now() - 4000),
            )),
            status: 401,
            reason: "forwarded_expired",
            header: "x-forwarded-authorization",
        },
        Case {
            id: "forwarded-audience",
            headers: user(
                user_claims("dev@example.com")
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("aud".into(), json!("https://other-caller.example"));
                        Value::Object(o)
                    })
                    .expect("object"),
            ),
            status: 401,
            reason: "forwarded_audience",
            header: "x-forwarded-authorization",
        },
        Case {
            id: "forwarded-malformed",
            headers: vec![
                ("authorization", format!("Bearer {good}")),
                ("x-forwarded-authorization", "Basic dXNlcjpwYXNz".into()),
            ],
            status: 401,
            reason: "forwarded_malformed",
            header: "x-forwarded-authorization",
        },
    ];

    let client = testkit::ready::client_with_timeout(Duration::from_secs(10));
    let mut tokens: Vec<String> = vec![good.clone(), forged.clone()];
    for case in &cases {
        let mut req = client
            .post(format!("{}/", called.base))
            .header("x-request-id", case.id)
            .json(&json!({"bar": "hello"}));
        for (name, value) in &case.headers {
            req = req.header(*name, value);
            if let Some(t) = value.strip_prefix("Bearer ") {
                tokens.push(t.to_owned());
            }
        }
        let res = req.send().await.expect("post");
        assert_eq!(res.status(), case.status, "{}", case.id);
    }

    let lines = called.stop_cleanly().await;
    assert_no_token_parts(&lines, &tokens);
    assert!(
        !lines.iter().any(|l| l.contains(FORGED)),
        "an unverified email reached the logs"
    );
    let entries = entries_by_request(&lines);
    for case in &cases {
        let mine: Vec<&Value> = entries
            .iter()
            .filter(|e| e["request_id"] == case.id)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{}: one refusal entry, got {mine:?}",
            case.id
        );
        let e = mine[0];
        assert_matches_contract(e, "auth_refusal");
        let auth = &e["auth"];
        assert_eq!(
            e["message"], "request refused by authentication",
            "{}",
            case.id
        );
        assert_eq!(e["severity"], "WARNING", "{}", case.id);
        assert_eq!(auth["status"], case.status, "{}", case.id);
        assert_eq!(auth["reason"], case.reason, "{}", case.id);
        assert_eq!(auth["header"], case.header, "{}", case.id);
        match case.reason {
            "not_allowed" => assert_eq!(auth["principal"], "intruder@example.com"),
            _ => assert!(
                auth.get("principal").is_none(),
                "{}: principal only for not_allowed",
                case.id
            ),
        }
        let decodable = !matches!(case.id, "missing" | "malformed" | "forwarded-malformed");
        assert_eq!(
            auth.get("presented_iss").is_some(),
            decodable,
            "{}: presented_iss",
            case.id
        );
        assert_eq!(
            auth.get("presented_aud").is_some(),
            decodable,
            "{}: presented_aud",
            case.id
        );
        assert_eq!(
            auth.get("expected_aud").is_some(),
            case.reason.ends_with("audience"),
            "{}: expected_aud only for a wrong audience",
            case.id
        );
    }
    let find = |id: &str| {
        entries
            .iter()
            .find(|e| e["request_id"] == id)
            .expect("entry")["auth"]
            .clone()
    };
    // The audience mismatch names both sides, so a custom-domain mistake is fixed in one look.
    let aud = find("audience");
    assert_eq!(aud["presented_aud"], "https://api.custom-domain.example");
    assert_eq!(aud["expected_aud"], audience);
    assert_eq!(aud["presented_iss"], "https://accounts.google.com");
    let fwd = find("forwarded-audience");
    assert_eq!(fwd["presented_aud"], "https://other-caller.example");
    assert_eq!(fwd["expected_aud"], CALLER_URL);
    // A hostile claim stays escaped and bounded: no raw control character, at most 200 chars.
    let hostile = find("hostile-audience")["presented_aud"]
        .as_str()
        .expect("string")
        .to_owned();
    assert!(!hostile.chars().any(char::is_control), "{hostile:?}");
    assert!(
        hostile.starts_with("https://x.example/\\u{a}"),
        "{hostile:?}"
    );
    assert!(
        hostile.chars().count() <= 200,
        "{}",
        hostile.chars().count()
    );
    assert!(
        !lines.iter().any(|l| l.contains('\u{1b}')),
        "a raw ESC reached the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_outage_is_an_error_entry_with_keys_unavailable() {
    let emu = Emu::start().await;
    let (database_url, _dir) = sqlite_store();
    let port = free_port();
    let audience = format!("http://127.0.0.1:{port}");
    // Nothing listens on the key-set port: no keys at all, ever.
    let dead = format!("http://127.0.0.1:{}/oauth2/v3/certs", free_port());
    let spec = called_verifying(&emu, port, &database_url)
        .with("AUTH_JWKS_URL", dead.clone())
        .with("LOG_FORMAT", "json")
        .with("RUST_LOG", "info")
        .capture()
        .ready_path("/health/live");
    let called = Proc::start(&spec, port).await;
    let token = emu.sa_token(&audience);
    let client = testkit::ready::client_with_timeout(Duration::from_secs(20));
    let res = client
        .post(format!("{}/", called.base))
        .header("x-request-id", "outage")
        .bearer_auth(&token)
        .json(&json!({"bar": "hello"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 503);
    let lines = called.stop_cleanly().await;
    assert_no_token_parts(&lines, &[token]);
    let entries = entries_by_request(&lines);
    let e = entries
        .iter()
        .find(|e| e["request_id"] == "outage")
        .unwrap_or_else(|| panic!("no refusal entry in {lines:#?}"));
    assert_matches_contract(e, "auth_refusal");
    assert_eq!(e["severity"], "ERROR");
    assert_eq!(e["auth"]["status"], 503);
    assert_eq!(e["auth"]["reason"], "keys_unavailable");
    assert_eq!(e["auth"]["header"], "authorization");
    // And the key-set failure itself is its own entry, counted by the log-based metric.
    let fetch_failed: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "key_set_fetch_failed")
        .collect();
    assert!(!fetch_failed.is_empty(), "no key_set_fetch_failed entry");
    assert_matches_contract(&fetch_failed[0], "key_set_fetch_failed");
    assert_eq!(fetch_failed[0]["url"], dead);
    assert_eq!(fetch_failed[0]["severity"], "WARNING");
}

/// `entry` (a line of the service's JSON log) against the entry kind `kind` of
/// `deploy/log-fields.json` — the contract Terraform's log-based metrics are checked against:
/// each declared field present (unless optional) with its type and allowed values, and no
/// field of the `auth` object that the contract does not declare.
fn assert_matches_contract(entry: &Value, kind: &str) {
    let contract: Value = serde_json::from_str(include_str!("../../../deploy/log-fields.json"))
        .expect("deploy/log-fields.json is JSON");
    let fields = contract["entries"][kind]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no entry kind {kind}"));
    for (path, rule) in fields {
        let mut v = entry;
        let mut present = true;
        for key in path.trim_start_matches("jsonPayload.").split('.') {
            match v.get(key) {
                Some(next) => v = next,
                None => present = false,
            }
        }
        if !present {
            assert!(
                rule["optional"] == true,
                "{kind}: {path} missing in {entry}"
            );
            continue;
        }
        let type_ok = match rule["type"].as_str() {
            Some("string") => v.is_string(),
            Some("number") => v.is_number(),
            Some("object") => v.is_object(),
            other => panic!("unknown type {other:?}"),
        };
        assert!(
            type_ok,
            "{kind}: {path} is not a {} in {entry}",
            rule["type"]
        );
        if let Some(values) = rule["values"].as_array() {
            assert!(
                values.contains(v),
                "{kind}: {path} = {v} is not an allowed value"
            );
        }
    }
    if let Some(auth) = entry.get("auth").and_then(Value::as_object) {
        for key in auth.keys() {
            assert!(
                fields.contains_key(&format!("jsonPayload.auth.{key}")),
                "{kind}: auth.{key} is not in deploy/log-fields.json"
            );
        }
    }
    let by_status = &contract["entries"][kind]["severity_by_status"];
    if let Some(status) = entry["auth"]["status"].as_u64() {
        assert_eq!(
            entry["severity"],
            by_status[status.to_string()],
            "{kind}: severity"
        );
    }
}

/// No line holds a distinguishing part of any of `tokens`.
fn assert_no_token_parts(lines: &[String], tokens: &[String]) {
    assert!(lines.len() >= 3, "too few lines captured: {lines:?}");
    for token in tokens {
        for part in secret_parts(token) {
            assert!(
                !lines.iter().any(|l| l.contains(&part)),
                "a part of a token reached the logs: {part}"
            );
        }
    }
}

/// `token` with one character in the middle of its signature changed.
fn tamper(token: &str) -> String {
    let at = token.rfind('.').expect("three parts") + 20;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

/// The `kid` of a token the emulator signed.
fn good_kid(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let v: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    v["kid"].as_str().expect("kid").to_owned()
}
