//! The memo of verified tokens: bounded, and never a way around expiry or a withdrawn key.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};
use invoker_auth::AuthError;
use invoker_auth::clock::TokioClock;
use invoker_auth::verify::{KeyFuture, KeySource, MemoLimits, StaticKeys, Verifier};

const AUD: &str = "https://called.example";
const SA: &str = "caller@invoker-local.iam.gserviceaccount.com";

/// Keys that a test can replace, as a key-set refresh would.
#[derive(Debug)]
struct Swappable(RwLock<StaticKeys>);

impl Swappable {
    fn of(emu: &Emulator) -> Self {
        Self(RwLock::new(keys_of(emu)))
    }
}

fn keys_of(emu: &Emulator) -> StaticKeys {
    StaticKeys::from_jwks(&serde_json::to_vec(&emu.public_jwks()).expect("json")).expect("keys")
}

impl KeySource for Swappable {
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a> {
        let keys = self.0.read().expect("lock").clone();
        Box::pin(async move { keys.key(kid).await })
    }
}

#[tokio::test(start_paused = true)]
async fn a_remembered_token_is_refused_once_it_expires() {
    let emu = Emulator::new(EmulatorConfig::default());
    let verifier = Verifier::builder([AUD])
        .keys(keys_of(&emu))
        .clock(Arc::new(TokioClock::new()))
        .build();
    let token = emu.mint(SA, AUD, Duration::from_secs(600));
    verifier.verify(&token).await.expect("valid");
    verifier.verify(&token).await.expect("remembered");
    assert_eq!(verifier.remembered(), 1);
    // Past exp plus the 60 s leeway: refused, memo or not, and forgotten.
    tokio::time::advance(Duration::from_secs(600 + 61)).await;
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
    assert_eq!(verifier.remembered(), 0);
}

#[tokio::test]
async fn a_remembered_token_dies_with_its_key() {
    let emu = Emulator::new(EmulatorConfig::default());
    let keys = Arc::new(Swappable::of(&emu));
    let verifier = Verifier::builder([AUD]).shared_keys(keys.clone()).build();
    let token = emu.mint(SA, AUD, Duration::from_secs(600));
    verifier.verify(&token).await.expect("valid");
    verifier.verify(&token).await.expect("remembered");
    // The key set no longer has the token's key.
    *keys.0.write().expect("lock") = keys_of(&Emulator::new(EmulatorConfig::default()));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
    // The same kid published with another key: the signature is checked again, and fails.
    let other = Emulator::new(EmulatorConfig::default());
    let mut jwks = other.public_jwks();
    jwks["keys"][0]["kid"] = serde_json::Value::String(emu.current_kid());
    *keys.0.write().expect("lock") =
        StaticKeys::from_jwks(&serde_json::to_vec(&jwks).expect("json")).expect("keys");
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::Signature(_))
    ));
}

#[tokio::test]
async fn the_memo_stays_within_its_bounds_and_evicts_one_by_one() {
    let emu = Emulator::new(EmulatorConfig::default());
    let verifier = Verifier::builder([AUD])
        .keys(keys_of(&emu))
        .memo(MemoLimits {
            max_entries: 16,
            max_bytes: 16 * 1024,
        })
        .build();
    let tokens: Vec<String> = (0..200)
        .map(|i| {
            emu.mint(
                &format!("user-{i}@example.com"),
                AUD,
                Duration::from_secs(600),
            )
        })
        .collect();
    for t in &tokens {
        verifier.verify(t).await.expect("valid");
        assert!(verifier.remembered() <= 16, "{}", verifier.remembered());
    }
    assert!(
        verifier.remembered() > 1,
        "evicts one by one, not all at once"
    );
    // Every token still verifies, remembered or not.
    for t in &tokens {
        verifier.verify(t).await.expect("still valid");
    }
    let off = Verifier::builder([AUD])
        .keys(keys_of(&emu))
        .memo(MemoLimits::OFF)
        .build();
    off.verify(&tokens[0]).await.expect("valid without a memo");
    assert_eq!(off.remembered(), 0);
}
