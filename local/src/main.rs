//! `local`: the whole chain on loopback in one process — the metadata-server emulator, `called`
//! (SQLite by default, full signature verification against the emulator's key set, only the
//! emulator's service account allowed) and `caller` (tokens from the emulator through the
//! metadata-server protocol, its own endpoint protected). Prints a `curl` line that works as-is.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use emulator::{Emulator, EmulatorConfig};
use shared::config::{
    Cli, ConfigError, Env, MapSource, Overlay, Reader, Setting, Source, parse_cli, render_help,
};
use shared::telemetry::TelemetryConfig;
use tokio::sync::watch;

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
const SETTINGS: &[Setting] = &[PORT, CALLED_PORT, EMULATOR_PORT, DATABASE_URL, LOCAL_USER];

struct Ports {
    caller: u16,
    called: u16,
    emulator: u16,
    user: String,
}

fn ports(src: &dyn Source) -> Result<Ports, ConfigError> {
    let r = Reader::new(src);
    Ok(Ports {
        caller: r.parse(&PORT)?,
        called: r.parse(&CALLED_PORT)?,
        emulator: r.parse(&EMULATOR_PORT)?,
        user: r.parse(&LOCAL_USER)?,
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

async fn run(p: Ports, emulator_cfg: EmulatorConfig) -> anyhow::Result<()> {
    let lo = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let emulator = Emulator::new(emulator_cfg);
    let (emu_addr, _emu) = emulator
        .clone()
        .spawn(lo(p.emulator))
        .await
        .with_context(|| format!("cannot listen on {} (set EMULATOR_PORT)", lo(p.emulator)))?;
    let called_listener = shared::server::bind(lo(p.called))
        .await
        .context("set CALLED_PORT")?;
    let caller_listener = shared::server::bind(lo(p.caller))
        .await
        .context("set PORT")?;
    let called_url = format!("http://{}", called_listener.local_addr()?);
    let caller_url = format!("http://{}", caller_listener.local_addr()?);
    let jwks = format!("http://{emu_addr}/oauth2/v3/certs");
    let sa = emulator.config().service_account.clone();

    let called_fixed = MapSource::default()
        .with("AUTH_MODE", "verify")
        .with("AUTH_AUDIENCES", called_url.clone())
        .with("AUTH_ALLOWED_PRINCIPALS", sa.clone())
        .with("AUTH_ALLOW_ANY_PRINCIPAL", "false")
        .with("AUTH_JWKS_URL", jwks.clone());
    let called_cfg = called::Config::from_source(&Overlay {
        first: &called_fixed,
        then: &Env,
    })
    .context("called settings")?;
    let caller_fixed = MapSource::default()
        .with("AUTH_MODE", "verify")
        .with("AUTH_AUDIENCES", caller_url.clone())
        .with("AUTH_ALLOWED_PRINCIPALS", p.user.clone())
        .with("AUTH_ALLOW_ANY_PRINCIPAL", "false")
        .with("AUTH_JWKS_URL", jwks)
        .with("CALLED_URL", called_url.clone())
        .with("CALLED_AUDIENCE", called_url.clone())
        .with("TOKEN_SOURCE", "metadata")
        .with("GCE_METADATA_HOST", emu_addr.to_string());
    let caller_cfg = caller::Config::from_source(&Overlay {
        first: &caller_fixed,
        then: &Env,
    })
    .context("caller settings")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let called_task = tokio::spawn(called::run(
        called_cfg,
        called_listener,
        stopped(stop_rx.clone()),
    ));
    let caller_task = tokio::spawn(caller::run(caller_cfg, caller_listener, stopped(stop_rx)));

    wait_ready(&format!("{caller_url}/health/ready")).await;
    let token = emulator.mint(&p.user, &caller_url, Duration::from_secs(3600));
    println!(
        "\ninvoker is running: emulator http://{emu_addr}  called {called_url}  caller {caller_url}\n\
         caller accepts {user}; called accepts {sa}. Try (token valid 1 h):\n\n\
         curl -sS -X POST {caller_url}/ -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"foo\":\"hello\"}}'\n\n\
         A fresh token: curl -sS -X POST http://{emu_addr}/emulator/mint -H 'Content-Type: application/json' -d '{{\"email\":\"{user}\",\"audience\":\"{caller_url}\"}}'\n\
         Ctrl-C stops all three.\n",
        user = p.user,
    );

    shared::shutdown::signal().await;
    let _ = stop_tx.send(true);
    let (a, b) = tokio::join!(called_task, caller_task);
    a.context("called task")??;
    b.context("caller task")??;
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!("caller is not ready yet; the curl below may answer 503 for a moment");
}
