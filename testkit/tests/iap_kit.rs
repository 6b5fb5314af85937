//! The test kit's IAP helpers: the valid assertion verifies against the emulator's IAP key set
//! with an independent verifier (`jsonwebtoken`), and each misuse case is refused by it for its
//! own reason; the service agent's token is stripped; the chain behind the IAP front starts and
//! the front is in front of the caller.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};
use testkit::emu::Emu;
use testkit::iap::{PERSON, SERVICE_AGENT};

const AUD: &str = "/projects/000000000000/locations/local/services/caller";

async fn iap_keys(emu: &Emu) -> JwkSet {
    reqwest::get(emu.iap_jwks_url())
        .await
        .expect("get")
        .json()
        .await
        .expect("jwks")
}

/// `Ok(claims)` or the verifier's error kind.
fn verify(keys: &JwkSet, jwt: &str) -> Result<Value, String> {
    let kid = decode_header(jwt)
        .map_err(|e| format!("{:?}", e.kind()))?
        .kid
        .ok_or("no kid")?;
    let key = DecodingKey::from_jwk(keys.find(&kid).ok_or("unknown kid")?)
        .map_err(|e| format!("{:?}", e.kind()))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[AUD]);
    v.set_issuer(&["https://cloud.google.com/iap"]);
    v.leeway = 60;
    decode::<Value>(jwt, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| format!("{:?}", e.kind()))
}

fn lifetime(claims: &Value) -> u64 {
    claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat")
}

#[tokio::test]
async fn the_good_assertion_verifies_and_each_misuse_is_refused_for_its_reason() {
    let emu = Emu::start().await;
    let keys = iap_keys(&emu).await;
    let good = verify(&keys, &emu.iap_assertion(PERSON, AUD)).expect("valid");
    assert_eq!(good["email"], PERSON);
    assert_eq!(lifetime(&good), 600);

    let m = emu.iap_misuse(PERSON, AUD);
    let expected = [
        ("signature", Err("InvalidSignature")),
        ("algorithm", Err("InvalidAlgorithm")),
        ("audience", Err("InvalidAudience")),
        ("issuer", Err("InvalidIssuer")),
        ("expired", Err("ExpiredSignature")),
        // jsonwebtoken has no lifetime rule: the signature and claims are otherwise fine.
        ("lifetime", Ok(36_000)),
    ];
    for ((reason, jwt), (want_reason, want)) in m.cases().into_iter().zip(expected) {
        assert_eq!(reason, want_reason);
        let got = verify(&keys, jwt).map(|c| lifetime(&c));
        assert_eq!(got, want.map_err(str::to_owned), "{reason}");
    }
    assert_eq!(
        decode_header(&m.rs256).expect("header").alg,
        Algorithm::RS256
    );
    assert_eq!(
        decode_header(&m.rs256).expect("header").kid,
        decode_header(&m.forged).expect("header").kid
    );
    assert!(m.stripped.ends_with(".SIGNATURE_REMOVED_BY_GOOGLE"));
    assert!(verify(&keys, &m.stripped).is_err());
    assert_eq!(m.all().len(), 7);
}

#[tokio::test]
async fn the_service_agent_token_is_googles_and_stripped() {
    use base64::Engine;
    let emu = Emu::start().await;
    let token = emu.iap_service_agent_token("http://127.0.0.1:8080");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts[2], "SIGNATURE_REMOVED_BY_GOOGLE");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["email"], SERVICE_AGENT);
    assert_eq!(
        SERVICE_AGENT,
        "service-000000000000@gcp-sa-iap.iam.gserviceaccount.com"
    );
    assert_eq!(claims["aud"], "http://127.0.0.1:8080");
    assert_eq!(claims["iss"], "https://accounts.google.com");
    assert_eq!(claims["email_verified"], true);
}

#[tokio::test]
async fn the_iap_chain_puts_the_front_before_the_caller() {
    let chain = testkit::iap_chain().await;
    assert_eq!(chain.audience, AUD);
    assert_ne!(chain.front, chain.caller.base);
    // Nobody signed in: the front answers, the caller never sees the request.
    let res = chain.post(None, &[], &json!({"foo": "hello"})).await;
    assert_eq!(res.status(), 401);
    let problem: Value = res.json().await.expect("json");
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("X-Local-Iap-User")
    );
    // Through the front, the caller's own answer comes back (its health route needs no token).
    let live = reqwest::Client::new()
        .get(format!("{}/health/live", chain.front))
        .header("X-Local-Iap-User", PERSON)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    let direct = chain
        .send_to_caller(reqwest::Method::GET, "/health/live", &[], None)
        .await;
    assert_eq!(direct.status(), 200);
    // The headers the front would send, for replaying straight to the caller.
    let headers = chain.iap_headers(PERSON);
    assert_eq!(headers.len(), 4);
    assert!(headers[1].1.ends_with(".SIGNATURE_REMOVED_BY_GOOGLE"));
}
