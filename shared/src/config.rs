//! Settings: read once at startup from a [`Source`] you can fake, validated, with errors that
//! name the variable, its value and the reason.
//!
//! Tests pass a [`MapSource`]; binaries pass [`Env`]. Nothing here calls `std::env::set_var`.

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::str::FromStr;
use std::time::Duration;

/// Where settings come from.
pub trait Source {
    /// The raw value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// An in-memory source for tests and for composing services in one process.
#[derive(Debug, Clone, Default)]
pub struct MapSource(pub HashMap<String, String>);

impl MapSource {
    /// Builds a source from `(name, value)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// Sets one value, builder style.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }
}

impl Source for MapSource {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Values from `first`, falling back to `then` (e.g. fixed overrides over the environment).
pub struct Overlay<'a> {
    /// Consulted first.
    pub first: &'a dyn Source,
    /// Consulted when `first` has no value.
    pub then: &'a dyn Source,
}

impl Source for Overlay<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.first.get(name).or_else(|| self.then.get(name))
    }
}

/// A setting that is missing or invalid. Displays as `NAME=value: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// The value it had, if any.
    pub value: Option<String>,
    /// Why it was refused.
    pub reason: String,
}

impl Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "invalid setting {}={:?}: {}", self.name, v, self.reason),
            None => write!(f, "missing setting {}: {}", self.name, self.reason),
        }
    }
}

impl ConfigError {
    /// An error about `name` having `value`.
    pub fn invalid(
        name: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            name,
            value: Some(value.into()),
            reason: reason.into(),
        }
    }

    /// An error about `name` being required but absent.
    pub fn missing(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            value: None,
            reason: reason.into(),
        }
    }
}

/// Documentation of one environment variable, for `--help`.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Variable name.
    pub name: &'static str,
    /// Default, as the user would write it (or a description such as `required`).
    pub default: &'static str,
    /// One-line meaning.
    pub help: &'static str,
}

/// Typed access to a [`Source`]. Empty values count as unset.
pub struct Reader<'a> {
    src: &'a dyn Source,
}

impl<'a> Reader<'a> {
    /// Wraps a source.
    pub fn new(src: &'a dyn Source) -> Self {
        Self { src }
    }

    /// The trimmed value, `None` when unset or blank.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.src
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Parses `name` with [`FromStr`], falling back to `default` when unset.
    pub fn parse<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e: T::Err| ConfigError::invalid(name, v, e.to_string())),
        }
    }

    /// Parses an integer in `range`.
    pub fn int_in<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let v = self.parse(name, default)?;
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::invalid(
                name,
                v.to_string(),
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// A duration given in milliseconds, between `min_ms` and `max_ms`.
    pub fn millis(
        &self,
        name: &'static str,
        default_ms: u64,
        min_ms: u64,
        max_ms: u64,
    ) -> Result<Duration, ConfigError> {
        self.int_in(name, default_ms, min_ms..=max_ms)
            .map(Duration::from_millis)
    }

    /// A boolean: `true/false/1/0/yes/no` (any case).
    pub fn bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(name, v, "expected true or false")),
            },
        }
    }

    /// A comma-separated list; blank items are dropped. Empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.raw(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A required value.
    pub fn required(&self, name: &'static str, reason: &str) -> Result<String, ConfigError> {
        self.raw(name)
            .ok_or_else(|| ConfigError::missing(name, reason.to_owned()))
    }
}

/// Settings of the HTTP server that both services share.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `PORT`: listen port on `0.0.0.0`.
    pub port: u16,
    /// `MAX_BODY_BYTES`: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `SHUTDOWN_GRACE_MS`: bound on the drain after SIGTERM.
    pub shutdown_grace: Duration,
    /// `MAX_CONCURRENT_REQUESTS`: requests beyond this many in flight get 503 at once.
    pub max_concurrent_requests: usize,
    /// `REQUEST_TIMEOUT_MS`: a request (body upload included) that takes longer is cut off.
    pub request_timeout: Duration,
    /// `HEADER_READ_TIMEOUT_MS`: a connection that does not finish sending headers in time is closed.
    pub header_read_timeout: Duration,
}

impl ServerConfig {
    /// The settings [`ServerConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[
        Setting {
            name: "PORT",
            default: "8080",
            help: "listen port on 0.0.0.0 (Cloud Run sets it)",
        },
        Setting {
            name: "MAX_BODY_BYTES",
            default: "1048576",
            help: "larger request bodies get 413",
        },
        Setting {
            name: "SHUTDOWN_GRACE_MS",
            default: "8000",
            help: "bound on the drain of in-flight requests after SIGTERM/SIGINT",
        },
        Setting {
            name: "MAX_CONCURRENT_REQUESTS",
            default: "512",
            help: "requests beyond this many in flight get 503 + Retry-After at once",
        },
        Setting {
            name: "REQUEST_TIMEOUT_MS",
            default: "30000",
            help: "a request that takes longer (slow body upload included) gets 503",
        },
        Setting {
            name: "HEADER_READ_TIMEOUT_MS",
            default: "10000",
            help: "a connection that does not finish its request headers in time is closed",
        },
    ];

    /// Reads and validates the server settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        Ok(Self {
            port: r.parse("PORT", 8080u16)?,
            max_body_bytes: r.int_in("MAX_BODY_BYTES", 1_048_576usize, 64..=(256 << 20))?,
            shutdown_grace: r.millis("SHUTDOWN_GRACE_MS", 8000, 0, 3_600_000)?,
            max_concurrent_requests: r.int_in(
                "MAX_CONCURRENT_REQUESTS",
                512usize,
                1..=1_000_000,
            )?,
            request_timeout: r.millis("REQUEST_TIMEOUT_MS", 30_000, 100, 3_600_000)?,
            header_read_timeout: r.millis("HEADER_READ_TIMEOUT_MS", 10_000, 100, 3_600_000)?,
        })
    }
}

/// Renders `--help`: a usage line, the description and every setting with its default.
pub fn render_help(binary: &str, about: &str, groups: &[(&str, &[Setting])]) -> String {
    let mut out = format!(
        "{binary} — {about}\n\nUsage: {binary} [--help]\n\nAll settings are environment variables.\n"
    );
    for (title, settings) in groups {
        out.push_str(&format!("\n{title}:\n"));
        let width = settings.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in *settings {
            out.push_str(&format!(
                "  {:width$}  {} [default: {}]\n",
                s.name, s.help, s.default
            ));
        }
    }
    out
}

/// What the command line asked for. Binaries take no arguments besides `--help`.
#[derive(Debug, PartialEq, Eq)]
pub enum Cli {
    /// Run the service.
    Run,
    /// Print help and exit 0.
    Help,
    /// Unknown argument: print it with the help and exit 2.
    Unknown(String),
}

/// Parses the process arguments.
pub fn parse_cli(args: impl IntoIterator<Item = String>) -> Cli {
    match args.into_iter().nth(1) {
        None => Cli::Run,
        Some(a) if matches!(a.as_str(), "-h" | "--help" | "help") => Cli::Help,
        Some(a) => Cli::Unknown(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let cfg = ServerConfig::from_source(&MapSource::default()).expect("defaults are valid");
        assert_eq!(cfg.port, 8080);
        assert_eq!(cfg.max_body_bytes, 1_048_576);
        assert_eq!(cfg.shutdown_grace, Duration::from_millis(8000));
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let err = ServerConfig::from_source(&MapSource::from_pairs([("PORT", "eighty")]))
            .expect_err("not a port");
        assert_eq!(err.name, "PORT");
        assert!(err.to_string().contains("PORT=\"eighty\""), "{err}");
        let err = ServerConfig::from_source(&MapSource::from_pairs([("MAX_BODY_BYTES", "1")]))
            .expect_err("too small");
        assert!(err.to_string().contains("must be between"), "{err}");
    }

    #[test]
    fn lists_and_bools() {
        let src = MapSource::from_pairs([("L", " a, ,b ,"), ("B", "Yes"), ("X", "maybe")]);
        let r = Reader::new(&src);
        assert_eq!(r.list("L"), vec!["a", "b"]);
        assert!(r.bool("B", false).expect("bool"));
        assert!(r.bool("X", false).is_err());
    }

    #[test]
    fn cli_parsing() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_cli(args(&["bin"])), Cli::Run);
        assert_eq!(parse_cli(args(&["bin", "--help"])), Cli::Help);
        assert_eq!(parse_cli(args(&["bin", "-x"])), Cli::Unknown("-x".into()));
    }
}
