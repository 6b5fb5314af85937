//! Resilience of the real `caller` binary: SIGTERM with a request in flight, and no token in
//! any log line at trace level. The emulator and the called service run in this process;
//! servers, child processes and shared checks come from the test kit (`testkit`).

mod helpers;

mod body_cost;
mod log_flood;
mod logs;
mod shutdown;
