//! One way to start a binary: settings → telemetry → runtime → bind → serve → graceful
//! shutdown. `caller`, `called`, `metadata-emulator` and `local` all call [`main`].

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::server::bind;

/// What [`main`] needs to know of a binary's settings.
pub trait ServiceConfig {
    /// Logging settings.
    fn telemetry(&self) -> &crate::telemetry::TelemetryConfig;
    /// Where to listen: `0.0.0.0:PORT` for a service.
    fn listen_addr(&self) -> SocketAddr;
}

/// The whole of a binary's `main` — every binary of the workspace starts through it:
/// `--help`, settings (a bad one exits 2 before binding, naming the variable), telemetry
/// (`LOG_FORMAT`, `RUST_LOG`), the runtime, bind [`ServiceConfig::listen_addr`], then `run`
/// until SIGTERM/SIGINT. Exit 0 after a clean drain, 1 on a runtime failure.
pub fn main<C, Fut>(
    name: &str,
    help: fn() -> String,
    load: fn(&dyn crate::config::Source) -> Result<C, crate::config::ConfigError>,
    run: impl FnOnce(C, TcpListener) -> Fut,
) -> std::process::ExitCode
where
    C: ServiceConfig,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;

    use crate::config::{Cli, Env, parse_cli};

    match parse_cli(std::env::args()) {
        Cli::Run => {}
        Cli::Help => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Cli::Unknown(arg) => {
            eprintln!("{name}: unknown argument {arg:?}; settings are environment variables\n");
            eprint!("{}", help());
            return ExitCode::from(2);
        }
    }
    let cfg = match load(&Env) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{name}: {e}\n(run `{name} --help` for every setting)");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_named(cfg.telemetry(), name);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = bind(cfg.listen_addr()).await?;
        run(cfg, listener).await
    });
    // Tasks still running log until the runtime is gone; then the last lines are flushed.
    drop(runtime);
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "{name} failed");
    }
    // Spans still batched go out first (their exporter may log), within a bound of their own.
    crate::telemetry::otel::shutdown(crate::telemetry::otel::EXIT_EXPORT);
    // Log lines are written in batches by a thread of their own: the last ones go out before
    // the process ends, waiting at most `telemetry::EXIT_FLUSH` (1 s) for an output nobody
    // reads — the exit is never held by a blocked stdout.
    crate::telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
