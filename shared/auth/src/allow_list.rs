//! Who may call: [`AllowList`] of exact emails and `*@domain` patterns.
//!
//! `*@domain` follows IAM's `domain:` member: a Google Workspace / Cloud Identity domain. A user
//! account matches only when its token's `hd` (hosted domain) claim is that domain — an
//! `@domain` address alone proves nothing (consumer accounts can be made on any address).
//! Service accounts (`…gserviceaccount.com`) carry no `hd` and match on their email.
//!
//! Matching takes a verified [`Identity`] (email *and* hosted domain), so the `hd` rule cannot
//! be skipped by mistake: there is no email-only match.

use std::fmt;
use std::str::FromStr;

use crate::identity::Identity;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrincipalPattern {
    /// An exact email, compared case-insensitively (stored lower-case).
    Exact(String),
    /// `*@domain`: a Workspace user whose `hd` is that domain, or a service account whose
    /// email is at that domain (stored lower-case, without the `@`).
    Domain(String),
}

/// An allow-list entry that is neither an email nor `*@domain`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is {reason}")]
pub struct PatternError {
    /// The entry as given (trimmed, lower-cased).
    pub entry: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl PrincipalPattern {
    /// Parses one entry (trimmed, compared lower-case).
    ///
    /// # Errors
    /// [`PatternError`] for anything but `name@domain` or `*@domain.tld`.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let s = s.trim().to_lowercase();
        if let Some(domain) = s.strip_prefix("*@") {
            if domain.is_empty()
                || domain.contains('@')
                || domain.contains('*')
                || !domain.contains('.')
            {
                return Err(PatternError {
                    entry: s,
                    reason: "not a valid *@domain pattern",
                });
            }
            return Ok(Self::Domain(domain.to_owned()));
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !s.contains('*') =>
            {
                Ok(Self::Exact(s))
            }
            _ => Err(PatternError {
                entry: s,
                reason: "neither an email nor a *@domain pattern",
            }),
        }
    }

    /// Whether the verified `identity` matches this entry.
    pub fn admits(&self, identity: &Identity) -> bool {
        let email = identity.email.to_lowercase();
        match self {
            Self::Exact(e) => *e == email,
            Self::Domain(d) => {
                let Some((local, domain)) = email.rsplit_once('@') else {
                    return false;
                };
                if local.is_empty() || domain != d {
                    return false;
                }
                is_service_account_domain(domain)
                    || identity
                        .hosted_domain
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(d))
            }
        }
    }
}

impl FromStr for PrincipalPattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether an email at `domain` is a Google service account (which has no `hd`).
pub fn is_service_account_domain(domain: &str) -> bool {
    domain == "gserviceaccount.com" || domain.ends_with(".gserviceaccount.com")
}

impl fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(e) => f.write_str(e),
            Self::Domain(d) => write!(f, "*@{d}"),
        }
    }
}

/// The principals allowed to call: a list of [`PrincipalPattern`]s, or anyone with a verified
/// Google identity ([`AllowList::any`], for a service that authorizes elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<PrincipalPattern>,
    any: bool,
}

impl AllowList {
    /// Parses entries (exact emails and `*@domain`), e.g. from a comma list.
    ///
    /// ```
    /// use invoker_auth::AllowList;
    /// let list = AllowList::parse(["caller@p.iam.gserviceaccount.com", "*@example.com"])?;
    /// assert_eq!(list.len(), 2);
    /// # Ok::<(), invoker_auth::PatternError>(())
    /// ```
    ///
    /// # Errors
    /// [`PatternError`] naming the first bad entry.
    pub fn parse<I, S>(entries: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = entries
            .into_iter()
            .map(|e| PrincipalPattern::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patterns,
            any: false,
        })
    }

    /// A list of these patterns.
    pub fn new(patterns: Vec<PrincipalPattern>) -> Self {
        Self {
            patterns,
            any: false,
        }
    }

    /// Admits every verified Google identity. Any Google account can mint a token for any
    /// audience: use this only where something else authorizes.
    pub fn any() -> Self {
        Self {
            patterns: Vec::new(),
            any: true,
        }
    }

    /// Whether the verified `identity` may call.
    pub fn admits(&self, identity: &Identity) -> bool {
        self.any || self.patterns.iter().any(|p| p.admits(identity))
    }

    /// Whether this list admits any verified identity.
    pub fn admits_anyone(&self) -> bool {
        self.any
    }

    /// The patterns.
    pub fn patterns(&self) -> &[PrincipalPattern] {
        &self.patterns
    }

    /// How many patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there is no pattern (and the list is not [`AllowList::any`]): admits nobody.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && !self.any
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("*");
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(email: &str, hd: Option<&str>) -> Identity {
        Identity {
            email: email.to_owned(),
            subject: "1".to_owned(),
            hosted_domain: hd.map(str::to_owned),
        }
    }

    #[test]
    fn patterns() {
        let exact = PrincipalPattern::parse("Caller@P.iam.gserviceaccount.com").expect("email");
        assert!(exact.admits(&who("caller@p.iam.gserviceaccount.com", None)));
        assert!(!exact.admits(&who("other@p.iam.gserviceaccount.com", None)));
        let dom = PrincipalPattern::parse("*@example.com").expect("domain");
        assert!(dom.admits(&who("a@example.com", Some("example.com"))));
        assert!(
            !dom.admits(&who("a@example.com", None)),
            "no hd: not a Workspace user"
        );
        assert!(!dom.admits(&who("a@example.com", Some("other.com"))));
        assert!(!dom.admits(&who("a@evil-example.com", Some("evil-example.com"))));
        assert!(!dom.admits(&who("a@sub.example.com", Some("example.com"))));
        assert!(!dom.admits(&who("@example.com", Some("example.com"))));
        let sa = PrincipalPattern::parse("*@p.iam.gserviceaccount.com").expect("sa domain");
        assert!(sa.admits(&who("x@p.iam.gserviceaccount.com", None)));
        assert!(PrincipalPattern::parse("*").is_err());
        assert!(PrincipalPattern::parse("*@*.com").is_err());
        assert!(PrincipalPattern::parse("nobody").is_err());
    }

    #[test]
    fn lists() {
        let list = AllowList::parse(["a@x.com", "*@y.com"]).expect("list");
        assert!(list.admits(&who("A@X.com", None)));
        assert!(list.admits(&who("b@y.com", Some("y.com"))));
        assert!(!list.admits(&who("b@y.com", None)));
        assert_eq!(list.to_string(), "a@x.com,*@y.com");
        assert!(AllowList::any().admits(&who("anyone@gmail.com", None)));
        assert!(AllowList::new(Vec::new()).is_empty());
        let e = AllowList::parse(["ok@x.com", "bad"]).expect_err("bad entry");
        assert_eq!(e.entry, "bad");
    }
}
