//! The request body both services accept: a JSON object, checked in a fixed order so every
//! bad input gets the right status — 415 (not JSON), 413 (too large), 400 (not parseable, not
//! an object, or a field missing or invalid) — as a problem response naming what was wrong.
//!
//! Validation is one streaming pass: no tree of the body is ever built, so what a request
//! costs in memory is a small multiple of its size whatever its shape (a tree of a megabyte of
//! `{"":0}` objects took ~100 MiB). Bodies from [`BLOCKING_FROM_BYTES`] up are checked on
//! tokio's blocking pool, never on a runtime worker.

use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::{StatusCode, header};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::problem::Problem;

/// Work proportional to a body's size (validation, renaming, hashing) runs on tokio's blocking
/// pool from this many bytes up; below, it is shorter than a thread hand-off (~0.1 ms).
pub const BLOCKING_FROM_BYTES: usize = 64 * 1024;

/// Runs `work` — CPU work proportional to a body of `len` bytes — off the runtime's workers
/// when `len` is at least [`BLOCKING_FROM_BYTES`], inline otherwise, so a large body never
/// holds up the other requests (health checks included) of a worker. 500 if `work` panicked.
///
/// # Errors
/// Only when `work` panicked on the blocking pool.
pub async fn off_the_runtime<T, F>(len: usize, work: F) -> Result<T, Problem>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if len < BLOCKING_FROM_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "body work on the blocking pool failed");
        Problem::internal()
    })
}

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

fn empty_body() -> Problem {
    Problem::bad_request("request body is empty; expected a JSON object")
}

fn not_json(e: &serde_json::Error) -> Problem {
    Problem::bad_request(format!("request body is not valid JSON: {e}"))
}

fn not_an_object() -> Problem {
    Problem::bad_request("request body must be a JSON object")
}

fn holds_nul() -> Problem {
    Problem::bad_request("request body must not contain the character U+0000 in any string")
}

/// Parses bytes as a JSON object into a tree (400 on failure, and on U+0000 in any string).
/// A repeated key keeps its last value. serde_json's recursion limit (128) turns deeply nested
/// input into a clean error instead of a stack overflow.
///
/// This builds a [`Value`] tree — hundreds of bytes per small value — so the services do not
/// use it on request bodies: they use [`parse_exact_object`], which builds none.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Problem> {
    if bytes.is_empty() {
        return Err(empty_body());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) if map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) => {
            Err(holds_nul())
        }
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(not_an_object()),
        Err(e) => Err(not_json(&e)),
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
/// its escapes, every key its place — and `map` holds the top level's keys and string values
/// (decoded), for field checks. Objects with a duplicate key at any depth are refused (400):
/// what is validated and what is stored must be the same.
///
/// Nothing else is kept: no tree of the body exists at any point, so a body costs about three
/// times its size while it is parsed and twice its size afterwards, whatever its shape.
#[derive(Debug, Clone)]
pub struct ExactJsonObject {
    /// The object's top-level keys, and the values of those that are strings.
    pub map: TopLevel,
    /// The object's exact text, compact.
    pub raw: Box<RawValue>,
}

/// Parses bytes as a JSON object kept exactly (see [`ExactJsonObject`]); 400 on failure, on a
/// duplicate key, and on U+0000 in any string, with the same details as [`parse_object`].
///
/// One streaming pass: nothing but the top level's keys and string values, and the keys of the
/// objects still open (for the duplicate check), is held while it runs.
pub fn parse_exact_object(bytes: &[u8]) -> Result<ExactJsonObject, Problem> {
    if bytes.is_empty() {
        return Err(empty_body());
    }
    if u32::try_from(bytes.len()).is_err() {
        return Err(too_large(Some(u32::MAX as usize)));
    }
    let mut check = Check {
        input: bytes,
        keys: Vec::new(),
        decoded: Vec::new(),
        nul: false,
        duplicate: false,
        top: TopLevel::default(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let shape = TopSeed(&mut check)
        .deserialize(&mut de)
        .and_then(|shape| de.end().map(|()| shape));
    // The same precedence as a parse into a tree followed by the checks on it.
    match shape {
        Err(e) => return Err(not_json(&e)),
        Ok(Shape::NotObject) => return Err(not_an_object()),
        Ok(Shape::Object) if check.nul => return Err(holds_nul()),
        Ok(Shape::Object) if check.duplicate => {
            return Err(Problem::bad_request(
                "request body is not accepted: an object has the same key twice",
            ));
        }
        Ok(Shape::Object) => {}
    }
    let Check { top, .. } = check;
    // Valid JSON (checked above), so it is UTF-8 and the scan below only drops whitespace.
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Problem::bad_request("request body is not valid UTF-8"))?;
    let raw = RawValue::from_string(compact(text)).map_err(|e| not_json(&e))?;
    Ok(ExactJsonObject { map: top, raw })
}

impl ExactJsonObject {
    /// The exact text with the top-level key `from` renamed to `to` (every value, and every
    /// other key's place, unchanged; top-level keys are written with serde_json's escaping).
    /// `to` must not be a key already (the caller checks it). One pass over the kept text.
    ///
    /// # Errors
    /// Only if the kept text is not an object, which [`parse_exact_object`] rules out.
    pub fn renamed(&self, from: &str, to: &str) -> Result<String, serde_json::Error> {
        let text = self.raw.get();
        let mut out = Vec::with_capacity(text.len() + to.len());
        let mut de = serde_json::Deserializer::from_str(text);
        Rename {
            from,
            to,
            out: &mut out,
        }
        .deserialize(&mut de)?;
        de.end()?;
        String::from_utf8(out).map_err(de::Error::custom)
    }

    /// The exact text alone (the top-level summary is dropped at once).
    pub fn into_raw(self) -> Box<RawValue> {
        self.raw
    }
}

/// An object's top-level entries, as far as field checks need them: each key (decoded) and,
/// when the value is a string, that string (decoded). Kept in one buffer, in order, so it costs
/// at most about the size of those keys and strings in the body.
#[derive(Clone, Default)]
pub struct TopLevel {
    /// Per entry: `s` key NUL value NUL (a string value) or `o` key NUL (any other value).
    /// Keys and strings never hold U+0000 (such bodies are refused).
    text: String,
}

impl fmt::Debug for TopLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopLevel")
            .field("entries", &self.entries().count())
            .finish()
    }
}

/// A top-level field's value as field checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// A string (decoded).
    Text(&'a str),
    /// Anything else: a number, `true`, `false`, `null`, an array or an object.
    Other,
}

impl TopLevel {
    fn push(&mut self, key: &str, value: Option<&str>) {
        self.text.push(if value.is_some() { 's' } else { 'o' });
        self.text.push_str(key);
        self.text.push('\0');
        if let Some(v) = value {
            self.text.push_str(v);
            self.text.push('\0');
        }
    }

    /// The entries in their order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Field<'_>)> {
        let mut rest = self.text.as_str();
        std::iter::from_fn(move || {
            let tag = rest.as_bytes().first().copied()?;
            let (key, after) = rest[1..].split_once('\0')?;
            if tag == b's' {
                let (value, after) = after.split_once('\0')?;
                rest = after;
                Some((key, Field::Text(value)))
            } else {
                rest = after;
                Some((key, Field::Other))
            }
        })
    }

    /// The value of the top-level key `name`.
    pub fn get(&self, name: &str) -> Option<Field<'_>> {
        self.entries().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether `name` is a top-level key.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// What [`require_text`] reads a field from: a parsed tree's map, or a [`TopLevel`].
pub trait Fields {
    /// The top-level field `name`, if present.
    fn field(&self, name: &str) -> Option<Field<'_>>;
}

impl Fields for Map<String, Value> {
    fn field(&self, name: &str) -> Option<Field<'_>> {
        self.get(name).map(|v| match v {
            Value::String(s) => Field::Text(s),
            _ => Field::Other,
        })
    }
}

impl Fields for TopLevel {
    fn field(&self, name: &str) -> Option<Field<'_>> {
        self.get(name)
    }
}

impl Fields for ExactJsonObject {
    fn field(&self, name: &str) -> Option<Field<'_>> {
        self.map.get(name)
    }
}

/// The result of the validating pass over the whole body.
enum Shape {
    Object,
    NotObject,
}

/// A key of an object still open: a range of the body (no escape in the key) or, with the
/// high bit of `start` set, of [`Check::decoded`].
#[derive(Clone, Copy)]
struct KeyRef {
    start: u32,
    len: u32,
}

const DECODED: u32 = 1 << 31;

fn key_bytes<'a>(input: &'a [u8], decoded: &'a [u8], k: KeyRef) -> &'a [u8] {
    let (buf, start) = if k.start & DECODED != 0 {
        (decoded, k.start & !DECODED)
    } else {
        (input, k.start)
    };
    let start = start as usize;
    &buf[start..start + k.len as usize]
}

/// The state of the validating pass. Memory: the keys of the objects still open (8 bytes each,
/// their text borrowed from the body unless it had escapes) and the top level's summary.
struct Check<'de> {
    input: &'de [u8],
    /// Keys of the open objects, innermost last.
    keys: Vec<KeyRef>,
    /// Decoded text of those keys that had escapes.
    decoded: Vec<u8>,
    /// A string (key or value) holds U+0000.
    nul: bool,
    /// An object has a key twice.
    duplicate: bool,
    top: TopLevel,
}

impl<'de> Check<'de> {
    fn key(&mut self, s: &str, borrowed: bool) -> Result<KeyRef, String> {
        if s.contains('\0') {
            self.nul = true;
        }
        let too_long = || "request body is too large".to_owned();
        let len = u32::try_from(s.len()).map_err(|_| too_long())?;
        let base = self.input.as_ptr() as usize;
        let at = (s.as_ptr() as usize).wrapping_sub(base);
        if borrowed && at <= self.input.len() && self.input.len() - at >= s.len() {
            let start = u32::try_from(at).map_err(|_| too_long())?;
            return Ok(KeyRef { start, len });
        }
        let start = u32::try_from(self.decoded.len())
            .ok()
            .filter(|s| s & DECODED == 0)
            .ok_or_else(too_long)?;
        self.decoded.extend_from_slice(s.as_bytes());
        Ok(KeyRef {
            start: start | DECODED,
            len,
        })
    }

    /// Reads an object's entries; at the top level, records them in [`Check::top`].
    fn object<A: MapAccess<'de>>(&mut self, mut map: A, top: bool) -> Result<(), A::Error> {
        let (keys_from, decoded_from) = (self.keys.len(), self.decoded.len());
        while let Some(key) = map.next_key_seed(KeySeed(&mut *self))? {
            self.keys.push(key);
            let value = map.next_value_seed(ValueSeed {
                check: &mut *self,
                keep: top,
            })?;
            if top {
                let k = key_bytes(self.input, &self.decoded, key);
                let k = std::str::from_utf8(k).map_err(de::Error::custom)?;
                self.top.push(k, value.as_deref());
            }
        }
        // A repeated key: sort this object's keys (by their decoded text) and compare
        // neighbours. Once one is found the body is refused, so the rest is not compared.
        if self.keys.len() - keys_from > 1 && !self.duplicate {
            let (input, decoded) = (self.input, &self.decoded);
            let keys = &mut self.keys[keys_from..];
            keys.sort_unstable_by(|a, b| {
                key_bytes(input, decoded, *a).cmp(key_bytes(input, decoded, *b))
            });
            self.duplicate = keys
                .windows(2)
                .any(|w| key_bytes(input, decoded, w[0]) == key_bytes(input, decoded, w[1]));
        }
        self.keys.truncate(keys_from);
        self.decoded.truncate(decoded_from);
        Ok(())
    }
}

/// The whole body: an object (its entries recorded), or any other JSON value (checked, then
/// refused as not an object).
struct TopSeed<'a, 'de>(&'a mut Check<'de>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = Shape;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de> {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shape, A::Error> {
        self.0.object(map, true)?;
        Ok(Shape::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shape, A::Error> {
        ValueSeed {
            check: self.0,
            keep: false,
        }
        .visit_seq(seq)?;
        Ok(Shape::NotObject)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::NotObject)
    }
}

/// An object's key: checked for U+0000 and remembered for the duplicate check.
struct KeySeed<'a, 'de>(&'a mut Check<'de>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, 'de> {
    type Value = KeyRef;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeyRef, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, 'de> {
    type Value = KeyRef;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<KeyRef, E> {
        self.0.key(s, true).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyRef, E> {
        self.0.key(s, false).map_err(E::custom)
    }
}

/// Any value inside the body, checked without being kept; with `keep`, a string value is
/// returned (for the top level's summary).
struct ValueSeed<'a, 'de> {
    check: &'a mut Check<'de>,
    keep: bool,
}

type Kept = Option<String>;

impl ValueSeed<'_, '_> {
    fn string(self, s: &str) -> Kept {
        if s.contains('\0') {
            self.check.nul = true;
        }
        self.keep.then(|| s.to_owned())
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, 'de> {
    type Value = Kept;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kept, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, 'de> {
    type Value = Kept;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Kept, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Kept, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Kept, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Kept, E> {
        Ok(None)
    }
    fn visit_str<E>(self, s: &str) -> Result<Kept, E> {
        Ok(self.string(s))
    }
    fn visit_unit<E>(self) -> Result<Kept, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kept, A::Error> {
        while seq
            .next_element_seed(ValueSeed {
                check: &mut *self.check,
                keep: false,
            })?
            .is_some()
        {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Kept, A::Error> {
        self.check.object(map, false)?;
        Ok(None)
    }
}

/// Writes the top-level object again with one key renamed, each value copied as its text.
struct Rename<'a> {
    from: &'a str,
    to: &'a str,
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Rename<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Rename<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push(b'{');
        let mut first = true;
        while let Some(KeyText(key)) = map.next_key::<KeyText<'de>>()? {
            if !first {
                self.out.push(b',');
            }
            first = false;
            let key: &str = if key == self.from { self.to } else { &key };
            serde_json::to_writer(&mut *self.out, key).map_err(de::Error::custom)?;
            self.out.push(b':');
            let value: &'de RawValue = map.next_value()?;
            self.out.extend_from_slice(value.get().as_bytes());
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// A key, borrowed from the text unless it had escapes.
struct KeyText<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<KeyText<'de>, E> {
                Ok(KeyText(s.into()))
            }
            fn visit_str<E>(self, s: &str) -> Result<KeyText<'de>, E> {
                Ok(KeyText(s.to_owned().into()))
            }
        }
        d.deserialize_str(V)
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

impl<S: Send + Sync> FromRequest<S> for ExactJsonObject {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        // The received bytes are dropped as soon as the exact text is made.
        off_the_runtime(bytes.len(), move || parse_exact_object(&bytes)).await?
    }
}

/// Validates that `field` is a non-empty string of at most `max_chars` characters.
/// The detail names the field: `missing required field "bar"`.
pub fn require_text<'a, F: Fields + ?Sized>(
    obj: &'a F,
    field: &str,
    max_chars: usize,
) -> Result<&'a str, Problem> {
    match obj.field(field) {
        None => Err(Problem::bad_request(format!(
            "missing required field \"{field}\""
        ))),
        Some(Field::Text("")) => Err(Problem::bad_request(format!(
            "field \"{field}\" must be a non-empty string"
        ))),
        Some(Field::Text(s)) if s.chars().count() > max_chars => Err(Problem::bad_request(
            format!("field \"{field}\" must be at most {max_chars} characters"),
        )),
        Some(Field::Text(s)) => Ok(s),
        Some(Field::Other) => Err(Problem::bad_request(format!(
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
    use proptest::prelude::*;

    #[test]
    fn renaming_a_key_keeps_every_value_exactly() {
        let body =
            br#"{ "a": 1.50, "f\u006fo": "x", "n": 12345678901234567890123, "o": {"foo": 1e2} }"#;
        let exact = parse_exact_object(body).expect("object");
        assert_eq!(
            exact.renamed("foo", "bar").expect("renamed"),
            r#"{"a":1.50,"bar":"x","n":12345678901234567890123,"o":{"foo":1e2}}"#
        );
        // Top-level keys are written with serde_json's escaping, values as they were sent.
        let exact =
            parse_exact_object(br#"{"\u00e9\/":"\u00e9","foo":[1,{"a":"\n"}]}"#).expect("object");
        assert_eq!(
            exact.renamed("foo", "bar").expect("renamed"),
            r#"{"é/":"\u00e9","bar":[1,{"a":"\n"}]}"#
        );
        assert_eq!(
            parse_exact_object(b"{}")
                .expect("object")
                .renamed("foo", "bar")
                .expect("renamed"),
            "{}"
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
            assert_eq!(parse_exact_object(bad).expect_err("rejected").status, 400);
        }
        let deep = "[".repeat(10_000);
        assert_eq!(parse_object(deep.as_bytes()).expect_err("deep").status, 400);
        let deep = parse_exact_object(deep.as_bytes()).expect_err("deep");
        assert!(deep.detail.contains("recursion limit"), "{}", deep.detail);
        assert!(parse_object(b"{\"bar\":\"x\"}").is_ok());
        assert!(parse_object(br#"{"bar":"x","n":[{"a\u0000":1}]}"#).is_err());
        assert!(parse_object(br#"{"bar":"x\u0000"}"#).is_err());
        for nul in [
            &br#"{"bar":"x","n":[{"a\u0000":1}]}"#[..],
            br#"{"bar":"x\u0000"}"#,
            br#"{"bar":"x","n":[["\u0000"]]}"#,
            br#"{"\u0000":1}"#,
        ] {
            let e = parse_exact_object(nul).expect_err("U+0000");
            assert!(e.detail.contains("U+0000"), "{}", e.detail);
        }
        // An escaped backslash before "u0000" is no U+0000.
        assert!(parse_exact_object(br#"{"bar":"\\u0000"}"#).is_ok());
    }

    #[test]
    fn exact_objects_keep_every_digit_and_refuse_duplicate_keys() {
        let text = "{ \"bar\" : \"a b\\\" \\\\\" ,\n \"n\": 12345678901234567890123, \"d\": [1.0E+2, -0, 0.10000000000000000555] }";
        let exact = parse_exact_object(text.as_bytes()).expect("object");
        assert_eq!(
            exact.raw.get(),
            r#"{"bar":"a b\" \\","n":12345678901234567890123,"d":[1.0E+2,-0,0.10000000000000000555]}"#
        );
        assert_eq!(exact.map.get("bar"), Some(Field::Text("a b\" \\")));
        assert_eq!(exact.map.get("n"), Some(Field::Other));
        assert_eq!(exact.map.get("x"), None);
        for dup in [
            r#"{"bar":"x","bar":"y"}"#,
            r#"{"bar":"x","n":[{"a":1,"a":2}]}"#,
            r#"{"bar":"x","\u0062ar":"y"}"#,
            r#"{"bar":"x","n":{"\u00e9":1,"b":{"c":[]},"é":2}}"#,
            r#"{"bar":"x","n":{"k\"":1,"k\u0022":2}}"#,
        ] {
            let e = parse_exact_object(dup.as_bytes()).expect_err(dup);
            assert_eq!(e.status, 400, "{dup}");
            assert!(e.detail.contains("same key twice"), "{}", e.detail);
        }
        assert!(parse_exact_object(br#"{"bar":"x","n":{"a":1},"m":{"a":1}}"#).is_ok());
        assert!(
            parse_exact_object(br#"{"a":{"b":1,"a":{"b":2,"a":3}},"b":[{"a":1},{"a":1}]}"#).is_ok()
        );
        assert_eq!(parse_exact_object(b"[1]").expect_err("array").status, 400);
    }

    #[test]
    fn the_top_level_summary_has_every_key_decoded() {
        let exact =
            parse_exact_object(br#"{"f\u006fo":"x\u0041","bar":{"foo":"no"},"e":"","z":null}"#)
                .expect("object");
        let entries: Vec<_> = exact.map.entries().collect();
        assert_eq!(
            entries,
            [
                ("foo", Field::Text("xA")),
                ("bar", Field::Other),
                ("e", Field::Text("")),
                ("z", Field::Other)
            ]
        );
        assert!(exact.map.contains_key("bar") && !exact.map.contains_key("nope"));
        assert_eq!(require_text(&exact, "foo", 2).expect("text"), "xA");
        assert!(require_text(&exact.map, "bar", 2).is_err());
    }

    #[test]
    fn field_rules() {
        let obj = |s: &str| parse_object(s.as_bytes()).expect("object");
        let exact = |s: &str| parse_exact_object(s.as_bytes()).expect("object").map;
        assert_eq!(
            require_text(&obj(r#"{"bar":"x"}"#), "bar", 3).expect("ok"),
            "x"
        );
        let e = require_text(&obj("{}"), "bar", 3).expect_err("missing");
        assert_eq!(e.detail, "missing required field \"bar\"");
        for (body, ok) in [
            (r#"{"bar":""}"#, false),
            (r#"{"bar":1}"#, false),
            (r#"{"bar":null}"#, false),
            (r#"{"bar":"abcd"}"#, false),
            (r#"{"bar":["x"]}"#, false),
            (r#"{"bar":"äöü"}"#, true),
        ] {
            let (tree, kept) = (obj(body), exact(body));
            let tree = require_text(&tree, "bar", 3).map_err(|e| e.detail);
            let kept = require_text(&kept, "bar", 3).map_err(|e| e.detail);
            assert_eq!(tree.is_ok(), ok, "{body}");
            assert_eq!(tree, kept, "{body}");
        }
    }

    /// The previous validator, as the oracle: a tree, then the U+0000 scan, then a second
    /// pass refusing a repeated key.
    fn oracle(bytes: &[u8]) -> Result<String, Problem> {
        let _ = parse_object(bytes)?;
        let text = std::str::from_utf8(bytes).expect("valid JSON is UTF-8");
        if serde_json::from_str::<NoDuplicateKeys>(text).is_err() {
            return Err(Problem::bad_request("same key twice"));
        }
        Ok(compact(text))
    }

    struct NoDuplicateKeys;

    impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(NoDuplicateKeysVisitor)
        }
    }

    struct NoDuplicateKeysVisitor;

    impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
        type Value = NoDuplicateKeys;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicateKeys, A::Error> {
            while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
            Ok(NoDuplicateKeys)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicateKeys, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    return Err(de::Error::custom("an object has the same key twice"));
                }
                map.next_value::<NoDuplicateKeys>()?;
            }
            Ok(NoDuplicateKeys)
        }
    }

    fn agrees_with_the_oracle(bytes: &[u8]) -> Result<(), TestCaseError> {
        let old = oracle(bytes);
        let new = parse_exact_object(bytes);
        match (&old, &new) {
            (Ok(text), Ok(exact)) => {
                prop_assert_eq!(text.as_str(), exact.raw.get());
                let tree = parse_object(bytes).expect("object");
                let summary: Vec<_> = exact.map.entries().map(|(k, _)| k.to_owned()).collect();
                prop_assert_eq!(summary.len(), tree.len());
                for (k, v) in &tree {
                    prop_assert_eq!(tree.field(k), exact.map.get(k), "{:?}", v);
                }
            }
            (Err(o), Err(n)) => {
                prop_assert_eq!(o.status, n.status);
                // The same detail, except that the old one said where the repeat was, and
                // that a repeated key whose first value held U+0000 (the tree kept only the
                // last value) is now refused for the U+0000.
                if o.detail.contains("same key twice") {
                    prop_assert!(
                        n.detail.contains("same key twice") || n.detail.contains("U+0000"),
                        "{}",
                        n.detail
                    );
                } else {
                    prop_assert_eq!(&o.detail, &n.detail);
                }
            }
            _ => prop_assert!(
                false,
                "{:?}: old {:?}, new {:?}",
                String::from_utf8_lossy(bytes),
                old.map(|_| ()).map_err(|e| e.detail),
                new.map(|_| ()).map_err(|e| e.detail)
            ),
        }
        Ok(())
    }

    #[test]
    fn the_streaming_pass_agrees_with_the_tree_on_edge_cases() {
        for case in [
            &b"{}"[..],
            b" { } ",
            b"{} x",
            b"[1] x",
            b"[{\"a\":1,\"a\":2}]",
            b"\"\\u0000\"",
            b"{\"a\":1e400}",
            b"{\"a\":-0.0e-0,\"b\":[true,false,null,\"\\ud83d\\ude00\"]}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{\"\":0,\"\":1}",
            b"{\"x\":\"\\u0000\",\"x\":1}",
            b"{\"x\":[{\"\":0},{\"\":0},{\"\":0}],\"y\":{\"\":{\"\":{}}}}",
        ] {
            agrees_with_the_oracle(case).expect("agrees");
        }
    }

    /// JSON text, valid or nearly so: random whitespace, keys that repeat (also through
    /// escapes), strings with escapes and U+0000, numbers of every notation, nesting.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = proptest::sample::select(vec![
            "0",
            "-1",
            "1.50",
            "1e400",
            "12345678901234567890123",
            "true",
            "null",
            "\"\"",
            "\"x\\u0000\"",
            "\"\\u00e9\\n\"",
            "\"é\"",
            "\"\\\\u0000\"",
        ])
        .prop_map(str::to_owned);
        let ws = || proptest::sample::select(vec!["", "", " ", "\n\t"]);
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec((inner.clone(), ws()), 0..5).prop_map(|items| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(v, w)| format!("{w}{v}{w}"))
                        .collect();
                    format!("[{}]", items.join(","))
                }),
                proptest::collection::vec(
                    (
                        proptest::sample::select(vec![
                            "a", "b", "\\u0061", "é", "\\u00e9", "\\u0000", "", "foo", "bar",
                        ]),
                        inner,
                        ws(),
                    ),
                    0..5
                )
                .prop_map(|entries| {
                    let entries: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}"))
                        .collect();
                    format!("{{{}}}", entries.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Generated JSON: accepted, refused and kept exactly as the tree-building validator
        /// did, and its top-level summary is the tree's top level.
        #[test]
        fn generated_json_is_judged_as_the_tree_judged_it(text in json_text()) {
            agrees_with_the_oracle(text.as_bytes())?;
        }

        /// Any bytes, JSON-like noise included: accepted, refused and kept exactly as the
        /// tree-building validator did.
        #[test]
        fn the_streaming_pass_agrees_with_the_tree(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(proptest::sample::select(vec![
                    "{", "}", "[", "]", "\"", ":", ",", " ", "\\u0000", "\\u0061",
                    "\"a\":", "\"b\":", "\"\\u0061\":", "1", "-2.5e3", "null", "\"x\"",
                    "\"\\\\\"",
                ]), 0..40).prop_map(|parts| parts.concat().into_bytes()),
            ]
        ) {
            agrees_with_the_oracle(&bytes)?;
        }
    }
}
