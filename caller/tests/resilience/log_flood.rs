//! Issue 20 item 2 against the real `caller` binary with Cloud Logging JSON: 20 KB of TABs in
//! each of `X-Request-Id`, `User-Agent` and `X-Forwarded-For` (the issue sent 120 KB; the
//! server now reads at most a 64 KiB head) — the log bytes per request stay bounded,
//! every line is valid JSON under Cloud Logging's entry limit, and the bad `X-Request-Id` is
//! replaced by a new id, which is the one logged, echoed and propagated to called.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use testkit::child::{Proc, free_port};
use testkit::emu::Emu;

use crate::helpers::caller_spec;

/// A stand-in for called that answers every `POST` 201 and `GET` 200, keeping the
/// `X-Request-Id` of each `POST`; its base URL and what it kept.
async fn recording_called() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    let app = Router::new().fallback(move |method: axum::http::Method, headers: HeaderMap| {
        let kept = Arc::clone(&kept);
        async move {
            if method != axum::http::Method::POST {
                return (StatusCode::OK, axum::Json(json!({"status": "live"})));
            }
            let ids: Vec<String> = headers
                .get_all("x-request-id")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            kept.lock().expect("lock").push(ids.join(" | "));
            (StatusCode::CREATED, axum::Json(json!({"id": "stub"})))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn echoed(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-request-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_tab_filled_headers_do_not_amplify_logs_and_the_replaced_id_is_propagated() {
    let emu = Emu::start().await;
    let (called_base, seen) = recording_called().await;
    let port = free_port();
    let spec = caller_spec(&emu, port, &called_base)
        .with("RUST_LOG", "info")
        .with("LOG_FORMAT", "json")
        .ready_path("/health/live")
        .capture();
    let caller = Proc::start(&spec, port).await;
    let base = caller.base.clone();
    let client = testkit::ready::client_with_timeout(Duration::from_secs(15));
    let tabs = format!("x{}x", "\t".repeat(20_000));
    let post = |token: Option<String>, request_id: &str| {
        let mut req = client
            .post(format!("{base}/"))
            .header("x-request-id", request_id)
            .header("user-agent", &tabs)
            .header("x-forwarded-for", &tabs)
            .json(&json!({"foo": "x"}));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };

    // Without a token: 401, a new id echoed.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let res = post(None, &tabs).await.expect("post");
        assert_eq!(res.status(), 401);
        let id = echoed(&res);
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "echoed {} bytes",
            id.len()
        );
        ids.push(id);
    }
    // With a token: forwarded; called receives the new id, the client gets it back.
    let res = post(Some(emu.user_token(&base)), &tabs)
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let id = echoed(&res);
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "echoed {} bytes",
        id.len()
    );
    assert_eq!(
        seen.lock().expect("lock").last().map(String::as_str),
        Some(id.as_str()),
        "called received the replacement, alone"
    );
    ids.push(id);
    // A well-formed id is propagated and echoed as sent.
    let res = post(Some(emu.user_token(&base)), "client-id-42")
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    assert_eq!(echoed(&res), "client-id-42");
    assert_eq!(
        seen.lock().expect("lock").last().map(String::as_str),
        Some("client-id-42")
    );

    let lines = caller.stop_cleanly().await;
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| {
            assert!(l.len() < 64 * 1024, "a line of {} bytes", l.len());
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", &l[..l.len().min(300)]))
        })
        .collect();
    let of_attacks: usize = lines
        .iter()
        .zip(&parsed)
        .filter(|(_, v)| {
            v["request_id"]
                .as_str()
                .is_some_and(|r| ids.iter().any(|id| id == r))
        })
        .map(|(l, _)| l.len() + 1)
        .sum();
    let per_request = of_attacks / ids.len();
    testkit::checks::loud(&format!(
        "caller: {per_request} bytes of log per request with 20 KB of TABs in each of three headers"
    ));
    assert!(per_request <= 8 * 1024, "{per_request} bytes per request");
    for id in &ids {
        assert!(
            parsed.iter().any(|v| v["request_id"] == id.as_str()
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("X-Request-Id replaced"))
                && v["replaced_request_id_bytes"] == 20_002),
            "no line says request {id}'s X-Request-Id was replaced"
        );
    }
}
