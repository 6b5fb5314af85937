//! `called`, `caller` or the whole chain in this process, each on 127.0.0.1:0.

use std::future::Future;
use std::net::SocketAddr;

use shared::config::MapSource;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::emu::{Emu, USER};
use crate::{ready, wiring};

/// A service running in this process; stopped (gracefully) when dropped.
pub struct Service {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _store: Option<tempfile::TempDir>,
}

impl Service {
    /// Starts `called` on a new port with the settings `settings` gives for its base URL.
    /// Returns at once (no readiness wait).
    pub async fn called(settings: impl FnOnce(&str) -> MapSource) -> Self {
        Self::start(settings, |src, listener, stop| {
            let cfg = called::Config::from_source(src).expect("called config");
            called::run(cfg, listener, stop)
        })
        .await
    }

    /// Starts `caller` like [`Service::called`].
    pub async fn caller(settings: impl FnOnce(&str) -> MapSource) -> Self {
        Self::start(settings, |src, listener, stop| {
            let cfg = caller::Config::from_source(src).expect("caller config");
            caller::run(cfg, listener, stop)
        })
        .await
    }

    /// Starts `caller` like [`Service::caller`], on a listener bound beforehand (so that a
    /// service started before it can know its URL).
    pub async fn caller_on(
        listener: tokio::net::TcpListener,
        settings: impl FnOnce(&str) -> MapSource,
    ) -> Self {
        Self::start_on(listener, settings, |src, listener, stop| {
            let cfg = caller::Config::from_source(src).expect("caller config");
            caller::run(cfg, listener, stop)
        })
    }

    async fn start<F>(
        settings: impl FnOnce(&str) -> MapSource,
        run: impl FnOnce(&MapSource, tokio::net::TcpListener, Stopped) -> F,
    ) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self::start_on(loopback_listener().await, settings, run)
    }

    fn start_on<F>(
        listener: tokio::net::TcpListener,
        settings: impl FnOnce(&str) -> MapSource,
        run: impl FnOnce(&MapSource, tokio::net::TcpListener, Stopped) -> F,
    ) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        shared::telemetry::init_for_tests();
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(&settings(&base), listener, Stopped(rx)));
        Self {
            base,
            addr,
            stop: Some(tx),
            task: Some(task),
            _store: None,
        }
    }

    /// Keeps `dir` (the service's store) alive as long as the service.
    pub fn keeping(mut self, dir: tempfile::TempDir) -> Self {
        self._store = Some(dir);
        self
    }

    /// `GET {path}` on this (called) service as the emulator's service account: the JSON body.
    pub async fn get_as_sa(&self, emu: &Emu, path: &str) -> serde_json::Value {
        let token = emu
            .emulator
            .mint(&emu.sa(), &self.base, std::time::Duration::from_secs(60));
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }

    /// Stops the service the way SIGTERM would and waits for it: its run's outcome.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

/// The shutdown future handed to a service: completes when its [`Service`] stops or drops.
pub struct Stopped(oneshot::Receiver<()>);

impl Future for Stopped {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A listener on 127.0.0.1:0.
pub async fn loopback_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// A fresh SQLite file: its `DATABASE_URL` and the folder that keeps it alive.
pub fn sqlite_store() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/called.db", dir.path().display());
    (url, dir)
}

/// `called` with full verification against the emulator, allowing its service account, on a
/// fresh SQLite file; `extra` settings on top. Returns at once (no readiness wait).
pub async fn spawn_called(emu: &Emu, extra: &[(&str, &str)]) -> Service {
    let (database_url, dir) = sqlite_store();
    Service::called(|base| {
        wiring::source(
            &wiring::called_verifying(base, &emu.sa(), emu.addr),
            &[&[("DATABASE_URL", database_url.as_str())], extra].concat(),
        )
    })
    .await
    .keeping(dir)
}

/// `caller` protected by verification (allowing [`USER`]), fetching tokens from the emulator
/// and forwarding to `called_base`; `extra` settings on top. Waits until it is live.
pub async fn spawn_caller(emu: &Emu, called_base: &str, extra: &[(&str, &str)]) -> Service {
    let caller = Service::caller(|base| {
        wiring::source(
            &wiring::caller_verifying(base, USER, emu.addr, called_base),
            extra,
        )
    })
    .await;
    ready::wait_for(&format!("{}/health/live", caller.base), 200).await;
    caller
}

/// The full chain: emulator, called, caller.
pub struct Chain {
    /// The emulator.
    pub emu: Emu,
    /// called, verifying the emulator's service account.
    pub called: Service,
    /// caller, allowing [`USER`] and forwarding to `called`.
    pub caller: Service,
}

/// Starts the full chain — called trusting the caller's account to forward its end user's
/// identity, as deployed — and waits until caller is ready.
pub async fn spawn_chain() -> Chain {
    let emu = Emu::start().await;
    let caller_listener = loopback_listener().await;
    let caller_base = format!("http://{}", caller_listener.local_addr().expect("addr"));
    let forwarding = wiring::forwarding(&emu.sa(), &caller_base);
    let forwarding: Vec<(&str, &str)> = forwarding.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let called = spawn_called(&emu, &forwarding).await;
    let called_base = called.base.clone();
    let caller = Service::caller_on(caller_listener, |base| {
        wiring::source(
            &wiring::caller_verifying(base, USER, emu.addr, &called_base),
            &[],
        )
    })
    .await;
    ready::wait_for(&format!("{}/health/live", caller.base), 200).await;
    ready::wait_ready(&caller.base).await;
    Chain {
        emu,
        called,
        caller,
    }
}
