//! `tokenbench run`: a scenario (or a comparison of several runs of it), with reports.

use std::{
    io::IsTerminal as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use load::{
    driver::{self, Progress},
    report::{self, Report},
    scenario::{Comparison, Overrides, Scenario},
};
use tokio::sync::watch;

use crate::{parse_duration, UsageError};

#[derive(Args)]
pub struct RunArgs {
    /// A scenario file, or the name of a shipped one (default, stampede, revocation,
    /// throttled-idp, key-rotation, replay, backends).
    #[arg(default_value = "default")]
    scenario: String,
    /// Run time, e.g. 30s or 2m (overrides the scenario's).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Mean arrival rate in requests per second (scales the scenario's traffic).
    #[arg(long)]
    rate: Option<f64>,
    /// Cache policy: apim, single-flight or refresh-ahead.
    #[arg(long)]
    policy: Option<String>,
    /// Signer backend: rsa, ring or aws-lc-rs.
    #[arg(long)]
    backend: Option<String>,
    /// Gateway instances.
    #[arg(long)]
    instances: Option<u32>,
    /// Output folder [default: reports/<scenario>-<UTC time>/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run once per value of one setting, e.g. policy=apim,single-flight,refresh-ahead
    /// (also backend=…, alg=…, instances=…); writes OUT/<value>/report.* and OUT/comparison.*.
    #[arg(long)]
    compare: Option<String>,
    /// No progress bar and no summary.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let usage = |e: load::scenario::ScenarioError| anyhow::Error::new(UsageError(e.to_string()));
    let scenario = Scenario::find(&args.scenario).map_err(usage)?;
    let mut overrides = Overrides::default();
    let given = [
        (
            "duration",
            args.duration
                .map(|d| humantime::format_duration(d).to_string()),
        ),
        ("rate", args.rate.map(|r| r.to_string())),
        ("policy", args.policy.clone()),
        ("backend", args.backend.clone()),
        ("instances", args.instances.map(|n| n.to_string())),
    ];
    for (key, value) in given {
        if let Some(value) = value {
            overrides.set(key, &value).map_err(usage)?;
        }
    }
    let scenario = scenario.with_overrides(&overrides).map_err(usage)?;
    let comparison = match &args.compare {
        Some(spec) => Some(Comparison::parse(spec).map_err(usage)?),
        None => scenario.compare.clone(),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&scenario.name));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Ctrl-C stops the current run (its reports are still written) and any runs after it.
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal handling here: runs simply go to their end.
                return std::future::pending().await;
            }
            let _ = stop_tx.send(true);
            // A second Ctrl-C does not wait for the reports.
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
        run_scenario(&scenario, comparison.as_ref(), &out, &stop_rx, args.quiet).await?;
        anyhow::Ok(())
    })
}

/// Runs `scenario` once, or once per value of `comparison` (same seed), and writes the reports
/// into `out`; returns the machine-readable document (`report.json` or `comparison.json`).
pub(crate) async fn run_scenario(
    scenario: &Scenario,
    comparison: Option<&Comparison>,
    out: &Path,
    stop_rx: &watch::Receiver<bool>,
    quiet: bool,
) -> anyhow::Result<PathBuf> {
    let usage = |e: load::scenario::ScenarioError| anyhow::Error::new(UsageError(e.to_string()));
    match comparison {
        None => {
            let report = run_one(scenario, out, stop_rx, quiet).await?;
            if !quiet {
                print_summary(&report, out);
            }
            Ok(out.join(report::REPORT_JSON))
        }
        Some(comparison) => {
            let mut runs = Vec::new();
            for (value, value_overrides) in comparison.runs().map_err(usage)? {
                if *stop_rx.borrow() {
                    break;
                }
                let variant = scenario
                    .clone()
                    .with_overrides(&value_overrides)
                    .map_err(usage)?;
                let dir = out.join(sanitise(&value));
                if !quiet {
                    eprintln!("{} = {value}", comparison.key);
                }
                let report = run_one(&variant, &dir, stop_rx, quiet).await?;
                if !quiet {
                    print_summary(&report, &dir);
                }
                runs.push((value, report));
            }
            let written = report::Comparison {
                key: comparison.key.to_owned(),
                values: runs,
            }
            .write_all(out)?;
            if !quiet {
                for path in written {
                    println!("{}", path.display());
                }
            }
            Ok(out.join(report::COMPARISON_JSON))
        }
    }
}

/// One run with a progress bar (when stderr is a terminal), its reports written to `dir`.
async fn run_one(
    scenario: &Scenario,
    dir: &Path,
    stop: &watch::Receiver<bool>,
    quiet: bool,
) -> anyhow::Result<Report> {
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(scenario.duration.as_millis() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {elapsed}/{duration}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut stop = stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let outcome = driver::run(scenario, stopped, |progress: Progress| {
        if let Some(bar) = &bar {
            bar.set_position(progress.elapsed.min(progress.duration).as_millis() as u64);
            bar.set_message(format!(
                "{}: {} done, {} dropped",
                scenario.name, progress.finished, progress.dropped
            ));
        }
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if outcome.interrupted {
        eprintln!("interrupted: writing the reports of what was measured");
    }
    outcome
        .report
        .write_all(dir)
        .with_context(|| format!("cannot write the reports into {}", dir.display()))?;
    Ok(outcome.report)
}

fn print_summary(report: &Report, dir: &Path) {
    let r = &report.requests;
    let number = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    println!(
        "{} ({} policy, {} {}): {} sent, {} ok, {} 401, {} dropped; p99 {} µs; hit rate {}; max herd {}; reports in {}",
        report.scenario,
        report.policy,
        report.backend,
        report.alg,
        r.sent,
        r.ok,
        r.unauthorized,
        r.dropped,
        number(report.latency_us.p99.map(|v| v as f64)),
        report.cache.hit_rate.map_or("-".to_owned(), |h| format!("{h:.4}")),
        report.stampede.max_herd.map_or("-".to_owned(), |h| h.to_string()),
        dir.display()
    );
}

/// `reports/<scenario>-<UTC time>`.
pub(crate) fn default_out(scenario: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_owned();
    PathBuf::from("reports").join(format!("{}-{stamp}", sanitise(scenario)))
}

/// A folder name from a value: letters, digits, `-`, `_` and `.` kept, the rest `_`.
pub(crate) fn sanitise(value: &str) -> String {
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
