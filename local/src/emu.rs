//! The metadata-server emulator on 127.0.0.1:0 in this process, and the tokens tests mint.

use std::net::SocketAddr;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};

/// The end user allowed to call the caller.
pub const USER: &str = "developer@example.com";

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
}
