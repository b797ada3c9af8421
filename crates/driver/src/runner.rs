//! A scenario run once, or once per value of a comparison (same seed), with every report
//! written: what `tokenbench run` and the CI suite do.

use std::path::{Path, PathBuf};

use report::{write_tally, ComparisonReport, Report, COMPARISON_JSON, REPORT_JSON};
use scenario::{Comparison, Scenario};
use tokio::sync::watch;

use crate::{
    error::RunError,
    mode::Mode,
    run::{run_planned, Progress, ShardPlan},
};

/// Hooks for a caller that shows runs as they go (progress bars, summaries). Every method
/// does nothing by default; `()` listens to nothing.
pub trait RunListener: Sync {
    /// A run of `scenario` starts; `variant` is `(key, value)` in a comparison.
    fn started(&self, scenario: &Scenario, variant: Option<(&str, &str)>) {
        let _ = (scenario, variant);
    }

    /// About four times a second during a run.
    fn progress(&self, progress: Progress) {
        let _ = progress;
    }

    /// A run ended and its reports were written into `dir`.
    fn finished(&self, report: &Report, dir: &Path) {
        let _ = (report, dir);
    }

    /// A comparison's files were written.
    fn comparison_written(&self, files: &[PathBuf]) {
        let _ = files;
    }
}

impl RunListener for () {}

/// Runs `scenario` in `mode` once, or once per value of `comparison` (same seed, each into
/// `out/<value>/`), and writes the reports into `out`; returns the machine-readable document
/// (`report.json` or `comparison.json`).
///
/// When `stop` turns true the current run ends early (its reports are still written, marked
/// interrupted) and no further run starts.
pub async fn run_and_report(
    scenario: &Scenario,
    comparison: Option<&Comparison>,
    mode: Mode,
    out: &Path,
    stop: &watch::Receiver<bool>,
    listener: &dyn RunListener,
) -> Result<PathBuf, RunError> {
    let Some(comparison) = comparison else {
        run_one(scenario, None, mode, None, out, stop, listener).await?;
        return Ok(out.join(REPORT_JSON));
    };
    let mut runs = Vec::new();
    for (value, overrides) in comparison.runs()? {
        if *stop.borrow() {
            break;
        }
        let variant = scenario.clone().with_overrides(&overrides)?;
        let dir = out.join(folder_name(&value));
        let report = run_one(
            &variant,
            Some((comparison.key, &value)),
            mode,
            None,
            &dir,
            stop,
            listener,
        )
        .await?;
        runs.push((value, report));
    }
    let files = ComparisonReport {
        key: comparison.key.to_owned(),
        values: runs,
    }
    .write_all(out)?;
    listener.comparison_written(&files);
    Ok(out.join(COMPARISON_JSON))
}

/// Runs one shard of `scenario` (see [`run_shard`](crate::run_shard)) and writes its reports
/// and its `tally.json` into `out`; returns the path of its `report.json`. When `stop` turns
/// true the shard ends early and its reports are marked interrupted.
pub async fn run_shard_and_report(
    scenario: &Scenario,
    plan: ShardPlan,
    out: &Path,
    stop: &watch::Receiver<bool>,
    listener: &dyn RunListener,
) -> Result<PathBuf, RunError> {
    run_one(
        scenario,
        None,
        Mode::RealTime,
        Some(plan),
        out,
        stop,
        listener,
    )
    .await?;
    Ok(out.join(REPORT_JSON))
}

/// One run (or one shard of it), its reports (and a shard's tally) written to `dir`.
async fn run_one(
    scenario: &Scenario,
    variant: Option<(&str, &str)>,
    mode: Mode,
    shard: Option<ShardPlan>,
    dir: &Path,
    stop: &watch::Receiver<bool>,
    listener: &dyn RunListener,
) -> Result<Report, RunError> {
    listener.started(scenario, variant);
    let mut stop = stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let outcome = run_planned(scenario, mode, shard, stopped, |progress| {
        listener.progress(progress)
    })
    .await?;
    outcome.report.write_all(dir)?;
    if let Some(tally) = &outcome.tally {
        write_tally(dir, tally)?;
    }
    listener.finished(&outcome.report, dir);
    Ok(outcome.report)
}

/// A folder name from a compared value: letters, digits, `-`, `_` and `.` kept, the rest `_`.
pub fn folder_name(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
