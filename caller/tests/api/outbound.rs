//! Attacks on the caller's outbound side, against real fakes of `called` on 127.0.0.1:0:
//! whose identity reaches called (`X-Forwarded-Authorization`), redirects from `CALLED_URL`,
//! readiness probes as an amplifier, and a metadata server that never answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use testkit::checks::assert_problem;
use testkit::emu::{Emu, USER};
use testkit::in_process::{Service, spawn_caller};

/// What a fake `called` saw: the headers of every `POST /`, and how many readiness probes
/// (`GET /entities?limit=1`, the caller's authenticated probe) hit it.
#[derive(Clone, Default)]
struct Seen {
    posts: Arc<Mutex<Vec<HeaderMap>>>,
    live: Arc<AtomicUsize>,
}

impl Seen {
    fn posts(&self) -> Vec<HeaderMap> {
        self.posts.lock().expect("lock").clone()
    }
    fn post_count(&self) -> usize {
        self.posts.lock().expect("lock").len()
    }
    fn live_count(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    base
}

async fn record_post(State(seen): State<Seen>, headers: HeaderMap) -> Response {
    seen.posts.lock().expect("lock").push(headers);
    (StatusCode::CREATED, axum::Json(json!({"id": "fake"}))).into_response()
}

/// A read that takes a moment, so concurrent probes overlap with the check in flight.
async fn slow_live(State(seen): State<Seen>) -> &'static str {
    seen.live.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    "ok"
}

/// A fake `called` answering 201 to `POST /` and 200 to `GET /entities`, recording both.
async fn spawn_recorder() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/", post(record_post))
        .route("/entities", get(slow_live))
        .with_state(seen.clone());
    (serve(app).await, seen)
}

/// A new emulator, the recorder as called, and the caller in front of it with `extra`: the
/// emulator, what the recorder saw, the caller, and an end user's token for the caller.
async fn behind_recorder(extra: &[(&str, &str)]) -> (Emu, Seen, Service, String) {
    let emu = Emu::start().await;
    let (called, seen) = spawn_recorder().await;
    let caller = spawn_caller(&emu, &called, extra).await;
    let token = emu.user_token(&caller.base);
    (emu, seen, caller, token)
}

/// `POST {base}/` with `{"foo": "x"}` and `headers`.
async fn post_with(base: &str, headers: &[(&str, String)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/"))
        .json(&json!({"foo": "x"}));
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.expect("post")
}

/// [`post_with`] a bearer `token` and `forwarded` as the X-Forwarded-Authorization bearer.
async fn post_forwarding(base: &str, token: &str, forwarded: &str) -> reqwest::Response {
    post_with(
        base,
        &[
            ("authorization", format!("Bearer {token}")),
            ("x-forwarded-authorization", format!("Bearer {forwarded}")),
        ],
    )
    .await
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

// ---- Issue 11 item 1: the end user's proof travels with the caller's own token. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_x_forwarded_authorization_is_replaced_by_the_verified_client_token() {
    let (emu, seen, caller, token) = behind_recorder(&[]).await;
    let forged = emu
        .emulator
        .mint("ceo@example.com", &caller.base, Duration::from_secs(600));
    let res = post_forwarding(&caller.base, &token, &forged).await;
    assert_eq!(res.status(), 201);
    let posts = seen.posts();
    assert_eq!(posts.len(), 1);
    let h = &posts[0];
    let forwarded: Vec<_> = h.get_all("x-forwarded-authorization").iter().collect();
    assert_eq!(forwarded.len(), 1, "exactly one X-Forwarded-Authorization");
    // Booleans, not the values: a failing test must not print tokens.
    assert!(
        forwarded[0].to_str().expect("ascii") == format!("Bearer {token}"),
        "the client's own, verified token — never the forged one"
    );
    let own = header(h, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("the caller's own bearer token");
    assert_ne!(own, token, "Authorization carries the caller's own token");
    assert!(caller::token::expiry_of(own).is_ok(), "a JWT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_mode_forwards_the_token_cloud_run_checked() {
    let (emu, seen, caller, token) =
        behind_recorder(&[("AUTH_MODE", "platform"), ("AUTH_PLATFORM_TRUSTED", "true")]).await;
    let other = emu
        .emulator
        .mint(USER, "https://elsewhere.example", Duration::from_secs(600));
    let res = post_with(
        &caller.base,
        &[
            ("x-serverless-authorization", format!("bearer {token}")),
            ("authorization", format!("Bearer {other}")),
            ("x-forwarded-authorization", format!("Bearer {other}")),
        ],
    )
    .await;
    assert_eq!(res.status(), 201);
    let posts = seen.posts();
    assert!(
        header(&posts[0], "x-forwarded-authorization") == Some(format!("Bearer {token}").as_str()),
        "the X-Serverless-Authorization token the caller verified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_off_forwards_no_end_user_token_even_a_client_supplied_one() {
    let (_emu, seen, caller, token) = behind_recorder(&[("AUTH_MODE", "off")]).await;
    let res = post_forwarding(&caller.base, &token, &token).await;
    assert_eq!(res.status(), 201);
    let posts = seen.posts();
    assert!(posts[0].get("x-forwarded-authorization").is_none());
    let own = header(&posts[0], "authorization").expect("the caller's own token");
    assert_ne!(own, format!("Bearer {token}"));
}

// ---- Issue 12 item 10: redirects from CALLED_URL are never followed. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_from_called_is_not_followed() {
    let emu = Emu::start().await;
    let (elsewhere, stolen) = spawn_recorder().await;
    let to = format!("{elsewhere}/");
    let redirector = Router::new()
        .route(
            "/",
            post(move || {
                let to = to.clone();
                async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
            }),
        )
        .route("/entities", get(|| async { "{}" }));
    let called = serve(redirector).await;
    let caller = spawn_caller(&emu, &called, &[]).await;
    let token = emu.user_token(&caller.base);
    let res = reqwest::Client::new()
        .post(format!("{}/", caller.base))
        .bearer_auth(&token)
        .header("idempotency-key", "k-redirect")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({"foo": "secret"}))
        .send()
        .await
        .expect("post");
    let detail = assert_problem(res, 502).await.detail;
    assert!(detail.contains("redirect"), "detail says so: {detail}");
    assert_eq!(stolen.post_count(), 0, "the other host never saw the body");
}

// ---- Issue 12 item 11: a token that does not come in time is not blamed on called. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_metadata_server_is_not_blamed_on_called() {
    let emu = Emu::start().await;
    // Accepts connections, holds them, never answers.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metadata = stalled.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = stalled.accept().await {
            held.push(sock);
        }
    });
    let (called, seen) = spawn_recorder().await;
    let caller = spawn_caller(
        &emu,
        &called,
        &[
            ("GCE_METADATA_HOST", metadata.as_str()),
            ("CALL_TIMEOUT_MS", "500"),
            ("TOKEN_FETCH_TIMEOUT_MS", "5000"),
        ],
    )
    .await;
    let token = emu.user_token(&caller.base);
    let res = crate::helpers::post(&caller.base, Some(&token), &json!({"foo": "x"})).await;
    let testkit::checks::Problem {
        detail,
        retry_after,
        ..
    } = assert_problem(res, 503).await;
    assert!(
        detail.contains("token"),
        "detail is about the token: {detail}"
    );
    assert!(
        retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "503 carries Retry-After"
    );
    assert_eq!(seen.post_count(), 0, "called was never contacted");
}

// ---- Issue 12 item 8: readiness probes do not fan out. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_anonymous_probes_cost_one_upstream_check() {
    let emu = Emu::start().await;
    let (called, seen) = spawn_recorder().await;
    let caller = spawn_caller(&emu, &called, &[]).await;
    let url = format!("{}/health/ready", caller.base);
    let elapsed = testkit::checks::probe_burst(&url, 100).await;
    // Checks are serialized and each result is served for about a second, so a burst lasting
    // `elapsed` costs at most one check per started second — not one per probe.
    let bound = 1 + elapsed.as_secs() as usize;
    let hits = seen.live_count();
    eprintln!("100 probes in {elapsed:?} cost {hits} upstream checks");
    assert!(
        (1..=bound).contains(&hits),
        "100 probes in {elapsed:?} cost {hits} upstream checks (at most {bound})"
    );
}

// ---- The hop's own client (caller::hop): TLS on https://, never a cleartext fallback. ----

/// A plain TCP listener on loopback port 0 (a peer that speaks no HTTP or TLS of its own).
async fn raw_listener() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// An `https://` CALLED_URL that answers in cleartext: the caller speaks TLS (its first bytes
/// are a TLS handshake record), fails the handshake, and answers 502 — the request, its
/// tokens and its body never cross the wire unencrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_called_url_never_sends_the_request_in_cleartext() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (listener, addr) = raw_listener().await;
    let received = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sink = Arc::clone(&sink);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if let Ok(n) = stream.read(&mut buf).await {
                    sink.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
                // A plain-HTTP server's answer to whatever it got.
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let emu = Emu::start().await;
    let caller = spawn_caller(&emu, &format!("https://{addr}"), &[]).await;
    let token = emu.user_token(&caller.base);
    let res = post_with(
        &caller.base,
        &[("authorization", format!("Bearer {token}"))],
    )
    .await;
    assert_problem(res, 502).await;
    let bytes = received.lock().expect("lock").clone();
    assert!(!bytes.is_empty(), "the caller never connected");
    assert_eq!(
        bytes[0], 0x16,
        "the first byte is not a TLS handshake record"
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("POST"), "cleartext request on the wire");
    assert!(!text.contains(&token), "cleartext token on the wire");
}

/// A `CALLED_URL` that accepts TCP and never completes the TLS handshake: the hop's 5 s connect
/// bound (DNS, TCP and TLS together) ends the forward as 504, long before `CALL_TIMEOUT_MS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshake_is_bounded_by_the_connect_timeout() {
    let (listener, addr) = raw_listener().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream); // accepted, never answered
        }
    });
    let emu = Emu::start().await;
    let caller = spawn_caller(
        &emu,
        &format!("https://{addr}"),
        &[("CALL_TIMEOUT_MS", "30000")],
    )
    .await;
    let token = emu.user_token(&caller.base);
    let started = std::time::Instant::now();
    let res = post_with(
        &caller.base,
        &[("authorization", format!("Bearer {token}"))],
    )
    .await;
    assert_problem(res, 504).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ended by the 30 s call deadline, not the 5 s connect bound: {:?}",
        started.elapsed()
    );
}
