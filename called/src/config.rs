//! The called service's settings, parsed once at startup.

use shared::auth::{AllowList, AuthConfig, ForwardedConfig};
use shared::config::{ConfigError, Reader, ServerConfig, Setting, Source, render_help};
use shared::telemetry::TelemetryConfig;

use crate::store::{
    StoreError, StoreSettings, is_postgres_url, pg_connect_options, redact_url,
    sqlite_database_file,
};

/// Everything `called` reads from its environment. `Debug` redacts the database password.
#[derive(Clone)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// Who may call.
    pub auth: AuthConfig,
    /// Who may forward an end user, and what that end user's token must satisfy.
    pub forwarded: ForwardedConfig,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// Pool and batching.
    pub store: StoreSettings,
    /// Who may read what, and how large a page gets.
    pub reads: ReadSettings,
}

/// `READ_ALL_PRINCIPALS` and `MAX_PAGE_BYTES`.
#[derive(Debug, Clone)]
pub struct ReadSettings {
    /// Principals that may read every entity (others read only what they stored).
    pub read_all: AllowList,
    /// A page of `GET /entities` ends before its entities pass this many bytes of JSON.
    pub max_page_bytes: usize,
}

/// Default `MAX_PAGE_BYTES`: 4 MiB.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

impl Default for ReadSettings {
    fn default() -> Self {
        Self {
            read_all: AllowList::new(Vec::new()),
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }
}

impl ReadSettings {
    /// `READ_ALL_PRINCIPALS`.
    pub const READ_ALL_PRINCIPALS: Setting = Setting::new(
        "READ_ALL_PRINCIPALS",
        "",
        "comma list of principals (exact emails or *@domain) that may read every entity; every other principal reads only the entities it stored",
    );
    /// `MAX_PAGE_BYTES`.
    pub const MAX_PAGE_BYTES: Setting = Setting::new(
        "MAX_PAGE_BYTES",
        "4194304",
        "a page of GET /entities ends before its entities pass this many bytes (it holds at least one entity)",
    );
    /// The read settings.
    pub const SETTINGS: &'static [Setting] = &[Self::READ_ALL_PRINCIPALS, Self::MAX_PAGE_BYTES];

    /// Reads and validates them.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        Ok(Self {
            read_all: shared::auth::config::principal_list(&r, &Self::READ_ALL_PRINCIPALS)?,
            max_page_bytes: r.int_in(&Self::MAX_PAGE_BYTES, 1024..=(256 * 1024 * 1024))?,
        })
    }

    /// Whether `who` may read every entity (`*@domain` needs the Workspace `hd`, as in
    /// `AUTH_ALLOWED_PRINCIPALS`).
    pub fn reads_all(&self, who: &shared::auth::Identity) -> bool {
        self.read_all.admits(who)
    }
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

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("telemetry", &self.telemetry)
            .field("auth", &self.auth)
            .field("database_url", &redact_url(&self.database_url))
            .field("store", &self.store)
            .field("reads", &self.reads)
            .finish()
    }
}

impl Config {
    /// `DATABASE_URL`.
    pub const DATABASE_URL: Setting = Setting::new(
        "DATABASE_URL",
        DEFAULT_DATABASE_URL,
        "sqlite://PATH (file and folder created) or postgres://user:pass@host/db (also postgresql://; Cloud SQL unix socket: postgres://user:pass@localhost/db?host=/cloudsql/PROJECT:REGION:INSTANCE)",
    );
    /// `DATABASE_MAX_CONNECTIONS`: its default depends on the backend.
    pub const DATABASE_MAX_CONNECTIONS: Setting = Setting::unset(
        "DATABASE_MAX_CONNECTIONS",
        "4 (SQLite) / 10 (PostgreSQL)",
        "pooled connections per instance: SQLite readers (plus one writer), or every PostgreSQL connection; keep instances x this under the server's max_connections",
    );
    /// `DATABASE_TIMEOUT_MS`.
    pub const DATABASE_TIMEOUT_MS: Setting = Setting::new(
        "DATABASE_TIMEOUT_MS",
        "5000",
        "wait for a connection or lock before answering 503",
    );
    /// `DATABASE_STATEMENT_TIMEOUT_MS`.
    pub const DATABASE_STATEMENT_TIMEOUT_MS: Setting = Setting::new(
        "DATABASE_STATEMENT_TIMEOUT_MS",
        "5000",
        "PostgreSQL statement_timeout set on every connection (ignored by SQLite)",
    );
    /// Settings only `called` reads.
    pub const SETTINGS: &'static [Setting] = &[
        Self::DATABASE_URL,
        Self::DATABASE_MAX_CONNECTIONS,
        Self::DATABASE_TIMEOUT_MS,
        Self::DATABASE_STATEMENT_TIMEOUT_MS,
    ];

    /// Reads and validates every setting.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let database_url: String = r.parse(&Self::DATABASE_URL)?;
        let postgres = is_postgres_url(&database_url);
        if !(postgres || database_url.starts_with("sqlite:")) {
            return Err(ConfigError::invalid(
                Self::DATABASE_URL.name,
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
            max_connections: match r.parse_opt::<u32>(&Self::DATABASE_MAX_CONNECTIONS)? {
                None => default_max,
                Some(n) if (1..=1000).contains(&n) => n,
                Some(n) => {
                    return Err(ConfigError::invalid(
                        Self::DATABASE_MAX_CONNECTIONS.name,
                        n.to_string(),
                        "must be between 1 and 1000",
                    ));
                }
            },
            acquire_timeout: r.millis(&Self::DATABASE_TIMEOUT_MS, 10, 600_000)?,
            statement_timeout: r.millis(&Self::DATABASE_STATEMENT_TIMEOUT_MS, 10, 3_600_000)?,
            ..StoreSettings::default()
        };
        if !postgres && let Err(reason) = sqlite_database_file(&database_url) {
            return Err(ConfigError::invalid(
                Self::DATABASE_URL.name,
                redact_url(&database_url),
                reason,
            ));
        }
        if postgres
            && let Err(StoreError::Unavailable(reason) | StoreError::Corrupt(reason)) =
                pg_connect_options(&database_url, &store)
        {
            return Err(ConfigError::invalid(
                Self::DATABASE_URL.name,
                redact_url(&database_url),
                reason,
            ));
        }
        let auth = AuthConfig::from_source(src)?;
        let forwarded = ForwardedConfig::from_source(src, &auth)?;
        Ok(Self {
            server: ServerConfig::from_source(src)?,
            telemetry: TelemetryConfig::from_source(src)?,
            auth,
            forwarded,
            database_url,
            store,
            reads: ReadSettings::from_source(src)?,
        })
    }

    /// Every setting `called` reads, grouped as `--help` shows them.
    pub const HELP_GROUPS: &'static [(&'static str, &'static [Setting])] = &[
        ("Server", ServerConfig::SETTINGS),
        ("Logging", TelemetryConfig::SETTINGS),
        ("Authentication", AuthConfig::SETTINGS),
        ("Forwarded end users", ForwardedConfig::SETTINGS),
        ("Storage", Self::SETTINGS),
        ("Reads", ReadSettings::SETTINGS),
    ];

    /// `--help` text.
    pub fn help() -> String {
        render_help(
            "called",
            "verifies the caller's Google ID token and stores the JSON body durably",
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
    fn a_sqlite_url_that_cannot_hold_acknowledged_rows_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://data/x.db?mode=ro",
            "sqlite://data/x.db?immutable=1",
            // Percent-decoded, the path is a SQLite URI naming an in-memory database.
            "sqlite://file:/p%3Fmode=memory",
            "sqlite://%3Amemory%3A",
        ] {
            let e = parse(&[("DATABASE_URL", url)]).expect_err(url);
            assert!(e.to_string().contains("DATABASE_URL"), "{e}");
        }
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
    fn help_documents_every_setting_the_parser_reads() {
        let parse = |src: &dyn shared::config::Source| {
            let _ = Config::from_source(src);
        };
        for base in [
            MapSource::default(),
            MapSource::from_pairs([("AUTH_MODE", "off"), ("DATABASE_URL", "postgres://u@h/db")]),
        ] {
            let missing =
                shared::config::undocumented(Config::HELP_GROUPS, &["K_SERVICE"], parse, &base);
            assert!(missing.is_empty(), "read but not in --help: {missing:?}");
        }
    }

    #[test]
    fn debug_hides_the_database_password() {
        let cfg = parse(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).expect("valid");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
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
