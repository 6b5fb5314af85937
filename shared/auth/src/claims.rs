//! The claims of a Google ID token this crate reads, decoded once from the token's payload.

use serde::{Deserialize, Deserializer};

use crate::error::AuthError;

/// Claims of a Google ID token (or an IAP assertion) that this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// Issuer (`https://accounts.google.com`).
    pub iss: String,
    /// Audience: the URL or client id the token was minted for.
    pub aud: String,
    /// Subject: Google's stable id of the principal.
    pub sub: String,
    /// Authorized party, when present.
    pub azp: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Not-before, seconds since the epoch, when present.
    pub nbf: Option<u64>,
    /// Email of the principal (only in `format=full` tokens).
    pub email: Option<String>,
    /// Hosted domain: the Google Workspace / Cloud Identity domain of a user account.
    pub hd: Option<String>,
    /// Whether Google verified the email; accepts `true` or `"true"` (and the `false` forms).
    pub email_verified: Option<bool>,
}

/// The payload as sent: every claim optional, so that a missing one is named by us, not by
/// serde's message text.
#[derive(Deserialize)]
struct Raw {
    iss: Option<String>,
    aud: Option<String>,
    sub: Option<String>,
    azp: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    nbf: Option<u64>,
    email: Option<String>,
    hd: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: Option<bool>,
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(d)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Flag::Text(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Flag::Text(_)) => Err(serde::de::Error::custom(
            "email_verified must be true or false",
        )),
    }
}

impl Claims {
    /// Decodes the JSON of a token's payload (already base64-decoded). `iss`, `aud`, `sub`,
    /// `exp` and `iat` are required.
    ///
    /// # Errors
    /// [`AuthError::Malformed`]: not JSON, a claim of the wrong type, or a required claim
    /// missing (the text names it).
    pub fn from_json(payload: &[u8]) -> Result<Self, AuthError> {
        let raw: Raw = serde_json::from_slice(payload).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                AuthError::Malformed("token payload is not JSON")
            } else {
                AuthError::Malformed("a claim has the wrong type")
            }
        })?;
        Ok(Self {
            iss: raw.iss.ok_or(AuthError::Malformed("missing iss claim"))?,
            aud: raw.aud.ok_or(AuthError::Malformed("missing aud claim"))?,
            sub: raw.sub.ok_or(AuthError::Malformed("missing sub claim"))?,
            exp: raw.exp.ok_or(AuthError::Malformed("missing exp claim"))?,
            iat: raw.iat.ok_or(AuthError::Malformed("missing iat claim"))?,
            azp: raw.azp,
            nbf: raw.nbf,
            email: raw.email,
            hd: raw.hd,
            email_verified: raw.email_verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_mistyped_claims_are_named() {
        let ok = br#"{"iss":"i","aud":"a","sub":"s","exp":2,"iat":1,"email_verified":"TRUE"}"#;
        let c = Claims::from_json(ok).expect("claims");
        assert_eq!(c.email_verified, Some(true));
        let e = Claims::from_json(br#"{"iss":"i","aud":"a","sub":"s","exp":2}"#);
        assert_eq!(e, Err(AuthError::Malformed("missing iat claim")));
        let e = Claims::from_json(br#"{"iss":"i","aud":7,"sub":"s","exp":2,"iat":1}"#);
        assert_eq!(e, Err(AuthError::Malformed("a claim has the wrong type")));
        let e = Claims::from_json(b"[1,2]");
        assert_eq!(e, Err(AuthError::Malformed("a claim has the wrong type")));
        let e = Claims::from_json(b"{nope");
        assert_eq!(e, Err(AuthError::Malformed("token payload is not JSON")));
    }
}
