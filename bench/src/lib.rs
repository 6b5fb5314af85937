//! invoker's load benchmark.
//!
//! - The **floor**: `floor-front` and `floor-back`, a minimal two-hop axum pair (JSON both
//!   hops, one pooled HTTP client, no authentication, no storage). Whatever the real chain
//!   costs beyond it is the price of identity and durability.
//! - The **harness** (`bench-harness`, run by `bench/run.sh`): starts the metadata-server
//!   emulator in-process (so its token and key-set counters are read directly), `called` and
//!   `caller` as release binaries on loopback, then the floor pair, drives each with `wrk` — for
//!   each number of distinct end users in `BENCH_USERS`, their tokens sent round-robin — and
//!   prints the tables and writes an SVG chart.
//!
//! The library part holds what the binaries share and what can be unit-tested without a
//! network: the floor's listener setup, `/proc` readers, the end users' tokens, the `wrk` script
//! and report parser, the tables and the chart.

pub mod chart;
pub mod floor;
pub mod procfs;
pub mod report;
pub mod users;
pub mod wrk;
