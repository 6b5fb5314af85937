//! The authentication mode of a service (`AUTH_MODE`) and the one switch that lets a token
//! through without a signature check ([`Signature`]).

/// How a service authenticates its callers (`AUTH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Full signature verification against the key set.
    Verify,
    /// Behind Cloud Run's IAM check: signature-stripped tokens are accepted on their claims.
    Platform,
    /// No authentication at all (development only).
    Off,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "verify" => Ok(Self::Verify),
            "platform" => Ok(Self::Platform),
            "off" => Ok(Self::Off),
            _ => Err("expected verify, platform or off".into()),
        }
    }
}

/// Whether a token's signature must be checked. A named type, never a bare `bool`: the one
/// value that skips the cryptographic check says so where it is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// The signature is verified against the key set; a stripped signature is refused.
    Required,
    /// Behind Cloud Run's IAM check: a signature that is exactly
    /// `SIGNATURE_REMOVED_BY_GOOGLE` is accepted on the claims alone (Cloud Run checked it);
    /// any other signature is still verified.
    StrippedByCloudRun,
}

impl AuthMode {
    /// The signature rule this mode applies to the request's own token.
    pub fn signature(self) -> Signature {
        match self {
            Self::Platform => Signature::StrippedByCloudRun,
            Self::Verify | Self::Off => Signature::Required,
        }
    }
}
