//! `local`: the whole chain on loopback in one process — the metadata-server emulator, `called`
//! (SQLite by default, full signature verification against the emulator's key set, only the
//! emulator's service account allowed) and `caller` (tokens from the emulator through the
//! metadata-server protocol, its own endpoint protected). Prints a `curl` line that works as-is.
//! Starts like every binary of the workspace, through `shared::binary::main`.

use std::net::{Ipv4Addr, SocketAddr};

use emulator::EmulatorConfig;
use local::chain::{IapOptions, Ports, run};
use shared::config::{ConfigError, Reader, Setting, Source, render_help};
use shared::telemetry::TelemetryConfig;
use shared::telemetry::otel::{Export, TracingConfig};

const PORT: Setting = Setting::new("PORT", "8080", "caller's port on 127.0.0.1");
const CALLED_PORT: Setting = Setting::new("CALLED_PORT", "8081", "called's port on 127.0.0.1");
const EMULATOR_PORT: Setting = Setting::new(
    "EMULATOR_PORT",
    "8085",
    "metadata-server emulator's port on 127.0.0.1",
);
const DATABASE_URL: Setting = Setting::new(
    "DATABASE_URL",
    "sqlite://data/called.db",
    "called's store (postgres://… works too)",
);
const LOCAL_USER: Setting = Setting::new(
    "LOCAL_USER",
    "developer@example.com",
    "the end user allowed to call caller; the printed curl carries a token for it",
);
const LOCAL_IAP: Setting = Setting::new(
    "LOCAL_IAP",
    "false",
    "true: an IAP front on LOCAL_IAP_PORT plays Identity-Aware Proxy in front of caller (person from X-Local-Iap-User)",
);
const LOCAL_IAP_PORT: Setting = Setting::new(
    "LOCAL_IAP_PORT",
    "8082",
    "the IAP front's port on 127.0.0.1 (with LOCAL_IAP=true)",
);
const LOCAL_IAP_PRINCIPALS: Setting = Setting::new(
    "LOCAL_IAP_PRINCIPALS",
    "alice@example.com",
    "with LOCAL_IAP=true: the people caller allows (emails or *@domain, comma-separated)",
);
const LOCAL_TRACING: Setting = Setting::unset(
    "LOCAL_TRACING",
    "unset: as the OTEL_* settings say",
    "otlp: spans to OTEL_EXPORTER_OTLP_ENDPOINT, else to a collector on 127.0.0.1:4318 if one answers, else a log of spans; log: one stderr line per finished span; off: none",
);
const SETTINGS: &[Setting] = &[
    PORT,
    CALLED_PORT,
    EMULATOR_PORT,
    DATABASE_URL,
    LOCAL_USER,
    LOCAL_IAP,
    LOCAL_IAP_PORT,
    LOCAL_IAP_PRINCIPALS,
    LOCAL_TRACING,
];

/// The OTLP/HTTP port a collector listens on by default.
const COLLECTOR: ([u8; 4], u16) = ([127, 0, 0, 1], 4318);

/// Where `local`'s spans go for `LOCAL_TRACING` (caller's and called's spans both come from
/// this one process: the `hop` span and called's `request` span show the two hops).
fn local_tracing(r: &Reader<'_>, mut tracing: TracingConfig) -> Result<TracingConfig, ConfigError> {
    tracing.export = match r.raw(&LOCAL_TRACING).as_deref() {
        None => tracing.export,
        Some("off") => Export::Off,
        Some("log") => Export::Log,
        Some("otlp") => match tracing.export {
            Export::Otlp(url) => Export::Otlp(url),
            _ => {
                let addr = SocketAddr::from(COLLECTOR);
                let answers = std::net::TcpStream::connect_timeout(
                    &addr,
                    std::time::Duration::from_millis(300),
                )
                .is_ok();
                if answers {
                    Export::Otlp(format!("http://{addr}/v1/traces"))
                } else {
                    println!(
                        "local: no OTLP collector answers on {addr}: spans go to a log instead"
                    );
                    Export::Log
                }
            }
        },
        Some(other) => {
            return Err(ConfigError::invalid(
                LOCAL_TRACING.name,
                other,
                "expected otlp, log or off",
            ));
        }
    };
    // Short batches: a developer sees a request's spans right after it.
    if r.raw(&TracingConfig::SCHEDULE_DELAY).is_none() {
        tracing.schedule_delay = std::time::Duration::from_millis(200);
    }
    Ok(tracing)
}

const HELP_GROUPS: &[(&str, &[Setting])] = &[
    ("Local chain", SETTINGS),
    ("Emulator", EmulatorConfig::SETTINGS),
    ("Logging", TelemetryConfig::SETTINGS),
];

/// Everything `local` itself reads (called's and caller's settings not fixed by the wiring
/// are read from the environment by the services).
struct Settings {
    ports: Ports,
    emulator: EmulatorConfig,
    telemetry: TelemetryConfig,
}

impl shared::binary::ServiceConfig for Settings {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
    fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.caller))
    }
}

fn settings(src: &dyn Source) -> Result<Settings, ConfigError> {
    let r = Reader::new(src);
    Ok(Settings {
        ports: Ports {
            caller: r.parse(&PORT)?,
            called: r.parse(&CALLED_PORT)?,
            emulator: r.parse(&EMULATOR_PORT)?,
            user: r.parse(&LOCAL_USER)?,
            iap: if r.bool(&LOCAL_IAP)? {
                let people = r.list(&LOCAL_IAP_PRINCIPALS).join(",");
                if people.is_empty() {
                    return Err(ConfigError::invalid(
                        LOCAL_IAP_PRINCIPALS.name,
                        "",
                        "must name at least one person when LOCAL_IAP=true",
                    ));
                }
                Some(IapOptions {
                    port: r.parse(&LOCAL_IAP_PORT)?,
                    people,
                })
            } else {
                None
            },
        },
        emulator: EmulatorConfig::from_source(src)?,
        telemetry: {
            let mut t = TelemetryConfig::from_source(src)?;
            t.tracing = local_tracing(&r, t.tracing)?;
            println!(
                "local: spans: {}",
                shared::telemetry::otel::describe(&t.tracing)
            );
            t
        },
    })
}

fn help() -> String {
    render_help(
        "local",
        "runs emulator → caller → called on loopback with real signed tokens",
        HELP_GROUPS,
    )
}

fn main() -> std::process::ExitCode {
    shared::binary::main("local", help, settings, |cfg: Settings, listener| {
        run(cfg.ports, cfg.emulator, listener)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::MapSource;

    #[test]
    fn help_documents_every_setting_the_parser_reads() {
        let parse = |src: &dyn Source| {
            let _ = settings(src);
        };
        for base in [
            MapSource::default(),
            MapSource::from_pairs([("LOCAL_IAP", "true")]),
        ] {
            let missing = shared::config::undocumented(HELP_GROUPS, &["K_SERVICE"], parse, &base);
            assert!(missing.is_empty(), "read but not in --help: {missing:?}");
        }
    }

    #[test]
    fn the_iap_front_is_off_by_default_and_needs_people() {
        let s = settings(&MapSource::default()).expect("defaults");
        assert!(s.ports.iap.is_none());
        let s = settings(&MapSource::from_pairs([("LOCAL_IAP", "true")])).expect("iap");
        let iap = s.ports.iap.expect("on");
        assert_eq!((iap.port, iap.people.as_str()), (8082, "alice@example.com"));
        assert_eq!(iap.example_person(), "alice@example.com");
        let s = settings(&MapSource::from_pairs([
            ("LOCAL_IAP", "on"),
            ("LOCAL_IAP_PRINCIPALS", "*@corp.example, bob@example.com"),
        ]))
        .expect("iap");
        let iap = s.ports.iap.expect("on");
        assert_eq!(iap.people, "*@corp.example,bob@example.com");
        assert_eq!(iap.example_person(), "alice@corp.example");
        let e = settings(&MapSource::from_pairs([
            ("LOCAL_IAP", "true"),
            ("LOCAL_IAP_PRINCIPALS", " , "),
        ]))
        .err()
        .expect("nobody allowed");
        assert_eq!(e.name, "LOCAL_IAP_PRINCIPALS");
        let e = settings(&MapSource::from_pairs([("LOCAL_IAP", "maybe")]))
            .err()
            .expect("not a bool");
        assert_eq!(e.name, "LOCAL_IAP");
    }

    fn tracing_for(pairs: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
        let src = MapSource::from_pairs(pairs.iter().copied());
        let r = Reader::new(&src);
        local_tracing(&r, TracingConfig::from_source(&src)?)
    }

    #[test]
    fn local_tracing_picks_where_spans_go() {
        assert_eq!(tracing_for(&[]).expect("unset").export, Export::Off);
        let log = tracing_for(&[("LOCAL_TRACING", "log")]).expect("log");
        assert_eq!(log.export, Export::Log);
        assert_eq!(log.schedule_delay, std::time::Duration::from_millis(200));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/");
        assert_eq!(
            tracing_for(&[("LOCAL_TRACING", "otlp"), endpoint])
                .expect("otlp")
                .export,
            Export::Otlp("http://127.0.0.1:9/v1/traces".into())
        );
        assert_eq!(
            tracing_for(&[("LOCAL_TRACING", "off"), endpoint])
                .expect("off")
                .export,
            Export::Off
        );
        let e = tracing_for(&[("LOCAL_TRACING", "jaeger")]).expect_err("bad");
        assert_eq!(e.name, "LOCAL_TRACING");
    }
}
