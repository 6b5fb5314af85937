//! Logging in one place: human text on a terminal, or one Cloud Logging JSON object per line
//! (`severity`, `message`, `time`, `httpRequest`, `logging.googleapis.com/trace`) on Cloud Run.
//! Also extracts the trace id from `traceparent` or `X-Cloud-Trace-Context`.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use http::HeaderMap;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{ConfigError, Reader, Setting, Source};

pub mod otel;
pub mod sink;

/// Output format of the logs (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One Cloud Logging structured object per line.
    Json,
}

/// Validated logging settings.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `LOG_FORMAT`.
    pub format: LogFormat,
    /// `RUST_LOG`.
    pub filter: String,
    /// `GOOGLE_CLOUD_PROJECT`: makes trace ids full resource names.
    pub project: Option<String>,
    /// The `OTEL_*` settings: where spans go, if anywhere.
    pub tracing: otel::TracingConfig,
}

impl TelemetryConfig {
    /// `LOG_FORMAT`.
    pub const LOG_FORMAT: Setting = Setting::unset(
        "LOG_FORMAT",
        "json when K_SERVICE is set, else text",
        "text, or json (one Cloud Logging object per line)",
    );
    /// `RUST_LOG`.
    pub const RUST_LOG: Setting =
        Setting::new("RUST_LOG", "info", "tracing filter, e.g. info,sqlx=warn");
    /// `GOOGLE_CLOUD_PROJECT`.
    pub const GOOGLE_CLOUD_PROJECT: Setting = Setting::unset(
        "GOOGLE_CLOUD_PROJECT",
        "unset",
        "project id; log trace ids become projects/PROJECT/traces/ID",
    );
    /// The settings [`TelemetryConfig::from_source`] reads (logs, then traces).
    pub const SETTINGS: &'static [Setting] = &[
        Self::LOG_FORMAT,
        Self::RUST_LOG,
        Self::GOOGLE_CLOUD_PROJECT,
        otel::TracingConfig::SETTINGS[0],
        otel::TracingConfig::SETTINGS[1],
        otel::TracingConfig::SETTINGS[2],
        otel::TracingConfig::SETTINGS[3],
        otel::TracingConfig::SETTINGS[4],
        otel::TracingConfig::SETTINGS[5],
        otel::TracingConfig::SETTINGS[6],
        otel::TracingConfig::SETTINGS[7],
    ];

    /// Reads and validates the logging settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let default = if r.ambient("K_SERVICE").is_some() {
            "json"
        } else {
            "text"
        };
        let format = match r.raw(&Self::LOG_FORMAT).as_deref().unwrap_or(default) {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    other,
                    "expected text or json",
                ));
            }
        };
        let filter: String = r.parse(&Self::RUST_LOG)?;
        if let Err(e) = EnvFilter::try_new(&filter) {
            return Err(ConfigError::invalid("RUST_LOG", filter, e.to_string()));
        }
        Ok(Self {
            format,
            filter,
            project: r.raw(&Self::GOOGLE_CLOUD_PROJECT),
            tracing: otel::TracingConfig::from_source(src)?,
        })
    }
}

/// `s` with every control character (newline, ESC, DEL, C1 …) written as `\u{..}`: a claim
/// or header value cannot forge a log line or drive a terminal.
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Most bytes of one header value (or the request path) in a log line, after escaping; the
/// rest is cut and marked (see [`escape_capped`]). Such values repeat in every line of their
/// request.
pub const MAX_LOGGED_VALUE: usize = 512;

/// [`escape_control`], cut to at most `max` bytes (at a character, never inside an escape)
/// and then marked `…[truncated, N bytes]`, N being the length of `s`.
pub fn escape_capped(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let escaped = escape_control(s);
    if escaped.len() <= max {
        return escaped;
    }
    let mut out = String::with_capacity(max + 32);
    for c in s.chars() {
        let before = out.len();
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            break;
        }
    }
    out.push_str(&format!("…[truncated, {} bytes]", s.len()));
    std::borrow::Cow::Owned(out)
}

/// `s` cut to at most `max` bytes at a character boundary, then marked
/// `…[truncated, N bytes]`; `s` itself when it fits.
fn truncated(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…[truncated, {} bytes]", &s[..end], s.len()))
}

static PROJECT: OnceLock<Option<String>> = OnceLock::new();

/// Installs the global subscriber for a process named `invoker` ([`init_named`]).
pub fn init(cfg: &TelemetryConfig) {
    init_named(cfg, "invoker");
}

/// Installs the global subscriber; `service` names the exported spans unless
/// `OTEL_SERVICE_NAME` does. A second call (tests) is a no-op.
///
/// With tracing on ([`otel`]) an OpenTelemetry layer goes on top of the log layer; with it off
/// none is installed at all.
///
/// `RUST_LOG` made only of `target=level` directives (the usual `info,sqlx=warn`) is applied
/// with [`Targets`], which costs nothing per span; directives that name spans or fields
/// (`[span{field}]=debug`) need [`EnvFilter`], which takes a lock on every span entry.
pub fn init_named(cfg: &TelemetryConfig, service: &str) {
    let _ = PROJECT.set(cfg.project.clone());
    let filter: Box<dyn Layer<Registry> + Send + Sync> = match plain_targets(&cfg.filter) {
        Some(targets) => Box::new(targets),
        None => {
            Box::new(EnvFilter::try_new(&cfg.filter).unwrap_or_else(|_| EnvFilter::new("info")))
        }
    };
    flush_on_panic();
    let result = match cfg.format {
        LogFormat::Text => with_tracing(
            tracing_subscriber::registry().with(filter).with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    // Colours only for a person at a terminal: a log file or pipe gets plain
                    // text, so the only escape sequences in it are ones a value carried —
                    // and those are escaped.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(|| TextLine),
            ),
            &cfg.tracing,
            service,
        ),
        LogFormat::Json => with_tracing(
            tracing_subscriber::registry()
                .with(filter)
                .with(CloudLoggingLayer),
            &cfg.tracing,
            service,
        ),
    };
    if result.is_ok() {
        otel::report(&cfg.tracing);
    }
}

/// Installs `sub`, with the OpenTelemetry layer on top when `cfg` turns tracing on.
fn with_tracing<S>(
    sub: S,
    cfg: &otel::TracingConfig,
    service: &str,
) -> Result<(), tracing_subscriber::util::TryInitError>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    match otel::layer::<S>(cfg, service) {
        Some(layer) => sub.with(layer).try_init(),
        None => sub.try_init(),
    }
}

/// `filter` as [`Targets`] when it means the same there as in [`EnvFilter`]: only
/// `target=level` and `level` directives. An empty directive (`info,`) is skipped by
/// `EnvFilter` but would be "everything at TRACE" for `Targets`, and `[span]`/`{field}`
/// directives would be literal targets matching nothing: those go to `EnvFilter`.
fn plain_targets(filter: &str) -> Option<Targets> {
    if filter.split(',').any(|d| d.trim().is_empty()) || filter.contains(['[', ']', '{', '}']) {
        return None;
    }
    filter.parse().ok()
}

/// Longest [`flush`] waits for the output: a process exiting after a full `SHUTDOWN_GRACE_MS`
/// drain (8 s by default) still ends before Cloud Run's kill, 10 s after `SIGTERM`.
pub const EXIT_FLUSH: Duration = Duration::from_secs(1);

/// Writes every log line still buffered (see [`sink`]), waiting at most [`EXIT_FLUSH`] for an
/// output that does not take them; true if all were written. [`crate::binary::main`] calls it
/// before the process exits; a panic calls it before the panic message.
pub fn flush() -> bool {
    flush_within(EXIT_FLUSH)
}

/// [`flush`] with a bound of `limit` (for stdout and stderr together).
pub fn flush_within(limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    // Both, even when the first does not finish.
    let out = STDOUT.get().is_none_or(|s| s.flush_within(left()));
    let err = STDERR.get().is_none_or(|s| s.flush_within(left()));
    out && err
}

fn flush_on_panic() {
    static HOOKED: std::sync::Once = std::sync::Once::new();
    HOOKED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
    });
}

/// The JSON lines' way to stdout, started with the first line.
static STDOUT: OnceLock<sink::Sink> = OnceLock::new();
/// The text lines' way to stderr, started with the first line.
static STDERR: OnceLock<sink::Sink> = OnceLock::new();

fn stdout_sink() -> &'static sink::Sink {
    STDOUT.get_or_init(|| {
        // Unbuffered writes to stdout's file description (std's `Stdout` would buffer and
        // split a batch at its newlines), so that a partial write is seen and completed.
        let out: Box<dyn Write + Send> =
            match std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned() {
                Ok(fd) => Box::new(std::fs::File::from(fd)),
                Err(_) => Box::new(std::io::stdout()),
            };
        sink::Sink::start(out, json_dropped_report)
    })
}

fn stderr_sink() -> &'static sink::Sink {
    STDERR.get_or_init(|| {
        let out: Box<dyn Write + Send> =
            match std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
                Ok(fd) => Box::new(std::fs::File::from(fd)),
                Err(_) => Box::new(std::io::stderr()),
            };
        sink::Sink::start(out, text_dropped_report)
    })
}

const DROPPED: &str = "log lines dropped: the output did not keep up";

/// The JSON line that reports dropped lines.
fn json_dropped_report(lines: u64, bytes: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"severity\":\"WARNING\",\"time\":\"");
    let _ = time::OffsetDateTime::now_utc()
        .format_into(&mut out, &time::format_description::well_known::Rfc3339);
    let _ = writeln!(
        out,
        "\",\"message\":\"{DROPPED}\",\"target\":\"{}\",\"dropped_lines\":{lines},\"dropped_bytes\":{bytes}}}",
        module_path!()
    );
    out
}

/// The text line that reports dropped lines.
fn text_dropped_report(lines: u64, bytes: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    let _ = time::OffsetDateTime::now_utc()
        .format_into(&mut out, &time::format_description::well_known::Rfc3339);
    let _ = writeln!(
        out,
        "  WARN {DROPPED} dropped_lines={lines} dropped_bytes={bytes}"
    );
    out
}

/// The text format's writer: each event arrives in one `write` (tracing-subscriber formats a
/// whole event, then writes it at once) and is queued on the stderr sink, cut to
/// [`sink::MAX_LINE`].
struct TextLine;

impl Write for TextLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() <= sink::MAX_LINE {
            stderr_sink().append(buf);
        } else {
            let text = String::from_utf8_lossy(buf);
            let mut line = truncated(&text, sink::MAX_LINE - 64).into_owned();
            line.push('\n');
            stderr_sink().append(line.as_bytes());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// For tests: logs only when `TEST_LOG` is set (text, `RUST_LOG` or `debug`).
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init(&TelemetryConfig {
            format: LogFormat::Text,
            filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            project: None,
            tracing: otel::TracingConfig::default(),
        });
    }
}

/// A trace context taken from the incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// The parent span id as received (hex for traceparent, decimal for X-Cloud-Trace-Context).
    pub span_id: Option<String>,
}

/// Reads `traceparent` (W3C) or, failing that, `X-Cloud-Trace-Context` (`TRACE/SPAN;o=1`).
pub fn trace_context(headers: &HeaderMap) -> Option<TraceContext> {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        let parts: Vec<&str> = tp.trim().split('-').collect();
        if parts.len() >= 4
            && parts[0].len() == 2
            && is_hex(parts[1], 32)
            && is_hex(parts[2], 16)
            && parts[1].bytes().any(|b| b != b'0')
        {
            return Some(TraceContext {
                trace_id: parts[1].to_ascii_lowercase(),
                span_id: Some(parts[2].to_ascii_lowercase()),
            });
        }
    }
    let v = headers.get("x-cloud-trace-context")?.to_str().ok()?;
    let (trace, rest) = v.trim().split_once('/').unwrap_or((v.trim(), ""));
    if !is_hex(trace, 32) {
        return None;
    }
    let span = rest
        .split(';')
        .next()
        // A span id is a decimal u64: at most 20 digits (a longer one is not repeated in every
        // line of the request).
        .filter(|s| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()));
    Some(TraceContext {
        trace_id: trace.to_ascii_lowercase(),
        span_id: span.map(str::to_owned),
    })
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The value of `logging.googleapis.com/trace` for a trace id.
pub fn trace_resource(project: Option<&str>, trace_id: &str) -> String {
    match project {
        Some(p) => format!("projects/{p}/traces/{trace_id}"),
        None => trace_id.to_owned(),
    }
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// One recorded field value.
#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    Str(String),
    I64(i64),
    U64(u64),
    Bool(bool),
    F64(f64),
}

impl FieldValue {
    /// Appends the value as JSON, a string cut to `cap` bytes ([`truncated`]) if given.
    fn write_json(&self, out: &mut Vec<u8>, cap: Option<usize>) {
        match self {
            Self::Str(s) => match cap {
                Some(cap) => write_json_str(out, &truncated(s, cap)),
                None => write_json_str(out, s),
            },
            Self::I64(n) => {
                let _ = write!(out, "{n}");
            }
            Self::U64(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Self::F64(f) => {
                let _ = serde_json::to_writer(&mut *out, f);
            }
        }
    }
}

/// Fields by name, in the order first recorded; a field recorded again replaces its value.
#[derive(Default)]
struct JsonFields(Vec<(&'static str, FieldValue)>);

impl JsonFields {
    fn set(&mut self, name: &'static str, value: FieldValue) {
        // `otel.kind` and the like speak to the OpenTelemetry layer, not to the log.
        if name.starts_with("otel.") {
            return;
        }
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

struct Visitor<'a>(&'a mut JsonFields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .set(field.name(), FieldValue::Str(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set(field.name(), FieldValue::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field.name(), FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field.name(), FieldValue::U64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field.name(), FieldValue::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field.name(), FieldValue::F64(value));
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes events as Cloud Logging structured JSON, merging the fields of enclosing spans.
/// Fields named `http.*` become the `httpRequest` object on the request log line.
///
/// Each line is written straight into a per-thread buffer — no `Value` tree, no map per event —
/// and handed to [`sink`], which writes lines to stdout in batches, because the request log
/// runs on every request of both services.
pub struct CloudLoggingLayer;

impl<S> Layer<S> for CloudLoggingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut fields = JsonFields::default();
            attrs.record(&mut Visitor(&mut fields));
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<JsonFields>() {
                values.record(&mut Visitor(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // With tracing on, the entry carries the ids of the span it was logged in. Looked up
        // before any extension is borrowed (the lookup locks them).
        let otel_ids = if otel::enabled() {
            ctx.event_span(event)
                .and_then(|span| otel::ids_of(&span.id()))
                .map(|(trace, span)| (FieldValue::Str(trace), FieldValue::Str(span)))
        } else {
            None
        };
        let mut own = JsonFields::default();
        event.record(&mut Visitor(&mut own));
        let spans: Vec<_> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        let extensions: Vec<_> = spans.iter().map(|s| s.extensions()).collect();
        // Root span first, the event last: inner values replace outer ones of the same name.
        let mut merged: Vec<(&'static str, &FieldValue)> = Vec::with_capacity(16);
        let layers = extensions
            .iter()
            .filter_map(|e| e.get::<JsonFields>())
            .chain(std::iter::once(&own));
        let ids = otel_ids
            .iter()
            .flat_map(|(trace, span)| [("trace_id", trace), ("span_id", span)]);
        let fields = layers
            .flat_map(|f| f.0.iter().map(|(n, v)| (*n, v)))
            .chain(ids);
        for (name, value) in fields {
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => merged.push((name, value)),
            }
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            write_bounded_entry(&mut line, event.metadata(), &merged);
            stdout_sink().append(&line);
            if line.capacity() > 4 * sink::MAX_LINE {
                line.clear();
                line.shrink_to(1024);
            }
        });
    }
}

/// Writes the entry ([`write_entry`]) whole when it fits in [`sink::MAX_LINE`] (Cloud Logging
/// refuses entries over 256 KiB); otherwise with every string value cut ever shorter until it
/// fits, and as a last resort only its severity, time, message (cut) and target.
fn write_bounded_entry(
    out: &mut Vec<u8>,
    meta: &tracing::Metadata<'_>,
    fields: &[(&str, &FieldValue)],
) {
    write_entry(out, meta, fields, None);
    for cap in [8 * 1024, 1024, 128] {
        if out.len() <= sink::MAX_LINE {
            return;
        }
        out.clear();
        write_entry(out, meta, fields, Some(cap));
    }
    if out.len() > sink::MAX_LINE {
        out.clear();
        let message = fields
            .iter()
            .find(|(n, _)| *n == "message")
            .map(|(_, v)| *v);
        let kept: Vec<(&str, &FieldValue)> = message.map(|m| ("message", m)).into_iter().collect();
        write_entry(out, meta, &kept, Some(1024));
    }
}

thread_local! {
    /// The line being written, reused: a log line costs no allocation for its text.
    static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

/// Appends one Cloud Logging entry (and its newline) for an event with `fields` (the merged
/// span and event fields) to `out`.
fn write_entry(
    out: &mut Vec<u8>,
    meta: &tracing::Metadata<'_>,
    fields: &[(&str, &FieldValue)],
    cap: Option<usize>,
) {
    let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    out.extend_from_slice(b"{\"severity\":\"");
    out.extend_from_slice(severity(meta.level()).as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    let _ = time::OffsetDateTime::now_utc()
        .format_into(&mut *out, &time::format_description::well_known::Rfc3339);
    out.extend_from_slice(b"\",\"message\":");
    match get("message") {
        Some(v) => v.write_json(out, cap),
        None => out.extend_from_slice(b"\"\""),
    }
    out.extend_from_slice(b",\"target\":");
    write_json_str(out, meta.target());
    if let Some(FieldValue::Str(trace)) = get("trace_id") {
        out.extend_from_slice(b",\"logging.googleapis.com/trace\":");
        let project = PROJECT.get().and_then(|p| p.as_deref());
        let trace = match cap {
            Some(cap) => truncated(trace, cap),
            None => std::borrow::Cow::Borrowed(trace.as_str()),
        };
        write_json_str(out, &trace_resource(project, &trace));
    }
    if let Some(span) = get("span_id") {
        out.extend_from_slice(b",\"logging.googleapis.com/spanId\":");
        span.write_json(out, cap);
    }
    if let Some(status) = get("http.status") {
        out.extend_from_slice(b",\"httpRequest\":{");
        for (name, key) in [
            ("requestMethod", "http.method"),
            ("requestUrl", "http.path"),
            ("userAgent", "http.user_agent"),
            ("remoteIp", "http.remote_ip"),
            ("protocol", "http.protocol"),
        ] {
            if let Some(v) = get(key) {
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                v.write_json(out, cap);
                out.push(b',');
            }
        }
        out.extend_from_slice(b"\"status\":");
        status.write_json(out, cap);
        if let Some(FieldValue::U64(us)) = get("http.latency_us") {
            let _ = write!(
                out,
                ",\"latency\":\"{}.{:06}s\"",
                us / 1_000_000,
                us % 1_000_000
            );
        }
        out.push(b'}');
    }
    for (i, (name, value)) in fields.iter().enumerate() {
        if matches!(*name, "message" | "trace_id" | "span_id") || name.starts_with("http.") {
            continue;
        }
        // `group.key` fields become one object `group` (e.g. a refusal's `auth`), written
        // where the group's first field stands.
        if let Some((group, _)) = name.split_once('.') {
            let in_group = |n: &str| n.split_once('.').is_some_and(|(g, _)| g == group);
            if fields[..i].iter().any(|(n, _)| in_group(n)) {
                continue;
            }
            out.push(b',');
            write_json_str(out, group);
            out.extend_from_slice(b":{");
            let mut first = true;
            for (n, v) in &fields[i..] {
                if let Some((g, key)) = n.split_once('.')
                    && g == group
                {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_json_str(out, key);
                    out.push(b':');
                    v.write_json(out, cap);
                }
            }
            out.push(b'}');
            continue;
        }
        out.push(b',');
        write_json_str(out, name);
        out.push(b':');
        value.write_json(out, cap);
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_target_filters_skip_env_filter() {
        for plain in ["info", "info,sqlx=warn", "warn,called=debug", "trace"] {
            assert!(plain_targets(plain).is_some(), "{plain}");
        }
        for dynamic in [
            "",
            "info,",
            "info,,sqlx=warn",
            "[request]=debug",
            "called[request]=debug",
            "[span{field=1}]=debug",
        ] {
            assert!(plain_targets(dynamic).is_none(), "{dynamic:?}");
        }
    }

    #[test]
    fn traceparent_and_cloud_trace_context() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-cloud-trace-context",
            "0123456789abcdef0123456789ABCDEF/123;o=1"
                .parse()
                .expect("hv"),
        );
        let t = trace_context(&h).expect("cloud trace");
        assert_eq!(t.trace_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(t.span_id.as_deref(), Some("123"));
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("hv"),
        );
        let t = trace_context(&h).expect("traceparent wins");
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut bad = HeaderMap::new();
        bad.insert(
            "traceparent",
            "00-xyz-00f067aa0ba902b7-01".parse().expect("hv"),
        );
        assert!(trace_context(&bad).is_none());
        assert_eq!(trace_resource(Some("p"), "t"), "projects/p/traces/t");
    }

    #[test]
    fn escape_capped_cuts_after_escaping_and_says_so() {
        assert_eq!(escape_capped("short", 512), "short");
        let tabs = format!("a{}b", "\t".repeat(120_000));
        let capped = escape_capped(&tabs, MAX_LOGGED_VALUE);
        assert!(capped.len() <= MAX_LOGGED_VALUE + 40, "{}", capped.len());
        assert!(capped.starts_with("a\\u{9}\\u{9}"), "{capped}");
        assert!(capped.ends_with("…[truncated, 120002 bytes]"), "{capped}");
        assert!(!capped.contains('\t'));
        // Never inside an escape or a character.
        let body = capped.split('…').next().expect("head");
        assert!(body.ends_with("\\u{9}"), "{body}");
        let wide = "é".repeat(1000);
        let capped = escape_capped(&wide, 11);
        assert_eq!(capped, format!("ééééé…[truncated, {} bytes]", wide.len()));
    }

    #[test]
    fn trace_context_refuses_a_huge_span_id() {
        let mut h = HeaderMap::new();
        let v = format!(
            "0123456789abcdef0123456789abcdef/{};o=1",
            "9".repeat(10_000)
        );
        h.insert("x-cloud-trace-context", v.parse().expect("hv"));
        assert_eq!(trace_context(&h).expect("trace").span_id, None);
    }

    #[test]
    fn an_oversized_entry_is_cut_to_valid_json_under_the_line_limit() {
        let s = |v: String| FieldValue::Str(v);
        let fields = [
            ("message", s(format!("m{}", "\u{1}".repeat(200_000)))),
            ("http.status", FieldValue::U64(401)),
            ("http.user_agent", s("u".repeat(300_000))),
            ("request_id", s("r".repeat(100_000))),
            ("detail", s("é".repeat(100_000))),
        ];
        let merged: Vec<(&str, &FieldValue)> = fields.iter().map(|(n, v)| (*n, v)).collect();
        let mut line = Vec::new();
        write_bounded_entry(&mut line, &META, &merged);
        assert!(line.len() <= sink::MAX_LINE, "{}", line.len());
        assert!(line.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["httpRequest"]["status"], 401);
        assert!(
            v["request_id"]
                .as_str()
                .expect("id")
                .ends_with("…[truncated, 100000 bytes]")
        );
        assert!(
            v["message"]
                .as_str()
                .expect("message")
                .starts_with("m\u{1}")
        );
        // A line that fits is left whole.
        let small = [
            ("message", s("fine".into())),
            ("request_id", s("r1".into())),
        ];
        let merged: Vec<(&str, &FieldValue)> = small.iter().map(|(n, v)| (*n, v)).collect();
        line.clear();
        write_bounded_entry(&mut line, &META, &merged);
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["message"], "fine");
        assert_eq!(v["request_id"], "r1");
    }

    #[test]
    fn the_dropped_lines_report_is_one_json_line() {
        let line = json_dropped_report(3, 4096);
        assert!(line.ends_with(b"}\n") && line.iter().filter(|b| **b == b'\n').count() == 1);
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["severity"], "WARNING");
        assert_eq!(v["dropped_lines"], 3);
        assert_eq!(v["dropped_bytes"], 4096);
        assert!(v["message"].as_str().expect("message").contains("dropped"));
    }

    struct Cs;
    static CS: Cs = Cs;
    impl tracing::callsite::Callsite for Cs {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            &META
        }
    }
    static META: tracing::Metadata<'static> = tracing::Metadata::new(
        "request",
        "t",
        Level::WARN,
        None,
        None,
        None,
        tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CS)),
        tracing::metadata::Kind::EVENT,
    );

    #[test]
    fn entry_has_cloud_logging_shape() {
        let s = |v: &str| FieldValue::Str(v.to_owned());
        let fields = [
            ("message", s("done \"quoted\"\n")),
            ("http.status", FieldValue::U64(201)),
            ("http.method", s("POST")),
            ("http.latency_us", FieldValue::U64(1_500_000)),
            ("trace_id", s("abc")),
            ("request_id", s("r1")),
            ("ratio", FieldValue::F64(0.5)),
            ("ok", FieldValue::Bool(true)),
            ("delta", FieldValue::I64(-3)),
            ("auth.status", FieldValue::U64(401)),
            ("auth.reason", s("audience")),
            ("after", s("x")),
            ("auth.header", s("authorization")),
        ];
        let merged: Vec<(&str, &FieldValue)> = fields.iter().map(|(n, v)| (*n, v)).collect();
        let mut line = Vec::new();
        write_entry(&mut line, &META, &merged, None);
        assert!(line.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["severity"], "WARNING");
        assert_eq!(v["message"], "done \"quoted\"\n");
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["ok"], true);
        assert_eq!(v["delta"], -3);
        assert!(v.get("http.method").is_none() && v.get("trace_id").is_none());
        assert_eq!(v["logging.googleapis.com/trace"], "abc");
        assert_eq!(v["httpRequest"]["status"], 201);
        assert_eq!(v["httpRequest"]["requestMethod"], "POST");
        assert_eq!(v["httpRequest"]["latency"], "1.500000s");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(
            v["auth"],
            serde_json::json!({"status": 401, "reason": "audience", "header": "authorization"}),
            "dotted fields become one object"
        );
        assert!(v.get("auth.status").is_none());
        assert_eq!(v["after"], "x");
        assert!(v["logging.googleapis.com/trace"].is_string());
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
