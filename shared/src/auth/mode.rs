//! The authentication mode of a service (`AUTH_MODE`): which signature rule and which header
//! rule of the library it selects.

use invoker_auth::HeaderRule;
use invoker_auth::verify::Signature;

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

impl AuthMode {
    /// The signature rule this mode applies to the request's own token.
    pub fn signature(self) -> Signature {
        match self {
            Self::Platform => Signature::StrippedByCloudRun,
            Self::Verify | Self::Off => Signature::Required,
        }
    }

    /// The header the request's own token is read from: in platform mode
    /// `X-Serverless-Authorization` when present (the header Cloud Run checked).
    pub fn header_rule(self) -> HeaderRule {
        match self {
            Self::Platform => HeaderRule::ServerlessFirst,
            Self::Verify | Self::Off => HeaderRule::Authorization,
        }
    }
}
