//! The caller service's settings, parsed once at startup.

use std::time::Duration;

use invoker_auth::fetch::{CredentialFiles, DEFAULT_METADATA_HOST, SourceKind};
use shared::auth::{AuthConfig, IapConfig};
use shared::config::{
    ConfigError, Reader, ServerConfig, Setting, Source, render_help, require_secure_transport,
};
use shared::telemetry::TelemetryConfig;
use url::Url;

/// Everything `caller` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// Who may call this service (its own endpoint is protected too).
    pub auth: AuthConfig,
    /// `AUTH_IAP_AUDIENCES`: the person behind Identity-Aware Proxy as the end user.
    pub iap: IapConfig,
    /// `CALLED_URL`: base URL of the called service.
    pub called_url: Url,
    /// `CALLED_AUDIENCE`: `aud` of the ID tokens fetched for called.
    pub called_audience: String,
    /// `TOKEN_SOURCE`.
    pub token_source: SourceKind,
    /// `GCE_METADATA_HOST`.
    pub metadata_host: Option<String>,
    /// `CALL_TIMEOUT_MS`: total deadline of a forward, retries included.
    pub call_timeout: Duration,
    /// `CALL_MAX_ATTEMPTS`.
    pub call_max_attempts: u32,
    /// `TOKEN_FETCH_TIMEOUT_MS`: bound on one token fetch.
    pub token_fetch_timeout: Duration,
    /// `GOOGLE_APPLICATION_CREDENTIALS`, and gcloud's well-known file under `HOME`.
    pub credential_files: CredentialFiles,
}

impl Config {
    /// `CALLED_URL`.
    pub const CALLED_URL: Setting = Setting::unset(
        "CALLED_URL",
        "required",
        "base URL of the called service, e.g. https://called-xyz-uc.a.run.app",
    );
    /// `CALLED_AUDIENCE`.
    pub const CALLED_AUDIENCE: Setting = Setting::unset(
        "CALLED_AUDIENCE",
        "origin of CALLED_URL",
        "aud of the ID token fetched for called",
    );
    /// `TOKEN_SOURCE`.
    pub const TOKEN_SOURCE: Setting = Setting::new(
        "TOKEN_SOURCE",
        "auto",
        "where ID tokens come from: auto, metadata, service-account, impersonate or user",
    );
    /// `GCE_METADATA_HOST`.
    pub const GCE_METADATA_HOST: Setting = Setting::unset(
        "GCE_METADATA_HOST",
        DEFAULT_METADATA_HOST,
        "host:port of the metadata server (an http:// prefix is accepted)",
    );
    /// `GOOGLE_APPLICATION_CREDENTIALS` (where the token source finds credentials).
    pub const GOOGLE_APPLICATION_CREDENTIALS: Setting = Setting::unset(
        "GOOGLE_APPLICATION_CREDENTIALS",
        "unset",
        "key file for service-account; ADC file for auto, impersonate and user (else gcloud's well-known file)",
    );
    /// `CALL_TIMEOUT_MS`.
    pub const CALL_TIMEOUT_MS: Setting = Setting::new(
        "CALL_TIMEOUT_MS",
        "10000",
        "total deadline of the forward, retries included",
    );
    /// `CALL_MAX_ATTEMPTS`.
    pub const CALL_MAX_ATTEMPTS: Setting = Setting::new(
        "CALL_MAX_ATTEMPTS",
        "3",
        "attempts on connect errors, 502/503/504 and 429",
    );
    /// `TOKEN_FETCH_TIMEOUT_MS`.
    pub const TOKEN_FETCH_TIMEOUT_MS: Setting = Setting::new(
        "TOKEN_FETCH_TIMEOUT_MS",
        "5000",
        "bound on one ID-token fetch",
    );
    /// Settings only `caller` reads.
    pub const SETTINGS: &'static [Setting] = &[
        Self::CALLED_URL,
        Self::CALLED_AUDIENCE,
        Self::TOKEN_SOURCE,
        Self::GCE_METADATA_HOST,
        Self::GOOGLE_APPLICATION_CREDENTIALS,
        Self::CALL_TIMEOUT_MS,
        Self::CALL_MAX_ATTEMPTS,
        Self::TOKEN_FETCH_TIMEOUT_MS,
    ];

    /// Reads and validates every setting.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let raw_url = r.required(&Self::CALLED_URL, "the base URL of the called service")?;
        let called_url = Url::parse(&raw_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::invalid(
                    Self::CALLED_URL.name,
                    &raw_url,
                    "must be an absolute http(s) URL",
                )
            })?;
        require_secure_transport(
            Self::CALLED_URL.name,
            &called_url,
            r.bool(&AuthConfig::ALLOW_INSECURE_HTTP)?,
        )?;
        let called_audience = r
            .raw(&Self::CALLED_AUDIENCE)
            .unwrap_or_else(|| called_url.origin().ascii_serialization());
        let auth = AuthConfig::from_source(src)?;
        Ok(Self {
            server: ServerConfig::from_source(src)?,
            telemetry: TelemetryConfig::from_source(src)?,
            iap: IapConfig::from_source(src, &auth)?,
            auth,
            called_url,
            called_audience,
            token_source: r.parse::<SourceKind>(&Self::TOKEN_SOURCE)?,
            metadata_host: r.raw(&Self::GCE_METADATA_HOST),
            call_timeout: r.millis(&Self::CALL_TIMEOUT_MS, 10, 600_000)?,
            call_max_attempts: r.int_in(&Self::CALL_MAX_ATTEMPTS, 1..=10)?,
            token_fetch_timeout: r.millis(&Self::TOKEN_FETCH_TIMEOUT_MS, 10, 60_000)?,
            credential_files: CredentialFiles::from_env_values(
                r.raw(&Self::GOOGLE_APPLICATION_CREDENTIALS).as_deref(),
                r.ambient("HOME").as_deref(),
            ),
        })
    }

    /// Every setting `caller` reads, grouped as `--help` shows them.
    pub const HELP_GROUPS: &'static [(&'static str, &'static [Setting])] = &[
        ("Server", ServerConfig::SETTINGS),
        ("Logging", TelemetryConfig::SETTINGS),
        (
            "Authentication of this service's own callers",
            AuthConfig::SETTINGS,
        ),
        ("People behind Identity-Aware Proxy", IapConfig::SETTINGS),
        ("Calling the called service", Self::SETTINGS),
    ];

    /// `--help` text.
    pub fn help() -> String {
        render_help(
            "caller",
            "authenticates its client, then forwards {\"foo\"} to the called service as {\"bar\"} with a cached Google ID token",
            Self::HELP_GROUPS,
        )
    }
}

impl shared::binary::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
    fn listen_addr(&self) -> std::net::SocketAddr {
        self.server.listen_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::MapSource;

    fn base() -> MapSource {
        MapSource::from_pairs([
            ("AUTH_MODE", "off"),
            ("CALLED_URL", "https://called-abc.a.run.app/api"),
        ])
    }

    #[test]
    fn audience_defaults_to_origin() {
        let cfg = Config::from_source(&base()).expect("valid");
        assert_eq!(cfg.called_audience, "https://called-abc.a.run.app");
        assert_eq!(cfg.call_max_attempts, 3);
    }

    #[test]
    fn help_documents_every_setting_the_parser_reads() {
        let parse = |src: &dyn shared::config::Source| {
            let _ = Config::from_source(src);
        };
        let missing = shared::config::undocumented(
            Config::HELP_GROUPS,
            &["K_SERVICE", "HOME"],
            parse,
            &base(),
        );
        assert!(missing.is_empty(), "read but not in --help: {missing:?}");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = Config::from_source(&MapSource::from_pairs([("AUTH_MODE", "off")]))
            .expect_err("missing");
        assert_eq!(e.name, "CALLED_URL");
        let e = Config::from_source(&base().with("CALLED_URL", "not a url")).expect_err("bad url");
        assert_eq!(e.name, "CALLED_URL");
        let e = Config::from_source(&base().with("TOKEN_SOURCE", "magic")).expect_err("bad source");
        assert_eq!(e.name, "TOKEN_SOURCE");
        let e =
            Config::from_source(&base().with("CALL_MAX_ATTEMPTS", "0")).expect_err("bad attempts");
        assert_eq!(e.name, "CALL_MAX_ATTEMPTS");
    }

    #[test]
    fn cleartext_called_url_to_a_remote_host_is_refused() {
        for url in ["http://called.example.com", "http://10.1.2.3:8080/"] {
            let e = Config::from_source(&base().with("CALLED_URL", url)).expect_err(url);
            assert_eq!(e.name, "CALLED_URL", "{url}");
            assert!(e.to_string().contains("ALLOW_INSECURE_HTTP"), "{e}");
            Config::from_source(
                &base()
                    .with("CALLED_URL", url)
                    .with("ALLOW_INSECURE_HTTP", "true"),
            )
            .expect("explicitly allowed");
        }
        for url in [
            "http://127.0.0.1:8081",
            "http://localhost:8081",
            "http://[::1]:8081",
            "https://called.example.com",
        ] {
            Config::from_source(&base().with("CALLED_URL", url)).expect(url);
        }
    }
}
