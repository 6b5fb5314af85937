//! `local`: the whole chain on loopback in one process — the metadata-server emulator, `called`
//! (SQLite by default, full signature verification against the emulator's key set, only the
//! emulator's service account allowed) and `caller` (tokens from the emulator through the
//! metadata-server protocol, its own endpoint protected). Prints a `curl` line that works as-is.

use std::process::ExitCode;

use emulator::EmulatorConfig;
use local::chain::{Ports, run};
use shared::config::{Cli, ConfigError, Env, Reader, Setting, Source, parse_cli, render_help};
use shared::telemetry::TelemetryConfig;

const SETTINGS: &[Setting] = &[
    Setting {
        name: "PORT",
        default: "8080",
        help: "caller's port on 127.0.0.1",
    },
    Setting {
        name: "CALLED_PORT",
        default: "8081",
        help: "called's port on 127.0.0.1",
    },
    Setting {
        name: "EMULATOR_PORT",
        default: "8085",
        help: "metadata-server emulator's port on 127.0.0.1",
    },
    Setting {
        name: "DATABASE_URL",
        default: "sqlite://data/called.db",
        help: "called's store (postgres://… works too)",
    },
    Setting {
        name: "LOCAL_USER",
        default: "developer@example.com",
        help: "the end user allowed to call caller; the printed curl carries a token for it",
    },
];

fn ports(src: &dyn Source) -> Result<Ports, ConfigError> {
    let r = Reader::new(src);
    Ok(Ports {
        caller: r.parse("PORT", 8080u16)?,
        called: r.parse("CALLED_PORT", 8081u16)?,
        emulator: r.parse("EMULATOR_PORT", 8085u16)?,
        user: r
            .raw("LOCAL_USER")
            .unwrap_or_else(|| "developer@example.com".into()),
    })
}

fn help() -> String {
    render_help(
        "local",
        "runs emulator → caller → called on loopback with real signed tokens",
        &[
            ("Local chain", SETTINGS),
            ("Emulator", EmulatorConfig::SETTINGS),
            ("Logging", TelemetryConfig::SETTINGS),
        ],
    )
}

fn main() -> ExitCode {
    match parse_cli(std::env::args()) {
        Cli::Run => {}
        Cli::Help => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Cli::Unknown(arg) => {
            eprintln!("local: unknown argument {arg:?}\n");
            eprint!("{}", help());
            return ExitCode::from(2);
        }
    }
    let setup = (|| -> Result<_, ConfigError> {
        Ok((
            ports(&Env)?,
            EmulatorConfig::from_source(&Env)?,
            TelemetryConfig::from_source(&Env)?,
        ))
    })();
    let (ports, emulator_cfg, telemetry) = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("local: {e}\n(run `local --help` for every setting)");
            return ExitCode::from(2);
        }
    };
    shared::telemetry::init(&telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("local: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(ports, emulator_cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local: {e:#}");
            ExitCode::FAILURE
        }
    }
}
