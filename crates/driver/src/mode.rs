//! Real time over sockets, or simulated in-process.

use report::RunMode;

/// How a run reaches the embedded identity provider and backend, and on what clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Over loopback sockets (or to the scenario's real URLs), in real time: `tokenbench
    /// run`.
    RealTime,
    /// In-process calls to the embedded mock on the runtime's clock, which the caller pauses
    /// so that it is virtual (`tokenbench simulate`, [`simulate_and_report`](crate::simulate_and_report)).
    /// The identity provider, the backend and the token client run their real code; each
    /// signature is charged the scenario's `[signer] signing_cost` of virtual time, or the
    /// key's median cost measured at start: the wall-clock time it really takes is invisible
    /// to a virtual clock.
    Simulated {
        /// Record plain cache hits on the fast path (see the simulation documentation):
        /// what makes a fleet's day take seconds. Off, every request runs the gateway's
        /// code as in real time, slower, with the same counts.
        fast_hits: bool,
    },
}

impl Mode {
    /// The mode as the report names it.
    pub fn run_mode(self) -> RunMode {
        match self {
            Mode::RealTime => RunMode::RealTime,
            Mode::Simulated { .. } => RunMode::Simulated,
        }
    }

    /// Whether the run is simulated.
    pub fn is_simulated(self) -> bool {
        matches!(self, Mode::Simulated { .. })
    }
}
