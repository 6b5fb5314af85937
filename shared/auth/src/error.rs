//! Why a token (or a request) was refused: [`AuthError`], one variant per reason, each with a
//! stable [`code`](AuthError::code) for logs and metrics and an HTTP status class.

/// Why a token or a request was refused. Messages never contain a token and never an
/// unverified claim.
///
/// Match on the variant (the enum is `#[non_exhaustive]`: new reasons may be added), or use
/// [`AuthError::code`] for a stable string and [`AuthError::kind`] for the HTTP class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials were presented (no header).
    #[error("no bearer token")]
    Missing,
    /// Not a well-formed bearer token or JWT: wrong scheme, wrong shape, bad base64 or JSON,
    /// a missing or wrongly typed claim, a repeated header. The text says which.
    #[error("{0}")]
    Malformed(&'static str),
    /// The token's algorithm is not accepted, or does not match its signing key.
    #[error("{0}")]
    Algorithm(&'static str),
    /// The key set has no key with the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify (or was removed where a real one is required).
    #[error("{0}")]
    Signature(&'static str),
    /// `exp` (plus the leeway) is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` (minus the leeway) is in the future.
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    /// `iat` (minus the leeway) is in the future.
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    /// `exp − iat` is longer than the verifier's maximum lifetime (plus the leeway).
    #[error("token lifetime (exp - iat) is longer than allowed")]
    Lifetime,
    /// `iss` is not one of the accepted issuers.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` is not one of the accepted audiences.
    #[error("wrong audience")]
    Audience,
    /// The `email` (or `hd`) claim is missing or malformed.
    #[error("{0}")]
    Email(&'static str),
    /// `email_verified` is not true.
    #[error("email is not verified")]
    EmailUnverified,
    /// A valid token whose principal the allow-list (or authorize function) does not admit.
    /// Carries the verified, lower-cased email.
    #[error("principal {0} is not allowed")]
    NotAllowed(String),
    /// No signing keys are available to verify with. Never accept in that case: answer 503.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(&'static str),
}

/// The HTTP class of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 401: no, or no acceptable, credentials.
    Unauthenticated,
    /// 403: authenticated, not allowed.
    Forbidden,
    /// 503: the verifier cannot decide now.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status of this class (401, 403, 503).
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            Self::Forbidden => http::StatusCode::FORBIDDEN,
            Self::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

macro_rules! codes {
    ($($variant:ident $(($pat:tt))? => $code:literal),* $(,)?) => {
        impl AuthError {
            /// A stable snake-case code for logs and metrics: `missing`, `malformed`,
            /// `algorithm`, `unknown_key`, `signature`, `expired`, `not_yet_valid`,
            /// `issued_in_future`, `lifetime`, `issuer`, `audience`, `email`,
            /// `email_unverified`, `not_allowed`, `keys_unavailable`.
            pub fn code(&self) -> &'static str {
                match self {
                    $(Self::$variant $(($pat))? => $code,)*
                }
            }

            /// The same code prefixed `forwarded_`, for a forwarded end user's token.
            pub fn forwarded_code(&self) -> &'static str {
                match self {
                    $(Self::$variant $(($pat))? => concat!("forwarded_", $code),)*
                }
            }
        }
    };
}

codes! {
    Missing => "missing",
    Malformed(_) => "malformed",
    Algorithm(_) => "algorithm",
    UnknownKey => "unknown_key",
    Signature(_) => "signature",
    Expired => "expired",
    NotYetValid => "not_yet_valid",
    IssuedInFuture => "issued_in_future",
    Lifetime => "lifetime",
    Issuer => "issuer",
    Audience => "audience",
    Email(_) => "email",
    EmailUnverified => "email_unverified",
    NotAllowed(_) => "not_allowed",
    KeysUnavailable(_) => "keys_unavailable",
}

impl AuthError {
    /// The HTTP class: [`ErrorKind::Forbidden`] for [`AuthError::NotAllowed`],
    /// [`ErrorKind::Unavailable`] for [`AuthError::KeysUnavailable`], else
    /// [`ErrorKind::Unauthenticated`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotAllowed(_) => ErrorKind::Forbidden,
            Self::KeysUnavailable(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Unauthenticated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_kinds_map_to_statuses() {
        assert_eq!(AuthError::Missing.code(), "missing");
        assert_eq!(AuthError::Expired.forwarded_code(), "forwarded_expired");
        assert_eq!(AuthError::Malformed("x").code(), "malformed");
        assert_eq!(AuthError::NotAllowed("a@b.c".into()).kind().status(), 403);
        assert_eq!(AuthError::KeysUnavailable("x").kind().status(), 503);
        assert_eq!(AuthError::Audience.kind().status(), 401);
        assert_eq!(AuthError::UnknownKey.to_string(), "unknown signing key");
    }
}
