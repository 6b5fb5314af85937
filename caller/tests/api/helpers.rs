//! Spawning the emulator, called and caller on loopback with real signed tokens.

use std::net::SocketAddr;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};
use reqwest::Response;
use serde_json::Value;
use shared::config::MapSource;
use tokio::sync::oneshot;

/// The end user allowed to call the caller.
pub const USER: &str = "developer@example.com";

pub struct Emu {
    pub emulator: Emulator,
    pub addr: SocketAddr,
}

impl Emu {
    pub fn jwks_url(&self) -> String {
        format!("http://{}/oauth2/v3/certs", self.addr)
    }
    pub fn sa(&self) -> String {
        self.emulator.config().service_account.clone()
    }
}

pub async fn spawn_emulator() -> Emu {
    shared::telemetry::init_for_tests();
    let emulator = Emulator::new(EmulatorConfig::default());
    let (addr, _) = emulator
        .clone()
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    Emu { emulator, addr }
}

/// A running service; stopped when dropped.
pub struct Service {
    pub base: String,
    _stop: oneshot::Sender<()>,
    _dir: Option<tempfile::TempDir>,
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    (l, base)
}

/// called with full verification against the emulator, allowing the emulator's account.
pub async fn spawn_called(emu: &Emu, extra: &[(&str, &str)]) -> Service {
    let (l, base) = listener().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut src = MapSource::from_pairs([("AUTH_MODE", "verify")])
        .with("AUTH_AUDIENCES", base.clone())
        .with("AUTH_ALLOWED_PRINCIPALS", emu.sa())
        .with("AUTH_JWKS_URL", emu.jwks_url())
        .with(
            "DATABASE_URL",
            format!("sqlite://{}/called.db", dir.path().display()),
        );
    for (k, v) in extra {
        src = src.with(k, *v);
    }
    let cfg = called::Config::from_source(&src).expect("called config");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(called::run(cfg, l, async {
        let _ = rx.await;
    }));
    Service {
        base,
        _stop: tx,
        _dir: Some(dir),
    }
}

/// caller protected by verification (allowing [`USER`]) and fetching tokens from the emulator.
pub async fn spawn_caller(emu: &Emu, called_base: &str, extra: &[(&str, &str)]) -> Service {
    let (l, base) = listener().await;
    let mut src = MapSource::from_pairs([("AUTH_MODE", "verify"), ("TOKEN_SOURCE", "metadata")])
        .with("AUTH_AUDIENCES", base.clone())
        .with("AUTH_ALLOWED_PRINCIPALS", USER)
        .with("AUTH_JWKS_URL", emu.jwks_url())
        .with("CALLED_URL", called_base)
        .with("GCE_METADATA_HOST", emu.addr.to_string());
    for (k, v) in extra {
        src = src.with(k, *v);
    }
    let cfg = caller::Config::from_source(&src).expect("caller config");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(caller::run(cfg, l, async {
        let _ = rx.await;
    }));
    wait_status(&format!("{base}/health/live"), 200).await;
    Service {
        base,
        _stop: tx,
        _dir: None,
    }
}

pub async fn wait_status(url: &str, status: u16) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(url).send().await
            && r.status().as_u16() == status
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} never answered {status}");
}

/// A token for [`USER`] to call the caller at `base`.
pub fn user_token(emu: &Emu, caller_base: &str) -> String {
    emu.emulator
        .mint(USER, caller_base, Duration::from_secs(600))
}

pub async fn post(base: &str, token: Option<&str>, body: &Value) -> Response {
    let mut req = reqwest::Client::new().post(format!("{base}/")).json(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.expect("request")
}

/// Asserts a problem+json body with `status`, returning (detail, WWW-Authenticate, Retry-After).
pub async fn problem(res: Response, status: u16) -> (String, Option<String>, Option<String>) {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let h = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (www, retry) = (h("www-authenticate"), h("retry-after"));
    assert_eq!(
        h("content-type").as_deref(),
        Some("application/problem+json")
    );
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["status"], status);
    (
        v["detail"].as_str().unwrap_or_default().to_owned(),
        www,
        retry,
    )
}

/// Just the full chain: emulator, called, caller — ready.
pub struct Chain {
    pub emu: Emu,
    pub called: Service,
    pub caller: Service,
}

pub async fn spawn_chain() -> Chain {
    let emu = spawn_emulator().await;
    let called = spawn_called(&emu, &[]).await;
    let caller = spawn_caller(&emu, &called.base, &[]).await;
    wait_status(&format!("{}/health/ready", caller.base), 200).await;
    Chain {
        emu,
        called,
        caller,
    }
}
