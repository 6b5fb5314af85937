//! The called service's settings, parsed once at startup.

use shared::auth::AuthConfig;
use shared::config::{ConfigError, Reader, ServerConfig, Setting, Source, render_help};
use shared::telemetry::TelemetryConfig;

use crate::store::StoreSettings;

/// Everything `called` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// Who may call.
    pub auth: AuthConfig,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// Pool and batching.
    pub store: StoreSettings,
}

/// Default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/called.db";

impl Config {
    /// Settings only `called` reads.
    pub const SETTINGS: &'static [Setting] = &[
        Setting {
            name: "DATABASE_URL",
            default: DEFAULT_DATABASE_URL,
            help: "sqlite://PATH (file and folder created) or postgres://user:pass@host/db (Cloud SQL: ?host=/cloudsql/PROJECT:REGION:INSTANCE)",
        },
        Setting {
            name: "DATABASE_MAX_CONNECTIONS",
            default: "4",
            help: "pooled database connections",
        },
        Setting {
            name: "DATABASE_TIMEOUT_MS",
            default: "5000",
            help: "wait for a connection or lock before answering 503",
        },
    ];

    /// Reads and validates every setting.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let database_url = r
            .raw("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")) {
            return Err(ConfigError::invalid(
                "DATABASE_URL",
                crate::store::redact_url(&database_url),
                "expected sqlite://PATH",
            ));
        }
        let store = StoreSettings {
            max_connections: r.int_in("DATABASE_MAX_CONNECTIONS", 4u32, 1..=1000)?,
            acquire_timeout: r.millis("DATABASE_TIMEOUT_MS", 5000, 10, 600_000)?,
            ..StoreSettings::default()
        };
        Ok(Self {
            server: ServerConfig::from_source(src)?,
            telemetry: TelemetryConfig::from_source(src)?,
            auth: AuthConfig::from_source(src)?,
            database_url,
            store,
        })
    }

    /// `--help` text.
    pub fn help() -> String {
        render_help(
            "called",
            "verifies the caller's Google ID token and stores the JSON body durably",
            &[
                ("Server", ServerConfig::SETTINGS),
                ("Logging", TelemetryConfig::SETTINGS),
                ("Authentication", AuthConfig::SETTINGS),
                ("Storage", Self::SETTINGS),
            ],
        )
    }
}
