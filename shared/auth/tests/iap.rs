//! Identity-Aware Proxy assertions as a token kind of their own (issue 22), at the library's
//! API: `Verifier::iap` accepts only ES256 from IAP's keys, `iss` `https://cloud.google.com/iap`,
//! the configured audiences, IAP's lifetime; the `Authenticator` with `IapUsers` takes the person
//! from `X-Goog-IAP-JWT-Assertion` (never IAP's service agent, never the unsigned
//! `X-Goog-Authenticated-User-*`), applies the allow-list to the person; `ForwardedUsers` with
//! `with_iap` verifies a forwarded assertion under IAP's rules.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emulator::{Emulator, EmulatorConfig};
use http::{HeaderMap, HeaderValue};
use invoker_auth::verify::{
    IAP_ISSUER, JwksCache, KeySource, STRIPPED_SIGNATURE, StaticKeys, Verifier,
};
use invoker_auth::{
    AllowList, AuthError, Authenticator, ForwardedUsers, HeaderRule, IAP_SERVICE_AGENTS, IapUsers,
};
use serde_json::{Value, json};

const IAP_AUD: &str = "/projects/123456789012/locations/europe-west1/services/caller";
const KID: &str = "iap-test-key";
const PERSON: &str = "alice@example.com";
const AGENT: &str = "service-123456789012@gcp-sa-iap.iam.gserviceaccount.com";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// A P-256 key pair and its JWKS entry under `kid`.
struct EcKey {
    pair: EcdsaKeyPair,
    kid: &'static str,
}

impl EcKey {
    fn new(kid: &'static str) -> Self {
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("pkcs8");
        Self { pair, kid }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
               "y": URL_SAFE_NO_PAD.encode(&point[33..])})
    }

    fn sign(&self, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(&json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"})),
            b64(claims)
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message.as_bytes())
            .expect("sign");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn person_claims() -> Value {
    let iat = now();
    json!({"iss": IAP_ISSUER, "aud": IAP_AUD, "sub": "accounts.google.com:1234567890",
           "email": PERSON, "hd": "example.com", "iat": iat, "exp": iat + 600})
}

fn set(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

struct Fixture {
    iap_key: EcKey,
    iap_keys: Arc<dyn KeySource>,
    emulator: Emulator,
    google_keys: Arc<dyn KeySource>,
}

impl Fixture {
    fn new() -> Self {
        let iap_key = EcKey::new(KID);
        let jwks = json!({"keys": [iap_key.jwk()]});
        let iap_keys: Arc<dyn KeySource> = Arc::new(
            StaticKeys::from_jwks(&serde_json::to_vec(&jwks).expect("json")).expect("keys"),
        );
        let emulator = Emulator::new(EmulatorConfig::default());
        let google = serde_json::to_vec(&emulator.public_jwks()).expect("jwks");
        let google_keys: Arc<dyn KeySource> =
            Arc::new(StaticKeys::from_jwks(&google).expect("google keys"));
        Self {
            iap_key,
            iap_keys,
            emulator,
            google_keys,
        }
    }

    fn iap(&self) -> Verifier {
        Verifier::iap([IAP_AUD])
            .shared_keys(self.iap_keys.clone())
            .build()
    }

    /// A Google ID token of `email` for `aud`, signed by the emulator.
    fn google(&self, email: &str, aud: &str) -> String {
        let iat = now();
        self.emulator.mint_with(json!({
            "iss": "https://accounts.google.com", "aud": aud, "sub": "9", "email": email,
            "email_verified": true, "iat": iat, "exp": iat + 600}))
    }
}

#[tokio::test]
async fn an_iap_verifier_accepts_only_iaps_own_assertions() {
    let fx = Fixture::new();
    let iap = fx.iap();
    let good = fx.iap_key.sign(&person_claims());
    let claims = iap.verify(&good).await.expect("a good assertion");
    let person = iap.identity(&claims).expect("the person");
    assert_eq!(person.email, PERSON);
    assert_eq!(person.subject, "accounts.google.com:1234567890");
    assert_eq!(person.hosted_domain.as_deref(), Some("example.com"));

    // Forged: the right kid, signed by another P-256 key.
    let forged = EcKey::new(KID).sign(&person_claims());
    // RS256, signed by Google's (the emulator's) key under the IAP kid... and under its own.
    let rs_claims = person_claims();
    let rs256_own_kid = fx.emulator.mint_with(rs_claims.clone());
    let mut parts: Vec<String> = rs256_own_kid.split('.').map(str::to_owned).collect();
    parts[0] = b64(&json!({"alg": "RS256", "kid": KID}));
    let rs256_iap_kid = parts.join(".");
    let iat = now();
    let cases: Vec<(&str, String, AuthError)> = vec![
        (
            "forged",
            forged,
            AuthError::Signature("signature does not verify"),
        ),
        (
            "RS256 under IAP's kid",
            rs256_iap_kid,
            AuthError::Algorithm("token algorithm is not allowed"),
        ),
        (
            "RS256 under Google's kid",
            rs256_own_kid,
            AuthError::Algorithm("token algorithm is not allowed"),
        ),
        (
            "wrong aud",
            fx.iap_key.sign(&set(
                person_claims(),
                "aud",
                json!("/projects/1/apps/other"),
            )),
            AuthError::Audience,
        ),
        (
            "wrong iss",
            fx.iap_key.sign(&set(
                person_claims(),
                "iss",
                json!("https://accounts.google.com"),
            )),
            AuthError::Issuer,
        ),
        (
            "expired",
            fx.iap_key.sign(&set(
                set(person_claims(), "iat", json!(iat - 1200)),
                "exp",
                json!(iat - 600),
            )),
            AuthError::Expired,
        ),
        (
            "10-hour lifetime",
            fx.iap_key
                .sign(&set(person_claims(), "exp", json!(iat + 36_000))),
            AuthError::Lifetime,
        ),
        (
            "a Google-length lifetime (1 h) is too long for IAP",
            fx.iap_key
                .sign(&set(person_claims(), "exp", json!(iat + 3600))),
            AuthError::Lifetime,
        ),
        (
            "stripped signature",
            {
                let t = fx.iap_key.sign(&person_claims());
                let p: Vec<&str> = t.split('.').collect();
                format!("{}.{}.{STRIPPED_SIGNATURE}", p[0], p[1])
            },
            AuthError::Signature(
                "token signature was removed (by Cloud Run); this service requires a real signature",
            ),
        ),
    ];
    for (what, token, want) in cases {
        assert_eq!(iap.verify(&token).await.err(), Some(want), "{what}");
    }
    // No email, or a malformed one: no identity.
    let no_email = iap
        .verify(&fx.iap_key.sign(&{
            let mut c = person_claims();
            c.as_object_mut().expect("object").remove("email");
            c
        }))
        .await
        .expect("signature and claims are fine");
    assert!(matches!(iap.identity(&no_email), Err(AuthError::Email(_))));
    let bad_email = iap
        .verify(&fx.iap_key.sign(&set(
            person_claims(),
            "email",
            json!("accounts.google.com:alice"),
        )))
        .await
        .expect("verified");
    assert!(matches!(iap.identity(&bad_email), Err(AuthError::Email(_))));
}

#[tokio::test]
async fn an_iap_key_set_outage_is_503_never_acceptance() {
    let fx = Fixture::new();
    // Nothing listens there: no IAP keys, ever.
    let dead = JwksCache::builder("http://127.0.0.1:9/iap/verify/public_key-jwk").build();
    let iap = Verifier::iap([IAP_AUD]).keys(dead).build();
    let err = iap
        .verify(&fx.iap_key.sign(&person_claims()))
        .await
        .expect_err("no keys: refused");
    assert!(matches!(err, AuthError::KeysUnavailable(_)), "{err:?}");
    assert_eq!(err.kind().status(), 503);
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

/// What a refusal case sends, and the code and header it is refused with.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);

#[tokio::test]
async fn behind_iap_the_person_is_the_user_and_the_service_agent_only_a_proof() {
    let fx = Fixture::new();
    const CALLER_URL: &str = "https://caller-abc-ew.a.run.app";
    let service = Verifier::builder([CALLER_URL])
        .shared_keys(fx.google_keys.clone())
        .signature(invoker_auth::verify::Signature::StrippedByCloudRun)
        .build();
    let auth = Authenticator::builder(service)
        .header_rule(HeaderRule::ServerlessFirst)
        .allow(AllowList::parse([PERSON]).expect("list"))
        .iap_users(
            IapUsers::new(fx.iap())
                .require_proxy_token(AllowList::parse([IAP_SERVICE_AGENTS]).expect("agents")),
        )
        .build();
    let strip = |t: String| {
        let p: Vec<&str> = t.split('.').collect();
        format!("{}.{}.{STRIPPED_SIGNATURE}", p[0], p[1])
    };
    let agent = format!("Bearer {}", strip(fx.google(AGENT, CALLER_URL)));
    let assertion = fx.iap_key.sign(&person_claims());

    let p = auth
        .authenticate(&headers(&[
            ("x-serverless-authorization", &agent),
            ("x-goog-iap-jwt-assertion", &assertion),
            (
                "x-goog-authenticated-user-email",
                "accounts.google.com:mallory@example.com",
            ),
        ]))
        .await
        .expect("the person");
    assert_eq!(p.email(), PERSON);
    assert_ne!(p.email(), AGENT, "IAP's service agent is never the user");
    assert_eq!(p.on_behalf_of, None);
    assert_eq!(
        auth.presented_token(&headers(&[
            ("x-serverless-authorization", &agent),
            ("x-goog-iap-jwt-assertion", &assertion),
        ])),
        Some(assertion.as_str()),
        "what is forwarded is the person's assertion"
    );

    // Refusals: code, header.
    let bob = fx
        .iap_key
        .sign(&set(person_claims(), "email", json!("bob@example.com")));
    let intruder_proxy = format!(
        "Bearer {}",
        strip(fx.google("mallory@example.com", CALLER_URL))
    );
    let bearer_assertion = format!("Bearer {assertion}");
    let cases: Vec<Case<'_>> = vec![
        (
            "unsigned headers alone",
            vec![
                ("x-serverless-authorization", &agent),
                (
                    "x-goog-authenticated-user-email",
                    "accounts.google.com:alice@example.com",
                ),
                (
                    "x-goog-authenticated-user-id",
                    "accounts.google.com:1234567890",
                ),
            ],
            "missing",
            "x-goog-iap-jwt-assertion",
        ),
        (
            "a person IAP let in, not on the allow-list",
            vec![
                ("x-serverless-authorization", &agent),
                ("x-goog-iap-jwt-assertion", &bob),
            ],
            "not_allowed",
            "x-goog-iap-jwt-assertion",
        ),
        (
            "no proxy token",
            vec![("x-goog-iap-jwt-assertion", &assertion)],
            "missing",
            "authorization",
        ),
        (
            "a proxy that is not IAP's service agent",
            vec![
                ("x-serverless-authorization", &intruder_proxy),
                ("x-goog-iap-jwt-assertion", &assertion),
            ],
            "not_allowed",
            "x-serverless-authorization",
        ),
        (
            "two assertions",
            vec![
                ("x-serverless-authorization", &agent),
                ("x-goog-iap-jwt-assertion", &assertion),
                ("x-goog-iap-jwt-assertion", &bob),
            ],
            "malformed",
            "x-goog-iap-jwt-assertion",
        ),
        (
            "a Bearer-prefixed assertion",
            vec![
                ("x-serverless-authorization", &agent),
                ("x-goog-iap-jwt-assertion", &bearer_assertion),
            ],
            "malformed",
            "x-goog-iap-jwt-assertion",
        ),
    ];
    for (what, hs, code, header) in cases {
        let r = auth.authenticate(&headers(&hs)).await.expect_err(what);
        assert_eq!((r.code(), r.header()), (code, header), "{what}");
    }
    let r = auth
        .authenticate(&headers(&[
            ("x-serverless-authorization", &agent),
            ("x-goog-iap-jwt-assertion", &bob),
        ]))
        .await
        .expect_err("bob");
    assert_eq!(r.kind().status(), 403);
    assert_eq!(r.presented_audience(), Some(IAP_AUD));
}

#[tokio::test]
async fn a_forwarded_iap_assertion_is_verified_with_iaps_rules() {
    let fx = Fixture::new();
    const CALLED_URL: &str = "https://called-abc-ew.a.run.app";
    const CALLER_SA: &str = "caller@p.iam.gserviceaccount.com";
    let own = Verifier::builder([CALLED_URL])
        .shared_keys(fx.google_keys.clone())
        .build();
    let forwarded_google = Verifier::builder(["https://caller-abc-ew.a.run.app", IAP_AUD])
        .shared_keys(fx.google_keys.clone())
        .build();
    let forwarded_iap = Verifier::iap(["https://caller-abc-ew.a.run.app", IAP_AUD])
        .shared_keys(fx.iap_keys.clone())
        .build();
    let auth = Authenticator::builder(own)
        .allow(AllowList::parse([CALLER_SA, "other@p.iam.gserviceaccount.com"]).expect("list"))
        .forwarded_users(
            ForwardedUsers::new(
                AllowList::parse([CALLER_SA]).expect("fwd"),
                forwarded_google,
            )
            .with_iap(forwarded_iap),
        )
        .build();
    let caller = format!("Bearer {}", fx.google(CALLER_SA, CALLED_URL));
    let assertion = format!("Bearer {}", fx.iap_key.sign(&person_claims()));
    let p = auth
        .authenticate(&headers(&[
            ("authorization", &caller),
            ("x-forwarded-authorization", &assertion),
        ]))
        .await
        .expect("caller + person");
    assert_eq!(p.email(), CALLER_SA);
    assert_eq!(p.on_behalf_of_email(), Some(PERSON));

    // From an untrusted principal the header is ignored.
    let other = format!(
        "Bearer {}",
        fx.google("other@p.iam.gserviceaccount.com", CALLED_URL)
    );
    let p = auth
        .authenticate(&headers(&[
            ("authorization", &other),
            ("x-forwarded-authorization", &assertion),
        ]))
        .await
        .expect("other");
    assert_eq!(p.on_behalf_of, None);

    // An audience called does not accept: 401, forwarded_audience.
    let elsewhere = format!(
        "Bearer {}",
        fx.iap_key.sign(&set(
            person_claims(),
            "aud",
            json!("/projects/1/global/backendServices/2")
        ))
    );
    // An assertion claiming IAP's issuer but signed by Google's RS256 key: IAP's rules refuse it.
    let rs = format!("Bearer {}", fx.emulator.mint_with(person_claims()));
    for (what, token, code) in [
        ("wrong audience", elsewhere, "forwarded_audience"),
        ("RS256 with IAP's issuer", rs, "forwarded_algorithm"),
    ] {
        let r = auth
            .authenticate(&headers(&[
                ("authorization", &caller),
                ("x-forwarded-authorization", &token),
            ]))
            .await
            .expect_err(what);
        assert_eq!(r.code(), code, "{what}");
        assert_eq!(r.kind().status(), 401, "{what}");
    }
}
