//! IAP as tests meet it: assertions from the emulator for a person and an audience, the
//! assertions a verifier must refuse (each wrong in one thing), IAP's service agent's stripped
//! token, and the whole chain behind the IAP front in this process ([`iap_chain`]).

use std::net::SocketAddr;
use std::time::Duration;

use emulator::{IAP_SERVICE_AGENT, IapAssertion};
use local::iap_front::{IapFront, USER_HEADER};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::claims::now;
use crate::emu::Emu;
use crate::in_process::{Service, loopback_listener, spawn_called};
use crate::{ready, wiring};

/// The person the IAP chain allows by default.
pub const PERSON: &str = "alice@example.com";

/// The service agent IAP presents to a Cloud Run service (re-exported from the emulator).
pub const SERVICE_AGENT: &str = IAP_SERVICE_AGENT;

/// IAP assertions a verifier must refuse, each for the good assertion's person and audience
/// but wrong in the one thing named.
#[derive(Debug, Clone)]
pub struct IapMisuse {
    /// The current IAP `kid` in the header, signed ES256 by another P-256 key.
    pub forged: String,
    /// `alg` `RS256` with the IAP `kid`, signed by the emulator's Google (RSA) key.
    pub rs256: String,
    /// For another audience (`/projects/000000000000/global/backendServices/1`).
    pub wrong_audience: String,
    /// `iss` `https://accounts.google.com` instead of IAP's.
    pub wrong_issuer: String,
    /// Issued two hours ago, expired 1h50 ago.
    pub expired: String,
    /// `exp − iat` = 36000 (ten hours; IAP's are ten minutes).
    pub ten_hours: String,
    /// A good assertion whose signature was replaced by `SIGNATURE_REMOVED_BY_GOOGLE` (Cloud
    /// Run never strips IAP's assertion: such a header was written by hand).
    pub stripped: String,
}

impl IapMisuse {
    /// Each refused assertion with the refusal code the contract's logs give it
    /// (`signature`, `algorithm`, `audience`, `issuer`, `expired`, `lifetime`). The stripped one
    /// is not listed (its code depends on how a verifier reads it): see [`IapMisuse::all`].
    pub fn cases(&self) -> [(&'static str, &str); 6] {
        [
            ("signature", &self.forged),
            ("algorithm", &self.rs256),
            ("audience", &self.wrong_audience),
            ("issuer", &self.wrong_issuer),
            ("expired", &self.expired),
            ("lifetime", &self.ten_hours),
        ]
    }

    /// Every refused assertion, the stripped one included (what must never reach a log line).
    pub fn all(&self) -> [&str; 7] {
        [
            &self.forged,
            &self.rs256,
            &self.wrong_audience,
            &self.wrong_issuer,
            &self.expired,
            &self.ten_hours,
            &self.stripped,
        ]
    }
}

impl Emu {
    /// The emulator's IAP key set (JWKS): the value of `AUTH_IAP_JWKS_URL`.
    pub fn iap_jwks_url(&self) -> String {
        wiring::iap_jwks_url(self.addr)
    }

    /// A valid IAP assertion for `email` at `audience` (ES256, ten minutes, IAP's claims).
    pub fn iap_assertion(&self, email: &str, audience: &str) -> String {
        self.emulator.mint_iap(&IapAssertion::new(email, audience))
    }

    /// The [`IapMisuse`] assertions for `email` at `audience`.
    pub fn iap_misuse(&self, email: &str, audience: &str) -> IapMisuse {
        let good = IapAssertion::new(email, audience);
        let claims = good.claims(now());
        let emu = &self.emulator;
        let iap_kid = emu.current_iap_kid();
        IapMisuse {
            forged: emu.forge_iap(claims.clone()),
            rs256: emu.sign_with_header(
                json!({"alg": "RS256", "kid": iap_kid, "typ": "JWT"}),
                claims.clone(),
            ),
            wrong_audience: emu.mint_iap(&IapAssertion::new(
                email,
                "/projects/000000000000/global/backendServices/1",
            )),
            wrong_issuer: emu.mint_iap(&good.clone().with_issuer("https://accounts.google.com")),
            expired: emu.mint_iap(&good.clone().with_issued_at(now() - 7200)),
            ten_hours: emu.mint_iap(&good.with_lifetime(Duration::from_secs(36_000))),
            stripped: emulator::strip_signature(&emu.sign_iap(claims)),
        }
    }

    /// IAP's service agent's ID token for `audience` (the service's URL), its signature
    /// replaced by `SIGNATURE_REMOVED_BY_GOOGLE`: the container's `X-Serverless-Authorization`
    /// behind IAP.
    pub fn iap_service_agent_token(&self, audience: &str) -> String {
        self.emulator.iap_service_agent_token(audience)
    }
}

/// The whole chain behind an IAP front, in this process: the front, then caller (as behind IAP
/// on Cloud Run) forwarding to called. Everything stops when it is dropped.
pub struct IapChain {
    /// The emulator: IAP's and Google's keys, minting, faults.
    pub emu: Emu,
    /// The front's URL (`http://127.0.0.1:PORT`): where a person's requests go.
    pub front: String,
    /// The front's address.
    pub front_addr: SocketAddr,
    /// The IAP audience of the caller (`/projects/000000000000/locations/local/services/caller`).
    pub audience: String,
    /// caller, behind the front; its `base` is reachable directly (for forged-header tests).
    pub caller: Service,
    /// called.
    pub called: Service,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for IapChain {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// [`iap_chain_with`] allowing [`PERSON`], no extra settings.
pub async fn iap_chain() -> IapChain {
    iap_chain_with(PERSON, &[], &[]).await
}

/// The chain behind an IAP front, the caller allowing `people` (allow-list syntax), with
/// `caller_extra` / `called_extra` settings on top of the wiring. Waits until caller is ready.
pub async fn iap_chain_with(
    people: &str,
    caller_extra: &[(&str, &str)],
    called_extra: &[(&str, &str)],
) -> IapChain {
    let emu = Emu::start().await;
    let audience = wiring::iap_audience();
    let caller_listener = loopback_listener().await;
    let caller_base = format!("http://{}", caller_listener.local_addr().expect("addr"));
    let iap = wiring::iap_front(&caller_base, &audience, people, emu.addr);
    let mut called_pairs = wiring::forwarding(&emu.sa(), &caller_base);
    called_pairs.extend(iap.called.iter().cloned());
    let called_settings: Vec<(&str, &str)> = called_pairs
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(called_extra.iter().copied())
        .collect();
    let called = spawn_called(&emu, &called_settings).await;
    let called_base = called.base.clone();
    let caller = Service::caller_on(caller_listener, |base| {
        let mut pairs = wiring::caller_verifying(base, PERSON, emu.addr, &called_base);
        pairs.extend(iap.caller.iter().cloned());
        wiring::source(&pairs, caller_extra)
    })
    .await;
    ready::wait_for(&format!("{}/health/live", caller.base), 200).await;
    ready::wait_ready(&caller.base).await;

    let front = IapFront::new(emu.emulator.clone(), &caller.base, &audience).expect("front");
    let listener = loopback_listener().await;
    let front_addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(front.serve(listener, async {
        let _ = stopped.await;
    }));
    IapChain {
        emu,
        front: format!("http://{front_addr}"),
        front_addr,
        audience,
        caller,
        called,
        stop: Some(stop),
        task,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

impl IapChain {
    /// `POST /` through the front as `person` (`None`: nobody signed in, the front answers
    /// 401), with `headers` added (a client's attempt to slip `x-goog-*` past IAP, …).
    pub async fn post(
        &self,
        person: Option<&str>,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> reqwest::Response {
        let mut req = client().post(format!("{}/", self.front)).json(body);
        if let Some(p) = person {
            req = req.header(USER_HEADER, p);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("POST through the IAP front")
    }

    /// A request straight to the caller, around the front, with exactly `headers` (plus
    /// reqwest's `Host`, `Content-Type` and `Content-Length` when `body` is given): what
    /// someone who reaches the container directly can send (forged assertions, hand-written
    /// `X-Goog-Authenticated-User-*`, a stripped token of their choosing).
    pub async fn send_to_caller(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = client().request(method, format!("{}{path}", self.caller.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request to the caller")
    }

    /// A valid assertion for `email` at the caller's IAP audience.
    pub fn assertion(&self, email: &str) -> String {
        self.emu.iap_assertion(email, &self.audience)
    }

    /// The refused assertions for `email` at the caller's IAP audience.
    pub fn misuse(&self, email: &str) -> IapMisuse {
        self.emu.iap_misuse(email, &self.audience)
    }

    /// IAP's service agent's stripped token for the caller's URL, as the front sends it.
    pub fn service_agent_token(&self) -> String {
        self.emu.iap_service_agent_token(&self.caller.base)
    }

    /// The headers the front sends for `email` (assertion, service agent, unsigned person
    /// headers), to replay or alter them in a request straight to the caller.
    pub fn iap_headers(&self, email: &str) -> Vec<(&'static str, String)> {
        vec![
            ("x-goog-iap-jwt-assertion", self.assertion(email)),
            (
                "x-serverless-authorization",
                format!("Bearer {}", self.service_agent_token()),
            ),
            (
                "x-goog-authenticated-user-email",
                format!("accounts.google.com:{email}"),
            ),
            ("x-goog-authenticated-user-id", emulator::iap_subject(email)),
        ]
    }
}
