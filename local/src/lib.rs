//! `local`: the whole invoker chain on loopback — the `local` binary's composition, and nothing
//! that only tests need (that is `testkit`, which depends on this crate, never the other way).
//! No tokio `test-util` here: building `local` next to the service binaries must not turn it on
//! in them.
//!
//! - [`wiring`]: the settings that connect emulator → called → caller (also used by the test
//!   kit and the benchmark, through `testkit::wiring`).
//! - [`chain`]: the `local` binary's run: all three services in one process on fixed ports.
//! - [`iap_front`]: the IAP front (`LOCAL_IAP=true`): IAP's headers in front of `caller`.
//! - [`ready`]: the one readiness wait and its wait budget (re-exported by `testkit::ready`).

pub mod chain;
pub mod iap_front;
pub mod ready;
pub mod wiring;
