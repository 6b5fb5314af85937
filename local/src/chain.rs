//! The `local` binary's run: the emulator, `called` (SQLite by default, full verification,
//! only the emulator's service account) and `caller` (tokens from the emulator, its own
//! endpoint protected) in one process on fixed loopback ports, until Ctrl-C. With
//! [`Ports::iap`], an IAP front ([`crate::iap_front`]) on its own port in front of `caller`, and
//! the chain configured as behind IAP on Cloud Run ([`wiring::iap_front`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use emulator::{Emulator, EmulatorConfig};
use shared::config::{Env, Overlay};
use tokio::sync::watch;

use crate::iap_front::IapFront;
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
    /// `Some`: the chain behind an IAP front.
    pub iap: Option<IapOptions>,
}

/// The IAP front's port and who may use the caller behind it.
#[derive(Debug, Clone)]
pub struct IapOptions {
    /// The front's port on 127.0.0.1.
    pub port: u16,
    /// The caller's allow-list behind the front (emails or `*@domain`, comma-separated).
    pub people: String,
}

impl IapOptions {
    /// A person the printed `curl` names: the first entry of [`IapOptions::people`] (`alice`
    /// in a `*@domain` pattern's domain).
    pub fn example_person(&self) -> String {
        let first = self.people.split(',').next().unwrap_or("").trim();
        match first.strip_prefix("*@") {
            Some(domain) => format!("alice@{domain}"),
            None if first.contains('@') => first.to_owned(),
            None => "alice@example.com".to_owned(),
        }
    }
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
    let iap_audience = wiring::iap_audience();
    let iap = p.iap.as_ref().map(|o| {
        (
            o,
            wiring::iap_front(&caller_url, &iap_audience, &o.people, emu_addr),
        )
    });

    // called trusts the caller's account to forward its end user's identity, so the entity
    // says on whose behalf it was written.
    let mut called_pairs = wiring::called_verifying(&called_url, &sa, emu_addr);
    called_pairs.extend(wiring::forwarding(&sa, &caller_url));
    if let Some((_, w)) = &iap {
        called_pairs.extend(w.called.iter().cloned());
    }
    let called_fixed = wiring::source(&called_pairs, &[("AUTH_ALLOW_ANY_PRINCIPAL", "false")]);
    let called_cfg = called::Config::from_source(&Overlay {
        first: &called_fixed,
        then: &Env,
    })
    .context("called settings")?;
    let mut caller_pairs = wiring::caller_verifying(&caller_url, &p.user, emu_addr, &called_url);
    if let Some((_, w)) = &iap {
        caller_pairs.extend(w.caller.iter().cloned());
    }
    let caller_fixed = wiring::source(
        &caller_pairs,
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
    let caller_task = tokio::spawn(caller::run(
        caller_cfg,
        caller_listener,
        stopped(stop_rx.clone()),
    ));
    let front = match &iap {
        Some((o, _)) => {
            let listener = shared::server::bind(lo(o.port))
                .await
                .context("set LOCAL_IAP_PORT")?;
            let url = format!("http://{}", listener.local_addr()?);
            let front = IapFront::new(emulator.clone(), &caller_url, &iap_audience)?;
            let task = tokio::spawn(front.serve(listener, stopped(stop_rx)));
            Some((url, task))
        }
        None => None,
    };

    if ready::poll_status(&format!("{caller_url}/health/ready"), 200, || None)
        .await
        .is_err()
    {
        tracing::warn!("caller is not ready yet; the curl below may answer 503 for a moment");
    }
    match (&front, &iap) {
        (Some((front_url, _)), Some((o, _))) => println!(
            "\ninvoker is running behind an IAP front: front {front_url}  caller {caller_url}  called {called_url}  emulator http://{emu_addr}\n\
             The front plays IAP on Cloud Run: it takes the signed-in person from X-Local-Iap-User, drops client x-goog-* headers,\n\
             adds X-Goog-IAP-JWT-Assertion (ES256, aud {iap_audience}) and IAP's service agent token. caller accepts {people}. Try:\n\n\
             curl -sS -X POST {front_url}/ -H 'X-Local-Iap-User: {person}' -H 'Content-Type: application/json' -d '{{\"foo\":\"hello\"}}'\n\n\
             IAP's keys: http://{emu_addr}{iap_keys}. Ctrl-C stops all four.\n",
            people = o.people,
            person = o.example_person(),
            iap_keys = emulator::IAP_JWKS_PATH,
        ),
        _ => {
            let token = emulator.mint(&p.user, &caller_url, Duration::from_secs(3600));
            println!(
                "\ninvoker is running: emulator http://{emu_addr}  called {called_url}  caller {caller_url}\n\
             caller accepts {user}; called accepts {sa}. Try (token valid 1 h):\n\n\
             curl -sS -X POST {caller_url}/ -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"foo\":\"hello\"}}'\n\n\
             A fresh token: curl -sS -X POST http://{emu_addr}/emulator/mint -H 'Content-Type: application/json' -d '{{\"email\":\"{user}\",\"audience\":\"{caller_url}\"}}'\n\
             Ctrl-C stops all three.\n",
                user = p.user,
            );
        }
    }

    shared::shutdown::signal().await;
    let _ = stop_tx.send(true);
    let (a, b) = tokio::join!(called_task, caller_task);
    a.context("called task")??;
    b.context("caller task")??;
    if let Some((_, task)) = front {
        task.await.context("IAP front task")??;
    }
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
