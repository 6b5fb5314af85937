//! The service kit: everything invoker's two services share but authentication itself (the
//! `invoker-auth` library under `shared/auth/`). Each module owns one concern:
//!
//! - [`config`]: settings from a fakeable [`config::Source`], validated, errors naming the variable.
//! - [`telemetry`]: log setup (text or Cloud Logging JSON) and trace-id extraction.
//! - [`problem`]: RFC 9457 problem responses — the one shape of every error.
//! - [`body`]: the JSON-object body extractor (415/413/400 as problems) and field validation.
//! - [`server`]: the common layers (request id, request log, load shedding, body limit,
//!   timeouts) and `serve(listener, router, shutdown)` with a bounded drain.
//! - [`binary`]: the one `main` every binary runs (settings → telemetry → bind → serve).
//! - [`openapi`]: the shared parts of the generated OpenAPI documents.
//! - [`outbound`]: the one pooled outbound HTTP client.
//! - [`readiness`]: a ~1 s cache of the readiness result with one check in flight at a time.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`auth`]: the `AUTH_*` settings mapped onto the `invoker-auth` library, its refusals onto
//!   problems and log entries, and the `Caller` extractor.
//!
//! This crate never knows which service uses it.

pub mod auth;
pub mod binary;
pub mod body;
pub mod config;
pub mod openapi;
pub mod outbound;
pub mod problem;
pub mod readiness;
pub mod server;
pub mod shutdown;
pub mod telemetry;
