//! Who a verified token speaks for: [`Identity`], and the `email` / `hd` rules that make one.

use crate::claims::Claims;
use crate::error::AuthError;

/// A verified identity: the principal whose token was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The verified `email` claim, lower-cased.
    pub email: String,
    /// The `sub` claim: Google's stable id of the account.
    pub subject: String,
    /// The `hd` claim (Workspace domain of a user account), lower-cased; `None` for service
    /// accounts and consumer accounts.
    pub hosted_domain: Option<String>,
}

/// Longest `email` claim accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

impl Identity {
    /// The identity in verified `claims`: a well-formed email with `email_verified: true`,
    /// lower-cased, and a well-formed `hd` when present.
    ///
    /// # Errors
    /// [`AuthError::Email`] (missing or malformed `email` or `hd`) or
    /// [`AuthError::EmailUnverified`].
    pub fn from_claims(claims: &Claims) -> Result<Self, AuthError> {
        let email = match (claims.email.as_deref(), claims.email_verified) {
            (Some(e), _) if !is_well_formed_email(e) => {
                return Err(AuthError::Email("malformed email claim"));
            }
            (Some(e), Some(true)) => e.to_lowercase(),
            (Some(_), _) => return Err(AuthError::EmailUnverified),
            (None, _) => return Err(AuthError::Email("token has no email claim")),
        };
        let hosted_domain = hosted_domain(claims)?;
        Ok(Self {
            email,
            subject: claims.sub.clone(),
            hosted_domain,
        })
    }
}

impl Identity {
    /// The person in a verified Identity-Aware Proxy assertion: a well-formed `email`
    /// (lower-cased; IAP's assertions carry no `email_verified` — IAP admits only people it
    /// authenticated) and a well-formed `hd` when present.
    ///
    /// # Errors
    /// [`AuthError::Email`] (missing or malformed `email` or `hd`).
    pub fn from_iap_claims(claims: &Claims) -> Result<Self, AuthError> {
        let email = match claims.email.as_deref() {
            Some(e) if is_well_formed_email(e) => e.to_lowercase(),
            Some(_) => return Err(AuthError::Email("malformed email claim")),
            None => return Err(AuthError::Email("assertion has no email claim")),
        };
        let hosted_domain = hosted_domain(claims)?;
        Ok(Self {
            email,
            subject: claims.sub.clone(),
            hosted_domain,
        })
    }
}

/// The `hd` claim, lower-cased, when present and well formed.
fn hosted_domain(claims: &Claims) -> Result<Option<String>, AuthError> {
    match claims.hd.as_deref() {
        None => Ok(None),
        Some(hd) if is_well_formed_domain(hd) => Ok(Some(hd.to_lowercase())),
        Some(_) => Err(AuthError::Email("malformed hd claim")),
    }
}

/// Exactly one `@` between a non-empty local part (at most 64 bytes) and a domain, no
/// whitespace or control characters, at most 254 bytes in all.
pub fn is_well_formed_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c.is_control())
        && is_well_formed_domain(domain)
}

fn is_well_formed_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= MAX_EMAIL_LEN
        && !domain
            .chars()
            .any(|c| c == '@' || c.is_whitespace() || c.is_control())
}
