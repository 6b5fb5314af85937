//! The cost of one token check, first sight against repeat (issue 21), for both algorithms
//! Google signs ID tokens with:
//!
//! - `verify/RS256/cold`, `verify/ES256/cold`: [`Verifier::verify`] of a token the verifier
//!   has never seen — each iteration gets a fresh verifier (built outside the timed part, its
//!   memo empty) sharing one [`StaticKeys`], so the check pays the header and payload decoding,
//!   the key lookup, the signature and the claims, and remembering the token.
//! - `verify/RS256/remembered`, `verify/ES256/remembered`: the same token again on a verifier
//!   that already verified it — what every later request of that end user pays.
//!
//! RS256 tokens are the metadata-server emulator's (RSA-2048, the claims it mints); ES256
//! tokens carry the same claims, signed here with a generated P-256 key (aws-lc-rs). Keys come
//! from a [`StaticKeys`] built from the JWKS of each key, so nothing is fetched.
//!
//! `cargo bench -p invoker-auth --bench verify`

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use emulator::{Emulator, EmulatorConfig};
use invoker_auth::verify::{KeySource, StaticKeys, Verifier, VerifierBuilder};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://caller-bench-uc.a.run.app";
const USER: &str = "bench-user-1@example.com";
const ES256_KID: &str = "bench-es256";

/// Polls `f` once (a check against static keys never waits); finishes it on `rt` if it does.
fn run_now<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => rt.block_on(f),
    }
}

/// An end user's claims as Google puts them in an ID token (`hd`: a Workspace user).
fn claims(issuer: &str) -> Value {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "azp": "104523871298347561234",
        "sub": "104523871298347561234",
        "email": USER,
        "email_verified": true,
        "hd": "example.com",
        "iat": iat,
        "exp": iat + 3600,
    })
}

/// One algorithm's fixture: a token and the verifier settings that accept it.
struct Fixture {
    name: &'static str,
    token: String,
    builder: VerifierBuilder,
}

fn builder(keys: StaticKeys, issuer: &str) -> VerifierBuilder {
    let keys: Arc<dyn KeySource> = Arc::new(keys);
    Verifier::builder([AUDIENCE])
        .issuers([issuer])
        .shared_keys(keys)
}

/// RS256: the emulator's key and token.
fn rs256() -> Fixture {
    let emulator = Emulator::new(EmulatorConfig::default());
    let issuer = emulator.config().issuer.clone();
    let token = emulator.mint_with(claims(&issuer));
    let jwks = serde_json::to_vec(&emulator.public_jwks()).expect("JWKS");
    let keys = StaticKeys::from_jwks(&jwks).expect("the emulator's key set");
    Fixture {
        name: "RS256",
        token,
        builder: builder(keys, &issuer),
    }
}

/// ES256: a P-256 key generated here, its JWKS, and a token signed with it.
fn es256() -> Fixture {
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).expect("P-256 key");
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("PKCS#8");
    // Uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65, "an uncompressed P-256 point");
    let jwks = json!({"keys": [{
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "use": "sig",
        "kid": ES256_KID,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]});
    let keys = StaticKeys::from_jwks(&serde_json::to_vec(&jwks).expect("JWKS")).expect("EC key");
    let issuer = "https://accounts.google.com";
    // JWS compact form: base64url(header) . base64url(claims) . base64url(r ‖ s).
    let header = json!({"alg": "ES256", "kid": ES256_KID, "typ": "JWT"});
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON"));
    let message = format!("{}.{}", b64(&header), b64(&claims(issuer)));
    let signature = pair
        .sign(&SystemRandom::new(), message.as_bytes())
        .expect("ES256 signing");
    let token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    Fixture {
        name: "ES256",
        token,
        builder: builder(keys, issuer),
    }
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("verify");
    for fx in [rs256(), es256()] {
        let Fixture {
            name,
            token,
            builder,
        } = fx;
        // Both paths must accept the token, or the bench would time a refusal.
        let warm = builder.clone().build();
        let claims = run_now(&rt, warm.verify(&token)).expect("first sight verifies");
        assert_eq!(claims.email.as_deref(), Some(USER));
        run_now(&rt, warm.verify(&token)).expect("repeat verifies");

        g.bench_function(format!("{name}/cold"), |b| {
            b.iter_batched_ref(
                || builder.clone().build(),
                |verifier| run_now(&rt, verifier.verify(black_box(&token))).expect("verifies"),
                BatchSize::SmallInput,
            );
        });
        g.bench_function(format!("{name}/remembered"), |b| {
            b.iter(|| run_now(&rt, warm.verify(black_box(&token))).expect("verifies"));
        });
    }
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
