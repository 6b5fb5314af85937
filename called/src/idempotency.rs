//! `Idempotency-Key`: header validation, the canonical body hash, and the in-process in-flight
//! guard that turns a concurrent duplicate into 409 at once. Correctness across processes comes
//! from the store's unique index; the guard only makes the in-flight case visible.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

pub use shared::body::{IDEMPOTENCY_KEY as HEADER, idempotency_key as key_from};

/// Hex SHA-256 of the body's exact value, with object keys sorted so key order and whitespace
/// do not matter, and every number hashed as the digits it was sent with (`1.0` and `1`, or two
/// 23-digit integers that round to the same `f64`, are different bodies: each is stored and
/// returned as sent). Strings are hashed by their value (`"\u0041"` and `"A"` are one body).
///
/// For bodies of strings, booleans, nulls and integers below 2^64 the canonical text is the one
/// the previous release hashed, so their keys keep replaying across the upgrade.
pub fn body_hash(body: &RawValue) -> String {
    let mut canonical = Vec::with_capacity(body.get().len());
    write_canonical(body, &mut canonical);
    let digest = Sha256::digest(&canonical);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * digest.len());
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

fn write_canonical(v: &RawValue, out: &mut Vec<u8>) {
    let text = v.get().trim();
    match text.as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<BTreeMap<String, &RawValue>>(text) {
            Ok(map) => {
                out.push(b'{');
                for (i, (k, child)) in map.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(&k, out);
                    out.push(b':');
                    write_canonical(child, out);
                }
                out.push(b'}');
            }
            Err(_) => out.extend_from_slice(text.as_bytes()),
        },
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => {
                out.push(b'[');
                for (i, item) in items.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_canonical(item, out);
                }
                out.push(b']');
            }
            Err(_) => out.extend_from_slice(text.as_bytes()),
        },
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(s) => write_string(&s, out),
            Err(_) => out.extend_from_slice(text.as_bytes()),
        },
        // Numbers, true, false, null: their exact text.
        _ => out.extend_from_slice(text.as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping: the same as `Value::String(s).to_string()`.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `(principal, end user, key)`: whose key it is.
type Entry = (String, String, String);

/// Keys currently being processed by this process.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<Entry>>>);

/// Removes its key from the in-flight set when dropped (also on cancellation).
#[derive(Debug)]
pub struct InFlightGuard {
    set: InFlight,
    entry: Entry,
}

impl InFlight {
    /// Marks `(scope, user, key)` in flight (principal, end user or `""`, key), or `None` when
    /// it already is.
    pub fn begin(&self, scope: &str, user: &str, key: &str) -> Option<InFlightGuard> {
        let entry = (scope.to_owned(), user.to_owned(), key.to_owned());
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(entry.clone()).then(|| InFlightGuard {
            set: self.clone(),
            entry,
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("json")
    }

    #[test]
    fn hash_ignores_key_order() {
        let a = raw(r#"{"bar":"x","n":{"b":1,"a":[1,{"y":2,"x":1}]}}"#);
        let b = raw(r#"{"n":{"a":[1,{"x":1,"y":2}],"b":1},"bar":"x"}"#);
        assert_eq!(body_hash(&a), body_hash(&b));
        assert_ne!(body_hash(&a), body_hash(&raw(r#"{"bar":"y"}"#)));
        assert_eq!(
            body_hash(&raw(r#"{"bar":"A"}"#)),
            body_hash(&raw(r#"{"bar":"\u0041"}"#))
        );
    }

    #[test]
    fn hash_keeps_every_digit() {
        let big = raw(r#"{"bar":"x","amount":12345678901234567890123}"#);
        let other = raw(r#"{"bar":"x","amount":12345678901234567890999}"#);
        assert_ne!(
            body_hash(&big),
            body_hash(&other),
            "they round to the same f64"
        );
        assert_ne!(
            body_hash(&raw(r#"{"bar":"x","n":1.0}"#)),
            body_hash(&raw(r#"{"bar":"x","n":1}"#))
        );
    }

    #[test]
    fn hash_of_plain_bodies_is_the_previous_releases() {
        // The previous release hashed `serde_json::Value` this way (sorted keys, compact).
        let body =
            r#"{"bar":"h\u00e9\"llo","n":[1,-2,true,null,{"b":"x","a":18446744073709551615}]}"#;
        let old = r#"{"bar":"hé\"llo","n":[1,-2,true,null,{"a":18446744073709551615,"b":"x"}]}"#;
        let digest = Sha256::digest(old.as_bytes());
        let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(body_hash(&raw(body)), expected);
    }

    #[test]
    fn key_rules() {
        use http::HeaderMap;
        let mut h = HeaderMap::new();
        assert_eq!(key_from(&h).expect("absent"), None);
        h.insert(HEADER, "abc-123".parse().expect("hv"));
        assert_eq!(key_from(&h).expect("ok").as_deref(), Some("abc-123"));
        h.insert(HEADER, "".parse().expect("hv"));
        assert!(key_from(&h).is_err());
        h.insert(HEADER, "a b".parse().expect("hv"));
        assert!(key_from(&h).is_err());
        h.insert(HEADER, "k".repeat(256).parse().expect("hv"));
        assert!(key_from(&h).is_err());
        h.insert(HEADER, "k".repeat(255).parse().expect("hv"));
        assert!(key_from(&h).is_ok());
    }

    #[test]
    fn in_flight_guard() {
        let f = InFlight::default();
        let g = f.begin("", "", "k").expect("first");
        assert!(f.begin("", "", "k").is_none());
        assert!(f.begin("other", "", "k").is_some());
        assert!(f.begin("", "user", "k").is_some(), "another end user's key");
        drop(g);
        assert!(f.begin("", "", "k").is_some());
    }
}
