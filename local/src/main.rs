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
const SETTINGS: &[Setting] = &[
    PORT,
    CALLED_PORT,
    EMULATOR_PORT,
    DATABASE_URL,
    LOCAL_USER,
    LOCAL_IAP,
    LOCAL_IAP_PORT,
    LOCAL_IAP_PRINCIPALS,
];

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
        telemetry: TelemetryConfig::from_source(src)?,
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
}
