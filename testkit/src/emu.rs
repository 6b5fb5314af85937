//! The metadata-server emulator on 127.0.0.1:0 in this process, and the tokens tests mint.

use std::net::SocketAddr;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};
use serde_json::json;

use crate::claims::now;

/// The end user allowed to call the caller.
pub const USER: &str = "developer@example.com";

/// Tokens a service must refuse, next to a good one: each for the good token's audience and
/// principal but for the one thing named.
pub struct Refused {
    /// Expired over an hour ago.
    pub expired: String,
    /// For another audience.
    pub wrong_audience: String,
    /// The good token with its last character changed (the signature no longer matches).
    pub tampered: String,
    /// Of a principal not on the allow-list.
    pub intruder: String,
}

impl Refused {
    /// Each token with the status it gets: 401, 401, 401, and 403 for the intruder.
    pub fn with_statuses(&self) -> [(&String, u16); 4] {
        [
            (&self.expired, 401),
            (&self.wrong_audience, 401),
            (&self.tampered, 401),
            (&self.intruder, 403),
        ]
    }

    /// `good` and every refused token: what must never reach a log line.
    pub fn all_with<'a>(&'a self, good: &'a str) -> [&'a str; 5] {
        [
            good,
            &self.expired,
            &self.wrong_audience,
            &self.intruder,
            &self.tampered,
        ]
    }
}

/// The emulator on 127.0.0.1:0, in this process.
pub struct Emu {
    /// The emulator itself: minting, faults, counters.
    pub emulator: Emulator,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Emu {
    /// Starts an emulator with the default settings (test logging on with `TEST_LOG`).
    pub async fn start() -> Self {
        Self::start_with(EmulatorConfig::default()).await
    }

    /// Starts an emulator with the settings `cfg`.
    pub async fn start_with(cfg: EmulatorConfig) -> Self {
        shared::telemetry::init_for_tests();
        let emulator = Emulator::new(cfg);
        let (addr, _) = emulator
            .clone()
            .spawn("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("emulator");
        Self { emulator, addr }
    }

    /// The emulator's key-set URL.
    pub fn jwks_url(&self) -> String {
        crate::wiring::jwks_url(self.addr)
    }

    /// The emulator's service account: the identity of the tokens caller fetches.
    pub fn sa(&self) -> String {
        self.emulator.config().service_account.clone()
    }

    /// A token of the service account for `audience`, valid ten minutes.
    pub fn sa_token(&self, audience: &str) -> String {
        self.emulator
            .mint(&self.sa(), audience, Duration::from_secs(600))
    }

    /// A token of [`USER`] for `audience`, valid ten minutes.
    pub fn user_token(&self, audience: &str) -> String {
        self.emulator.mint(USER, audience, Duration::from_secs(600))
    }

    /// The [`Refused`] tokens next to `good`, a token of `email` for `audience`.
    pub fn refused_tokens(&self, email: &str, audience: &str, good: &str) -> Refused {
        let mut tampered = good.to_owned();
        let last = tampered.pop().expect("non-empty");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        Refused {
            expired: self.emulator.mint_with(json!({
                "iss": "https://accounts.google.com", "aud": audience, "sub": "1", "email": email,
                "email_verified": true, "iat": now() - 7600, "exp": now() - 4000})),
            wrong_audience: self.emulator.mint(
                email,
                "https://elsewhere.example",
                Duration::from_secs(600),
            ),
            tampered,
            intruder: self.emulator.mint(
                "intruder@example.com",
                audience,
                Duration::from_secs(600),
            ),
        }
    }
}
