//! A scenario simulated on a virtual clock: the driver's own run, in-process, on a
//! single-threaded runtime whose clock is paused.
//!
//! Tokio's paused clock moves only when every task waits, and then straight to the next
//! timer: a request waiting 200 ms for a token costs no wall-clock time, and the run goes as
//! fast as its events can be computed. The arrivals, the gateway instances, the token client
//! and its cache policies, the mock identity provider and backend and the timed events are
//! the code `tokenbench run` runs, so the simulation agrees with it by construction; only
//! the sockets and the signing time differ (see [`Mode::Simulated`]). One thread, in a fixed
//! order: the same seed gives the same report, timestamps and memory aside (and the signing
//! cost, unless the scenario sets `[signer] signing_cost`).

use std::path::{Path, PathBuf};

use scenario::{Comparison, Scenario};
use tokio::sync::watch;

use crate::{error::RunError, mode::Mode, runner::run_and_report, RunListener};

/// Simulates `scenario` once, or once per value of `comparison`, and writes the reports into
/// `out`, as [`run_and_report`] does for real runs; the reports say `"mode": "simulated"`.
/// `fast_hits`: see [`Mode::Simulated`]. Blocks the calling thread, which must not be inside
/// a tokio runtime. `stop` ends it early as it ends a real run (set it from another thread).
pub fn simulate_and_report(
    scenario: &Scenario,
    comparison: Option<&Comparison>,
    fast_hits: bool,
    out: &Path,
    stop: &watch::Receiver<bool>,
    listener: &dyn RunListener,
) -> Result<PathBuf, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| RunError::Setup(format!("cannot start the simulation's runtime: {e}")))?;
    runtime.block_on(run_and_report(
        scenario,
        comparison,
        Mode::Simulated { fast_hits },
        out,
        stop,
        listener,
    ))
}
