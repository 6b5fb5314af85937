//! The allow-list syntax (`AUTH_ALLOWED_PRINCIPALS`): exact emails and `*@domain` patterns.
//!
//! `*@domain` follows IAM's `domain:` member: a Google Workspace / Cloud Identity domain. A user
//! account matches only when its token's `hd` (hosted domain) claim is that domain — an
//! `@domain` address alone proves nothing (consumer accounts can be made on any address).
//! Service accounts (`…gserviceaccount.com`) carry no `hd` and match on their email.

/// One entry of `AUTH_ALLOWED_PRINCIPALS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    /// An exact email, compared case-insensitively.
    Exact(String),
    /// `*@domain`: a Workspace user whose `hd` is that domain, or a service account whose
    /// email is at that domain (lower-case, without the `@`).
    Domain(String),
}

impl PrincipalPattern {
    /// Parses one entry (trimmed, compared lower-case).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_lowercase();
        if let Some(domain) = s.strip_prefix("*@") {
            if domain.is_empty()
                || domain.contains('@')
                || domain.contains('*')
                || !domain.contains('.')
            {
                return Err(format!("{s:?} is not a valid *@domain pattern"));
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
            _ => Err(format!("{s:?} is neither an email nor a *@domain pattern")),
        }
    }

    /// Whether the verified `email` of a principal whose token carries hosted domain `hd`
    /// matches: the authorization check.
    pub fn admits(&self, email: &str, hd: Option<&str>) -> bool {
        match self {
            Self::Exact(_) => self.matches(email),
            Self::Domain(d) => {
                let email = email.to_lowercase();
                let Some((local, domain)) = email.rsplit_once('@') else {
                    return false;
                };
                if local.is_empty() || domain != d {
                    return false;
                }
                is_service_account_domain(domain) || hd.is_some_and(|h| h.eq_ignore_ascii_case(d))
            }
        }
    }

    /// Whether `email` has the pattern's shape (the email alone, `hd` not considered; use
    /// [`PrincipalPattern::admits`] to authorize).
    pub fn matches(&self, email: &str) -> bool {
        let email = email.to_lowercase();
        match self {
            Self::Exact(e) => *e == email,
            Self::Domain(d) => email
                .rsplit_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain == d),
        }
    }
}

/// Whether an email at `domain` is a Google service account (which has no `hd`).
pub fn is_service_account_domain(domain: &str) -> bool {
    domain == "gserviceaccount.com" || domain.ends_with(".gserviceaccount.com")
}

impl std::fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(e) => f.write_str(e),
            Self::Domain(d) => write!(f, "*@{d}"),
        }
    }
}
