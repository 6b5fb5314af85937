//! The one clock a verifier and a token cache read wall time from, so that a test can drive
//! token expiry and cache ages together.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time. [`SystemClock`] in production.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// Whole seconds since the Unix epoch (0 before it).
    fn unix_secs(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system time at creation, moved on by Tokio's clock: paused and advanced with
/// `tokio::time::pause`/`advance` in tests, it moves token expiry and every cache age together.
#[cfg(any(feature = "verify", feature = "fetch"))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall: SystemTime,
    tokio: tokio::time::Instant,
}

#[cfg(any(feature = "verify", feature = "fetch"))]
impl TokioClock {
    /// Anchored at the current system time and Tokio instant.
    pub fn new() -> Self {
        Self {
            wall: SystemTime::now(),
            tokio: tokio::time::Instant::now(),
        }
    }
}

#[cfg(any(feature = "verify", feature = "fetch"))]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(any(feature = "verify", feature = "fetch"))]
impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.wall + self.tokio.elapsed()
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;
