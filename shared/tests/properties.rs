//! Property tests of the two parsers that face hostile input: the request-body validator
//! (`body::parse_object` + `body::require_text`) and the ID-token verifier
//! (`invoker_auth::verify::Verifier::verify`, with and without stripped signatures).
//!
//! Arbitrary input never panics, never accepts what it should not, and errors never echo the
//! input. Case counts are small enough for the normal test run; `PROPTEST_CASES=N` runs more.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use invoker_auth::verify::{STRIPPED_SIGNATURE, Signature, Verifier};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};
use shared::auth::AuthConfig;
use shared::body::{parse_object, require_text};
use testkit::emu::Emu;

/// Longest `"bar"` the services accept, in characters.
const MAX_CHARS: usize = 1024;

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The body validator.

/// Whether any string, key or value, anywhere in `v` holds U+0000 (refused: PostgreSQL's
/// `jsonb` cannot store it, and both backends accept the same bodies).
fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The validator as the handlers use it: `Ok` only for an object with a valid `"bar"`.
fn validate(bytes: &[u8]) -> Result<String, shared::problem::Problem> {
    let obj = parse_object(bytes)?;
    require_text(&obj, "bar", MAX_CHARS).map(str::to_owned)
}

/// Everything a rejection must be: a 400 whose detail is short and does not echo the input.
fn assert_clean_rejection(bytes: &[u8], e: &shared::problem::Problem) {
    assert_eq!(e.status, 400, "{}", e.detail);
    assert!(e.detail.len() < 200, "detail stays short: {}", e.detail);
    if bytes.len() >= 24 {
        let text = String::from_utf8_lossy(bytes);
        assert!(!e.detail.contains(text.as_ref()), "detail echoes the input");
    }
}

/// What `"bar"` is in a generated body.
#[derive(Debug, Clone)]
enum Bar {
    Absent,
    Text(String),
    Other(Value),
}

fn bar() -> impl Strategy<Value = Bar> {
    // Lengths cluster at the limits: 0, 1, 1023..=1026 characters, of 1- to 4-byte characters.
    let len = prop_oneof![Just(0usize), Just(1usize), 1023usize..=1026, 2usize..64,];
    let text = (
        len,
        vec(
            prop_oneof![
                Just('a'),
                Just('é'),
                Just('€'),
                Just('😀'),
                Just('\0'),
                any::<char>()
            ],
            1..8,
        ),
    )
        .prop_map(|(n, alphabet)| {
            Bar::Text((0..n).map(|i| alphabet[i % alphabet.len()]).collect())
        });
    prop_oneof![
        1 => Just(Bar::Absent),
        6 => text,
        1 => prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            Just(json!([])),
            Just(json!({"bar": "nested"})),
        ]
        .prop_map(Bar::Other),
    ]
}

/// How the generated object is presented.
#[derive(Debug, Clone)]
enum Shape {
    /// As it is.
    Object,
    /// Inside an array: valid JSON, not an object.
    Wrapped,
    /// Cut before its last byte: not JSON.
    Truncated(usize),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        6 => Just(Shape::Object),
        1 => Just(Shape::Wrapped),
        2 => any::<usize>().prop_map(Shape::Truncated),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary bytes: no panic; accepted exactly when serde_json sees an object without
    /// U+0000 in any string whose `"bar"` is a string of 1 to 1024 characters; every
    /// rejection a clean 400.
    #[test]
    fn arbitrary_bytes_never_panic_and_only_valid_objects_pass(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..256),
            // Mostly-JSON noise reaches deeper into the parser.
            vec(prop_oneof![
                Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b':'),
                Just(b','), Just(b'\\'), Just(b'b'), Just(b'a'), Just(b'r'), Just(b'1'),
                any::<u8>(),
            ], 0..256),
            "\\{\"bar\":\"[^\"]{0,8}\"[^}]{0,8}\\}?".prop_map(String::into_bytes),
            // Escapes, U+0000 among them, inside "bar".
            vec(prop::sample::select(vec!["a", "\\u0000", "\\u0041", "\\\\", "é"]), 0..6)
                .prop_map(|parts| format!("{{\"bar\":\"{}\"}}", parts.concat()).into_bytes()),
        ]
    ) {
        let expected = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.is_object() && !holds_nul(&v) => matches!(
                v.get("bar"),
                Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_CHARS
            ),
            _ => false,
        };
        match validate(&bytes) {
            Ok(_) => prop_assert!(expected, "accepted {:?}", String::from_utf8_lossy(&bytes)),
            Err(e) => {
                prop_assert!(!expected, "rejected a valid body: {}", e.detail);
                assert_clean_rejection(&bytes, &e);
            }
        }
    }

    /// Generated bodies, judged by construction rather than by re-parsing: accepted exactly
    /// when the whole object is sent and `"bar"` has 1..=1024 characters (not bytes), none of
    /// them U+0000.
    #[test]
    fn structured_bodies_are_judged_by_their_bar(
        bar in bar(),
        extra in vec(("[a-z]{1,6}", any::<i64>()), 0..4),
        shape in shape(),
    ) {
        let mut obj = Map::new();
        for (k, v) in extra {
            if k != "bar" {
                obj.insert(k, Value::from(v));
            }
        }
        match &bar {
            Bar::Absent => {}
            Bar::Text(s) => {
                obj.insert("bar".into(), Value::String(s.clone()));
            }
            Bar::Other(v) => {
                obj.insert("bar".into(), v.clone());
            }
        }
        let object = serde_json::to_vec(&Value::Object(obj)).expect("serialize");
        let bytes = match shape {
            Shape::Object => object,
            Shape::Wrapped => serde_json::to_vec(&json!([
                serde_json::from_slice::<Value>(&object).expect("json")
            ])).expect("serialize"),
            Shape::Truncated(at) => object[..at % object.len()].to_vec(),
        };
        let expected = match (&shape, &bar) {
            (Shape::Object, Bar::Text(s)) => {
                let n = s.chars().count();
                ((1..=MAX_CHARS).contains(&n) && !s.contains('\0')).then(|| s.clone())
            }
            _ => None,
        };
        match (validate(&bytes), expected) {
            (Ok(got), Some(want)) => prop_assert_eq!(got, want),
            (Err(e), None) => assert_clean_rejection(&bytes, &e),
            (got, want) => prop_assert!(
                false,
                "{:?} / {:?}: got {:?}, expected {:?}",
                shape, bar, got.map_err(|e| e.detail), want.is_some()
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The token verifier.

/// One emulator (serving its key set on 127.0.0.1) and one verifier for every case.
struct Fixture {
    rt: tokio::runtime::Runtime,
    verifier: Verifiers,
    /// A valid token for the verifier's audience.
    good: String,
}

const AUDIENCE: &str = "https://called.example";

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let emu = rt.block_on(Emu::start());
        let cfg = AuthConfig::from_source(&testkit::wiring::source(
            &testkit::wiring::called_verifying(AUDIENCE, &emu.sa(), emu.addr),
            &[],
        ))
        .expect("auth config");
        let keys = std::sync::Arc::new(cfg.key_set(reqwest::Client::new()));
        let verifier = Verifiers {
            required: cfg.verifier(&cfg.audiences, Signature::Required, keys.clone()),
            stripped: cfg.verifier(&cfg.audiences, Signature::StrippedByCloudRun, keys),
        };
        let good = emu
            .emulator
            .mint(&emu.sa(), AUDIENCE, Duration::from_secs(3600));
        for stripped in [Signature::Required, Signature::StrippedByCloudRun] {
            rt.block_on(verifier.verify(&good, stripped))
                .expect("the unmutated token verifies");
        }
        Fixture { rt, verifier, good }
    })
}

/// Verifies in both modes; `true` if either accepted.
fn accepted(token: &str) -> bool {
    let f = fixture();
    [Signature::Required, Signature::StrippedByCloudRun]
        .into_iter()
        .any(|stripped| f.rt.block_on(f.verifier.verify(token, stripped)).is_ok())
}

/// One edit of a token's text.
#[derive(Debug, Clone)]
enum Edit {
    /// XOR a byte with a non-zero mask.
    Flip(usize, u8),
    /// Insert a byte.
    Insert(usize, u8),
    /// Delete a byte.
    Delete(usize),
    /// Replace a byte with one of the base64url alphabet or `.`.
    Replace(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token_byte = prop_oneof![
        prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".to_vec()
        ),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<usize>(), token_byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), token_byte).prop_map(|(i, b)| Edit::Replace(i, b)),
    ]
}

fn apply(token: &str, edits: &[Edit]) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for e in edits {
        match *e {
            Edit::Flip(i, m) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes[i] ^= m;
            }
            Edit::Insert(i, b) => {
                let i = i % (bytes.len() + 1);
                bytes.insert(i, b);
            }
            Edit::Delete(i) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes.remove(i);
            }
            Edit::Replace(i, b) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes[i] = b;
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary strings, token-shaped or not: never a panic, never accepted.
    #[test]
    fn arbitrary_strings_are_never_accepted(
        token in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,400}\\.[A-Za-z0-9_-]{0,400}\\.[A-Za-z0-9_-]{0,400}",
            "eyJ[A-Za-z0-9_.-]{0,600}",
        ]
    ) {
        prop_assert!(!accepted(&token));
    }

    /// Three well-formed base64url parts around arbitrary JSON (or bytes), with arbitrary,
    /// empty or stripped signatures: never accepted.
    #[test]
    fn forged_three_part_tokens_are_never_accepted(
        header in prop_oneof![
            Just(json!({"alg": "RS256", "typ": "JWT"})),
            Just(json!({"alg": "none"})),
            Just(json!({"alg": "HS256", "kid": "k"})),
            "[ -~]{0,12}".prop_map(|kid| json!({"alg": "RS256", "kid": kid})),
        ],
        payload in prop_oneof![
            vec(any::<u8>(), 0..64),
            Just(json!({"iss": "https://accounts.google.com", "aud": AUDIENCE, "sub": "1",
                        "email": "caller@invoker-local.iam.gserviceaccount.com",
                        "email_verified": true, "iat": 0, "exp": 1}).to_string().into_bytes()),
        ],
        signature in prop_oneof![
            vec(any::<u8>(), 0..300).prop_map(|s| B64.encode(s)),
            Just(STRIPPED_SIGNATURE.to_owned()),
            Just(String::new()),
        ],
    ) {
        let token = format!("{}.{}.{signature}", B64.encode(header.to_string()), B64.encode(payload));
        prop_assert!(!accepted(&token), "accepted {}", token);
    }

    /// A real, valid token with one to three edits (flipped, inserted, deleted or replaced
    /// bytes): never accepted, in either mode.
    #[test]
    fn mutated_real_tokens_are_never_accepted(edits in vec(edit(), 1..=3)) {
        let good = &fixture().good;
        let mutated = apply(good, &edits);
        prop_assume!(&mutated != good);
        prop_assert!(!accepted(&mutated), "accepted after {:?}", edits);
    }
}

/// The same real token with its signature replaced by Cloud Run's marker is accepted only in
/// platform mode, and any edit to its claims still breaks it only when the claims break.
#[test]
fn stripped_signature_is_accepted_only_with_platform_mode() {
    let f = fixture();
    let mut parts = f.good.split('.');
    let (h, p) = (parts.next().expect("h"), parts.next().expect("p"));
    let stripped = format!("{h}.{p}.{STRIPPED_SIGNATURE}");
    assert!(
        f.rt.block_on(f.verifier.verify(&stripped, Signature::Required))
            .is_err()
    );
    assert!(
        f.rt.block_on(f.verifier.verify(&stripped, Signature::StrippedByCloudRun))
            .is_ok()
    );
}

/// A verifier per signature rule on one key set, as a service builds them.
struct Verifiers {
    required: Verifier,
    stripped: Verifier,
}

impl Verifiers {
    async fn verify(
        &self,
        token: &str,
        rule: Signature,
    ) -> Result<std::sync::Arc<invoker_auth::Claims>, invoker_auth::AuthError> {
        match rule {
            Signature::Required => self.required.verify(token).await,
            _ => self.stripped.verify(token).await,
        }
    }
}
