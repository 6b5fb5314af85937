//! Fetching ID tokens to call another service (feature `fetch`): where they come from ([`TokenSource`]) and the one
//! cache in front of all sources ([`TokenCache`]).
//!
//! # Why the cache is ours
//!
//! `google-cloud-auth` can fetch ID tokens from the metadata server, service-account keys,
//! impersonated service accounts and gcloud user credentials, but its token cache must not
//! decide anything in a production caller. Tried against a local metadata server, it:
//!
//! - caches and serves an already-expired token (it compares the *absolute* distance to `exp`);
//! - has no HTTP timeout, so a stalled metadata server hangs `id_token()` forever;
//! - is poisoned for good by any 4xx or malformed body ("subsequent calls will also fail");
//! - panics in its background task on a JWT without `exp` (and then in the caller's task);
//! - waits 10 s after a transient failure before trying again;
//! - panics in `build()` outside a Tokio runtime, and breaks on `GCE_METADATA_HOST=http://…`.
//!
//! So:
//!
//! - [`MetadataSource`] (the hot path on Cloud Run) talks to the metadata server directly on
//!   the shared HTTP client, with a timeout, and never returns an expired token;
//! - `GoogleAuthSource` (feature `google-cloud-auth`: key files, impersonation, gcloud users) builds a *fresh*
//!   `google-cloud-auth` credentials object for every fetch (about once an hour), calls it in a
//!   separate task under a timeout (so its panics and hangs become errors), and reads the expiry
//!   itself — google-cloud-auth's cache never holds a token we use;
//! - [`TokenCache`] serves a token only while it is valid (minus a margin), refreshes ahead of
//!   expiry in the background, shares one in-flight fetch between all waiting requests, bounds
//!   every wait by a timeout, backs off after failures, and never stays broken.
//!
//! Tokens are never logged and never appear in error messages or `Debug` output; logs name only
//! the source kind, the audience and the expiry.

mod cache;
#[cfg(feature = "google-cloud-auth")]
mod google;
mod jwt;
mod metadata;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use cache::{CacheOptions, TokenCache};
#[cfg(feature = "google-cloud-auth")]
pub use google::GoogleAuthSource;
pub use jwt::expiry_of;
pub use metadata::{DEFAULT_METADATA_HOST, MetadataSource};

/// An OIDC ID token (a compact JWT) and the time it expires.
///
/// Cloning is cheap (the value is shared). `Debug` never shows the token itself.
#[derive(Clone)]
pub struct IdToken {
    value: Arc<str>,
    expires_at: SystemTime,
}

impl IdToken {
    /// A token with a known expiry. Sources normally build tokens with [`IdToken::from_jwt`].
    pub fn new(value: impl Into<Arc<str>>, expires_at: SystemTime) -> Self {
        Self {
            value: value.into(),
            expires_at,
        }
    }

    /// Parses a compact JWT as returned by a token endpoint: surrounding whitespace is trimmed,
    /// only base64url characters and dots are allowed, and `exp` (read without verification)
    /// must be in the future.
    ///
    /// # Errors
    /// [`TokenError::Malformed`] otherwise.
    pub fn from_jwt(raw: &str) -> Result<Self, TokenError> {
        jwt::parse_token(raw)
    }

    /// The token, for an `Authorization: Bearer` header. Never log it.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `Bearer <token>` as a header value marked sensitive (kept out of HTTP/2 header tables
    /// and `Debug` output).
    pub fn header_value(&self) -> http::HeaderValue {
        let mut v = http::HeaderValue::try_from(format!("Bearer {}", self.value))
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer invalid"));
        v.set_sensitive(true);
        v
    }

    /// Sets `Authorization: Bearer <token>` on an outbound request (an `http::Request`, as
    /// hyper and tower clients take; reqwest converts from it too, or use
    /// `RequestBuilder::bearer_auth(token.value())`).
    pub fn authorize<B>(&self, request: &mut http::Request<B>) {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.header_value());
    }

    /// When the token expires (its `exp` claim).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Time left before expiry, or zero when already expired.
    pub fn remaining(&self) -> Duration {
        self.expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdToken")
            .field(
                "value",
                &format_args!("<redacted, {} bytes>", self.value.len()),
            )
            .field("expires_at", &format_args!("{}", rfc3339(self.expires_at)))
            .finish()
    }
}

/// `time` as RFC 3339 UTC, for logs.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{time:?}"))
}

/// Why no token could be had. Messages never contain a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The source did not answer within the fetch timeout.
    #[error("token source did not answer within {0:?}")]
    Timeout(Duration),
    /// The source could not be reached or failed in transport (connection refused, reset…).
    #[error("token source unavailable: {0}")]
    Unavailable(String),
    /// The source answered with an HTTP error status.
    #[error("token source rejected the request: HTTP {0}")]
    Rejected(http::StatusCode),
    /// The source answered something that is not a usable token: not a JWT, no `exp`, already
    /// expired or expiring within the safety margin.
    #[error("token source returned an unusable token: {0}")]
    Malformed(&'static str),
    /// The source is misconfigured: no credentials found, wrong credential type, bad file.
    #[error("token source misconfigured: {0}")]
    Config(String),
}

/// What [`TokenSource::fetch`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<IdToken, TokenError>> + Send + 'a>>;

/// Something that can mint an ID token for one audience. Implementations do not cache:
/// [`TokenCache`] decides when to call [`TokenSource::fetch`].
pub trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// Fetches a fresh token. Must not return an expired token, must not panic, and should
    /// bound its own I/O (the cache also bounds every call with its fetch timeout).
    fn fetch(&self) -> TokenFuture<'_>;

    /// A short name for logs (`metadata`, `service-account`…).
    fn kind(&self) -> &'static str;
}

/// The `TOKEN_SOURCE` setting: where ID tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// Google's default credential search: the credentials file in
    /// `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's well-known file if present (service account,
    /// impersonated service account or gcloud user), else the metadata server.
    #[default]
    Auto,
    /// The metadata server (Cloud Run, GCE, GKE, or the emulator via `GCE_METADATA_HOST`).
    Metadata,
    /// A service-account key file named by `GOOGLE_APPLICATION_CREDENTIALS`.
    ServiceAccount,
    /// An `impersonated_service_account` credentials file (`gcloud auth application-default
    /// login --impersonate-service-account=…`), from `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's
    /// well-known file.
    Impersonate,
    /// gcloud user credentials (`authorized_user`), from `GOOGLE_APPLICATION_CREDENTIALS` or
    /// gcloud's well-known file. Google sets the token's `aud` to the OAuth client id, not to
    /// the requested audience.
    User,
}

impl SourceKind {
    /// Every kind, in the spelling `TOKEN_SOURCE` accepts.
    pub const VALUES: &'static [&'static str] =
        &["auto", "metadata", "service-account", "impersonate", "user"];

    /// The spelling `TOKEN_SOURCE` accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Metadata => "metadata",
            Self::ServiceAccount => "service-account",
            Self::Impersonate => "impersonate",
            Self::User => "user",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `TOKEN_SOURCE` had a value that is not a [`SourceKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown token source {0:?}; expected one of: auto, metadata, service-account, impersonate, user"
)]
pub struct ParseSourceKindError(pub String);

impl FromStr for SourceKind {
    type Err = ParseSourceKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "metadata" => Ok(Self::Metadata),
            "service-account" => Ok(Self::ServiceAccount),
            "impersonate" => Ok(Self::Impersonate),
            "user" => Ok(Self::User),
            _ => Err(ParseSourceKindError(s.to_owned())),
        }
    }
}

/// Where Google's default credential search looks for a credentials file. The library reads
/// no environment variable: fill this from `GOOGLE_APPLICATION_CREDENTIALS` and `HOME` (see
/// [`CredentialFiles::from_env_values`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialFiles {
    /// The file named explicitly (`GOOGLE_APPLICATION_CREDENTIALS`); must exist when set.
    pub explicit: Option<PathBuf>,
    /// gcloud's well-known file (`~/.config/gcloud/application_default_credentials.json`),
    /// used when it exists.
    pub well_known: Option<PathBuf>,
}

impl CredentialFiles {
    /// From the values of `GOOGLE_APPLICATION_CREDENTIALS` and `HOME` (blank = unset).
    pub fn from_env_values(
        google_application_credentials: Option<&str>,
        home: Option<&str>,
    ) -> Self {
        Self {
            explicit: google_application_credentials
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            well_known: home.filter(|v| !v.trim().is_empty()).map(|home| {
                PathBuf::from(home).join(".config/gcloud/application_default_credentials.json")
            }),
        }
    }
}

/// Builds the source for `kind`:
///
/// - `metadata`: [`MetadataSource`] on `metadata_host` (default `metadata.google.internal`;
///   an `http://` prefix and a trailing `/` are stripped).
/// - `service-account`: the key file `files.explicit` (required).
/// - `impersonate`, `user`: `files.explicit`, else `files.well_known` (required to exist).
/// - `auto`: `files.explicit` (must exist when set), else `files.well_known` when it exists,
///   else the metadata server as for `metadata`.
///
/// Without the `google-cloud-auth` feature only the metadata server is available; the other
/// kinds are [`TokenError::Config`].
///
/// Credentials files are checked now (readable JSON of a suitable `type`) so that a bad setup
/// fails at startup, and read again at every fetch so that rotated keys are picked up.
///
/// # Errors
/// [`TokenError::Config`] for an empty audience, an invalid metadata host, or a missing,
/// unreadable or unsuitable credentials file. The message names the file, never its content.
pub fn build_source(
    kind: SourceKind,
    audience: &str,
    metadata_host: Option<&str>,
    files: &CredentialFiles,
    http: reqwest::Client,
    fetch_timeout: Duration,
) -> Result<Arc<dyn TokenSource>, TokenError> {
    let audience = audience.trim();
    if audience.is_empty() {
        return Err(TokenError::Config("the token audience is empty".to_owned()));
    }
    let explicit_file = files.explicit.clone();
    let well_known = files.well_known.clone();
    let metadata = |http: reqwest::Client| -> Result<Arc<dyn TokenSource>, TokenError> {
        let host = metadata_host.unwrap_or(DEFAULT_METADATA_HOST);
        let source = MetadataSource::try_new(http, host, audience, fetch_timeout)?;
        Ok(Arc::new(source))
    };
    let file_or_well_known = |what: &str| -> Result<PathBuf, TokenError> {
        explicit_file.clone().or_else(|| well_known.clone()).ok_or_else(|| {
            TokenError::Config(format!(
                "{what} needs GOOGLE_APPLICATION_CREDENTIALS or HOME to locate the credentials file"
            ))
        })
    };
    let google = |kind: SourceKind, file: PathBuf| -> Result<Arc<dyn TokenSource>, TokenError> {
        #[cfg(feature = "google-cloud-auth")]
        {
            Ok(Arc::new(GoogleAuthSource::new(
                kind,
                audience,
                file,
                fetch_timeout,
            )?))
        }
        #[cfg(not(feature = "google-cloud-auth"))]
        {
            Err(TokenError::Config(format!(
                "TOKEN_SOURCE={kind} (credentials file {}) needs invoker-auth's google-cloud-auth feature",
                file.display()
            )))
        }
    };
    match kind {
        SourceKind::Metadata => metadata(http),
        SourceKind::ServiceAccount => {
            let file = explicit_file.clone().ok_or_else(|| {
                TokenError::Config(
                    "TOKEN_SOURCE=service-account needs GOOGLE_APPLICATION_CREDENTIALS (path of a service-account key file)"
                        .to_owned(),
                )
            })?;
            google(kind, file)
        }
        SourceKind::Impersonate => google(kind, file_or_well_known("TOKEN_SOURCE=impersonate")?),
        SourceKind::User => google(kind, file_or_well_known("TOKEN_SOURCE=user")?),
        SourceKind::Auto => match (&explicit_file, &well_known) {
            (Some(file), _) => google(kind, file.clone()),
            (None, Some(file)) if file.is_file() => google(kind, file.clone()),
            _ => metadata(http),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_kind_parses_every_value() {
        for v in SourceKind::VALUES {
            let kind: SourceKind = v.parse().expect("valid");
            assert_eq!(kind.as_str(), *v);
            assert_eq!(kind.to_string(), *v);
        }
        assert_eq!(" Metadata ".parse::<SourceKind>(), Ok(SourceKind::Metadata));
        let err = "gce".parse::<SourceKind>().expect_err("unknown");
        let msg = err.to_string();
        for v in SourceKind::VALUES {
            assert!(msg.contains(v), "{msg}");
        }
        assert_eq!(SourceKind::default(), SourceKind::Auto);
    }

    #[test]
    fn id_token_debug_is_redacted() {
        let token = IdToken::new("eyJsecret.eyJpayload.sig", SystemTime::now());
        let dbg = format!("{token:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("redacted"), "{dbg}");
        assert_eq!(token.value(), "eyJsecret.eyJpayload.sig");
        assert_eq!(token.remaining(), Duration::ZERO);
    }

    #[tokio::test]
    async fn build_source_picks_the_right_source() {
        let t = Duration::from_secs(1);
        let build = |kind, aud: &str, host: Option<&str>, files: &CredentialFiles| {
            build_source(kind, aud, host, files, reqwest::Client::new(), t)
        };
        let empty = CredentialFiles::default();

        let s = build(SourceKind::Metadata, "aud", None, &empty).expect("metadata");
        assert_eq!(s.kind(), "metadata");

        let s = build(
            SourceKind::Metadata,
            "aud",
            Some("http://127.0.0.1:8181/"),
            &empty,
        )
        .expect("http:// prefix accepted");
        assert!(
            format!("{s:?}").contains("http://127.0.0.1:8181/computeMetadata"),
            "{s:?}"
        );

        // auto without any credentials file falls back to the metadata server
        let home = CredentialFiles::from_env_values(None, Some("/nonexistent-home-for-test"));
        let s =
            build(SourceKind::Auto, "aud", Some("127.0.0.1:1"), &home).expect("auto → metadata");
        assert_eq!(s.kind(), "metadata");

        // auto with GOOGLE_APPLICATION_CREDENTIALS pointing nowhere is a configuration error
        let missing = CredentialFiles::from_env_values(Some("/nonexistent/key.json"), None);
        let err = build(SourceKind::Auto, "aud", None, &missing).expect_err("missing file");
        assert!(matches!(err, TokenError::Config(_)), "{err:?}");

        let err = build(SourceKind::ServiceAccount, "aud", None, &home)
            .expect_err("no GOOGLE_APPLICATION_CREDENTIALS");
        assert!(
            err.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{err}"
        );

        let err = build(SourceKind::User, "aud", None, &home).expect_err("no well-known file");
        assert!(matches!(err, TokenError::Config(_)), "{err:?}");

        let err = build(SourceKind::Metadata, " ", None, &empty).expect_err("empty audience");
        assert!(matches!(err, TokenError::Config(_)), "{err:?}");

        let err =
            build(SourceKind::Metadata, "aud", Some("bad host/x?y"), &empty).expect_err("bad host");
        assert!(matches!(err, TokenError::Config(_)), "{err:?}");
        assert_eq!(
            CredentialFiles::from_env_values(Some("  "), Some("")),
            CredentialFiles::default()
        );
    }
}
