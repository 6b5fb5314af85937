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

/// What a [`Setting`] falls back to when it is unset or blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// This text, parsed by exactly the parser a set value goes through: `--help` shows the
    /// default the service really applies.
    Value(&'static str),
    /// No value. The text says what that means (`required`, `unset`, `origin of CALLED_URL`);
    /// a setting read with [`Reader::required`] or [`Reader::parse`] is then missing.
    None(&'static str),
}

/// One environment variable, declared once: its name, default and meaning. Both `--help`
/// ([`render_help`]) and the parser ([`Reader`]) read this declaration, so they cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Variable name.
    pub name: &'static str,
    /// What applies when it is unset.
    pub default: Default,
    /// One-line meaning.
    pub help: &'static str,
}

impl Setting {
    /// A setting whose default is `default` (parsed like a set value).
    pub const fn new(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Self {
            name,
            default: Default::Value(default),
            help,
        }
    }

    /// A setting with no default value; `note` says what unset means.
    pub const fn unset(name: &'static str, note: &'static str, help: &'static str) -> Self {
        Self {
            name,
            default: Default::None(note),
            help,
        }
    }

    /// The default as `--help` shows it.
    pub fn default_text(&self) -> &'static str {
        match self.default {
            Default::Value(v) | Default::None(v) => v,
        }
    }
}

/// Typed access to a [`Source`] by [`Setting`]. Empty values count as unset; an unset setting
/// takes its declared default.
pub struct Reader<'a> {
    src: &'a dyn Source,
}

impl<'a> Reader<'a> {
    /// Wraps a source.
    pub fn new(src: &'a dyn Source) -> Self {
        Self { src }
    }

    /// The trimmed value, `None` when unset or blank (the default is not applied).
    pub fn raw(&self, s: &Setting) -> Option<String> {
        self.ambient(s.name)
    }

    /// A variable that is not a setting of ours but set by the platform (`K_SERVICE`, `HOME`):
    /// trimmed, `None` when unset or blank.
    pub fn ambient(&self, name: &str) -> Option<String> {
        self.src
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value, else the declared default value, else `None`.
    pub fn text(&self, s: &Setting) -> Option<String> {
        self.raw(s).or(match s.default {
            Default::Value(v) => Some(v.to_owned()),
            Default::None(_) => None,
        })
    }

    /// Parses the value (or the declared default) with [`FromStr`]; missing when neither.
    pub fn parse<T>(&self, s: &Setting) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.parse_opt(s)?
            .ok_or_else(|| ConfigError::missing(s.name, s.default_text()))
    }

    /// Parses the value (or the declared default) when there is one.
    pub fn parse_opt<T>(&self, s: &Setting) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.text(s)
            .map(|v| {
                v.parse()
                    .map_err(|e: T::Err| ConfigError::invalid(s.name, v, e.to_string()))
            })
            .transpose()
    }

    /// Parses an integer in `range`.
    pub fn int_in<T>(
        &self,
        s: &Setting,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let v: T = self.parse(s)?;
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::invalid(
                s.name,
                v.to_string(),
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// A duration given in milliseconds, between `min_ms` and `max_ms`.
    pub fn millis(&self, s: &Setting, min_ms: u64, max_ms: u64) -> Result<Duration, ConfigError> {
        self.int_in(s, min_ms..=max_ms).map(Duration::from_millis)
    }

    /// A boolean: `true/false/1/0/yes/no/on/off` (any case).
    pub fn bool(&self, s: &Setting) -> Result<bool, ConfigError> {
        let v = self
            .text(s)
            .ok_or_else(|| ConfigError::missing(s.name, s.default_text()))?;
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::invalid(s.name, v, "expected true or false")),
        }
    }

    /// A comma-separated list (the value, else the declared default); blank items are dropped.
    pub fn list(&self, s: &Setting) -> Vec<String> {
        self.text(s)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A required value; the error's reason is `reason`.
    pub fn required(&self, s: &Setting, reason: &str) -> Result<String, ConfigError> {
        self.text(s)
            .ok_or_else(|| ConfigError::missing(s.name, reason.to_owned()))
    }
}

/// Every variable name `parse` asks its source for: the drift check between a binary's
/// `--help` groups and its parser (see [`undocumented`]).
pub fn names_read(parse: impl FnOnce(&dyn Source), base: &MapSource) -> Vec<String> {
    struct Recording<'a> {
        base: &'a MapSource,
        names: std::cell::RefCell<Vec<String>>,
    }
    impl Source for Recording<'_> {
        fn get(&self, name: &str) -> Option<String> {
            self.names.borrow_mut().push(name.to_owned());
            self.base.get(name)
        }
    }
    let rec = Recording {
        base,
        names: std::cell::RefCell::new(Vec::new()),
    };
    parse(&rec);
    let mut names = rec.names.into_inner();
    names.sort();
    names.dedup();
    names
}

/// Names `parse` reads (from `base`) that no group of `--help` declares, except `ambient`
/// ones the platform sets. Empty when `--help` documents everything the parser reads.
pub fn undocumented(
    groups: &[(&str, &[Setting])],
    ambient: &[&str],
    parse: impl FnOnce(&dyn Source),
    base: &MapSource,
) -> Vec<String> {
    names_read(parse, base)
        .into_iter()
        .filter(|n| {
            !ambient.contains(&n.as_str())
                && !groups.iter().any(|(_, g)| g.iter().any(|s| s.name == n))
        })
        .collect()
}

/// Whether `url`'s host is loopback: `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Refuses a cleartext `http://` URL to a host that is not loopback, unless `allow_insecure`
/// (`ALLOW_INSECURE_HTTP=true`): tokens would travel in clear, keys could be injected on path.
///
/// # Errors
/// A [`ConfigError`] naming `name` and `ALLOW_INSECURE_HTTP`.
pub fn require_secure_transport(
    name: &'static str,
    url: &url::Url,
    allow_insecure: bool,
) -> Result<(), ConfigError> {
    if url.scheme() == "http" && !allow_insecure && !is_loopback(url) {
        return Err(ConfigError::invalid(
            name,
            url.as_str(),
            "http:// to a host that is not loopback sends tokens (or takes signing keys) in cleartext; use https://, or set ALLOW_INSECURE_HTTP=true",
        ));
    }
    Ok(())
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
    /// `HEADER_READ_TIMEOUT_MS`: a connection that does not finish sending headers in time is
    /// closed — an idle keep-alive connection too (the server's idle timeout).
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS`: open connections served at once; beyond it a small reserve answers
    /// only `/health/*` (one request, then closed), and past the reserve a connection is
    /// closed as soon as it is accepted.
    pub max_connections: usize,
}

impl ServerConfig {
    /// `PORT`.
    pub const PORT: Setting =
        Setting::new("PORT", "8080", "listen port on 0.0.0.0 (Cloud Run sets it)");
    /// `MAX_BODY_BYTES`.
    pub const MAX_BODY_BYTES: Setting =
        Setting::new("MAX_BODY_BYTES", "1048576", "larger request bodies get 413");
    /// `SHUTDOWN_GRACE_MS`.
    pub const SHUTDOWN_GRACE_MS: Setting = Setting::new(
        "SHUTDOWN_GRACE_MS",
        "8000",
        "bound on the drain of in-flight requests after SIGTERM/SIGINT",
    );
    /// `MAX_CONCURRENT_REQUESTS`.
    pub const MAX_CONCURRENT_REQUESTS: Setting = Setting::new(
        "MAX_CONCURRENT_REQUESTS",
        "512",
        "requests beyond this many in flight get 503 + Retry-After at once",
    );
    /// `REQUEST_TIMEOUT_MS`.
    pub const REQUEST_TIMEOUT_MS: Setting = Setting::new(
        "REQUEST_TIMEOUT_MS",
        "30000",
        "a request that takes longer (slow body upload included) gets 503",
    );
    /// `HEADER_READ_TIMEOUT_MS`.
    pub const HEADER_READ_TIMEOUT_MS: Setting = Setting::new(
        "HEADER_READ_TIMEOUT_MS",
        "10000",
        "a connection that does not finish its request headers in time is closed (idle keep-alive connections too)",
    );
    /// `MAX_CONNECTIONS`.
    pub const MAX_CONNECTIONS: Setting = Setting::new(
        "MAX_CONNECTIONS",
        "1024",
        "open connections served at once; beyond it a few more answer only /health/* (then close), the rest are closed at once",
    );
    /// The settings [`ServerConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[
        Self::PORT,
        Self::MAX_BODY_BYTES,
        Self::SHUTDOWN_GRACE_MS,
        Self::MAX_CONCURRENT_REQUESTS,
        Self::REQUEST_TIMEOUT_MS,
        Self::HEADER_READ_TIMEOUT_MS,
        Self::MAX_CONNECTIONS,
    ];

    /// `0.0.0.0:PORT`: every interface, as Cloud Run expects.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, self.port))
    }

    /// Reads and validates the server settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        Ok(Self {
            port: r.parse(&Self::PORT)?,
            max_body_bytes: r.int_in(&Self::MAX_BODY_BYTES, 64..=(256 << 20))?,
            shutdown_grace: r.millis(&Self::SHUTDOWN_GRACE_MS, 0, 3_600_000)?,
            max_concurrent_requests: r.int_in(&Self::MAX_CONCURRENT_REQUESTS, 1..=1_000_000)?,
            request_timeout: r.millis(&Self::REQUEST_TIMEOUT_MS, 100, 3_600_000)?,
            header_read_timeout: r.millis(&Self::HEADER_READ_TIMEOUT_MS, 100, 3_600_000)?,
            max_connections: r.int_in(&Self::MAX_CONNECTIONS, 1..=1_000_000)?,
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
                s.name,
                s.help,
                s.default_text()
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
        assert_eq!(cfg.max_connections, 1024);
        let err = ServerConfig::from_source(&MapSource::from_pairs([("MAX_CONNECTIONS", "0")]))
            .expect_err("zero connections");
        assert_eq!(err.name, "MAX_CONNECTIONS");
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
        let l = Setting::unset("L", "unset", "a list");
        assert_eq!(r.list(&l), vec!["a", "b"]);
        assert!(r.bool(&Setting::new("B", "false", "")).expect("bool"));
        assert!(r.bool(&Setting::new("X", "false", "")).is_err());
        assert!(
            !r.bool(&Setting::new("UNSET", "false", ""))
                .expect("default")
        );
        assert!(
            r.parse::<u16>(&Setting::unset("NONE", "required", ""))
                .is_err()
        );
        assert_eq!(
            r.parse_opt::<u16>(&Setting::unset("NONE", "unset", "")),
            Ok(None)
        );
    }

    #[test]
    fn help_documents_every_setting_the_parser_reads() {
        let groups: &[(&str, &[Setting])] = &[("Server", ServerConfig::SETTINGS)];
        let parse = |src: &dyn Source| {
            let _ = ServerConfig::from_source(src);
        };
        assert_eq!(
            undocumented(groups, &[], parse, &MapSource::default()),
            Vec::<String>::new()
        );
        let only_port: &[(&str, &[Setting])] = &[("Server", &[ServerConfig::PORT])];
        assert!(!undocumented(only_port, &[], parse, &MapSource::default()).is_empty());
    }

    #[test]
    fn cli_parsing() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_cli(args(&["bin"])), Cli::Run);
        assert_eq!(parse_cli(args(&["bin", "--help"])), Cli::Help);
        assert_eq!(parse_cli(args(&["bin", "-x"])), Cli::Unknown("-x".into()));
    }
}
