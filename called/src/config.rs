//! The called service's settings, parsed once at startup.

use shared::auth::AuthConfig;
use shared::config::{ConfigError, Reader, ServerConfig, Setting, Source, render_help};
use shared::telemetry::TelemetryConfig;

use crate::store::{StoreError, StoreSettings, is_postgres_url, pg_connect_options, redact_url};

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

/// Default `DATABASE_MAX_CONNECTIONS` with SQLite: reader connections (there is one writer).
pub const DEFAULT_SQLITE_MAX_CONNECTIONS: u32 = 4;

/// Default `DATABASE_MAX_CONNECTIONS` with PostgreSQL, per instance. Cloud SQL's smallest tiers
/// allow 25 (db-f1-micro) to 50 (db-g1-small) connections in all, minus a few reserved: 10 per
/// instance leaves room for two or three instances, and 10 concurrent commits saturate such a
/// machine anyway. Raise it with the tier, lower it when many instances share one database.
pub const DEFAULT_POSTGRES_MAX_CONNECTIONS: u32 = 10;

impl Config {
    /// Settings only `called` reads.
    pub const SETTINGS: &'static [Setting] = &[
        Setting {
            name: "DATABASE_URL",
            default: DEFAULT_DATABASE_URL,
            help: "sqlite://PATH (file and folder created) or postgres://user:pass@host/db (also postgresql://; Cloud SQL unix socket: postgres://user:pass@localhost/db?host=/cloudsql/PROJECT:REGION:INSTANCE)",
        },
        Setting {
            name: "DATABASE_MAX_CONNECTIONS",
            default: "4 (SQLite) / 10 (PostgreSQL)",
            help: "pooled connections per instance: SQLite readers (plus one writer), or every PostgreSQL connection; keep instances x this under the server's max_connections",
        },
        Setting {
            name: "DATABASE_TIMEOUT_MS",
            default: "5000",
            help: "wait for a connection or lock before answering 503",
        },
        Setting {
            name: "DATABASE_STATEMENT_TIMEOUT_MS",
            default: "5000",
            help: "PostgreSQL statement_timeout set on every connection (ignored by SQLite)",
        },
    ];

    /// Reads and validates every setting.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let database_url = r
            .raw("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let postgres = is_postgres_url(&database_url);
        if !(postgres || database_url.starts_with("sqlite:")) {
            return Err(ConfigError::invalid(
                "DATABASE_URL",
                redact_url(&database_url),
                "expected sqlite://PATH, postgres://… or postgresql://…",
            ));
        }
        let default_max = if postgres {
            DEFAULT_POSTGRES_MAX_CONNECTIONS
        } else {
            DEFAULT_SQLITE_MAX_CONNECTIONS
        };
        let store = StoreSettings {
            max_connections: r.int_in("DATABASE_MAX_CONNECTIONS", default_max, 1..=1000)?,
            acquire_timeout: r.millis("DATABASE_TIMEOUT_MS", 5000, 10, 600_000)?,
            statement_timeout: r.millis("DATABASE_STATEMENT_TIMEOUT_MS", 5000, 10, 3_600_000)?,
            ..StoreSettings::default()
        };
        if postgres
            && let Err(StoreError::Unavailable(reason) | StoreError::Corrupt(reason)) =
                pg_connect_options(&database_url, &store)
        {
            return Err(ConfigError::invalid(
                "DATABASE_URL",
                redact_url(&database_url),
                reason,
            ));
        }
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
    use std::time::Duration;

    use shared::config::MapSource;

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut src = MapSource::from_pairs([("AUTH_MODE", "off")]);
        for (k, v) in pairs {
            src = src.with(k, *v);
        }
        Config::from_source(&src)
    }

    #[test]
    fn database_defaults_depend_on_the_backend() {
        let sqlite = parse(&[]).expect("defaults");
        assert_eq!(sqlite.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(sqlite.store.max_connections, DEFAULT_SQLITE_MAX_CONNECTIONS);
        assert_eq!(sqlite.store.acquire_timeout, Duration::from_millis(5000));
        assert_eq!(sqlite.store.statement_timeout, Duration::from_millis(5000));
        for url in [
            "postgres://u:p@127.0.0.1/db",
            "postgresql://u:p@localhost/db?host=/cloudsql/p:r:i",
        ] {
            let pg = parse(&[("DATABASE_URL", url)]).expect(url);
            assert_eq!(pg.store.max_connections, DEFAULT_POSTGRES_MAX_CONNECTIONS);
        }
        let tuned = parse(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("DATABASE_MAX_CONNECTIONS", "3"),
            ("DATABASE_TIMEOUT_MS", "250"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "750"),
        ])
        .expect("valid");
        assert_eq!(tuned.store.max_connections, 3);
        assert_eq!(tuned.store.acquire_timeout, Duration::from_millis(250));
        assert_eq!(tuned.store.statement_timeout, Duration::from_millis(750));
    }

    #[test]
    fn bad_database_settings_name_the_variable_and_hide_the_password() {
        for url in [
            "mysql://u:hunter2@h/db",
            "http://u:hunter2@h/db",
            "postgres://u:hunter2@h:notaport/db",
        ] {
            let err = parse(&[("DATABASE_URL", url)]).expect_err(url);
            assert_eq!(err.name, "DATABASE_URL");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        for (name, value) in [
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("DATABASE_TIMEOUT_MS", "x"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "1"),
        ] {
            assert_eq!(parse(&[(name, value)]).expect_err(name).name, name);
        }
    }

    #[test]
    fn help_lists_the_database_settings() {
        let help = Config::help();
        for name in [
            "DATABASE_URL",
            "DATABASE_MAX_CONNECTIONS",
            "DATABASE_TIMEOUT_MS",
            "DATABASE_STATEMENT_TIMEOUT_MS",
            "/cloudsql/",
        ] {
            assert!(help.contains(name), "{name}");
        }
    }
}
