//! The request body both services accept: a JSON object, checked in a fixed order so every
//! bad input gets the right status — 415 (not JSON), 413 (too large), 400 (not parseable, not
//! an object, or a field missing or invalid) — as a problem response naming what was wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::{StatusCode, header};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::problem::Problem;

/// Whether `content-type` names JSON (`application/json` or `application/*+json`).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().as_bytes();
    let starts = |prefix: &[u8]| {
        essence.len() >= prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let ends = |suffix: &[u8]| {
        essence.len() >= suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    essence.eq_ignore_ascii_case(b"application/json") || (starts(b"application/") && ends(b"+json"))
}

/// 413 with the limit in the detail.
pub fn too_large(limit: Option<usize>) -> Problem {
    let detail = match limit {
        Some(n) => format!("request body is larger than {n} bytes"),
        None => "request body is too large".to_owned(),
    };
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
}

/// Parses bytes as a JSON object (400 on failure). serde_json's recursion limit (128) turns
/// deeply nested input into a clean error instead of a stack overflow.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Problem> {
    if bytes.is_empty() {
        return Err(Problem::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) if map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) => {
            Err(Problem::bad_request(
                "request body must not contain the character U+0000 in any string",
            ))
        }
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::bad_request("request body must be a JSON object")),
        Err(e) => Err(Problem::bad_request(format!(
            "request body is not valid JSON: {e}"
        ))),
    }
}

/// Whether any string (key or value) in `v` contains U+0000, which PostgreSQL's `jsonb` cannot
/// store: refused up front so both backends accept exactly the same bodies.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The checks before parsing, in order: a JSON `content-type` (else 415), then the
/// whole body within the limit (else 413) and readable (else 400).
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json_content_type(ct) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(None)
        } else {
            Problem::bad_request(format!(
                "could not read request body: {}",
                rejection.body_text()
            ))
        }
    })
}

/// A request body that is a JSON object, kept exactly: `raw` is the received text with only the
/// insignificant whitespace removed — every number keeps its digits and notation, every string
/// its escapes, every key its place — and `map` is the same object parsed (for validation only:
/// [`Value`] numbers are `f64`/`i64`/`u64` and may have lost digits). Objects with a duplicate
/// key at any depth are refused (400): what is validated and what is stored must be the same.
#[derive(Debug, Clone)]
pub struct ExactJsonObject {
    /// The object, parsed (numbers possibly rounded: do not store this).
    pub map: Map<String, Value>,
    /// The object's exact text, compact.
    pub raw: Box<RawValue>,
}

/// Parses bytes as a JSON object kept exactly (see [`ExactJsonObject`]); 400 on failure, on a
/// duplicate key, and on U+0000 in any string, like [`parse_object`].
pub fn parse_exact_object(bytes: &[u8]) -> Result<ExactJsonObject, Problem> {
    let map = parse_object(bytes)?;
    // Valid JSON (checked above), so it is UTF-8 and the scan below only drops whitespace.
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Problem::bad_request("request body is not valid UTF-8"))?;
    if let Err(e) = serde_json::from_str::<NoDuplicateKeys>(text) {
        return Err(Problem::bad_request(format!(
            "request body is not accepted: {e}"
        )));
    }
    let raw = RawValue::from_string(compact(text))
        .map_err(|e| Problem::bad_request(format!("request body is not valid JSON: {e}")))?;
    Ok(ExactJsonObject { map, raw })
}

impl ExactJsonObject {
    /// The exact text with the top-level key `from` renamed to `to` (every value, and every
    /// other key's place, unchanged). `to` must not be a key already (the caller checks it).
    ///
    /// # Errors
    /// Only if the kept text is not an object, which [`parse_exact_object`] rules out.
    pub fn renamed(&self, from: &str, to: &str) -> Result<String, serde_json::Error> {
        let Entries(entries) = serde_json::from_str(self.raw.get())?;
        let mut out = String::with_capacity(self.raw.get().len() + to.len());
        out.push('{');
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let key = if key == from { to } else { key.as_str() };
            out.push_str(&serde_json::to_string(key)?);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        Ok(out)
    }
}

/// A JSON object's entries in their order, each value as its exact text.
struct Entries(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// `text` (valid JSON) without the whitespace outside strings.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// Deserializes any JSON value, failing on an object with a repeated key (at any depth).
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("an object has the same key twice"));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

impl<S: Send + Sync> FromRequest<S> for ExactJsonObject {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        parse_exact_object(&bytes)
    }
}

/// Validates that `field` is a non-empty string of at most `max_chars` characters.
/// The detail names the field: `missing required field "bar"`.
pub fn require_text<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    max_chars: usize,
) -> Result<&'a str, Problem> {
    match obj.get(field) {
        None => Err(Problem::bad_request(format!(
            "missing required field \"{field}\""
        ))),
        Some(Value::String(s)) if s.is_empty() => Err(Problem::bad_request(format!(
            "field \"{field}\" must be a non-empty string"
        ))),
        Some(Value::String(s)) if s.chars().count() > max_chars => Err(Problem::bad_request(
            format!("field \"{field}\" must be at most {max_chars} characters"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Problem::bad_request(format!(
            "field \"{field}\" must be a string"
        ))),
    }
}

/// The `Idempotency-Key` header name.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Reads and validates `Idempotency-Key`: one header of 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<String>, Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::bad_request(
            "send at most one Idempotency-Key header",
        ));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Problem::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renaming_a_key_keeps_every_value_exactly() {
        let body =
            br#"{ "a": 1.50, "f\u006fo": "x", "n": 12345678901234567890123, "o": {"foo": 1e2} }"#;
        let exact = parse_exact_object(body).expect("object");
        assert_eq!(
            exact.renamed("foo", "bar").expect("renamed"),
            r#"{"a":1.50,"bar":"x","n":12345678901234567890123,"o":{"foo":1e2}}"#
        );
    }

    #[test]
    fn content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/merge-patch+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type(""));
    }

    #[test]
    fn parse_errors_are_400() {
        for bad in [&b""[..], b"nope", b"[1]", b"\"s\"", b"{\"a\":\xff}", b"{"] {
            assert_eq!(parse_object(bad).expect_err("rejected").status, 400);
        }
        let deep = "[".repeat(10_000);
        assert_eq!(parse_object(deep.as_bytes()).expect_err("deep").status, 400);
        assert!(parse_object(b"{\"bar\":\"x\"}").is_ok());
        assert!(parse_object(br#"{"bar":"x","n":[{"a\u0000":1}]}"#).is_err());
        assert!(parse_object(br#"{"bar":"x\u0000"}"#).is_err());
    }

    #[test]
    fn exact_objects_keep_every_digit_and_refuse_duplicate_keys() {
        let text = "{ \"bar\" : \"a b\\\" \\\\\" ,\n \"n\": 12345678901234567890123, \"d\": [1.0E+2, -0, 0.10000000000000000555] }";
        let exact = parse_exact_object(text.as_bytes()).expect("object");
        assert_eq!(
            exact.raw.get(),
            r#"{"bar":"a b\" \\","n":12345678901234567890123,"d":[1.0E+2,-0,0.10000000000000000555]}"#
        );
        assert_eq!(exact.map["bar"], "a b\" \\");
        for dup in [
            r#"{"bar":"x","bar":"y"}"#,
            r#"{"bar":"x","n":[{"a":1,"a":2}]}"#,
            r#"{"bar":"x","\u0062ar":"y"}"#,
        ] {
            assert_eq!(
                parse_exact_object(dup.as_bytes()).expect_err(dup).status,
                400,
                "{dup}"
            );
        }
        assert!(parse_exact_object(br#"{"bar":"x","n":{"a":1},"m":{"a":1}}"#).is_ok());
        assert_eq!(parse_exact_object(b"[1]").expect_err("array").status, 400);
    }

    #[test]
    fn field_rules() {
        let obj = |s: &str| parse_object(s.as_bytes()).expect("object");
        assert_eq!(
            require_text(&obj(r#"{"bar":"x"}"#), "bar", 3).expect("ok"),
            "x"
        );
        let e = require_text(&obj("{}"), "bar", 3).expect_err("missing");
        assert_eq!(e.detail, "missing required field \"bar\"");
        assert!(require_text(&obj(r#"{"bar":""}"#), "bar", 3).is_err());
        assert!(require_text(&obj(r#"{"bar":1}"#), "bar", 3).is_err());
        assert!(require_text(&obj(r#"{"bar":null}"#), "bar", 3).is_err());
        assert!(require_text(&obj(r#"{"bar":"abcd"}"#), "bar", 3).is_err());
        assert!(require_text(&obj(r#"{"bar":"äöü"}"#), "bar", 3).is_ok());
    }
}
