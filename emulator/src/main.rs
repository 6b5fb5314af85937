//! `metadata-emulator`: a local GCE metadata server minting real signed ID tokens.
//! Configure with environment variables; `--help` lists them. Starts like every binary of
//! the workspace, through `shared::binary::main`.

use std::net::{IpAddr, SocketAddr};
use std::task::Poll;

use emulator::{Emulator, EmulatorConfig, JWKS_PATH, client_setup};
use shared::config::{ConfigError, Reader, Setting, Source, render_help};
use shared::telemetry::TelemetryConfig;

/// `PORT`.
const PORT: Setting = Setting::new("PORT", "8085", "listen port");
/// `EMULATOR_BIND`.
const EMULATOR_BIND: Setting = Setting::new(
    "EMULATOR_BIND",
    "127.0.0.1",
    "listen address; keep it on loopback: whoever reaches it can mint tokens",
);
const LISTEN: &[Setting] = &[PORT, EMULATOR_BIND];

const HELP_GROUPS: &[(&str, &[Setting])] = &[
    ("Listening", LISTEN),
    ("Logging", TelemetryConfig::SETTINGS),
    ("Emulator", EmulatorConfig::SETTINGS),
];

/// Everything the binary reads from its environment.
struct Settings {
    addr: SocketAddr,
    telemetry: TelemetryConfig,
    emulator: EmulatorConfig,
}

impl shared::binary::ServiceConfig for Settings {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
    fn listen_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn help() -> String {
    render_help(
        "metadata-emulator",
        "a local GCE metadata server that mints real RS256-signed ID tokens",
        HELP_GROUPS,
    ) + "\n"
        + &client_setup("127.0.0.1:PORT")
        + "\nIts /emulator/* routes (mint, iap/assertion, rotate, faults) answer only loopback Host headers; its\n\
           metadata routes also metadata.google.internal, metadata and 169.254.169.254 (others\n\
           get 403: DNS rebinding).\n"
}

fn settings(src: &dyn Source) -> Result<Settings, ConfigError> {
    let r = Reader::new(src);
    let port: u16 = r.parse(&PORT)?;
    let ip: IpAddr = r.parse(&EMULATOR_BIND)?;
    let mut emulator = EmulatorConfig::from_source(src)?;
    emulator.bind = (!ip.is_loopback()).then_some(ip);
    Ok(Settings {
        addr: SocketAddr::new(ip, port),
        telemetry: TelemetryConfig::from_source(src)?,
        emulator,
    })
}

async fn run(cfg: Settings, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let emulator = Emulator::try_new(cfg.emulator)?;
    let local = listener.local_addr().unwrap_or(cfg.addr);
    // Poll the shutdown future once so SIGINT/SIGTERM handlers exist before we announce.
    let mut shutdown = std::pin::pin!(shared::shutdown::signal());
    let early = std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready()));
    if early.await {
        return Ok(());
    }
    if !local.ip().is_loopback() {
        tracing::warn!(
            %local,
            "listening beyond loopback: anyone who reaches this address gets tokens from the metadata routes (addressed as {} or a metadata name); /emulator/* still answers only loopback Host headers (or {})",
            local.ip(),
            local.ip()
        );
    }
    println!(
        "metadata emulator ready: export GCE_METADATA_HOST={local}  (key set: http://{local}{JWKS_PATH}, identity: {})\n{}",
        emulator.config().service_account,
        client_setup(&local.to_string())
    );
    shared::server::serve(
        listener,
        emulator.router(),
        shutdown,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(10),
    )
    .await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    shared::binary::main("metadata-emulator", help, settings, run)
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
        let missing =
            shared::config::undocumented(HELP_GROUPS, &["K_SERVICE"], parse, &MapSource::default());
        assert!(missing.is_empty(), "read but not in --help: {missing:?}");
    }
}
