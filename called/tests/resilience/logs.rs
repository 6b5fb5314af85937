//! Tokens never reach the logs: the real `called` binary at `RUST_LOG=trace` with Cloud Logging
//! JSON, fed valid, forged, expired, misdirected and unauthorised tokens; every captured line
//! of stdout and stderr is searched for any part of any of them.

use std::time::Duration;

use serde_json::{Value, json};

use tempfile::TempDir;
use testkit::checks::assert_no_tokens;
use testkit::child::{Proc, free_port};
use testkit::claims::now;
use testkit::emu::Emu;
use testkit::in_process::sqlite_store;

use crate::helpers::called_verifying;

/// The real `called` binary verifying against `emu` (SQLite in the returned folder), its logs
/// captured at `level` in `format`; its audience.
async fn start_logging(emu: &Emu, level: &str, format: &str) -> (Proc, String, TempDir) {
    let (database_url, dir) = sqlite_store();
    let port = free_port();
    let spec = called_verifying(emu, port, &database_url)
        .with("RUST_LOG", level)
        .with("LOG_FORMAT", format)
        .capture();
    let called = Proc::start(&spec, port).await;
    (called, format!("http://127.0.0.1:{port}"), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn called_never_logs_a_token_even_at_trace_level() {
    let emu = Emu::start().await;
    let (called, audience, _dir) = start_logging(&emu, "trace", "json").await;
    let sa = emu.sa();
    let good = emu.sa_token(&audience);
    let bad = emu.refused_tokens(&sa, &audience, &good);
    let tokens = bad.all_with(&good);

    let client = testkit::ready::client_with_timeout(Duration::from_secs(10));
    let base = &called.base;
    let post = |token: &str, header: &'static str| {
        client
            .post(format!("{base}/"))
            .header(header, format!("Bearer {token}"))
            .header("idempotency-key", "log-test")
            .json(&json!({"bar": "hello"}))
            .send()
    };
    let res = post(&good, "authorization").await.expect("post");
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let res = post(&good, "authorization").await.expect("replay");
    assert_eq!(res.status(), 201);
    for (path, status) in [
        (format!("/entities/{id}"), 200),
        ("/entities?limit=5".to_owned(), 200),
        (format!("/entities?limit=5&access_token={good}"), 200),
    ] {
        let res = client
            .get(format!("{base}{path}"))
            .bearer_auth(&good)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), status, "{path}");
    }
    for (token, status) in bad.with_statuses() {
        assert_eq!(
            post(token, "authorization").await.expect("post").status(),
            status
        );
    }
    // Verify mode ignores X-Serverless-Authorization: no credentials.
    assert_eq!(
        post(&good, "x-serverless-authorization")
            .await
            .expect("post")
            .status(),
        401
    );
    // A malformed body with a valid token: the 400 path.
    let res = client
        .post(format!("{base}/"))
        .bearer_auth(&good)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);

    let lines = called.stop_cleanly().await;
    assert_no_tokens("called", &lines, &tokens);
}

/// Issue 12 item 13: a newline and ESC inside an email claim must not forge a log line. The
/// real binary, text logs at `info` (what a developer reads in a terminal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_log_line_in_an_email_claim_is_escaped() {
    let emu = Emu::start().await;
    let (called, audience, _dir) = start_logging(&emu, "info", "text").await;
    let claims = |email: &str| {
        json!({"iss": "https://accounts.google.com", "aud": audience, "sub": "1", "email": email,
               "email_verified": true, "iat": now(), "exp": now() + 600})
    };
    let forged = "x@evil.example\n2030-01-01T00:00:00.000000Z  INFO request{http.method=POST http.path=/}: request finished http.status=201 \u{1b}[2K";
    let client = reqwest::Client::new();
    for (email, allowed) in [(forged, [401, 403]), ("mallory@evil.example", [403, 403])] {
        let res = client
            .post(format!("{}/", called.base))
            .bearer_auth(emu.emulator.mint_with(claims(email)))
            .json(&json!({"bar": "x"}))
            .send()
            .await
            .expect("post");
        assert!(allowed.contains(&res.status().as_u16()), "{}", res.status());
    }
    let lines = called.stop_cleanly().await;
    let text = lines.join("\n");
    assert!(!text.contains('\u{1b}'), "raw ESC in the logs:\n{text}");
    let finished = lines
        .iter()
        .filter(|l| l.contains("request finished") && l.contains("http.method=POST"))
        .count();
    assert_eq!(finished, 2, "one line per request, none forged:\n{text}");
    assert!(
        !lines.iter().any(|l| l.starts_with("2030-01-01")),
        "forged line:\n{text}"
    );
}

/// Issue 12 item 13: the logged remote IP is the `X-Forwarded-For` entry Cloud Run's front end
/// appended (the last), not the one the client wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_written_forwarded_for_is_not_the_logged_remote_ip() {
    let emu = Emu::start().await;
    let (mut called, audience, _dir) = start_logging(&emu, "info", "json").await;
    let res = reqwest::Client::new()
        .post(format!("{}/", called.base))
        .bearer_auth(emu.sa_token(&audience))
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
        .json(&json!({"bar": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    called.sigterm().await;
    let _ = called.wait_exit(Duration::from_secs(15)).await;
    let lines = called.into_logs().await;
    let finished: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["message"] == "request finished" && v["httpRequest"]["requestMethod"] == "POST"
        })
        .collect();
    assert_eq!(finished.len(), 1, "{lines:?}");
    assert_eq!(
        finished[0]["httpRequest"]["remoteIp"], "203.0.113.9",
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("6.6.6.6")), "{lines:?}");
}
