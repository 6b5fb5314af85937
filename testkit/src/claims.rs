//! ID-token claims as tests write them: the wall clock in seconds, and one claim set to or
//! removed from a set that is otherwise valid (each test changes one thing at a time), and the
//! tokens without a real signature that platform mode sees.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use invoker_auth::verify::STRIPPED_SIGNATURE;
use serde_json::{Value, json};

/// Seconds since the Unix epoch (the unit of `iat` and `exp`).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `claims` with `key` set to `value`.
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// `claims` without `key`.
pub fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().expect("object").remove(key);
    claims
}

/// `token` with its signature replaced as Cloud Run does after its IAM check.
pub fn strip(token: &str) -> String {
    let p: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{STRIPPED_SIGNATURE}", p[0], p[1])
}

/// The unsigned token an attacker writes by hand: `{"alg":"RS256"}`, `claims`, and the
/// signature Cloud Run leaves after its IAM check.
pub fn hand_made(claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    format!(
        "{}.{}.{STRIPPED_SIGNATURE}",
        b64(&json!({"alg": "RS256"})),
        b64(claims)
    )
}
