//! Resilience of the called service against real faults, on loopback: the real `called` binary
//! killed under load behind caller, SIGTERM with requests in flight, overload, slowloris,
//! logs at trace level, and idempotent replays in any interleaving. Every wait is bounded.

mod emu;
mod helpers;
mod logcheck;
mod proc;
mod raw;

mod kill_under_load;
mod logs;
mod overload;
mod replay;
mod shutdown;
mod slowloris;

/// Writes a line to the real stderr (measurements worth seeing in a passing run).
pub fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
