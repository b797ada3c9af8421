//! Wall-clock time, replaceable in tests and simulations.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// Milliseconds since the Unix epoch, as token claims count time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in milliseconds since the epoch.
    fn now_ms(&self) -> u64;

    /// Now, in whole seconds since the epoch.
    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to (for tests of expiry and skew).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ManualClock(AtomicU64::new(now_ms))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The tokio runtime's clock, read as wall-clock time: `epoch_ms` at `origin`, moving as
/// [`tokio::time::Instant`] does. On a runtime whose time is paused (a simulation) it shows
/// virtual time, so that claims and their checks agree with the virtual clock.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeClock {
    origin: tokio::time::Instant,
    epoch_ms: u64,
}

impl RuntimeClock {
    /// A clock that shows `epoch_ms` at `origin`.
    pub fn new(origin: tokio::time::Instant, epoch_ms: u64) -> Self {
        RuntimeClock { origin, epoch_ms }
    }
}

impl Clock for RuntimeClock {
    fn now_ms(&self) -> u64 {
        let since = tokio::time::Instant::now().saturating_duration_since(self.origin);
        self.epoch_ms
            .saturating_add(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}
