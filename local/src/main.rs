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
