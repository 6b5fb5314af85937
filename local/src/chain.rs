//! The `local` binary's run: the emulator, `called` (SQLite by default, full verification,
//! only the emulator's service account) and `caller` (tokens from the emulator, its own
//! endpoint protected) in one process on fixed loopback ports, until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use emulator::{Emulator, EmulatorConfig};
use shared::config::{Env, Overlay};
use tokio::sync::watch;

use crate::{ready, wiring};

/// Where the chain listens on 127.0.0.1, and who may call `caller`.
#[derive(Debug, Clone)]
pub struct Ports {
    /// caller's port.
    pub caller: u16,
    /// called's port.
    pub called: u16,
    /// The emulator's port.
    pub emulator: u16,
    /// The end user allowed to call caller; the printed `curl` carries a token for it.
    pub user: String,
}

/// Starts all three (caller on `caller_listener`, bound by `shared::binary::main` on
/// [`Ports::caller`]), prints a `curl` line that works as-is, and serves until the shutdown
/// signal. Settings not fixed by the wiring come from the environment.
pub async fn run(
    p: Ports,
    emulator_cfg: EmulatorConfig,
    caller_listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
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
    let called_url = format!("http://{}", called_listener.local_addr()?);
    let caller_url = format!("http://{}", caller_listener.local_addr()?);
    let sa = emulator.config().service_account.clone();

    // called trusts the caller's account to forward its end user's identity, so the entity
    // says on whose behalf it was written.
    let mut called_pairs = wiring::called_verifying(&called_url, &sa, emu_addr);
    called_pairs.extend(wiring::forwarding(&sa, &caller_url));
    let called_fixed = wiring::source(&called_pairs, &[("AUTH_ALLOW_ANY_PRINCIPAL", "false")]);
    let called_cfg = called::Config::from_source(&Overlay {
        first: &called_fixed,
        then: &Env,
    })
    .context("called settings")?;
    let caller_fixed = wiring::source(
        &wiring::caller_verifying(&caller_url, &p.user, emu_addr, &called_url),
        &[
            ("AUTH_ALLOW_ANY_PRINCIPAL", "false"),
            ("CALLED_AUDIENCE", &called_url),
        ],
    );
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

    if ready::poll_status(&format!("{caller_url}/health/ready"), 200, || None)
        .await
        .is_err()
    {
        tracing::warn!("caller is not ready yet; the curl below may answer 503 for a moment");
    }
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
