//! A client on a virtual clock: what a simulation runs the real client with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Virtual time for a client whose tokio runtime's clock is paused (a simulation): the
/// runtime's clock dates assertions, and each signature costs `signing_cost` of it instead of
/// the wall-clock time it really took, which the virtual clock cannot see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtualTime {
    /// The runtime instant at which the virtual clock shows `epoch`.
    pub origin: Instant,
    /// Wall-clock time at `origin`.
    pub epoch: SystemTime,
    /// Virtual time each signature takes, and the duration reported for it.
    pub signing_cost: Duration,
}

impl VirtualTime {
    /// Now, in whole seconds since the Unix epoch, on the virtual clock.
    pub fn now_secs(&self) -> u64 {
        let now = self.epoch + Instant::now().saturating_duration_since(self.origin);
        now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}
