//! `called` binary: config → telemetry → bind → serve. Exit 2 on a bad setting.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use called::Config;
use shared::config::{Cli, Env, parse_cli};

fn main() -> ExitCode {
    match parse_cli(std::env::args()) {
        Cli::Run => {}
        Cli::Help => {
            print!("{}", Config::help());
            return ExitCode::SUCCESS;
        }
        Cli::Unknown(arg) => {
            eprintln!("called: unknown argument {arg:?}; settings are environment variables\n");
            eprint!("{}", Config::help());
            return ExitCode::from(2);
        }
    }
    let cfg = match Config::from_source(&Env) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("called: {e}\n(run `called --help` for every setting)");
            return ExitCode::from(2);
        }
    };
    shared::telemetry::init(&cfg.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("called: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, cfg.server.port));
        let listener = shared::server::bind(addr).await?;
        called::run(cfg, listener, shared::shutdown::signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "called failed");
            eprintln!("called: {e:#}");
            ExitCode::FAILURE
        }
    }
}
