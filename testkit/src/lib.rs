//! `testkit`: the one test kit every integration suite (and the benchmark harness) uses. Never
//! shipped and never a normal dependency of a service: it turns on tokio's `test-util`.
//! It depends on `local` for the chain's wiring and the readiness wait; `local` does not
//! depend on it.
//!
//! - [`wiring`]: the settings that connect emulator → called → caller (`local::wiring`,
//!   re-exported so that tests keep one import root).
//! - [`claims`]: ID-token claims as tests write them (`now`, `with`, `without`, `strip`, `hand_made`).
//! - [`clock`]: Tokio's clock jumped forward, and a bounded wait for a condition.
//! - [`emu`]: the metadata-server emulator on 127.0.0.1:0 in this process, and its tokens.
//! - [`echo`]: a router with the real `Authenticator` on 127.0.0.1:0 echoing the principal.
//! - [`in_process`]: called, caller or the whole chain in this process on port 0.
//! - [`iap`]: IAP assertions (valid and misused), IAP's service agent's stripped token, and the
//!   chain behind the IAP front in this process ([`iap_chain`]).
//! - [`child`]: a service binary as a child process (`Spec` → `Proc`) and `free_port`.
//! - [`drain`]: graceful shutdown as the suites watch it (idle connection, SIGTERM, exit 0).
//! - [`ready`]: the one readiness wait (`local::ready`, re-exported), with the one wait budget,
//!   and the client with a timeout.
//! - [`raw`]: a minimal HTTP/1.1 client on a raw TCP stream.
//! - [`checks`]: shared assertions (problem documents, tokens in logs) and `loud`.

pub use local::wiring;

pub mod checks;
pub mod child;
pub mod claims;
pub mod clock;
pub mod drain;
pub mod echo;
pub mod emu;
pub mod iap;
pub mod in_process;

pub use iap::iap_chain;
pub mod raw;
pub mod ready;
