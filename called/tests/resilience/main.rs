//! Resilience of the called service against real faults, on loopback: the real `called` binary
//! killed under load behind caller, SIGTERM with requests in flight, overload, slowloris,
//! logs at trace level, and idempotent replays in any interleaving. Every wait is bounded.
//! Servers, child processes and shared checks come from the test kit (`testkit`).

mod helpers;

mod body_cost;
mod connections;
mod kill_under_load;
mod log_flood;
mod logs;
mod overload;
mod refusals_as_data;
mod replay;
mod shutdown;
mod slowloris;
mod write_lock;
