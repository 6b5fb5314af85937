//! `metadata-emulator`: a local GCE metadata server minting real signed ID tokens.
//! Configure with environment variables; `--help` lists them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::task::Poll;

use emulator::{Emulator, EmulatorConfig, JWKS_PATH, client_setup};
use shared::config::{Cli, ConfigError, Env, Reader, Setting, Source, parse_cli, render_help};

const LISTEN: &[Setting] = &[
    Setting {
        name: "PORT",
        default: "8085",
        help: "listen port",
    },
    Setting {
        name: "EMULATOR_BIND",
        default: "127.0.0.1",
        help: "listen address; keep it on loopback: whoever reaches it can mint tokens",
    },
    Setting {
        name: "RUST_LOG",
        default: "info",
        help: "log filter",
    },
];

fn help() -> String {
    render_help(
        "metadata-emulator",
        "a local GCE metadata server that mints real RS256-signed ID tokens",
        &[
            ("Listening", LISTEN),
            ("Emulator", EmulatorConfig::SETTINGS),
        ],
    ) + "\n"
        + &client_setup("127.0.0.1:PORT")
        + "\nIts /emulator/* routes (mint, rotate, faults) answer only loopback Host headers.\n"
}

fn settings(src: &dyn Source) -> Result<(SocketAddr, EmulatorConfig), ConfigError> {
    let r = Reader::new(src);
    let port: u16 = r.parse("PORT", 8085)?;
    let ip: IpAddr = r.parse("EMULATOR_BIND", IpAddr::V4(Ipv4Addr::LOCALHOST))?;
    let mut cfg = EmulatorConfig::from_source(src)?;
    cfg.bind = (!ip.is_loopback()).then_some(ip);
    Ok((SocketAddr::new(ip, port), cfg))
}

#[tokio::main]
async fn main() -> ExitCode {
    match parse_cli(std::env::args()) {
        Cli::Run => {}
        Cli::Help => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Cli::Unknown(arg) => {
            eprintln!("unknown argument {arg:?}\n\n{}", help());
            return ExitCode::from(2);
        }
    }
    let (addr, cfg) = match settings(&Env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let emulator = match Emulator::try_new(cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    // Poll the shutdown future once so SIGINT/SIGTERM handlers exist before we announce.
    let mut shutdown = std::pin::pin!(shared::shutdown::signal());
    let early = std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready()));
    if early.await {
        return ExitCode::SUCCESS;
    }
    if !local.ip().is_loopback() {
        tracing::warn!(
            %local,
            "listening beyond loopback: anyone who reaches this address gets tokens from the metadata routes; /emulator/* still answers only loopback Host headers (or {})",
            local.ip()
        );
    }
    println!(
        "metadata emulator ready: export GCE_METADATA_HOST={local}  (key set: http://{local}{JWKS_PATH}, identity: {})\n{}",
        emulator.config().service_account,
        client_setup(&local.to_string())
    );
    tokio::select! {
        served = axum::serve(listener, emulator.router()) => {
            if let Err(e) = served {
                tracing::error!(error = %e, "server failed");
                return ExitCode::FAILURE;
            }
        }
        () = shutdown => {}
    }
    ExitCode::SUCCESS
}
