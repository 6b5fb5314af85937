//! Traces: OpenTelemetry spans of a request — `request` (server), `authenticate`, `token_wait`,
//! `hop` (client; the outgoing `traceparent` carries it) and `store_write` — exported over
//! OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set.
//!
//! Off by default, and then free: no OpenTelemetry layer is installed, [`enabled`] is false and
//! the extra spans are never created (`Span::none()`), so a request costs what it did before.
//! Always compiled in: the OpenTelemetry crates add about 0.55 MiB to each binary (caller
//! 10.65 → 11.20 MiB, called 12.36 → 12.92 MiB, built as the Dockerfile builds them), under the
//! 1.5 MB that would have made them a cargo feature.
//!
//! When on, the log entries of a request carry the trace id and the id of the span they were
//! logged in (`logging.googleapis.com/trace`, `logging.googleapis.com/spanId`), so Cloud
//! Logging and Cloud Trace line up.

use std::time::Duration;

use crate::config::{ConfigError, Reader, Setting, Source};

/// Where finished spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Nowhere: tracing is off.
    Off,
    /// OTLP/HTTP (protobuf) to this URL (the full traces URL, `…/v1/traces`).
    Otlp(String),
    /// One line per finished span on stderr (`local`'s view without a collector).
    Log,
}

/// Validated tracing settings (the standard `OTEL_*` variables the services read).
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// Where spans go.
    pub export: Export,
    /// `OTEL_SERVICE_NAME`; the binary's name when unset.
    pub service_name: Option<String>,
    /// `OTEL_BSP_SCHEDULE_DELAY`: longest a finished span waits in the batch before export.
    pub schedule_delay: Duration,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            export: Export::Off,
            service_name: None,
            schedule_delay: Duration::from_millis(5000),
        }
    }
}

const ENDPOINT_HELP: &str = "OTLP/HTTP base URL (e.g. http://127.0.0.1:4318); spans are exported to URL/v1/traces. Unset: no tracing, no cost";

impl TracingConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub const ENDPOINT: Setting = Setting::unset(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "unset: no export",
        ENDPOINT_HELP,
    );
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub const TRACES_ENDPOINT: Setting = Setting::unset(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces",
        "full OTLP/HTTP traces URL, used as given; wins over OTEL_EXPORTER_OTLP_ENDPOINT",
    );
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub const PROTOCOL: Setting = Setting::new(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "http/protobuf",
        "OTLP transport; only http/protobuf is built in (no gRPC)",
    );
    /// `OTEL_SERVICE_NAME`.
    pub const SERVICE_NAME: Setting = Setting::unset(
        "OTEL_SERVICE_NAME",
        "the binary's name",
        "service.name of the exported spans",
    );
    /// `OTEL_SDK_DISABLED`.
    pub const SDK_DISABLED: Setting = Setting::new(
        "OTEL_SDK_DISABLED",
        "false",
        "true: no tracing even with an endpoint set",
    );
    /// `OTEL_BSP_SCHEDULE_DELAY`.
    pub const SCHEDULE_DELAY: Setting = Setting::new(
        "OTEL_BSP_SCHEDULE_DELAY",
        "5000",
        "ms a finished span may wait in its batch before export (1 to 60000)",
    );
    /// `OTEL_TRACES_SAMPLER` (read by the OpenTelemetry SDK itself).
    pub const SAMPLER: Setting = Setting::new(
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        "sampler (read by the OpenTelemetry SDK, with OTEL_TRACES_SAMPLER_ARG); parent-based: an incoming traceparent's sampled flag decides",
    );
    /// `OTEL_EXPORTER_OTLP_HEADERS` (read by the OpenTelemetry SDK itself).
    pub const HEADERS: Setting = Setting::unset(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "none",
        "key=value,… headers of every export (read by the OpenTelemetry SDK; never logged); OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_RESOURCE_ATTRIBUTES and the other OTEL_BSP_* are read there too",
    );
    /// The settings [`TracingConfig::from_source`] reads or documents.
    pub const SETTINGS: [Setting; 8] = [
        Self::ENDPOINT,
        Self::TRACES_ENDPOINT,
        Self::PROTOCOL,
        Self::SERVICE_NAME,
        Self::SDK_DISABLED,
        Self::SCHEDULE_DELAY,
        Self::SAMPLER,
        Self::HEADERS,
    ];

    /// Reads and validates the tracing settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let protocol: String = r.parse(&Self::PROTOCOL)?;
        if protocol != "http/protobuf" {
            return Err(ConfigError::invalid(
                Self::PROTOCOL.name,
                protocol,
                "only http/protobuf is built in",
            ));
        }
        let schedule_delay = r.millis(&Self::SCHEDULE_DELAY, 1, 60_000)?;
        let service_name = r.raw(&Self::SERVICE_NAME);
        let disabled = r.bool(&Self::SDK_DISABLED)?;
        let url = |s: &Setting, v: String| match url::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(v),
            _ => Err(ConfigError::invalid(s.name, v, "expected an http(s) URL")),
        };
        let traces = r
            .raw(&Self::TRACES_ENDPOINT)
            .map(|v| url(&Self::TRACES_ENDPOINT, v))
            .transpose()?;
        let base = r
            .raw(&Self::ENDPOINT)
            .map(|v| url(&Self::ENDPOINT, v))
            .transpose()?;
        let export = match (disabled, traces, base) {
            (true, ..) => Export::Off,
            (false, Some(traces), _) => Export::Otlp(traces),
            (false, None, Some(base)) => {
                Export::Otlp(format!("{}/v1/traces", base.trim_end_matches('/')))
            }
            (false, None, None) => Export::Off,
        };
        Ok(Self {
            export,
            service_name,
            schedule_delay,
        })
    }
}

/// Longest the exit waits for the last spans to be exported ([`shutdown`]): with the 1 s log
/// flush after it, a process that drained for the full `SHUTDOWN_GRACE_MS` (8 s) still ends
/// before Cloud Run's kill, 10 s after `SIGTERM`.
pub const EXIT_EXPORT: Duration = Duration::from_millis(500);

/// Whether spans are being recorded for export: the extra spans (`authenticate`, `token_wait`,
/// `hop`, `store_write`) are created only then.
#[inline]
pub fn enabled() -> bool {
    imp::ON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where spans go, for a start-up line: `off`, `OTLP/HTTP to URL` or a log on stderr.
pub fn describe(cfg: &TracingConfig) -> String {
    match &cfg.export {
        Export::Off => "off".into(),
        Export::Otlp(url) => format!("OTLP/HTTP to {url}"),
        Export::Log => "a log of finished spans on stderr".into(),
    }
}

/// Says at start where spans go: one INFO line when tracing is on, nothing when it is off.
pub(crate) fn report(cfg: &TracingConfig) {
    if enabled() {
        tracing::info!(spans = %describe(cfg), "tracing on");
    }
}

/// A span named `$name` (INFO) when tracing is [`enabled`], else `Span::none()` (no cost).
#[macro_export]
macro_rules! trace_span {
    ($name:literal $(, $($fields:tt)*)?) => {
        if $crate::telemetry::otel::enabled() {
            ::tracing::info_span!($name $(, $($fields)*)?)
        } else {
            ::tracing::Span::none()
        }
    };
}

pub use imp::*;

mod imp {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use axum::extract::Request;
    use axum::middleware::{Next, from_fn};
    use axum::response::Response;
    use axum::routing::MethodRouter;
    use http::{HeaderMap, HeaderName, HeaderValue};
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
    };
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData,
        SpanExporter,
    };
    use tracing::Subscriber;
    use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
    use tracing_subscriber::registry::LookupSpan;

    use super::{Export, TracingConfig};

    pub(super) static ON: AtomicBool = AtomicBool::new(false);
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The layer that turns `tracing` spans into OpenTelemetry spans, with the exporter `cfg`
    /// asks for; `None` when tracing is off (then nothing is installed). Turns [`super::enabled`]
    /// on. `service` names the spans unless `OTEL_SERVICE_NAME` does.
    pub(crate) fn layer<S>(
        cfg: &TracingConfig,
        service: &str,
    ) -> Option<OpenTelemetryLayer<S, SdkTracer>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let name = cfg
            .service_name
            .clone()
            .unwrap_or_else(|| service.to_owned());
        let resource = Resource::builder().with_service_name(name).build();
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(cfg.schedule_delay)
            .build();
        let provider = match &cfg.export {
            Export::Off => return None,
            Export::Otlp(url) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url.clone())
                    .build();
                match exporter {
                    Ok(e) => processor(resource, BatchSpanProcessor::builder(e), batch),
                    Err(e) => {
                        tracing::error!(error = %e, "tracing off: the OTLP exporter cannot be built");
                        return None;
                    }
                }
            }
            Export::Log => processor(
                resource,
                BatchSpanProcessor::builder(SpanLog::default()),
                batch,
            ),
        };
        let tracer = provider.tracer("invoker");
        if PROVIDER.set(provider).is_err() {
            return None;
        }
        ON.store(true, Ordering::Relaxed);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                // Parents come from the `tracing` span tree; nothing here reads OpenTelemetry's
                // thread-local context, so entering a span (every poll of an instrumented
                // future) need not swap it.
                .with_context_activation(false),
        )
    }

    fn processor<E: SpanExporter + 'static>(
        resource: Resource,
        builder: opentelemetry_sdk::trace::BatchSpanProcessorBuilder<E>,
        batch: opentelemetry_sdk::trace::BatchConfig,
    ) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(builder.with_batch_config(batch).build())
            .build()
    }

    /// Exports the spans still batched, waiting at most `limit`; true when all went out (or
    /// tracing is off).
    pub fn shutdown(limit: Duration) -> bool {
        match PROVIDER.get() {
            Some(p) => {
                ON.store(false, Ordering::Relaxed);
                p.shutdown_with_timeout(limit).is_ok()
            }
            None => true,
        }
    }

    struct Headers<'a>(&'a HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(HeaderName::as_str).collect()
        }
    }

    struct HeadersMut<'a>(&'a mut HeaderMap);

    impl Injector for HeadersMut<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(key.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }

    /// Makes the span the request's incoming trace context continues: W3C `traceparent` (and
    /// `tracestate`), else `X-Cloud-Trace-Context` (`TRACE/SPAN;o=1`). Call before the span is
    /// entered. Nothing when tracing is off or the headers carry no valid context.
    pub fn set_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
        if !super::enabled() {
            return;
        }
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        let cx = if cx.span().span_context().is_valid() {
            cx
        } else if let Some(sc) = cloud_trace_context(headers) {
            opentelemetry::Context::new().with_remote_span_context(sc)
        } else {
            return;
        };
        let _ = span.set_parent(cx);
    }

    /// `X-Cloud-Trace-Context: TRACE/SPAN;o=1` as a remote span context (the span id is decimal).
    fn cloud_trace_context(headers: &HeaderMap) -> Option<SpanContext> {
        let tc = crate::telemetry::trace_context(headers)?;
        let span: u64 = tc.span_id.as_deref()?.parse().ok()?;
        let trace = TraceId::from_hex(&tc.trace_id).ok()?;
        let sampled = headers
            .get("x-cloud-trace-context")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("o=1"));
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let sc = SpanContext::new(
            trace,
            SpanId::from_bytes(span.to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        );
        sc.is_valid().then_some(sc)
    }

    /// Writes the current span's context into `headers` as `traceparent` (and `tracestate`),
    /// replacing what was there; false (headers untouched) when tracing is off or there is no
    /// valid current span.
    pub fn inject_current(headers: &mut HeaderMap) -> bool {
        if !super::enabled() {
            return false;
        }
        let cx = tracing::Span::current().context();
        if !cx.span().span_context().is_valid() {
            return false;
        }
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
        true
    }

    /// The trace id and span id (lower-case hex) of the OpenTelemetry span behind `id`.
    ///
    /// Locks the span's extensions: the caller must hold none of them.
    pub(crate) fn ids_of(id: &tracing::span::Id) -> Option<(String, String)> {
        let cx =
            tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(id, d))?;
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }

    /// The `authenticate` span around the authentication layers `auth` puts on `route`: it
    /// opens before them and closes when the request reaches the handler (or, refused, when
    /// the answer comes back). Without tracing, `auth(route)` alone.
    pub fn authenticate_span<S>(
        route: MethodRouter<S>,
        auth: impl FnOnce(MethodRouter<S>) -> MethodRouter<S>,
    ) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        if !super::enabled() {
            return auth(route);
        }
        auth(route.route_layer(from_fn(end_authentication))).route_layer(from_fn(authentication))
    }

    /// The open `authenticate` span of a request (taken, and so closed, by the handler's side).
    #[derive(Clone)]
    struct Authenticating(Arc<Mutex<Option<tracing::Span>>>);

    impl Authenticating {
        fn close(&self) {
            let span = self.0.lock().map(|mut s| s.take()).unwrap_or(None);
            drop(span);
        }
    }

    async fn authentication(mut req: Request, next: Next) -> Response {
        let slot = Authenticating(Arc::new(Mutex::new(Some(tracing::info_span!(
            "authenticate"
        )))));
        req.extensions_mut().insert(slot.clone());
        let res = next.run(req).await;
        slot.close();
        res
    }

    async fn end_authentication(req: Request, next: Next) -> Response {
        if let Some(slot) = req.extensions().get::<Authenticating>() {
            slot.close();
        }
        next.run(req).await
    }

    /// One line per finished span on stderr: service, name, trace id, span id, parent,
    /// duration (`local`'s view when no collector answers).
    #[derive(Debug, Default)]
    pub struct SpanLog {
        service: String,
    }

    impl SpanLog {
        fn line(&self, s: &SpanData) -> String {
            let ms = s
                .end_time
                .duration_since(s.start_time)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0;
            let parent = if s.parent_span_id == SpanId::INVALID {
                "-".to_owned()
            } else {
                s.parent_span_id.to_string()
            };
            format!(
                "span service={} name={} trace={} span={} parent={} duration_ms={ms:.3}\n",
                self.service,
                s.name,
                s.span_context.trace_id(),
                s.span_context.span_id(),
                parent
            )
        }
    }

    impl SpanExporter for SpanLog {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            use std::io::Write;
            let mut out = String::new();
            for s in &batch {
                out.push_str(&self.line(s));
            }
            // Best effort, like every log line: a closed stderr loses the spans, not the service.
            let _ = std::io::stderr().lock().write_all(out.as_bytes());
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            self.service = resource
                .get(&opentelemetry::Key::from_static_str("service.name"))
                .map(|v| v.to_string())
                .unwrap_or_default();
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn x_cloud_trace_context_becomes_a_remote_parent() {
            let mut h = HeaderMap::new();
            h.insert(
                "x-cloud-trace-context",
                HeaderValue::from_static("0123456789abcdef0123456789ABCDEF/123;o=1"),
            );
            let sc = cloud_trace_context(&h).expect("valid");
            assert_eq!(
                sc.trace_id().to_string(),
                "0123456789abcdef0123456789abcdef"
            );
            assert_eq!(sc.span_id().to_string(), "000000000000007b");
            assert!(sc.is_sampled() && sc.is_remote());
            h.insert(
                "x-cloud-trace-context",
                HeaderValue::from_static("0123456789abcdef0123456789abcdef/0;o=0"),
            );
            assert!(cloud_trace_context(&h).is_none(), "span 0 is no parent");
        }

        #[test]
        fn a_span_log_line_names_service_span_parent_and_duration() {
            let log = SpanLog {
                service: "caller".into(),
            };
            let start = std::time::SystemTime::UNIX_EPOCH;
            let span = SpanData {
                span_context: SpanContext::new(
                    TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
                    SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::default(),
                ),
                parent_span_id: SpanId::INVALID,
                parent_span_is_remote: false,
                span_kind: opentelemetry::trace::SpanKind::Server,
                name: "request".into(),
                start_time: start,
                end_time: start + Duration::from_micros(1500),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                events: Default::default(),
                links: Default::default(),
                status: opentelemetry::trace::Status::Unset,
                instrumentation_scope: Default::default(),
            };
            assert_eq!(
                log.line(&span),
                "span service=caller name=request trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7 parent=- duration_ms=1.500\n"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapSource;

    #[test]
    fn the_endpoint_turns_export_on_and_the_traces_endpoint_wins() {
        let off = TracingConfig::from_source(&MapSource::default()).expect("valid");
        assert_eq!(off.export, Export::Off);
        assert_eq!(off.schedule_delay, Duration::from_secs(5));
        let base =
            MapSource::from_pairs([("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]);
        let on = TracingConfig::from_source(&base).expect("valid");
        assert_eq!(
            on.export,
            Export::Otlp("http://127.0.0.1:4318/v1/traces".into())
        );
        let both = base.clone().with(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://collector.example/custom",
        );
        assert_eq!(
            TracingConfig::from_source(&both).expect("valid").export,
            Export::Otlp("https://collector.example/custom".into())
        );
        let disabled = base.clone().with("OTEL_SDK_DISABLED", "true");
        assert_eq!(
            TracingConfig::from_source(&disabled).expect("valid").export,
            Export::Off
        );
    }

    #[test]
    fn bad_tracing_settings_name_the_variable() {
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
            ("OTEL_SDK_DISABLED", "maybe"),
        ] {
            let e = TracingConfig::from_source(&MapSource::from_pairs([(name, value)]))
                .expect_err(value);
            assert_eq!(e.name, name);
        }
    }

    #[test]
    fn without_tracing_no_span_is_made_and_nothing_is_injected() {
        assert!(!enabled());
        assert!(crate::trace_span!("hop").is_none());
        let mut h = http::HeaderMap::new();
        assert!(!inject_current(&mut h));
        assert!(h.is_empty());
    }
}
