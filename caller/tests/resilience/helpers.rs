//! The emulator and called in this process; the real `caller` binary as a child.

use shared::config::MapSource;
use tokio::sync::oneshot;

pub use crate::emu::{Emu, USER};
use crate::proc::Spec;

/// called in this process, verifying tokens against the emulator and allowing its service
/// account. Stops when dropped.
pub struct Called {
    pub base: String,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

pub async fn spawn_called(emu: &Emu) -> Called {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let dir = tempfile::tempdir().expect("tempdir");
    let src = MapSource::from_pairs([("AUTH_MODE", "verify")])
        .with("AUTH_AUDIENCES", base.clone())
        .with("AUTH_ALLOWED_PRINCIPALS", emu.sa())
        .with("AUTH_JWKS_URL", emu.jwks_url())
        .with(
            "DATABASE_URL",
            format!("sqlite://{}/called.db", dir.path().display()),
        );
    let cfg = called::Config::from_source(&src).expect("called config");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(called::run(cfg, l, async {
        let _ = rx.await;
    }));
    Called {
        base,
        _stop: tx,
        _dir: dir,
    }
}

/// The real `caller` binary on `port`: protected (only [`USER`], audience
/// `http://127.0.0.1:PORT`), tokens from the emulator, forwarding to `called_base`.
pub fn caller_spec(emu: &Emu, port: u16, called_base: &str) -> Spec {
    Spec::new(
        env!("CARGO_BIN_EXE_caller"),
        &[
            ("AUTH_MODE", "verify"),
            ("TOKEN_SOURCE", "metadata"),
            ("AUTH_ALLOWED_PRINCIPALS", USER),
        ],
    )
    .with("AUTH_AUDIENCES", format!("http://127.0.0.1:{port}"))
    .with("AUTH_JWKS_URL", emu.jwks_url())
    .with("CALLED_URL", called_base)
    .with("GCE_METADATA_HOST", emu.addr.to_string())
}
