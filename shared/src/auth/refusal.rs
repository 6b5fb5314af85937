//! A refusal as data: one log entry per refused request, with an `auth` object whose fields
//! are stable (`deploy/log-fields.json` lists them; Terraform's log-based metrics count by
//! them):
//!
//! ```json
//! {"severity":"WARNING","message":"request refused by authentication",
//!  "auth":{"status":401,"reason":"audience","header":"authorization",
//!          "presented_aud":"https://api.example.com","presented_iss":"https://accounts.google.com",
//!          "expected_aud":"https://caller-abc-ew.a.run.app","detail":"wrong audience"}}
//! ```
//!
//! `status` is 401, 403 or 503 (severity `WARNING`, `WARNING`, `ERROR`); `reason` the
//! library's stable code ([`Rejection::code`], `forwarded_` for an end user's token); `header`
//! where the token came from. `presented_aud` / `presented_iss` are what the token claimed
//! (unverified: escaped, at most [`MAX_PRESENTED_CHARS`] characters) where it could be decoded;
//! `expected_aud` only for a wrong audience; `principal` only for `not_allowed` (a verified
//! email). Never a token, never an unverified email.

use invoker_auth::{AuthError, Rejection};

use crate::telemetry::escape_control;

/// The message of every refusal's log entry.
pub const MESSAGE: &str = "request refused by authentication";

/// Longest presented claim logged, in characters (after escaping).
pub const MAX_PRESENTED_CHARS: usize = 200;

/// `s` with control characters escaped, cut to [`MAX_PRESENTED_CHARS`] characters (the last
/// one `…` when cut).
pub fn presented(s: &str) -> String {
    let escaped = escape_control(s);
    if escaped.chars().count() <= MAX_PRESENTED_CHARS {
        return escaped.into_owned();
    }
    let mut out: String = escaped.chars().take(MAX_PRESENTED_CHARS - 1).collect();
    out.push('…');
    out
}

/// Writes the one log entry of `rejection`.
pub fn log(rejection: &Rejection) {
    let status = rejection.kind().status().as_u16();
    let reason = rejection.code();
    let header = rejection.header();
    let aud = rejection.presented_audience().map(presented);
    let iss = rejection.presented_issuer().map(presented);
    let expected = (!rejection.expected_audiences().is_empty())
        .then(|| presented(&rejection.expected_audiences().join(",")));
    let principal = match rejection.error() {
        AuthError::NotAllowed(email) => Some(escape_control(email).into_owned()),
        _ => None,
    };
    // The library's text names the failed check; it never holds a token or an unverified claim.
    let detail = escape_control(&rejection.to_string()).into_owned();
    macro_rules! entry {
        ($level:ident) => {
            tracing::$level!(
                auth.status = status,
                auth.reason = reason,
                auth.header = header,
                auth.presented_aud = aud.as_deref(),
                auth.presented_iss = iss.as_deref(),
                auth.expected_aud = expected.as_deref(),
                auth.principal = principal.as_deref(),
                auth.detail = %detail,
                "{MESSAGE}"
            )
        };
    }
    if status >= 500 {
        entry!(error);
    } else {
        entry!(warn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_claims_are_escaped_and_cut() {
        assert_eq!(presented("https://x"), "https://x");
        assert_eq!(presented("a\nb\u{1b}"), "a\\u{a}b\\u{1b}");
        let long = "é".repeat(500);
        let cut = presented(&long);
        assert_eq!(cut.chars().count(), MAX_PRESENTED_CHARS);
        assert!(cut.ends_with('…'));
    }
}
