//! Where a token travels: the header names, and `Bearer <token>` parsing.

use http::HeaderValue;

use crate::error::AuthError;

/// The header Cloud Run checks when present (and then ignores `Authorization`).
pub const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

/// The header a trusted forwarder puts its own client's ID token in.
pub const FORWARDED_AUTHORIZATION: &str = "x-forwarded-authorization";

/// Identity-Aware Proxy's signed header: the bare JWT (no `Bearer`) stating who the person is.
pub const IAP_ASSERTION: &str = "x-goog-iap-jwt-assertion";

/// Extracts the token from `Bearer <token>` (scheme case-insensitive, surrounding spaces
/// trimmed).
///
/// ```
/// use http::HeaderValue;
/// use invoker_auth::{AuthError, bearer_token};
/// let v = HeaderValue::from_static("bearer abc");
/// assert_eq!(bearer_token(Some(&v))?, "abc");
/// assert_eq!(bearer_token(None), Err(AuthError::Missing));
/// # Ok::<(), AuthError>(())
/// ```
///
/// # Errors
/// [`AuthError::Missing`] without a value; [`AuthError::Malformed`] for another scheme, an
/// empty token or a value that is not visible ASCII.
pub fn bearer_token(value: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let Some(value) = value else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("authorization header is not visible ASCII"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("authorization scheme must be Bearer"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed("empty bearer token"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let hv = |s: &str| HeaderValue::from_str(s).expect("header");
        assert!(matches!(bearer_token(None), Err(AuthError::Missing)));
        assert_eq!(
            bearer_token(Some(&hv("bearer abc"))).expect("lower-case"),
            "abc"
        );
        assert_eq!(
            bearer_token(Some(&hv("BEARER  abc "))).expect("upper-case"),
            "abc"
        );
        assert!(matches!(
            bearer_token(Some(&hv("Basic abc"))),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            bearer_token(Some(&hv("Bearer"))),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            bearer_token(Some(&hv("Bearer   "))),
            Err(AuthError::Malformed(_))
        ));
    }
}
