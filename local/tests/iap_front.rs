//! The IAP front against an upstream that echoes what it received: what a client sends is
//! dropped or kept as IAP does, what IAP and Cloud Run add is there and verifiable, the answer
//! comes back as the upstream gave it, and the front's own refusals are problem documents.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use emulator::{Emulator, EmulatorConfig, IAP_ISSUER, IAP_SERVICE_AGENT, STRIPPED_SIGNATURE};
use local::iap_front::IapFront;
use serde_json::{Value, json};

const AUD: &str = "/projects/000000000000/locations/local/services/caller";

/// An upstream answering 207 with `{"method", "uri", "headers": {name: [values]}, "body"}`.
async fn echo() -> SocketAddr {
    async fn handle(req: Request) -> impl IntoResponse {
        let (parts, body) = req.into_parts();
        let mut headers = serde_json::Map::new();
        for name in parts.headers.keys() {
            let values: Vec<Value> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| json!(v.to_str().unwrap_or("<bytes>")))
                .collect();
            headers.insert(name.as_str().to_owned(), Value::Array(values));
        }
        let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (
            http::StatusCode::MULTI_STATUS,
            [("x-upstream", "echo")],
            Json(json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            })),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(handle))
            .await
            .expect("echo");
    });
    addr
}

async fn front(emu: &Emulator, upstream: &str) -> SocketAddr {
    let front = IapFront::new(emu.clone(), upstream, AUD).expect("front");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(front.serve(listener, std::future::pending()));
    addr
}

fn part(jwt: &str, i: usize) -> Value {
    let segment = jwt.split('.').nth(i).expect("segment");
    serde_json::from_slice(&B64.decode(segment).expect("b64")).expect("json")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_front_adds_iap_headers_and_drops_the_clients() {
    let emu = Emulator::new(EmulatorConfig::default());
    let upstream = echo().await;
    let upstream_url = format!("http://{upstream}");
    let addr = front(&emu, &upstream_url).await;
    let res = client()
        .put(format!("http://{addr}/entities/x?page=2"))
        .header("X-Local-Iap-User", "alice@example.com")
        .header("X-Goog-IAP-JWT-Assertion", "forged.by.client")
        .header(
            "X-Goog-Authenticated-User-Email",
            "accounts.google.com:admin@example.com",
        )
        .header("X-Serverless-Authorization", "Bearer forged")
        .header("Authorization", "Bearer the-clients-own")
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Request-Id", "r-1")
        .body("{\"foo\":\"hello\"}")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 207, "the upstream's status comes back");
    assert_eq!(res.headers()["x-upstream"], "echo");
    let seen: Value = res.json().await.expect("json");
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["uri"], "/entities/x?page=2");
    assert_eq!(seen["body"], "{\"foo\":\"hello\"}");
    let h = &seen["headers"];
    let one = |name: &str| -> String {
        let values = h[name]
            .as_array()
            .unwrap_or_else(|| panic!("{name} missing: {h}"));
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].as_str().expect("text").to_owned()
    };

    let assertion = one("x-goog-iap-jwt-assertion");
    assert_ne!(assertion, "forged.by.client");
    assert_eq!(
        part(&assertion, 0),
        json!({"alg": "ES256", "kid": emu.current_iap_kid(), "typ": "JWT"})
    );
    let claims = part(&assertion, 1);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["iss"], IAP_ISSUER);
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        600
    );

    let agent = one("x-serverless-authorization");
    let agent = agent.strip_prefix("Bearer ").expect("Bearer");
    assert!(
        agent.ends_with(&format!(".{STRIPPED_SIGNATURE}")),
        "{agent}"
    );
    let agent_claims = part(agent, 1);
    assert_eq!(agent_claims["email"], IAP_SERVICE_AGENT);
    assert_eq!(agent_claims["aud"], upstream_url);

    assert_eq!(
        one("x-goog-authenticated-user-email"),
        "accounts.google.com:alice@example.com"
    );
    assert_eq!(
        one("x-goog-authenticated-user-id"),
        claims["sub"].as_str().expect("sub")
    );
    assert_eq!(one("authorization"), "Bearer the-clients-own");
    assert_eq!(one("x-request-id"), "r-1");
    assert_eq!(one("x-forwarded-for"), "203.0.113.9, 127.0.0.1");
    assert_eq!(one("x-forwarded-proto"), "http");
    assert_eq!(one("host"), upstream.to_string());
    assert!(h.get("x-local-iap-user").is_none(), "{h}");
}

#[tokio::test]
async fn without_a_person_the_front_answers_401() {
    let emu = Emulator::new(EmulatorConfig::default());
    let addr = front(&emu, "http://127.0.0.1:9").await;
    let res = client()
        .post(format!("http://{addr}/"))
        .json(&json!({"foo": "hello"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.expect("json");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("X-Local-Iap-User"), "{detail}");

    let res = client()
        .post(format!("http://{addr}/"))
        .header("X-Local-Iap-User", "not an email")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn an_unreachable_caller_is_a_502_problem() {
    let emu = Emulator::new(EmulatorConfig::default());
    // A port nobody listens on: bound, then closed.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gone_url = format!("http://{}", gone.local_addr().expect("addr"));
    drop(gone);
    let addr = front(&emu, &gone_url).await;
    let res = client()
        .get(format!("http://{addr}/health/live"))
        .header("X-Local-Iap-User", "alice@example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}
