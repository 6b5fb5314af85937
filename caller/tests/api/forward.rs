//! The forward against a fake called service: headers, retries, deadline, outcome mapping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use testkit::checks::{Problem, assert_problem};
use testkit::emu::Emu;
use testkit::in_process::{Service, spawn_caller};

/// A scripted answer: status and optional Retry-After.
type Step = (u16, Option<&'static str>);

/// What the fake answers, in order; the last one repeats.
#[derive(Clone)]
struct Fake {
    script: Arc<Mutex<Vec<Step>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    stall: bool,
}

async fn fake_post(State(f): State<Fake>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    f.seen.lock().expect("lock").push((headers, body.clone()));
    if f.stall {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let (status, retry_after) = {
        let mut s = f.script.lock().expect("lock");
        if s.len() > 1 { s.remove(0) } else { s[0] }
    };
    let status = StatusCode::from_u16(status).expect("status");
    let mut res = if status == StatusCode::CREATED {
        (status, axum::Json(json!({"id": "fake", "body": body}))).into_response()
    } else {
        (
            status,
            [("content-type", "application/problem+json")],
            json!({"status": status.as_u16(), "detail": "fake"}).to_string(),
        )
            .into_response()
    };
    if let Some(ra) = retry_after {
        res.headers_mut()
            .insert("retry-after", ra.parse().expect("hv"));
    }
    res
}

struct FakeCalled {
    base: String,
    fake: Fake,
}

async fn spawn_fake(script: Vec<(u16, Option<&'static str>)>, stall: bool) -> FakeCalled {
    let fake = Fake {
        script: Arc::new(Mutex::new(script)),
        seen: Arc::default(),
        stall,
    };
    let app = Router::new()
        .route("/", post(fake_post))
        .route("/health/live", get(|| async { "ok" }))
        // The caller's readiness probe: an authenticated read.
        .route(
            "/entities",
            get(|| async { axum::Json(json!({"items": [], "next": null})) }),
        )
        .with_state(fake.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    FakeCalled { base, fake }
}

impl FakeCalled {
    fn attempts(&self) -> usize {
        self.fake.seen.lock().expect("lock").len()
    }
}

async fn setup(
    script: Vec<(u16, Option<&'static str>)>,
    stall: bool,
    extra: &[(&str, &str)],
) -> (Emu, FakeCalled, Service, String) {
    let emu = Emu::start().await;
    let fake = spawn_fake(script, stall).await;
    let caller = spawn_caller(&emu, &fake.base, extra).await;
    let token = emu.user_token(&caller.base);
    (emu, fake, caller, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_only_the_contract_headers() {
    let (emu, fake, caller, token) = setup(vec![(201, None)], false, &[]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/", caller.base))
        .bearer_auth(&token)
        .header("cookie", "session=secret")
        .header("x-forwarded-host", "evil")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header(
            "x-cloud-trace-context",
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1",
        )
        .header("x-request-id", "rid-1")
        .json(&json!({"foo": "v", "keep": true}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let seen = fake.fake.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let (h, body) = &seen[0];
    assert_eq!(body, &json!({"bar": "v", "keep": true}));
    let auth = h["authorization"].to_str().expect("auth");
    let forwarded = auth.strip_prefix("Bearer ").expect("bearer");
    assert_ne!(forwarded, token, "the client's token is never forwarded");
    let exp = caller::token::expiry_of(forwarded).expect("a JWT");
    assert!(exp > std::time::SystemTime::now());
    let claims: Value = {
        use base64::Engine;
        let p = forwarded.split('.').nth(1).expect("payload");
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .expect("b64"),
        )
        .expect("json")
    };
    assert_eq!(claims["aud"], fake.base, "audience = origin of CALLED_URL");
    assert_eq!(claims["email"], emu.sa());
    assert_eq!(h["content-type"], "application/json");
    assert!(
        uuid::Uuid::parse_str(h["idempotency-key"].to_str().expect("key")).is_ok(),
        "a fresh UUID key"
    );
    assert_eq!(
        h["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(
        h["x-cloud-trace-context"],
        "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1"
    );
    assert_eq!(h["x-request-id"], "rid-1");
    assert!(h.get("cookie").is_none());
    assert!(h.get("x-forwarded-host").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_503_with_the_same_key_then_succeeds() {
    let (_emu, fake, caller, token) = setup(
        vec![(503, Some("0")), (429, Some("0")), (201, None)],
        false,
        &[],
    )
    .await;
    let res = crate::helpers::post(&caller.base, Some(&token), &json!({"foo": "x"})).await;
    assert_eq!(res.status(), 201);
    let seen = fake.fake.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    let keys: Vec<_> = seen
        .iter()
        .map(|(h, _)| h["idempotency-key"].clone())
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "retries reuse the key"
    );
}

/// A caller in front of a fake called that always answers `upstream`: the fake, and the
/// problem the caller answers (which must have the status `expected`).
async fn outcome(upstream: u16, expected: u16) -> (FakeCalled, Problem) {
    let (_e, fake, caller, token) = setup(vec![(upstream, None)], false, &[]).await;
    let problem = assert_problem(
        crate::helpers::post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
        expected,
    )
    .await;
    (fake, problem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_outcomes_map_to_the_contract() {
    // 500: not retried, 502.
    let (fake, _) = outcome(500, 502).await;
    assert_eq!(fake.attempts(), 1);
    // 503 every time: three attempts, then 502.
    let (fake, _) = outcome(503, 502).await;
    assert_eq!(fake.attempts(), 3);
    // 401 from called: our own token was refused → dropped, fetched again, retried once, then
    // 502 (tests/api/refusals.rs has the case where the new token is accepted).
    let (fake, _) = outcome(401, 502).await;
    assert_eq!(fake.attempts(), 2);
    // 403 from called: our principal is not allowed → 502, no retry.
    let (fake, _) = outcome(403, 502).await;
    assert_eq!(fake.attempts(), 1);
    // 409 / 422 / 400 pass through with the called service's body.
    for s in [400, 409, 422] {
        let (_fake, Problem { detail, .. }) = outcome(s, s).await;
        assert_eq!(detail, "fake");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn called_down_is_502_and_stuck_is_504_within_the_deadline() {
    let emu = Emu::start().await;
    // Nothing listens on this port.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let caller = spawn_caller(&emu, &dead, &[]).await;
    let token = emu.user_token(&caller.base);
    assert_problem(
        crate::helpers::post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
        502,
    )
    .await;
    testkit::checks::assert_not_ready(&caller.base).await;

    let (_e, _fake, caller, token) =
        setup(vec![(201, None)], true, &[("CALL_TIMEOUT_MS", "600")]).await;
    let start = Instant::now();
    let Problem { .. } = assert_problem(
        crate::helpers::post(&caller.base, Some(&token), &json!({"foo": "x"})).await,
        504,
    )
    .await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "answered 504 in {took:?}");
}
