//! Resilience of the real `caller` binary: SIGTERM with a request in flight, and no token in
//! any log line at trace level. The emulator and the called service run in this process.

#[path = "../../../called/tests/resilience/emu.rs"]
mod emu;
mod helpers;
#[path = "../../../called/tests/resilience/logcheck.rs"]
mod logcheck;
#[path = "../../../called/tests/resilience/proc.rs"]
mod proc;
#[path = "../../../called/tests/resilience/raw.rs"]
mod raw;

mod logs;
mod shutdown;

/// Writes a line to the real stderr (measurements worth seeing in a passing run).
pub fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
