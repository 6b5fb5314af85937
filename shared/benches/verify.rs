//! Cost of verifying one Google-style ID token with a warm key cache (issue 3's target: under
//! 50 µs), against keys served by the metadata-server emulator on loopback.
//!
//! - `verify/warm_cache`: [`Verifier::verify`] — shape checks, header, key lookup (read lock),
//!   RS256 signature, claims.
//! - `verify/authenticate`: [`Authenticator::authenticate`] — the above plus reading the
//!   `Authorization` header and the allow-list (what each request pays).
//! - `verify/jsonwebtoken_only`: `jsonwebtoken::decode` alone with the same key, for the
//!   share of the RSA signature and claim decoding.
//!
//! `cargo bench -p shared --bench verify`

use std::future::Future;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use emulator::{Emulator, EmulatorConfig, JWKS_PATH};
use http::{HeaderMap, HeaderValue, header};
use invoker_auth::verify::{KeySource, Signature};

use jsonwebtoken::{Algorithm, Validation};
use shared::auth::{AuthConfig, EndUsers, ServiceAuth};
use shared::config::MapSource;

const AUDIENCE: &str = "https://called.example.run.app";
const PRINCIPAL: &str = "caller@invoker-local.iam.gserviceaccount.com";

/// Polls `f` once (a warm-cache verification never waits); finishes it on `rt` if it does.
fn run_now<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => rt.block_on(f),
    }
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let emulator = Emulator::new(EmulatorConfig::default());
    let (addr, _server) = rt
        .block_on(
            emulator
                .clone()
                .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        )
        .expect("emulator listens");
    let cfg = AuthConfig::from_source(&MapSource::from_pairs([
        ("AUTH_MODE", "verify"),
        ("AUTH_AUDIENCES", AUDIENCE),
        ("AUTH_ALLOWED_PRINCIPALS", PRINCIPAL),
        ("AUTH_JWKS_URL", &format!("http://{addr}{JWKS_PATH}")),
    ]))
    .expect("auth settings");
    let http = shared::outbound::client(Duration::from_secs(5)).expect("HTTP client");
    let token = emulator.mint(PRINCIPAL, AUDIENCE, Duration::from_secs(3600));

    let keys = cfg.key_set(http.clone());
    let verifier = cfg.verifier(
        &cfg.audiences,
        Signature::Required,
        std::sync::Arc::new(keys.clone()),
    );
    rt.block_on(keys.warm_up());
    assert!(keys.has_keys(), "the key set was fetched");
    let claims = run_now(&rt, verifier.verify(&token)).expect("token verifies");
    assert_eq!(claims.email.as_deref(), Some(PRINCIPAL));

    let service = ServiceAuth::new(&cfg, http, EndUsers::None);
    rt.block_on(service.warm_up());
    let auth = service.authenticator().expect("verify mode").clone();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    assert!(run_now(&rt, auth.authenticate(&headers)).is_ok());

    let kid = jsonwebtoken::decode_header(&token)
        .expect("header")
        .kid
        .expect("kid");
    assert!(rt.block_on(keys.key(&kid)).is_ok(), "cached key");
    let jwk = emulator.public_jwks()["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == kid.as_str()).cloned())
        .expect("the token's key is published");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().expect("n"),
        jwk["e"].as_str().expect("e"),
    )
    .expect("RSA key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);

    let fetches = keys.fetch_count();
    let mut g = c.benchmark_group("verify");
    g.bench_function("warm_cache", |b| {
        b.iter(|| {
            run_now(&rt, verifier.verify(black_box(&token))).expect("verifies");
        });
    });
    g.bench_function("authenticate", |b| {
        b.iter(|| {
            run_now(&rt, auth.authenticate(black_box(&headers))).expect("authenticated");
        });
    });
    g.bench_function("jsonwebtoken_only", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation)
                .expect("decodes");
        });
    });
    g.finish();
    assert_eq!(keys.fetch_count(), fetches, "a warm cache fetches nothing");
}

criterion_group!(benches, verify);
criterion_main!(benches);
