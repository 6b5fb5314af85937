//! ID tokens through `google-cloud-auth`: service-account keys, impersonated service accounts,
//! gcloud user credentials.
//!
//! google-cloud-auth's credentials object carries a cache with defects (see the module docs of
//! [`crate::token`]), so a fresh one is built for every fetch and dropped right after, the call
//! runs in its own task (its panics become errors) under a timeout (its hangs become errors),
//! and the expiry is read by [`super::expiry_of`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use google_cloud_auth::credentials::idtoken;

use super::{IdToken, SourceKind, TokenError, TokenFuture, TokenSource, jwt};

/// Largest credentials file read (they are a few KiB).
const MAX_CREDENTIALS_BYTES: u64 = 1 << 20;

/// The credential types each kind accepts (`type` in the JSON file).
fn accepted_types(kind: SourceKind) -> &'static [&'static str] {
    match kind {
        SourceKind::ServiceAccount => &["service_account"],
        SourceKind::Impersonate => &["impersonated_service_account"],
        SourceKind::User => &["authorized_user"],
        SourceKind::Auto => &[
            "service_account",
            "impersonated_service_account",
            "authorized_user",
        ],
        SourceKind::Metadata => &[],
    }
}

/// Fetches ID tokens with google-cloud-auth from a credentials file, re-read at every fetch.
///
/// Kinds: `service-account` (`service_account` key), `impersonate`
/// (`impersonated_service_account`, asks for the `email` claim), `user` (`authorized_user`;
/// Google sets `aud` to the OAuth client id, whatever audience is asked), and `auto` (any of
/// these, chosen by the file's `type`). `Debug` shows the kind, audience and path only.
#[derive(Debug, Clone)]
pub struct GoogleAuthSource {
    kind: SourceKind,
    audience: String,
    credentials_file: PathBuf,
    timeout: Duration,
}

impl GoogleAuthSource {
    /// A source of `kind` for `audience`, using the credentials file at `credentials_file`,
    /// each fetch bounded by `timeout`. The file is read and checked now (JSON object with a
    /// `type` that suits `kind`) so that a bad setup fails at startup.
    ///
    /// # Errors
    /// [`TokenError::Config`] when `kind` is [`SourceKind::Metadata`], the audience is empty,
    /// or the file is missing, unreadable, not JSON or of the wrong type.
    pub fn new(
        kind: SourceKind,
        audience: &str,
        credentials_file: PathBuf,
        timeout: Duration,
    ) -> Result<Self, TokenError> {
        if kind == SourceKind::Metadata {
            return Err(TokenError::Config(
                "the metadata server is served by MetadataSource, not GoogleAuthSource".to_owned(),
            ));
        }
        if audience.trim().is_empty() {
            return Err(TokenError::Config("the token audience is empty".to_owned()));
        }
        let source = Self {
            kind,
            audience: audience.trim().to_owned(),
            credentials_file,
            timeout,
        };
        let (cred_type, _) = source.load()?;
        if cred_type == "authorized_user" {
            tracing::warn!(
                source = kind.as_str(),
                audience = %source.audience,
                "gcloud user credentials: Google sets the token's aud to the OAuth client id, not the requested audience; the receiving service must accept that audience"
            );
        }
        tracing::info!(
            source = kind.as_str(),
            audience = %source.audience,
            credentials_file = %source.credentials_file.display(),
            credential_type = cred_type,
            "ID tokens come from google-cloud-auth"
        );
        Ok(source)
    }

    /// The credentials file this source reads.
    pub fn credentials_file(&self) -> &Path {
        &self.credentials_file
    }

    /// Reads and checks the credentials file: its `type` and its JSON.
    fn load(&self) -> Result<(&'static str, serde_json::Value), TokenError> {
        let path = self.credentials_file.display();
        let config =
            |reason: &str| TokenError::Config(format!("credentials file {path}: {reason}"));
        let meta = std::fs::metadata(&self.credentials_file).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => config("not found"),
            _ => config(&format!("cannot read it ({})", e.kind())),
        })?;
        if !meta.is_file() {
            return Err(config("not a file"));
        }
        if meta.len() > MAX_CREDENTIALS_BYTES {
            return Err(config("too large"));
        }
        let bytes = std::fs::read(&self.credentials_file)
            .map_err(|e| config(&format!("cannot read it ({})", e.kind())))?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| config("not valid JSON"))?;
        let found = json
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| config("no \"type\" field"))?;
        let accepted = accepted_types(self.kind);
        let cred_type = accepted
            .iter()
            .copied()
            .find(|t| *t == found)
            .ok_or_else(|| {
                config(&format!(
                    "credential type {found:?} cannot be used with TOKEN_SOURCE={} (expected {})",
                    self.kind,
                    accepted.join(" or ")
                ))
            })?;
        Ok((cred_type, json))
    }

    async fn fetch_once(&self) -> Result<IdToken, TokenError> {
        let (cred_type, json) = self.load()?;
        let audience = self.audience.clone();
        // Own task: google-cloud-auth can panic (e.g. a token without `exp`), and `build()`
        // needs a runtime. The guard aborts it if we time out or are dropped.
        let mut task = AbortOnDrop(tokio::spawn(async move {
            let credentials = build_credentials(cred_type, audience, json)?;
            credentials
                .id_token()
                .await
                .map_err(|e| map_credentials_error(&e))
        }));
        let joined = match tokio::time::timeout(self.timeout, &mut task.0).await {
            Ok(joined) => joined,
            Err(_) => return Err(TokenError::Timeout(self.timeout)),
        };
        let raw = match joined {
            Ok(result) => result?,
            Err(e) if e.is_panic() => {
                return Err(TokenError::Unavailable(
                    "google-cloud-auth failed unexpectedly (internal panic; e.g. a token without exp)"
                        .to_owned(),
                ));
            }
            Err(_) => {
                return Err(TokenError::Unavailable(
                    "google-cloud-auth task was cancelled".to_owned(),
                ));
            }
        };
        jwt::parse_token(&raw)
    }
}

/// Aborts the task when dropped (a timed-out or abandoned fetch must not linger).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A fresh google-cloud-auth credentials object for `cred_type`. Must run inside a runtime.
fn build_credentials(
    cred_type: &str,
    audience: String,
    json: serde_json::Value,
) -> Result<idtoken::IDTokenCredentials, TokenError> {
    let built = match cred_type {
        "service_account" => idtoken::service_account::Builder::new(audience, json).build(),
        "impersonated_service_account" => idtoken::impersonated::Builder::new(audience, json)
            .with_include_email()
            .build(),
        "authorized_user" => idtoken::user_account::Builder::new(json).build(),
        other => {
            return Err(TokenError::Config(format!(
                "credential type {other:?} cannot mint ID tokens"
            )));
        }
    };
    built.map_err(|e| {
        TokenError::Config(format!(
            "invalid {cred_type} credentials: {}",
            jwt::sanitize(&e.to_string())
        ))
    })
}

/// Maps a google-cloud-auth error: an HTTP status or timeout found in its sources wins,
/// else it is "unavailable" with a sanitized message.
fn map_credentials_error(e: &(dyn std::error::Error + 'static)) -> TokenError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut message = String::new();
    while let Some(err) = source {
        if let Some(re) = err.downcast_ref::<reqwest::Error>() {
            if let Some(status) = re.status() {
                return TokenError::Rejected(status);
            }
            if re.is_timeout() {
                return TokenError::Unavailable("google-cloud-auth request timed out".to_owned());
            }
        }
        let part = err.to_string();
        if !message.contains(&part) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&part);
        }
        source = err.source();
    }
    TokenError::Unavailable(jwt::sanitize(&message))
}

impl TokenSource for GoogleAuthSource {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.fetch_once())
    }

    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unique file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with(name: &str, content: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "invoker-token-{}-{}-{name}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::write(&path, content).expect("write temp file");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn missing_or_invalid_key_file_is_a_config_error() {
        let missing = std::env::temp_dir().join("invoker-token-definitely-missing.json");
        let err = GoogleAuthSource::new(SourceKind::ServiceAccount, "aud", missing, T)
            .expect_err("missing file");
        assert!(
            matches!(&err, TokenError::Config(m) if m.contains("not found")),
            "{err:?}"
        );

        let garbage = TempFile::with("garbage.json", "{not json");
        let err = GoogleAuthSource::new(SourceKind::ServiceAccount, "aud", garbage.0.clone(), T)
            .expect_err("not json");
        assert!(matches!(err, TokenError::Config(_)), "{err:?}");

        let user = TempFile::with(
            "user.json",
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
        );
        let err = GoogleAuthSource::new(SourceKind::ServiceAccount, "aud", user.0.clone(), T)
            .expect_err("wrong type");
        assert!(err.to_string().contains("authorized_user"), "{err}");
        // secrets never appear in messages
        assert!(!err.to_string().contains("refresh_token\":\"r"), "{err}");

        let err = GoogleAuthSource::new(SourceKind::Metadata, "aud", user.0.clone(), T)
            .expect_err("metadata is not google-auth");
        assert!(matches!(err, TokenError::Config(_)), "{err:?}");
    }

    #[tokio::test]
    async fn invalid_private_key_fails_at_fetch_without_panic_or_network() {
        let key = TempFile::with(
            "sa.json",
            r#"{"type":"service_account","client_email":"sa@p.iam.gserviceaccount.com","private_key_id":"k","private_key":"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n","project_id":"p","token_uri":"http://127.0.0.1:1/token"}"#,
        );
        let source = GoogleAuthSource::new(SourceKind::ServiceAccount, "aud", key.0.clone(), T)
            .expect("file is a service_account key");
        assert_eq!(source.kind(), "service-account");
        let err = source.fetch().await.expect_err("key cannot sign");
        assert!(
            matches!(err, TokenError::Config(_) | TokenError::Unavailable(_)),
            "{err:?}"
        );
        assert!(!err.to_string().contains("not a key"), "{err}");
    }

    #[tokio::test]
    async fn key_file_removed_after_start_is_an_error_not_a_panic() {
        let key = TempFile::with(
            "sa2.json",
            r#"{"type":"service_account","client_email":"sa@p","private_key_id":"k","private_key":"x"}"#,
        );
        let source = GoogleAuthSource::new(SourceKind::Auto, "aud", key.0.clone(), T)
            .expect("auto accepts a service_account key");
        assert_eq!(source.kind(), "auto");
        std::fs::remove_file(&key.0).expect("remove");
        let err = source.fetch().await.expect_err("file gone");
        assert!(
            matches!(&err, TokenError::Config(m) if m.contains("not found")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn user_credentials_against_a_dead_token_endpoint_fail_within_the_timeout() {
        // token_uri on a closed local port: google-cloud-auth retries; our timeout bounds it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let user = TempFile::with(
            "user2.json",
            &format!(
                r#"{{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","token_uri":"http://{addr}/token"}}"#
            ),
        );
        let source = GoogleAuthSource::new(
            SourceKind::User,
            "aud",
            user.0.clone(),
            Duration::from_millis(1500),
        )
        .expect("authorized_user file");
        let started = std::time::Instant::now();
        let err = source.fetch().await.expect_err("no token endpoint");
        assert!(
            matches!(err, TokenError::Timeout(_) | TokenError::Unavailable(_)),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn errors_are_mapped_and_sanitized() {
        #[derive(Debug)]
        struct Foreign(String);
        impl std::fmt::Display for Foreign {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for Foreign {}
        let err = map_credentials_error(&Foreign(
            "failed, body=<{\"id_token\":\"eyJhbGciOi.eyJleHAi.sig\"}>".to_owned(),
        ));
        assert!(
            matches!(&err, TokenError::Unavailable(m) if !m.contains("eyJ")),
            "{err:?}"
        );
    }
}
