//! The metadata-server emulator on 127.0.0.1:0 in the test process, shared by the called and
//! caller resilience suites (the caller suite includes this file by path).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};

/// The end user allowed to call the caller.
pub const USER: &str = "developer@example.com";

/// The emulator on 127.0.0.1:0, in this process.
pub struct Emu {
    pub emulator: Emulator,
    pub addr: SocketAddr,
}

impl Emu {
    pub async fn start() -> Self {
        shared::telemetry::init_for_tests();
        let emulator = Emulator::new(EmulatorConfig::default());
        let (addr, _) = emulator
            .clone()
            .spawn("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("emulator");
        Self { emulator, addr }
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/oauth2/v3/certs", self.addr)
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
