//! DNS rebinding against the metadata routes: a web page whose own name was rebound to
//! 127.0.0.1 reaches the emulator's port, but the browser still sends the page's name as
//! `Host`. The metadata routes answer only the names a metadata server is reached by (loopback,
//! the bind address, `metadata.google.internal`, `metadata`, `169.254.169.254`); the key sets,
//! which hold only public keys, answer any `Host`.

use std::net::SocketAddr;
use std::time::Duration;

use emulator::{EmulatorConfig, JWKS_PATH, PEM_CERTS_PATH};
use testkit::emu::Emu;

const IDENTITY: &str =
    "/computeMetadata/v1/instance/service-accounts/default/identity?audience=http://127.0.0.1:8080";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn get_as(addr: SocketAddr, host: &str, path: &str) -> (u16, Option<String>, String) {
    let res = http()
        .get(format!("http://{addr}{path}"))
        .header("Host", host)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let flavor = res
        .headers()
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, flavor, res.text().await.expect("body"))
}

fn is_jwt(s: &str) -> bool {
    s.split('.').count() == 3 && s.starts_with("eyJ")
}

#[tokio::test]
async fn metadata_routes_refuse_a_rebound_host() {
    let Emu { addr, .. } = Emu::start().await;
    let port = addr.port();
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        "metadata.google.internal.evil.example".to_owned(),
    ] {
        for path in [
            IDENTITY,
            "/computeMetadata/v1/instance/service-accounts/default/token",
            "/computeMetadata/v1/instance/service-accounts/?recursive=true",
            "/computeMetadata/v1/project/project-id",
            "/",
        ] {
            let (status, flavor, body) = get_as(addr, &host, path).await;
            assert_eq!(status, 403, "{host} {path}: {body}");
            assert_eq!(flavor.as_deref(), Some("Google"), "{host} {path}");
            assert!(!is_jwt(body.trim()), "{host} {path}: a token: {body}");
            assert!(!body.contains("access_token"), "{host} {path}: {body}");
            assert!(body.len() < 300, "a short text: {body}");
        }
    }
    // The names a metadata server is reached by get tokens.
    for host in [
        "metadata.google.internal".to_owned(),
        "metadata.google.internal:80".to_owned(),
        "metadata".to_owned(),
        "169.254.169.254".to_owned(),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, flavor, body) = get_as(addr, &host, IDENTITY).await;
        assert_eq!(status, 200, "{host}: {body}");
        assert_eq!(flavor.as_deref(), Some("Google"), "{host}");
        assert!(is_jwt(&body), "{host}: {body}");
    }
    // The key sets are public keys: any Host.
    for path in [JWKS_PATH, PEM_CERTS_PATH] {
        let (status, _, _) = get_as(addr, "evil.example", path).await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test]
async fn the_bind_address_is_a_metadata_host_and_no_other_address_is() {
    let Emu { addr, .. } = Emu::start_with(EmulatorConfig {
        bind: Some("192.0.2.10".parse().expect("ip")),
        ..EmulatorConfig::default()
    })
    .await;
    for (host, status) in [
        ("192.0.2.10:8085", 200),
        ("192.0.2.11:8085", 403),
        ("0.0.0.0:8085", 403),
    ] {
        let (got, _, body) = get_as(addr, host, IDENTITY).await;
        assert_eq!(got, status, "{host}: {body}");
    }
}
