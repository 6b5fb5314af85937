//! Reading a JWT's `exp` without verifying it, and keeping tokens out of messages.
//!
//! The caller only needs to know when the token it holds stops being useful; the signature is
//! the receiver's business. Nothing here ever puts a token (or a part of one) into an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{IdToken, TokenError};

/// Longest token accepted from a source. Google ID tokens are about 1 KiB.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The `exp` claim of `jwt`, read WITHOUT verifying the signature.
///
/// The payload (second of exactly three `.`-separated parts) must be base64url without padding
/// and a JSON object whose `exp` is a non-negative number (a NumericDate; fractions are
/// truncated).
///
/// # Errors
/// [`TokenError::Malformed`] when `jwt` is not three parts, the payload is not base64url JSON
/// object, or `exp` is missing, not a number, negative or out of range.
pub fn expiry_of(jwt: &str) -> Result<SystemTime, TokenError> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not a JWT (expected three parts)"));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(TokenError::Malformed("not a JWT (empty header or payload)"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("JWT payload is not base64url"))?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("JWT payload is not JSON"))?;
    let claims = claims
        .as_object()
        .ok_or(TokenError::Malformed("JWT payload is not a JSON object"))?;
    let exp = claims
        .get("exp")
        .ok_or(TokenError::Malformed("JWT has no exp claim"))?;
    let secs = if let Some(secs) = exp.as_u64() {
        Duration::from_secs(secs)
    } else if let Some(f) = exp.as_f64() {
        if !f.is_finite() || f < 0.0 {
            return Err(TokenError::Malformed("JWT exp is out of range"));
        }
        Duration::try_from_secs_f64(f.trunc())
            .map_err(|_| TokenError::Malformed("JWT exp is out of range"))?
    } else {
        return Err(TokenError::Malformed("JWT exp is not a number"));
    };
    UNIX_EPOCH
        .checked_add(secs)
        .ok_or(TokenError::Malformed("JWT exp is out of range"))
}

/// Turns a source's raw answer into an [`IdToken`]: trims surrounding whitespace, requires a
/// header-safe compact JWT (base64url characters and dots only) whose `exp` is in the future.
pub(crate) fn parse_token(raw: &str) -> Result<IdToken, TokenError> {
    let jwt = raw.trim();
    if jwt.is_empty() {
        return Err(TokenError::Malformed("empty token"));
    }
    if jwt.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("token too long"));
    }
    if !jwt
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(TokenError::Malformed(
            "not a JWT (characters outside base64url)",
        ));
    }
    let expires_at = expiry_of(jwt)?;
    if expires_at <= SystemTime::now() {
        return Err(TokenError::Malformed("token already expired"));
    }
    Ok(IdToken::new(jwt, expires_at))
}

/// Replaces anything that looks like a bearer credential in `msg` (JWTs start with `eyJ`, Google
/// access tokens with `ya29.`) by `<redacted>`, and bounds the length. For messages of foreign
/// errors (they may quote a response body).
pub(crate) fn sanitize(msg: &str) -> String {
    const MAX: usize = 300;
    const MARKERS: [&str; 2] = ["eyJ", "ya29."];
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    let mut out = String::with_capacity(msg.len().min(MAX + 16));
    let mut rest = msg;
    while !rest.is_empty() {
        let hit = MARKERS.iter().filter_map(|m| rest.find(m)).min();
        match hit {
            None => {
                out.push_str(rest);
                break;
            }
            Some(i) => {
                out.push_str(&rest[..i]);
                out.push_str("<redacted>");
                let tail = &rest[i..];
                let end = tail.find(|c: char| !is_token_char(c)).unwrap_or(tail.len());
                rest = &tail[end..];
            }
        }
    }
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned JWT with the given payload (JSON text), for tests.
    pub(crate) fn jwt_with_payload(payload: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    /// An unsigned JWT expiring `secs` seconds from now (negative: in the past).
    pub(crate) fn jwt_expiring_in(secs: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        jwt_with_payload(&format!(
            r#"{{"aud":"https://called.example","email":"caller@example.iam.gserviceaccount.com","exp":{}}}"#,
            now + secs
        ))
    }

    #[test]
    fn expiry_is_read_from_payload() {
        let jwt = jwt_with_payload(r#"{"exp":1700000000,"aud":"x"}"#);
        assert_eq!(
            expiry_of(&jwt).expect("valid"),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let jwt = jwt_with_payload(r#"{"exp":1700000000.75}"#);
        assert_eq!(
            expiry_of(&jwt).expect("fractional exp"),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        let cases = [
            String::new(),
            "garbage".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            ".e30.sig".to_owned(),
            "eyJhbGciOiJub25lIn0..sig".to_owned(),
            "eyJhbGciOiJub25lIn0.!!!.sig".to_owned(),
            // padded base64 is not JWT base64url
            "eyJhbGciOiJub25lIn0.e30=.sig".to_owned(),
            jwt_with_payload("not json"),
            jwt_with_payload("[1,2]"),
            jwt_with_payload("{}"),
            jwt_with_payload(r#"{"exp":"1700000000"}"#),
            jwt_with_payload(r#"{"exp":null}"#),
            jwt_with_payload(r#"{"exp":-5}"#),
            jwt_with_payload(r#"{"exp":1e300}"#),
            jwt_with_payload(r#"{"exp":18446744073709551615}"#),
        ];
        for case in &cases {
            let err = expiry_of(case).expect_err(case);
            assert!(matches!(err, TokenError::Malformed(_)), "{case}: {err:?}");
        }
    }

    #[test]
    fn parse_token_requires_future_expiry_and_safe_characters() {
        let good = jwt_expiring_in(3600);
        let token = parse_token(&format!("{good}\n")).expect("valid token");
        assert_eq!(token.value(), good);

        let err = parse_token(&jwt_expiring_in(-10)).expect_err("expired");
        assert!(matches!(err, TokenError::Malformed(m) if m.contains("expired")));

        let err = parse_token(&format!("{good} x")).expect_err("space inside");
        assert!(matches!(err, TokenError::Malformed(_)));
        let err = parse_token("<html>oops</html>").expect_err("html");
        assert!(matches!(err, TokenError::Malformed(_)));
        assert!(parse_token(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_err());
    }

    #[test]
    fn sanitize_redacts_tokens_and_bounds_length() {
        let jwt = jwt_expiring_in(3600);
        let msg = format!("failed, body=<{{\"id_token\":\"{jwt}\",\"x\":\"ya29.abc-def\"}}>");
        let clean = sanitize(&msg);
        assert!(!clean.contains(&jwt), "{clean}");
        assert!(!clean.contains("ya29.abc"), "{clean}");
        assert!(clean.contains("<redacted>"), "{clean}");
        assert!(clean.starts_with("failed, body=<"), "{clean}");
        assert!(sanitize(&"é".repeat(1000)).chars().count() <= 301);
        assert_eq!(sanitize("plain message"), "plain message");
    }
}
