//! The HTTP server every binary runs:
//!
//! - [`layers`]: request id, request log, load shedding, early 413, timeouts, problem fallbacks.
//! - [`serve`](mod@serve): `bind` and the accept loop (connection cap, header buffer and
//!   timeout) with a bounded drain.

pub mod layers;
pub mod serve;

pub use layers::with_common_layers;
pub use serve::{Limits, bind, serve};
