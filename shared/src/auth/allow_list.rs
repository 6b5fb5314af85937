//! The allow-list syntax (`AUTH_ALLOWED_PRINCIPALS`): exact emails and `*@domain` patterns.

/// One entry of `AUTH_ALLOWED_PRINCIPALS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    /// An exact email, compared case-insensitively.
    Exact(String),
    /// `*@domain`: any verified email at that domain (lower-case, without the `@`).
    Domain(String),
}

impl PrincipalPattern {
    /// Parses one entry (trimmed, compared lower-case).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
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

    /// Whether `email` (already verified) matches.
    pub fn matches(&self, email: &str) -> bool {
        let email = email.to_ascii_lowercase();
        match self {
            Self::Exact(e) => *e == email,
            Self::Domain(d) => email
                .rsplit_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain == d),
        }
    }
}
