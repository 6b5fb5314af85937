//! End-to-end tests: emulator → caller → called, all real servers on 127.0.0.1:0, started by
//! the test kit (`testkit`).

mod helpers;

mod attacks;
mod chain;
mod forward;
mod iap;
mod key_set;
mod metadata;
mod outbound;
mod refusals;
