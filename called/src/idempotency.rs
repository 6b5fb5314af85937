//! `Idempotency-Key`: header validation, the canonical body hash, and the in-process in-flight
//! guard that turns a concurrent duplicate into 409 at once. Correctness across processes comes
//! from the store's unique index; the guard only makes the in-flight case visible.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use shared::body::{IDEMPOTENCY_KEY as HEADER, idempotency_key as key_from};

/// Hex SHA-256 of the body with object keys sorted, so key order does not matter.
pub fn body_hash(body: &Value) -> String {
    let mut canonical = Vec::with_capacity(256);
    write_canonical(body, &mut canonical);
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                if let Some(child) = map.get(k) {
                    write_canonical(child, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
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

    #[test]
    fn hash_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"bar":"x","n":{"b":1,"a":[1,{"y":2,"x":1}]}}"#).expect("json");
        let b: Value =
            serde_json::from_str(r#"{"n":{"a":[1,{"x":1,"y":2}],"b":1},"bar":"x"}"#).expect("json");
        assert_eq!(body_hash(&a), body_hash(&b));
        let c: Value = serde_json::from_str(r#"{"bar":"y"}"#).expect("json");
        assert_ne!(body_hash(&a), body_hash(&c));
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
