//! What the driver's test files share.

use std::future::pending;

use driver::{Mode, RunError};
use report::Report;
use scenario::Scenario;

/// `scenario` simulated as `tokenbench simulate` runs it: on a single-threaded runtime with
/// a paused clock; `fast_hits` as [`Mode::Simulated`] has it.
pub fn simulate_with(scenario: &Scenario, fast_hits: bool) -> Result<Report, RunError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(driver::run(
            scenario,
            Mode::Simulated { fast_hits },
            pending(),
            |_| {},
        ))
        .map(|outcome| outcome.report)
}
