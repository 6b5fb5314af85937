//! Resilience of the called service against real faults, on loopback: the real `called` binary
//! killed under load behind caller, SIGTERM with requests in flight, overload, slowloris,
//! logs at trace level, and idempotent replays in any interleaving. Every wait is bounded.
//! Servers, child processes and shared checks come from the test kit (`testkit`).

mod helpers;

mod kill_under_load;
mod logs;
mod overload;
mod replay;
mod shutdown;
mod slowloris;
