//! IAP's side of the emulator over HTTP on 127.0.0.1: its key set in both of Google's forms
//! (`/iap/verify/public_key-jwk`, `/iap/verify/public_key`), assertions minted by
//! `POST /emulator/iap/assertion` and by the Rust API, verified here by an independent ES256
//! verifier (`jsonwebtoken`) against each form; rotation, the outage fault and the loopback
//! guard of the minting route.
//!
//! Python's google-auth (`id_token.verify_token(…, certs_url=…/iap/verify/public_key)`, the call
//! Google's IAP sample makes) and Node's google-auth-library run in `scripts/google-clients.sh`.

use std::net::SocketAddr;
use std::time::Duration;

use emulator::{IAP_ISSUER, IAP_JWKS_PATH, IAP_PEM_PATH, IapAssertion};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};
use testkit::emu::Emu;

const AUD: &str = "/projects/000000000000/locations/local/services/caller";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn get(addr: SocketAddr, path: &str) -> reqwest::Response {
    http()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("get")
}

fn validation(aud: &str) -> Validation {
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[aud]);
    v.set_issuer(&[IAP_ISSUER]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    v
}

/// Verifies `jwt` against the served JWKS: its claims, or the verifier's error.
async fn verify_jwks(addr: SocketAddr, jwt: &str, aud: &str) -> Result<Value, String> {
    let set: JwkSet = get(addr, IAP_JWKS_PATH).await.json().await.expect("jwks");
    let kid = decode_header(jwt)
        .map_err(|e| e.to_string())?
        .kid
        .expect("kid");
    let jwk = set.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    decode::<Value>(jwt, &key, &validation(aud))
        .map(|d| d.claims)
        .map_err(|e| format!("{:?}", e.kind()))
}

/// Verifies `jwt` against the served PEM map.
async fn verify_pem(addr: SocketAddr, jwt: &str, aud: &str) -> Result<Value, String> {
    let map: Value = get(addr, IAP_PEM_PATH).await.json().await.expect("pem map");
    let kid = decode_header(jwt)
        .map_err(|e| e.to_string())?
        .kid
        .expect("kid");
    let pem = map[&kid].as_str().ok_or("unknown kid")?;
    let key = pem_key(pem);
    decode::<Value>(jwt, &key, &validation(aud))
        .map(|d| d.claims)
        .map_err(|e| format!("{:?}", e.kind()))
}

/// The key of a PEM `SubjectPublicKeyInfo` of a P-256 key: the DER must be the 91-byte
/// `id-ecPublicKey`/`prime256v1` structure, whose last 65 bytes are the uncompressed point.
fn pem_key(pem: &str) -> DecodingKey {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    assert_eq!(der.len(), 91, "a P-256 SubjectPublicKeyInfo");
    assert_eq!(der[..26], PREFIX, "id-ecPublicKey, prime256v1, BIT STRING");
    assert_eq!(der[26], 0x04, "uncompressed point");
    DecodingKey::from_ec_der(&der[26..])
}

async fn mint_http(addr: SocketAddr, body: Value) -> reqwest::Response {
    http()
        .post(format!("http://{addr}/emulator/iap/assertion"))
        .json(&body)
        .send()
        .await
        .expect("mint")
}

#[tokio::test]
async fn key_sets_in_both_forms_with_google_headers() {
    let Emu { emulator, addr } = Emu::start().await;
    let res = get(addr, IAP_JWKS_PATH).await;
    assert_eq!(res.status(), 200);
    let cache = res.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cache.contains("public") && cache.contains("max-age=3600"),
        "{cache}"
    );
    assert_eq!(res.headers()["content-type"], "application/json");
    let jwks: Value = res.json().await.expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    for (field, value) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(k[field], value, "{field}");
    }
    assert_eq!(k["kid"], emulator.current_iap_kid());
    assert!(k.get("n").is_none() && k["x"].is_string() && k["y"].is_string());
    // Google's key set is another set: the IAP kid is not in it.
    let google: Value = get(addr, emulator::JWKS_PATH)
        .await
        .json()
        .await
        .expect("jwks");
    assert!(!google.to_string().contains(&emulator.current_iap_kid()));

    let res = get(addr, IAP_PEM_PATH).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("cache-control"));
    let map: Value = res.json().await.expect("json");
    let pem = map[emulator.current_iap_kid()].as_str().expect("pem");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    // Any Host may read public keys (as anyone reads Google's).
    let res = http()
        .get(format!("http://{addr}{IAP_PEM_PATH}"))
        .header("Host", "www.gstatic.com")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(emulator.iap_key_requests(), 3);
}

#[tokio::test]
async fn minted_assertions_verify_against_each_form_and_only_for_their_audience() {
    let Emu { emulator, addr } = Emu::start().await;
    let res = mint_http(
        addr,
        json!({"email": "alice@example.com", "audience": AUD, "hd": "example.com"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["kid"], emulator.current_iap_kid());
    let jwt = body["assertion"].as_str().expect("assertion");
    let header = decode_header(jwt).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    let claims = verify_jwks(addr, jwt, AUD).await.expect("valid (JWKS)");
    assert_eq!(
        verify_pem(addr, jwt, AUD).await.expect("valid (PEM)"),
        claims
    );
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["hd"], "example.com");
    assert_eq!(claims["iss"], IAP_ISSUER);
    assert_eq!(claims["sub"], emulator::iap_subject("alice@example.com"));
    let (iat, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    );
    assert_eq!(exp - iat, 600);
    assert_eq!(
        verify_jwks(addr, jwt, "/projects/1/global/backendServices/2").await,
        Err("InvalidAudience".to_owned())
    );

    // The Rust API, and the hand-shaped ones.
    let jwt = emulator.mint_iap(&IapAssertion::new("bob@example.com", AUD));
    assert_eq!(
        verify_pem(addr, &jwt, AUD).await.expect("valid")["email"],
        "bob@example.com"
    );
    let forged = emulator
        .forge_iap(IapAssertion::new("bob@example.com", AUD).claims(testkit::claims::now()));
    assert_eq!(
        verify_jwks(addr, &forged, AUD).await,
        Err("InvalidSignature".to_owned())
    );
    let wrong_iss = emulator.mint_iap(
        &IapAssertion::new("bob@example.com", AUD).with_issuer("https://accounts.google.com"),
    );
    assert_eq!(
        verify_jwks(addr, &wrong_iss, AUD).await,
        Err("InvalidIssuer".to_owned())
    );
}

#[tokio::test]
async fn minting_options_and_refusals() {
    let Emu { addr, .. } = Emu::start().await;
    let res = mint_http(
        addr,
        json!({"email": "a@example.com", "audience": AUD, "sub": "accounts.google.com:42",
               "lifetime_secs": 36000, "issued_at": 1_000_000}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let jwt: Value = res.json().await.expect("json");
    let mut v = validation(AUD);
    v.validate_exp = false;
    let map: Value = get(addr, IAP_PEM_PATH).await.json().await.expect("pem");
    let jwt = jwt["assertion"].as_str().expect("jwt");
    let kid = decode_header(jwt).expect("header").kid.expect("kid");
    let key = pem_key(map[&kid].as_str().expect("pem"));
    let claims = decode::<Value>(jwt, &key, &v)
        .expect("signature valid")
        .claims;
    assert_eq!(claims["sub"], "accounts.google.com:42");
    assert_eq!(claims["iat"], 1_000_000);
    assert_eq!(claims["exp"], 1_036_000);
    assert_eq!(
        verify_jwks(addr, jwt, AUD).await,
        Err("ExpiredSignature".to_owned())
    );

    for bad in [
        json!({"email": "not-an-email", "audience": AUD}),
        json!({"email": "a@example.com", "audience": " "}),
        json!({"email": "a@example.com", "audience": AUD, "lifetime_secs": 0}),
        json!({"email": "a@example.com", "audience": AUD, "surprise": 1}),
        json!({"audience": AUD}),
    ] {
        let res = mint_http(addr, bad.clone()).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
    }
    // A rebound DNS name cannot mint.
    let res = http()
        .post(format!("http://{addr}/emulator/iap/assertion"))
        .header("Host", "attacker.example")
        .json(&json!({"email": "a@example.com", "audience": AUD}))
        .send()
        .await
        .expect("mint");
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn rotation_and_outage_cover_the_iap_key_set() {
    let Emu { emulator, addr } = Emu::start().await;
    let before = emulator.mint_iap(&IapAssertion::new("a@example.com", AUD));
    let (old_kid, old_google) = (emulator.current_iap_kid(), emulator.current_kid());
    let res = http()
        .post(format!("http://{addr}/emulator/rotate"))
        .send()
        .await
        .expect("rotate");
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.expect("json");
    assert_eq!(rotated["iap_kid"], emulator.current_iap_kid());
    assert_eq!(rotated["kid"], emulator.current_kid());
    assert_ne!(emulator.current_iap_kid(), old_kid);
    assert_ne!(emulator.current_kid(), old_google);
    // The replaced key stays published: an assertion minted before still verifies.
    verify_jwks(addr, &before, AUD)
        .await
        .expect("old key still published");
    let after = emulator.mint_iap(&IapAssertion::new("a@example.com", AUD));
    verify_pem(addr, &after, AUD)
        .await
        .expect("new key published");

    emulator.set_jwks_down(true);
    assert_eq!(get(addr, IAP_JWKS_PATH).await.status(), 503);
    assert_eq!(get(addr, IAP_PEM_PATH).await.status(), 503);
    emulator.set_jwks_down(false);
    let res = http()
        .post(format!("http://{addr}/emulator/faults"))
        .json(&json!({"iap_keys_down": true}))
        .send()
        .await
        .expect("faults");
    let faults: Value = res.json().await.expect("json");
    assert_eq!(faults["iap_keys_down"], true);
    assert_eq!(faults["jwks_down"], false);
    assert_eq!(get(addr, IAP_JWKS_PATH).await.status(), 503);
    assert_eq!(
        get(addr, emulator::JWKS_PATH).await.status(),
        200,
        "Google's keys unaffected"
    );
    emulator.set_iap_keys_down(false);
    assert_eq!(get(addr, IAP_JWKS_PATH).await.status(), 200);
}
