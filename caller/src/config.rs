//! The caller service's settings, parsed once at startup.

use std::time::Duration;

use shared::auth::AuthConfig;
use shared::config::{ConfigError, Reader, ServerConfig, Setting, Source, render_help};
use shared::telemetry::TelemetryConfig;
use crate::token::SourceKind;
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
}

impl Config {
    /// Settings only `caller` reads.
    pub const SETTINGS: &'static [Setting] = &[
        Setting {
            name: "CALLED_URL",
            default: "required",
            help: "base URL of the called service, e.g. https://called-xyz-uc.a.run.app",
        },
        Setting {
            name: "CALLED_AUDIENCE",
            default: "origin of CALLED_URL",
            help: "aud of the ID token fetched for called",
        },
        Setting {
            name: "TOKEN_SOURCE",
            default: "auto",
            help: "auto, metadata, service-account, impersonate or user",
        },
        Setting {
            name: "GCE_METADATA_HOST",
            default: "metadata.google.internal",
            help: "host:port of the metadata server",
        },
        Setting {
            name: "GOOGLE_APPLICATION_CREDENTIALS",
            default: "unset",
            help: "key file for service-account; ADC file for auto, impersonate and user (else gcloud's well-known file)",
        },
        Setting {
            name: "CALL_TIMEOUT_MS",
            default: "10000",
            help: "total deadline of the forward, retries included",
        },
        Setting {
            name: "CALL_MAX_ATTEMPTS",
            default: "3",
            help: "attempts on connect errors, 502/503/504 and 429",
        },
        Setting {
            name: "TOKEN_FETCH_TIMEOUT_MS",
            default: "5000",
            help: "bound on one ID-token fetch",
        },
    ];

    /// Reads and validates every setting.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let raw_url = r.required("CALLED_URL", "the base URL of the called service")?;
        let called_url = Url::parse(&raw_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::invalid("CALLED_URL", &raw_url, "must be an absolute http(s) URL")
            })?;
        let called_audience = r
            .raw("CALLED_AUDIENCE")
            .unwrap_or_else(|| called_url.origin().ascii_serialization());
        Ok(Self {
            server: ServerConfig::from_source(src)?,
            telemetry: TelemetryConfig::from_source(src)?,
            auth: AuthConfig::from_source(src)?,
            called_url,
            called_audience,
            token_source: r.parse("TOKEN_SOURCE", SourceKind::Auto)?,
            metadata_host: r.raw("GCE_METADATA_HOST"),
            call_timeout: r.millis("CALL_TIMEOUT_MS", 10_000, 10, 600_000)?,
            call_max_attempts: r.int_in("CALL_MAX_ATTEMPTS", 3u32, 1..=10)?,
            token_fetch_timeout: r.millis("TOKEN_FETCH_TIMEOUT_MS", 5000, 10, 60_000)?,
        })
    }

    /// `--help` text.
    pub fn help() -> String {
        render_help(
            "caller",
            "authenticates its client, then forwards {\"foo\"} to the called service as {\"bar\"} with a cached Google ID token",
            &[
                ("Server", ServerConfig::SETTINGS),
                ("Logging", TelemetryConfig::SETTINGS),
                (
                    "Authentication of this service's own callers",
                    AuthConfig::SETTINGS,
                ),
                ("Calling the called service", Self::SETTINGS),
            ],
        )
    }
}

impl shared::server::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
    fn port(&self) -> u16 {
        self.server.port
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
}
