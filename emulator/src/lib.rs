//! A local GCE metadata server that mints real RS256-signed ID tokens.
//!
//! Point any Google client library at it with `GCE_METADATA_HOST=127.0.0.1:PORT` (Python's
//! ping also wants `GCE_METADATA_IP`); verify its tokens against
//! `http://127.0.0.1:PORT/oauth2/v3/certs` (JWKS) or `…/oauth2/v1/certs` (PEM certificates).
//! It answers the metadata paths Google's libraries use, with Google's semantics (directory
//! listings, `?recursive=true`, `alt=json|text`, identity and access tokens, project and
//! instance values). Besides the metadata routes it can mint a token for any principal
//! (`POST /emulator/mint`), rotate its signing key (`POST /emulator/rotate`) and inject faults
//! (`POST /emulator/faults`, or the Rust handle) so the services' failure handling can be
//! tested against it.
//!
//! It also plays Identity-Aware Proxy's part: a separate P-256 key signs IAP signed-header
//! assertions (ES256, `iss` `https://cloud.google.com/iap`), published where Google publishes
//! IAP's keys, at [`IAP_JWKS_PATH`] (JWKS) and [`IAP_PEM_PATH`] (a JSON map `kid → PEM public
//! key`). Mint one with [`Emulator::mint_iap`] or `POST /emulator/iap/assertion`; rotation and
//! the key-set outage cover this key set too.
//!
//! Anyone who can reach it can mint tokens: keep it on loopback. Its `/emulator/*` routes
//! answer only requests whose `Host` is a loopback name or address (or [`EmulatorConfig::bind`]),
//! and its metadata routes only those, `metadata.google.internal`, `metadata` and
//! `169.254.169.254` (403 otherwise), so a web page cannot reach either by DNS rebinding. The
//! key sets (public keys) answer any `Host`.
//!
//! Modules:
//! - `keys` — RSA signing keys (JWK and certificate forms, RS256) and IAP's P-256 keys (JWK and
//!   PEM public-key forms, ES256).
//! - `iap` — IAP signed-header assertions: their claims, audiences and Google's constants.
//! - `x509` — self-signed X.509 certificates (a minimal DER encoder) for `/oauth2/v1/certs`.
//! - `metadata` — the metadata tree: paths, directory listings, recursive JSON, `alt`.
//! - `routes` — the HTTP routes, Google's response headers, the `Host` guard (DNS rebinding).

mod iap;
mod keys;
mod metadata;
mod routes;
mod x509;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use iap::{
    IAP_ASSERTION_LIFETIME, IAP_ISSUER, IAP_SERVICE_AGENT, IapAssertion, STRIPPED_SIGNATURE,
    iap_cloud_run_audience, iap_subject, strip_signature,
};
use keys::{IapKey, SigningKey};
use shared::config::{ConfigError, Reader, Setting, Source};

/// Path of the key set (same as Google's).
pub const JWKS_PATH: &str = "/oauth2/v3/certs";

/// Path of the key set as PEM certificates, a JSON map `kid → certificate` (same as Google's).
pub const PEM_CERTS_PATH: &str = "/oauth2/v1/certs";

/// Path of IAP's key set, JWKS (same as Google's, `https://www.gstatic.com/iap/verify/public_key-jwk`).
pub const IAP_JWKS_PATH: &str = "/iap/verify/public_key-jwk";

/// Path of IAP's key set as a JSON map `kid → PEM public key` (same as Google's,
/// `https://www.gstatic.com/iap/verify/public_key`): the form Google's IAP samples read.
pub const IAP_PEM_PATH: &str = "/iap/verify/public_key";

/// How many keys the key set publishes at most: the current one and the ones it replaced.
pub const MAX_PUBLISHED_KEYS: usize = 3;

/// How far in the past `exp` lies for [`IdentityFault::Expired`] tokens (beyond any clock skew
/// a verifier accepts).
const EXPIRED_BY: u64 = 1200;

const DEFAULT_SERVICE_ACCOUNT: &str = "caller@invoker-local.iam.gserviceaccount.com";
const DEFAULT_PROJECT_ID: &str = "invoker-local";
const DEFAULT_ISSUER: &str = "https://accounts.google.com";
const DEFAULT_PROJECT_NUMBER: u64 = 123_456_789_012;
const DEFAULT_REGION: &str = "us-central1";

/// Settings of the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// `EMULATOR_SERVICE_ACCOUNT`: the identity of `…/service-accounts/default/…`.
    pub service_account: String,
    /// `EMULATOR_PROJECT_ID`: answer of `…/project/project-id`.
    pub project_id: String,
    /// `EMULATOR_TOKEN_LIFETIME_SECS`: `exp - iat` of identity tokens.
    pub token_lifetime: Duration,
    /// `EMULATOR_ISSUER`: the `iss` claim.
    pub issuer: String,
    /// `EMULATOR_JWKS_MAX_AGE_SECS`: `Cache-Control: max-age` of the key set.
    pub jwks_max_age: Duration,
    /// `EMULATOR_PROJECT_NUMBER`: answer of `…/project/numeric-project-id`.
    pub project_number: u64,
    /// `EMULATOR_REGION`: `…/instance/region` is `projects/NUMBER/regions/REGION`, and
    /// `…/instance/zone` `projects/NUMBER/zones/REGION-1` (as on Cloud Run).
    pub region: String,
    /// The address the binary listens on, when it is not loopback: the `/emulator/*` routes
    /// then also answer a `Host` that is this address (never any other name). `None` in tests.
    pub bind: Option<IpAddr>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            service_account: DEFAULT_SERVICE_ACCOUNT.to_owned(),
            project_id: DEFAULT_PROJECT_ID.to_owned(),
            token_lifetime: Duration::from_secs(3600),
            issuer: DEFAULT_ISSUER.to_owned(),
            jwks_max_age: Duration::from_secs(3600),
            project_number: DEFAULT_PROJECT_NUMBER,
            region: DEFAULT_REGION.to_owned(),
            bind: None,
        }
    }
}

impl EmulatorConfig {
    /// `EMULATOR_SERVICE_ACCOUNT`.
    pub const SERVICE_ACCOUNT: Setting = Setting::new(
        "EMULATOR_SERVICE_ACCOUNT",
        DEFAULT_SERVICE_ACCOUNT,
        "email of the default service account (the identity of minted tokens)",
    );
    /// `EMULATOR_PROJECT_ID`.
    pub const PROJECT_ID: Setting = Setting::new(
        "EMULATOR_PROJECT_ID",
        DEFAULT_PROJECT_ID,
        "project id the metadata server reports",
    );
    /// `EMULATOR_TOKEN_LIFETIME_SECS`.
    pub const TOKEN_LIFETIME_SECS: Setting = Setting::new(
        "EMULATOR_TOKEN_LIFETIME_SECS",
        "3600",
        "lifetime of identity tokens, 1..=86400",
    );
    /// `EMULATOR_PROJECT_NUMBER`.
    pub const PROJECT_NUMBER: Setting = Setting::new(
        "EMULATOR_PROJECT_NUMBER",
        "123456789012",
        "project number the metadata server reports (numeric-project-id)",
    );
    /// `EMULATOR_REGION`.
    pub const REGION: Setting = Setting::new(
        "EMULATOR_REGION",
        DEFAULT_REGION,
        "region the metadata server reports (instance/region; zone is REGION-1)",
    );
    /// `EMULATOR_ISSUER`.
    pub const ISSUER: Setting = Setting::new(
        "EMULATOR_ISSUER",
        DEFAULT_ISSUER,
        "iss claim of minted tokens",
    );
    /// `EMULATOR_JWKS_MAX_AGE_SECS`.
    pub const JWKS_MAX_AGE_SECS: Setting = Setting::new(
        "EMULATOR_JWKS_MAX_AGE_SECS",
        "3600",
        "Cache-Control max-age of the key set, 0..=604800",
    );
    /// The settings [`EmulatorConfig::from_source`] reads.
    pub const SETTINGS: &'static [Setting] = &[
        Self::SERVICE_ACCOUNT,
        Self::PROJECT_ID,
        Self::TOKEN_LIFETIME_SECS,
        Self::PROJECT_NUMBER,
        Self::REGION,
        Self::ISSUER,
        Self::JWKS_MAX_AGE_SECS,
    ];

    /// Reads and validates the emulator settings.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader::new(src);
        let service_account: String = r.parse(&Self::SERVICE_ACCOUNT)?;
        if !is_email(&service_account) {
            return Err(ConfigError::invalid(
                Self::SERVICE_ACCOUNT.name,
                service_account,
                "must be an email address",
            ));
        }
        Ok(Self {
            service_account,
            project_id: r.parse(&Self::PROJECT_ID)?,
            token_lifetime: Duration::from_secs(r.int_in(&Self::TOKEN_LIFETIME_SECS, 1..=86_400)?),
            issuer: r.parse(&Self::ISSUER)?,
            jwks_max_age: Duration::from_secs(r.int_in(&Self::JWKS_MAX_AGE_SECS, 0..=604_800)?),
            project_number: r.int_in(&Self::PROJECT_NUMBER, 1..=999_999_999_999_999)?,
            region: {
                let region: String = r.parse(&Self::REGION)?;
                if region.is_empty()
                    || !region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(ConfigError::invalid(
                        Self::REGION.name,
                        region,
                        "must be a region name such as us-central1",
                    ));
                }
                region
            },
            bind: None,
        })
    }
}

/// How to point Google's client libraries (and invoker's services) at an emulator reachable at
/// `addr` (`host:port`): the start-up banner and `--help` print it.
pub fn client_setup(addr: &str) -> String {
    format!(
        "Point Google's client libraries at it (environment variables):\n\
         \x20 every language    GCE_METADATA_HOST={addr}\n\
         \x20 Python            also GCE_METADATA_IP={addr} (google.auth.default() and fetch_id_token ping it)\n\
         \x20 Node, Go, Java    nothing else\n\
         \x20 Rust              nothing else (invoker's caller: TOKEN_SOURCE=metadata or auto)\n\
         \x20 gcloud ADC file   takes precedence: CLOUDSDK_CONFIG=<an empty folder> hides it\n\
         Verify its tokens: http://{addr}{JWKS_PATH} (JWKS) or http://{addr}{PEM_CERTS_PATH} (PEM certificates)\n\
         IAP assertions (ES256): keys at http://{addr}{IAP_JWKS_PATH} (JWKS) or http://{addr}{IAP_PEM_PATH} (PEM);\n\
         \x20 mint one: POST http://{addr}/emulator/iap/assertion {{\"email\":…,\"audience\":…}}\n"
    )
}

fn is_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !s.contains(char::is_whitespace)
}

/// A fault the identity endpoint injects (the key set has [`Emulator::set_jwks_down`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityFault {
    /// Normal answers.
    #[default]
    None,
    /// 503 on every request.
    Unavailable,
    /// One 403, then normal answers.
    ForbiddenOnce,
    /// One 200 whose body is not a JWT, then normal answers.
    GarbageOnce,
    /// Accept the request and never answer.
    Stall,
    /// Serve tokens whose `exp` is already in the past.
    Expired,
}

/// The emulator: its keys, counters and faults. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: EmulatorConfig,
    keys: RwLock<KeyRing>,
    identity_requests: AtomicU64,
    token_requests: AtomicU64,
    jwks_requests: AtomicU64,
    iap_key_requests: AtomicU64,
    identity_fault: Mutex<IdentityFault>,
    jwks_down: AtomicBool,
    iap_keys_down: AtomicBool,
    iap_keys: RwLock<KeyRing<IapKey>>,
}

struct KeyRing<K = SigningKey> {
    current: Arc<K>,
    /// Replaced keys still published, newest first.
    previous: Vec<Arc<K>>,
}

impl<K> KeyRing<K> {
    fn new(key: K) -> Self {
        Self {
            current: Arc::new(key),
            previous: Vec::new(),
        }
    }

    /// Makes `key` current; the one it replaces stays published ([`MAX_PUBLISHED_KEYS`]).
    fn install(&mut self, key: K) {
        let old = std::mem::replace(&mut self.current, Arc::new(key));
        self.previous.insert(0, old);
        self.previous.truncate(MAX_PUBLISHED_KEYS - 1);
    }

    /// Current first, then the replaced ones, newest first.
    fn published(&self) -> impl Iterator<Item = &Arc<K>> {
        std::iter::once(&self.current).chain(&self.previous)
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("config", &self.inner.cfg)
            .field("kid", &self.current_kid())
            .finish()
    }
}

/// The emulator could not generate a signing key.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a signing key")]
pub struct KeyGenerationError;

impl Emulator {
    /// An emulator with a freshly generated RSA-2048 key.
    ///
    /// # Panics
    /// If the system cannot generate an RSA key (no usable random source); see
    /// [`Emulator::try_new`].
    pub fn new(cfg: EmulatorConfig) -> Self {
        Self::try_new(cfg).expect("RSA key generation failed")
    }

    /// An emulator with a freshly generated RSA-2048 key (and IAP's P-256 key).
    ///
    /// # Errors
    /// If a key cannot be generated.
    pub fn try_new(cfg: EmulatorConfig) -> Result<Self, KeyGenerationError> {
        let key = SigningKey::generate().map_err(|_| KeyGenerationError)?;
        let iap_key = IapKey::generate().map_err(|_| KeyGenerationError)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                keys: RwLock::new(KeyRing::new(key)),
                identity_requests: AtomicU64::new(0),
                token_requests: AtomicU64::new(0),
                jwks_requests: AtomicU64::new(0),
                iap_key_requests: AtomicU64::new(0),
                identity_fault: Mutex::new(IdentityFault::None),
                jwks_down: AtomicBool::new(false),
                iap_keys_down: AtomicBool::new(false),
                iap_keys: RwLock::new(KeyRing::new(iap_key)),
            }),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &EmulatorConfig {
        &self.inner.cfg
    }

    /// The HTTP routes (metadata server, key set and `/emulator/…`).
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Binds `addr` (use port 0 for a free port) and serves [`Emulator::router`] in a task.
    ///
    /// # Errors
    /// If the address cannot be bound.
    pub async fn spawn(
        self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let router = self.router();
        let handle = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "metadata emulator stopped");
            }
        });
        Ok((local, handle))
    }

    /// A token for `email` (with `email_verified: true`) valid for `lifetime` from now.
    ///
    /// # Panics
    /// If RSA signing fails (it does not with a generated key).
    pub fn mint(&self, email: &str, audience: &str, lifetime: Duration) -> String {
        let iat = now_secs();
        let claims = self.claims(
            email,
            audience,
            iat,
            iat.saturating_add(lifetime.as_secs()),
            Some(true),
        );
        self.mint_with(claims)
    }

    /// Signs `claims` exactly as given, with the standard header of the current key.
    ///
    /// # Panics
    /// If RSA signing fails (it does not with a generated key).
    pub fn mint_with(&self, claims: Value) -> String {
        let key = self.current();
        key.sign(&key.header(), &claims)
            .expect("RSA signing failed")
    }

    /// Signs `claims` under an arbitrary `header` with the current key (for attack tests).
    ///
    /// # Panics
    /// If RSA signing fails (it does not with a generated key).
    pub fn sign_with_header(&self, header: Value, claims: Value) -> String {
        self.current()
            .sign(&header, &claims)
            .expect("RSA signing failed")
    }

    /// Replaces the signing key with a new one (new `kid`); the old one stays published.
    /// Returns the new `kid`. CPU-heavy: from async code prefer `POST /emulator/rotate`.
    ///
    /// # Panics
    /// If the key cannot be generated.
    pub fn rotate(&self) -> String {
        let key = SigningKey::generate().expect("RSA key generation failed");
        self.install(key)
    }

    fn install(&self, key: SigningKey) -> String {
        let kid = key.kid().to_owned();
        self.inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .install(key);
        tracing::info!(%kid, "signing key rotated");
        kid
    }

    /// Replaces IAP's signing key with a new one (new `kid`); the old one stays published in
    /// IAP's key set. Returns the new `kid`. Cheap (a P-256 key).
    ///
    /// # Panics
    /// If the key cannot be generated.
    pub fn rotate_iap(&self) -> String {
        self.install_iap(IapKey::generate().expect("P-256 key generation failed"))
    }

    fn install_iap(&self, key: IapKey) -> String {
        let kid = key.kid().to_owned();
        self.inner
            .iap_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .install(key);
        tracing::info!(%kid, "IAP signing key rotated");
        kid
    }

    /// The `kid` of the key that signs new tokens.
    pub fn current_kid(&self) -> String {
        self.current().kid().to_owned()
    }

    /// The published key set: `{"keys": [current, previous…]}`.
    pub fn public_jwks(&self) -> Value {
        let ring = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let keys: Vec<&Value> = ring.published().map(|k| k.jwk()).collect();
        json!({ "keys": keys })
    }

    /// The published key set as Google's PEM map: `{kid: "-----BEGIN CERTIFICATE-----…"}`
    /// (self-signed certificates of the same keys as [`Emulator::public_jwks`]).
    pub fn pem_certs(&self) -> Value {
        let ring = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let map: serde_json::Map<String, Value> = ring
            .published()
            .map(|k| (k.kid().to_owned(), Value::from(k.cert_pem())))
            .collect();
        Value::Object(map)
    }

    /// IAP's published key set, as at [`IAP_JWKS_PATH`]: `{"keys": [current, previous…]}`,
    /// each `{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid","x","y"}`.
    pub fn iap_jwks(&self) -> Value {
        let ring = self
            .inner
            .iap_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let keys: Vec<&Value> = ring.published().map(|k| k.jwk()).collect();
        json!({ "keys": keys })
    }

    /// IAP's published key set as at [`IAP_PEM_PATH`]: `{kid: "-----BEGIN PUBLIC KEY-----…"}`.
    pub fn iap_public_keys(&self) -> Value {
        let ring = self
            .inner
            .iap_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let map: serde_json::Map<String, Value> = ring
            .published()
            .map(|k| (k.kid().to_owned(), Value::from(k.pem())))
            .collect();
        Value::Object(map)
    }

    /// The `kid` of the IAP key that signs new assertions.
    pub fn current_iap_kid(&self) -> String {
        self.current_iap().kid().to_owned()
    }

    /// An IAP signed-header assertion (ES256, IAP's header and current key) with the claims of
    /// `assertion`: what IAP puts in `X-Goog-IAP-JWT-Assertion`.
    ///
    /// # Panics
    /// If ECDSA signing fails (it does not with a generated key).
    pub fn mint_iap(&self, assertion: &IapAssertion) -> String {
        self.sign_iap(assertion.claims(now_secs()))
    }

    /// Signs `claims` exactly as given with IAP's current key and header (`alg` `ES256`, its
    /// `kid`): for assertions a test shapes by hand (wrong `iss`, missing `email`…).
    ///
    /// # Panics
    /// If ECDSA signing fails (it does not with a generated key).
    pub fn sign_iap(&self, claims: Value) -> String {
        let key = self.current_iap();
        key.sign(&key.header(), &claims)
            .expect("ECDSA signing failed")
    }

    /// Signs `claims` under an arbitrary `header` with IAP's current key (for attack tests).
    ///
    /// # Panics
    /// If ECDSA signing fails (it does not with a generated key).
    pub fn sign_iap_with_header(&self, header: Value, claims: Value) -> String {
        self.current_iap()
            .sign(&header, &claims)
            .expect("ECDSA signing failed")
    }

    /// A forgery: `claims` under IAP's header with the current IAP `kid`, signed ES256 by a
    /// fresh P-256 key that is never published. Every verifier must refuse it (signature).
    ///
    /// # Panics
    /// If the key cannot be generated or signing fails.
    pub fn forge_iap(&self, claims: Value) -> String {
        let forger = IapKey::generate().expect("P-256 key generation failed");
        forger
            .sign(&self.current_iap().header(), &claims)
            .expect("ECDSA signing failed")
    }

    /// The ID token IAP's service agent ([`IAP_SERVICE_AGENT`]) presents to a Cloud Run service
    /// behind IAP, for `audience` (the service's URL), valid an hour, as the container sees it
    /// in `X-Serverless-Authorization`: with its signature replaced by [`STRIPPED_SIGNATURE`].
    pub fn iap_service_agent_token(&self, audience: &str) -> String {
        strip_signature(&self.mint(IAP_SERVICE_AGENT, audience, Duration::from_secs(3600)))
    }

    /// Requests received by the access-token endpoint (`…/service-accounts/*/token`).
    pub fn token_requests(&self) -> u64 {
        self.inner.token_requests.load(Ordering::Relaxed)
    }

    /// Requests received by the identity endpoint.
    pub fn identity_requests(&self) -> u64 {
        self.inner.identity_requests.load(Ordering::Relaxed)
    }

    /// Requests received by the key-set endpoints (both forms).
    pub fn jwks_requests(&self) -> u64 {
        self.inner.jwks_requests.load(Ordering::Relaxed)
    }

    /// Sets the fault of the identity endpoint.
    pub fn set_identity_fault(&self, fault: IdentityFault) {
        *self
            .inner
            .identity_fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// The fault of the identity endpoint.
    pub fn identity_fault(&self) -> IdentityFault {
        *self
            .inner
            .identity_fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Requests received by IAP's key-set endpoints (both forms).
    pub fn iap_key_requests(&self) -> u64 {
        self.inner.iap_key_requests.load(Ordering::Relaxed)
    }

    /// While `true`, every key-set endpoint answers 503: Google's (both forms) and IAP's (both
    /// forms) — a key-server outage.
    pub fn set_jwks_down(&self, down: bool) {
        self.inner.jwks_down.store(down, Ordering::Relaxed);
    }

    /// Whether the key-set endpoints are down ([`Emulator::set_jwks_down`]).
    pub fn jwks_down(&self) -> bool {
        self.inner.jwks_down.load(Ordering::Relaxed)
    }

    /// While `true`, IAP's key-set endpoints (both forms) answer 503; Google's are unaffected.
    pub fn set_iap_keys_down(&self, down: bool) {
        self.inner.iap_keys_down.store(down, Ordering::Relaxed);
    }

    /// Whether IAP's key-set endpoints answer 503 (their own fault or
    /// [`Emulator::set_jwks_down`]).
    pub fn iap_keys_down(&self) -> bool {
        self.inner.iap_keys_down.load(Ordering::Relaxed) || self.jwks_down()
    }

    /// The fault for one identity request; a one-shot fault is consumed.
    fn take_identity_fault(&self) -> IdentityFault {
        let mut fault = self
            .inner
            .identity_fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = *fault;
        if matches!(
            current,
            IdentityFault::ForbiddenOnce | IdentityFault::GarbageOnce
        ) {
            *fault = IdentityFault::None;
        }
        current
    }

    fn current(&self) -> Arc<SigningKey> {
        Arc::clone(
            &self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .current,
        )
    }

    fn current_iap(&self) -> Arc<IapKey> {
        Arc::clone(
            &self
                .inner
                .iap_keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .current,
        )
    }

    /// Google-shaped claims; `email_verified` `Some(_)` adds `email` and `email_verified`.
    fn claims(
        &self,
        email: &str,
        audience: &str,
        iat: u64,
        exp: u64,
        email_verified: Option<bool>,
    ) -> Value {
        let sub = subject(email);
        let mut claims = json!({
            "iss": self.inner.cfg.issuer,
            "aud": audience,
            "azp": sub,
            "sub": sub,
            "iat": iat,
            "exp": exp,
        });
        if let (Some(verified), Some(map)) = (email_verified, claims.as_object_mut()) {
            map.insert("email".into(), json!(email));
            map.insert("email_verified".into(), json!(verified));
        }
        claims
    }
}

/// A stable 21-digit numeric id per email, shaped like Google's `sub`.
fn subject(email: &str) -> String {
    // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
    let hash = email
        .to_ascii_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("1{hash:020}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::MapSource;

    #[test]
    fn config_defaults_and_validation() {
        let cfg = EmulatorConfig::from_source(&MapSource::default()).expect("defaults");
        assert_eq!(cfg, EmulatorConfig::default());
        for s in EmulatorConfig::SETTINGS {
            assert!(s.name.starts_with("EMULATOR_"), "{}", s.name);
        }
        let cfg = EmulatorConfig::from_source(&MapSource::from_pairs([
            ("EMULATOR_SERVICE_ACCOUNT", "x@p.iam.gserviceaccount.com"),
            ("EMULATOR_TOKEN_LIFETIME_SECS", "60"),
            ("EMULATOR_JWKS_MAX_AGE_SECS", "0"),
        ]))
        .expect("valid");
        assert_eq!(cfg.service_account, "x@p.iam.gserviceaccount.com");
        assert_eq!(cfg.token_lifetime, Duration::from_secs(60));
        assert_eq!(cfg.jwks_max_age, Duration::ZERO);
        let e = EmulatorConfig::from_source(&MapSource::from_pairs([(
            "EMULATOR_SERVICE_ACCOUNT",
            "nobody",
        )]))
        .expect_err("not an email");
        assert_eq!(e.name, "EMULATOR_SERVICE_ACCOUNT");
        let e = EmulatorConfig::from_source(&MapSource::from_pairs([(
            "EMULATOR_TOKEN_LIFETIME_SECS",
            "0",
        )]))
        .expect_err("zero lifetime");
        assert_eq!(e.name, "EMULATOR_TOKEN_LIFETIME_SECS");
    }

    #[test]
    fn subjects_are_stable_numeric_and_distinct() {
        let a = subject("a@example.com");
        assert_eq!(a, subject("A@example.com"));
        assert_eq!(a.len(), 21);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(a, subject("b@example.com"));
    }

    #[test]
    fn rotation_keeps_a_bounded_number_of_published_keys() {
        let emu = Emulator::new(EmulatorConfig::default());
        let first = emu.current_kid();
        let second = emu.rotate();
        assert_ne!(first, second);
        assert_eq!(emu.current_kid(), second);
        let kids = |emu: &Emulator| -> Vec<String> {
            emu.public_jwks()["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k["kid"].as_str().expect("kid").to_owned())
                .collect()
        };
        assert_eq!(kids(&emu), [second.clone(), first.clone()]);
        emu.rotate();
        let fourth = emu.rotate();
        let published = kids(&emu);
        assert_eq!(published.len(), MAX_PUBLISHED_KEYS);
        assert_eq!(published[0], fourth);
        assert!(!published.contains(&first));
    }

    fn iap_kids(emu: &Emulator) -> Vec<String> {
        emu.iap_jwks()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    fn header_of(jwt: &str) -> Value {
        use base64::Engine;
        let h = jwt.split('.').next().expect("header");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .expect("b64");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn iap_keys_rotate_apart_from_the_google_keys() {
        let emu = Emulator::new(EmulatorConfig::default());
        let google = emu.current_kid();
        let first = emu.current_iap_kid();
        assert_ne!(first, google);
        assert_eq!(iap_kids(&emu), std::slice::from_ref(&first));
        let pems = emu.iap_public_keys();
        assert!(
            pems[&first]
                .as_str()
                .expect("pem")
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        let second = emu.rotate_iap();
        assert_eq!(emu.current_kid(), google, "the Google key stays");
        assert_eq!(iap_kids(&emu), [second.clone(), first.clone()]);
        emu.rotate_iap();
        emu.rotate_iap();
        let published = iap_kids(&emu);
        assert_eq!(published.len(), MAX_PUBLISHED_KEYS);
        assert!(!published.contains(&first));
        let minted = emu.mint_iap(&IapAssertion::new("a@example.com", "aud"));
        assert_eq!(
            header_of(&minted),
            json!({"alg": "ES256", "kid": emu.current_iap_kid(), "typ": "JWT"})
        );
    }

    #[test]
    fn the_service_agent_token_is_stripped_and_for_the_service() {
        let emu = Emulator::new(EmulatorConfig::default());
        let token = emu.iap_service_agent_token("http://127.0.0.1:8080");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts[2], STRIPPED_SIGNATURE);
        use base64::Engine;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(claims["email"], IAP_SERVICE_AGENT);
        assert_eq!(claims["aud"], "http://127.0.0.1:8080");
        assert_eq!(claims["iss"], "https://accounts.google.com");
        assert_eq!(header_of(&token)["kid"], emu.current_kid());
    }

    #[test]
    fn a_forgery_carries_the_iap_kid_but_another_signature() {
        let emu = Emulator::new(EmulatorConfig::default());
        let claims = IapAssertion::new("a@example.com", "aud").claims(now_secs());
        let forged = emu.forge_iap(claims.clone());
        let real = emu.sign_iap(claims);
        assert_eq!(header_of(&forged), header_of(&real));
        let sig = |t: &str| t.rsplit('.').next().expect("sig").to_owned();
        assert_ne!(sig(&forged), sig(&real));
    }

    #[test]
    fn an_outage_takes_the_iap_key_set_down_too() {
        let emu = Emulator::new(EmulatorConfig::default());
        assert!(!emu.iap_keys_down());
        emu.set_jwks_down(true);
        assert!(emu.iap_keys_down());
        emu.set_jwks_down(false);
        emu.set_iap_keys_down(true);
        assert!(emu.iap_keys_down() && !emu.jwks_down());
    }
}
