//! The emulator as Google's clients see it, over HTTP on 127.0.0.1: Rust's `google-cloud-auth`
//! metadata-server credentials (ID and access tokens), the metadata paths and headers Google's
//! libraries rely on, both key-set forms, and the loopback guard of `/emulator/*`.
//!
//! Python's google-auth and Node's google-auth-library run against the binary in
//! `scripts/google-clients.sh`.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use emulator::{Emulator, EmulatorConfig, JWKS_PATH, PEM_CERTS_PATH};
use serde_json::{Value, json};
use testkit::emu::Emu;

const AUD: &str = "https://called.example";
const SA: &str = "caller@invoker-local.iam.gserviceaccount.com";

async fn start() -> (Emulator, SocketAddr) {
    let Emu { emulator, addr } = Emu::start().await;
    (emulator, addr)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).expect("base64")).expect("json")
}

async fn get(addr: SocketAddr, path: &str) -> reqwest::Response {
    http()
        .get(format!("http://{addr}{path}"))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn google_cloud_auth_mds_id_token_credentials() {
    use google_cloud_auth::credentials::idtoken::mds::{Builder, Format};
    let (emu, addr) = start().await;
    let creds = Builder::new(AUD)
        .with_endpoint(format!("http://{addr}"))
        .with_format(Format::Full)
        .build()
        .expect("credentials");
    let token = creds.id_token().await.expect("id token");
    let c = claims(&token);
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["email"], SA);
    assert_eq!(c["email_verified"], true);
    assert_eq!(emu.identity_requests(), 1);
}

#[tokio::test]
async fn google_cloud_auth_mds_access_token_credentials() {
    use google_cloud_auth::credentials::mds::Builder;
    let (emu, addr) = start().await;
    let creds = Builder::default()
        .with_endpoint(format!("http://{addr}"))
        .with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
        .build_access_token_credentials()
        .expect("credentials");
    let token = creds.access_token().await.expect("access token");
    assert!(token.token.starts_with("ya29.emulator-"), "opaque token");
    assert_eq!(
        token.token.split('.').count(),
        2,
        "never shaped like a JWT, so no service accepts it as an identity"
    );
    assert_eq!(emu.token_requests(), 1);
}

#[tokio::test]
async fn metadata_answers_carry_googles_headers_and_shapes() {
    let (_emu, addr) = start().await;
    let res = get(
        addr,
        "/computeMetadata/v1/instance/service-accounts/?recursive=true",
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["metadata-flavor"], "Google");
    assert_eq!(res.headers()["server"], "Metadata Server for VM");
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.expect("json");
    let account = json!({
        "aliases": ["default"],
        "email": SA,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    });
    assert_eq!(body, json!({ "default": account, SA: account }));

    // A directory without its slash moves to the slashed path, query kept (as Google's).
    let res = get(addr, "/computeMetadata/v1/instance?recursive=true").await;
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"],
        "/computeMetadata/v1/instance/?recursive=true"
    );
    assert_eq!(res.headers()["metadata-flavor"], "Google");

    for (path, want) in [
        ("/computeMetadata/v1/project/project-id", "invoker-local"),
        (
            "/computeMetadata/v1/project/numeric-project-id",
            "123456789012",
        ),
        (
            "/computeMetadata/v1/project/project-id?alt=json",
            "\"invoker-local\"",
        ),
        (
            "/computeMetadata/v1/instance/region",
            "projects/123456789012/regions/us-central1",
        ),
        (
            "/computeMetadata/v1/instance/zone",
            "projects/123456789012/zones/us-central1-1",
        ),
        (
            "/computeMetadata/v1/universe/universe-domain",
            "googleapis.com",
        ),
        ("/computeMetadata/v1/", "instance/\nproject/\nuniverse/\n"),
        (
            "/computeMetadata/v1/instance/service-accounts/default/",
            "aliases\nemail\nidentity\nscopes\ntoken\n",
        ),
    ] {
        let res = get(addr, path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.text().await.expect("body"), want, "{path}");
    }
    let id = get(addr, "/computeMetadata/v1/instance/id").await;
    assert!(id.text().await.expect("id").parse::<u64>().is_ok());

    for (path, status) in [
        ("/computeMetadata/v1/instance/nope", 404),
        ("/computeMetadata/v1/project/project-id/", 404),
        ("/computeMetadata/v1/project/project-id?alt=xml", 400),
        (
            "/computeMetadata/v1/instance/service-accounts/other@x.iam.gserviceaccount.com/email",
            404,
        ),
    ] {
        assert_eq!(get(addr, path).await.status(), status, "{path}");
    }
}

#[tokio::test]
async fn metadata_refuses_what_google_refuses() {
    let (emu, addr) = start().await;
    let url = format!("http://{addr}/computeMetadata/v1/project/project-id");
    let no_flavor = http().get(&url).send().await.expect("request");
    assert_eq!(no_flavor.status(), 403);
    assert_eq!(no_flavor.headers()["metadata-flavor"], "Google");
    let proxied = http()
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .expect("request");
    assert_eq!(proxied.status(), 403);
    assert!(
        proxied
            .text()
            .await
            .expect("body")
            .contains("X-Forwarded-For")
    );
    emu.set_identity_fault(emulator::IdentityFault::ForbiddenOnce);
    let identity = http()
        .get(format!(
            "http://{addr}/computeMetadata/v1/instance/service-accounts/default/identity?audience=a"
        ))
        .header("Metadata-Flavor", "Google")
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .expect("request");
    assert_eq!(identity.status(), 403);
    assert_eq!(
        emu.identity_fault(),
        emulator::IdentityFault::ForbiddenOnce,
        "refused before any token work (the one-shot fault is still armed)"
    );
}

#[tokio::test]
async fn both_key_set_forms_publish_the_same_keys_through_rotation() {
    let (emu, addr) = start().await;
    let kids = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect();
        k.sort();
        k
    };
    let pem_kids = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("map").keys().cloned().collect();
        k.sort();
        k
    };
    for round in 0..2 {
        let jwks: Value = get(addr, JWKS_PATH).await.json().await.expect("jwks");
        let res = get(addr, PEM_CERTS_PATH).await;
        assert!(
            res.headers()["cache-control"]
                .to_str()
                .expect("ascii")
                .contains("max-age=3600")
        );
        let pem: Value = res.json().await.expect("pem map");
        assert_eq!(kids(&jwks), pem_kids(&pem), "round {round}");
        assert!(pem_kids(&pem).contains(&emu.current_kid()));
        for cert in pem.as_object().expect("map").values() {
            let cert = cert.as_str().expect("pem");
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----\n"), "{cert}");
            assert!(cert.ends_with("-----END CERTIFICATE-----\n"), "{cert}");
        }
        let rotated = http()
            .post(format!("http://{addr}/emulator/rotate"))
            .send()
            .await
            .expect("rotate");
        assert_eq!(rotated.status(), 200);
    }
    let pem: Value = get(addr, PEM_CERTS_PATH).await.json().await.expect("pem");
    assert_eq!(pem.as_object().expect("map").len(), 3);
    emu.set_jwks_down(true);
    assert_eq!(get(addr, PEM_CERTS_PATH).await.status(), 503);
}

/// A web page whose own name was rebound to 127.0.0.1 reaches the emulator's port, but the
/// browser still sends the page's name as `Host`: such requests must not mint tokens, rotate
/// keys or set faults.
#[tokio::test]
async fn dns_rebinding_host_cannot_mint() {
    let (emu, addr) = start().await;
    let mint = json!({"email": "admin@example.com", "audience": AUD});
    for host in [
        "attacker.example",
        "attacker.example:8085",
        "127.0.0.1.nip.io",
    ] {
        for (path, body) in [
            ("/emulator/mint", mint.clone()),
            ("/emulator/rotate", json!({})),
            ("/emulator/faults", json!({"identity": "unavailable"})),
        ] {
            let res = http()
                .post(format!("http://{addr}{path}"))
                .header("Host", host)
                .json(&body)
                .send()
                .await
                .expect("request");
            assert_eq!(res.status(), 403, "{host} {path}");
            assert_eq!(
                res.headers()["content-type"],
                "application/problem+json",
                "{host} {path}"
            );
            let problem: Value = res.json().await.expect("problem");
            assert_eq!(problem["status"], 403);
            let detail = problem["detail"].as_str().expect("detail");
            assert!(detail.contains("loopback"), "{detail}");
            assert!(detail.contains(host), "{detail}");
        }
    }
    assert_eq!(emu.identity_fault(), emulator::IdentityFault::None);
    // Loopback names and addresses still work.
    for host in [format!("localhost:{}", addr.port()), addr.to_string()] {
        let res = http()
            .post(format!("http://{addr}/emulator/mint"))
            .header("Host", &host)
            .json(&mint)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{host}");
        let token: Value = res.json().await.expect("json");
        assert_eq!(claims(token["token"].as_str().expect("token"))["aud"], AUD);
    }
}

/// The binary's bind address (when not loopback) is accepted as `Host`, no other name is.
#[tokio::test]
async fn the_bind_address_is_a_control_host() {
    let Emu { addr, .. } = Emu::start_with(EmulatorConfig {
        bind: Some("192.0.2.10".parse().expect("ip")),
        ..EmulatorConfig::default()
    })
    .await;
    for (host, status) in [("192.0.2.10:8085", 200), ("192.0.2.11:8085", 403)] {
        let res = http()
            .post(format!("http://{addr}/emulator/rotate"))
            .header("Host", host)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), status, "{host}");
    }
}
