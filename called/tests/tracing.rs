//! Traces across both hops: one request through caller → called produces spans of both
//! services under one trace id, called's `request` span is a child of caller's `hop` span, and
//! called's log entry for that request carries the same trace id.
//!
//! The spans go to an OTLP/HTTP receiver in this process (protobuf decoded with
//! `opentelemetry-proto`). `called` runs as its real binary (a process of its own, so its own
//! `service.name` and its own JSON log on stdout); `caller` runs in this process, whose global
//! subscriber is installed here with tracing on and `service.name` `caller` — a test binary of
//! its own, so no other test shares that subscriber.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use shared::telemetry::otel::{Export, TracingConfig};
use shared::telemetry::{LogFormat, TelemetryConfig};
use testkit::child::{Proc, Spec, free_port};
use testkit::emu::Emu;
use testkit::in_process::{loopback_listener, spawn_caller, sqlite_store};

/// One exported span, as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    service: String,
    name: String,
    trace: String,
    span: String,
    parent: String,
}

type Spans = Arc<Mutex<Vec<Seen>>>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> &'static str {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut seen = spans.lock().expect("lock");
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                Value::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                seen.push(Seen {
                    service: service.clone(),
                    name: s.name,
                    trace: hex(&s.trace_id),
                    span: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                });
            }
        }
    }
    ""
}

/// An OTLP/HTTP traces receiver on 127.0.0.1:0: its base URL and what it received.
async fn receiver() -> (String, Spans) {
    let spans = Spans::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = loopback_listener().await;
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, spans)
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_caller_and_called() {
    let (otlp, spans) = receiver().await;
    // This process plays caller: its spans go to the receiver as service `caller`.
    shared::telemetry::init_named(
        &TelemetryConfig {
            format: LogFormat::Text,
            filter: "warn,shared=info,caller=info".into(),
            project: None,
            tracing: TracingConfig {
                export: Export::Otlp(format!("{otlp}/v1/traces")),
                service_name: None,
                schedule_delay: Duration::from_millis(50),
            },
        },
        "caller",
    );
    assert!(shared::telemetry::otel::enabled(), "tracing is on here");

    let emu = Emu::start().await;
    let (database_url, _dir) = sqlite_store();
    let port = free_port();
    let called_base = format!("http://127.0.0.1:{port}");
    let spec = Spec::new(env!("CARGO_BIN_EXE_called"), &[])
        .with_all(&testkit::wiring::called_verifying(
            &called_base,
            &emu.sa(),
            emu.addr,
        ))
        .with("DATABASE_URL", database_url)
        .with("LOG_FORMAT", "json")
        .with("RUST_LOG", "info")
        .with("GOOGLE_CLOUD_PROJECT", "p")
        .with("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.clone())
        .with("OTEL_BSP_SCHEDULE_DELAY", "50")
        .capture()
        .stop_gracefully(Duration::from_secs(5));
    let called = Proc::start(&spec, port).await;
    let caller = spawn_caller(&emu, &called_base, &[]).await;
    testkit::ready::wait_ready(&caller.base).await;

    let res = reqwest::Client::new()
        .post(format!("{}/", caller.base))
        .bearer_auth(emu.user_token(&caller.base))
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .header("x-request-id", "traced-1")
        .json(&serde_json::json!({"foo": "traced"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);

    // The batch exporters send within their 50 ms schedule: wait for both request spans.
    let deadline = Instant::now() + Duration::from_secs(20);
    let of_trace = loop {
        let of_trace: Vec<Seen> = spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.trace == TRACE)
            .cloned()
            .collect();
        let has = |service: &str, name: &str| {
            of_trace
                .iter()
                .any(|s| s.service == service && s.name == name)
        };
        if has("caller", "request") && has("called", "request") && has("called", "store_write") {
            break of_trace;
        }
        assert!(
            Instant::now() < deadline,
            "spans of both services within 20 s; got {:#?}",
            spans.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let one = |service: &str, name: &str| {
        let found: Vec<&Seen> = of_trace
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect();
        assert_eq!(found.len(), 1, "one {service} {name} span: {of_trace:#?}");
        found[0].clone()
    };
    let caller_request = one("caller", "request");
    // The client's traceparent is the parent of caller's request span.
    assert_eq!(caller_request.parent, "00f067aa0ba902b7");
    let caller_auth = one("caller", "authenticate");
    assert_eq!(caller_auth.parent, caller_request.span);
    let token_wait = one("caller", "token_wait");
    assert_eq!(token_wait.parent, caller_request.span);
    let hop = one("caller", "hop");
    assert_eq!(hop.parent, caller_request.span);
    let called_request = one("called", "request");
    assert_eq!(
        called_request.parent, hop.span,
        "called's request span continues caller's hop span (the outgoing traceparent)"
    );
    let called_auth = one("called", "authenticate");
    assert_eq!(called_auth.parent, called_request.span);
    let store = one("called", "store_write");
    assert_eq!(store.parent, called_request.span);

    // called's log entry of that request carries the same trace id, and the id of its span.
    drop(caller);
    let lines = called.stop_cleanly().await;
    let entries: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished = entries
        .iter()
        .find(|e| e["message"] == "request finished" && e["request_id"] == "traced-1")
        .unwrap_or_else(|| panic!("called's request log entry: {lines:#?}"));
    assert_eq!(
        finished["logging.googleapis.com/trace"],
        format!("projects/p/traces/{TRACE}")
    );
    assert_eq!(
        finished["logging.googleapis.com/spanId"], called_request.span,
        "the entry names the span it was logged in"
    );
    assert!(
        finished.get("otel.kind").is_none() && finished.get("otel").is_none(),
        "OpenTelemetry's own fields stay out of the log: {finished}"
    );
}
