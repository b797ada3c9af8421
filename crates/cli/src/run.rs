//! `tokenbench run` and `tokenbench simulate`: a scenario (or a comparison of several runs of
//! it) in real time or on a virtual clock, with reports.

use std::{
    io::IsTerminal as _,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime},
};

use clap::Args;
use client::CachePolicy;
use driver::{Progress, RunListener};
use indicatif::{ProgressBar, ProgressStyle};
use report::Report;
use scenario::{overrides, Comparison, Overrides, Scenario, Shard};
use signer::CryptoBackend;
use tokio::sync::watch;

use crate::{runtime, usage};

#[derive(Args)]
pub struct RunArgs {
    /// A scenario file, or the name of a shipped one (default, stampede, revocation,
    /// throttled-idp, key-rotation, replay, backends).
    #[arg(default_value = "default")]
    scenario: String,
    /// Run time, e.g. 30s or 2m (overrides the scenario's).
    #[arg(long, value_parser = overrides::parse_duration)]
    duration: Option<Duration>,
    /// Mean arrival rate in requests per second (scales the scenario's traffic).
    #[arg(long, value_parser = overrides::parse_rate)]
    rate: Option<f64>,
    /// Cache policy: apim, single-flight, refresh-ahead or credential-manager.
    #[arg(long, value_parser = overrides::parse_policy)]
    policy: Option<CachePolicy>,
    /// Signer backend: rsa, ring or aws-lc-rs.
    #[arg(long, value_parser = overrides::parse_backend)]
    backend: Option<&'static dyn CryptoBackend>,
    /// Gateway instances.
    #[arg(long, value_parser = overrides::parse_instances)]
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

#[derive(Args)]
pub struct RealTimeArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

/// Splitting a run over several load generators.
#[derive(Args)]
struct ShardArgs {
    /// Run shard I of N (from 0): its share of the gateway instances (whole caches), with
    /// exactly the arrivals the unsharded run gives them; writes tally.json beside the
    /// reports for `tokenbench merge`.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<Shard>,
    /// Run one of N shards, the one JOB_COMPLETION_INDEX names (as a Kubernetes Indexed Job
    /// sets it).
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// When every shard starts, UTC, e.g. 2026-11-29T23:00:00Z: each waits for it after
    /// setting up.
    #[arg(long, env = "TOKENBENCH_START_AT", value_parser = parse_start_at)]
    start_at: Option<SystemTime>,
}

impl ShardArgs {
    /// The shard asked for, if any (read from the environment for --shards).
    fn plan(&self) -> anyhow::Result<Option<driver::ShardPlan>> {
        let shard = match (self.shard, self.shards) {
            (Some(shard), _) => shard,
            (None, Some(count)) => {
                let index = std::env::var(JOB_COMPLETION_INDEX).map_err(|_| {
                    usage(format!(
                        "--shards {count} takes the shard's index from {JOB_COMPLETION_INDEX}, \
                         which is not set (give --shard I/{count} instead)"
                    ))
                })?;
                let index = index.trim().parse::<u32>().map_err(|_| {
                    usage(format!(
                        "{JOB_COMPLETION_INDEX}={index:?} is not a shard index"
                    ))
                })?;
                Shard::new(index, count).map_err(usage)?
            }
            (None, None) => {
                if self.start_at.is_some() {
                    return Err(usage(
                        "--start-at (or TOKENBENCH_START_AT) is for shards: give --shard I/N \
                         or --shards N too",
                    ));
                }
                return Ok(None);
            }
        };
        Ok(Some(driver::ShardPlan {
            shard,
            start_at: self.start_at,
        }))
    }
}

/// The variable a Kubernetes Indexed Job sets to each pod's index.
const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(text.trim())
        .map_err(|e| format!("{e}: expected an RFC 3339 time in UTC, e.g. 2026-11-29T23:00:00Z"))
}

#[derive(Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Run every request through the gateway's tasks, timers and backend calls, as in real
    /// time: slower, with the same counts as the fast path that records plain cache hits at
    /// once.
    #[arg(long)]
    every_request: bool,
}

/// `tokenbench run`.
pub fn run(args: RealTimeArgs) -> anyhow::Result<()> {
    let shard = args.shard.plan()?;
    execute(args.run, None, shard)
}

/// `tokenbench simulate`.
pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    execute(args.run, Some(!args.every_request), None)
}

/// Runs the scenario `args` name in real time (or one shard of it), or simulates it when
/// `fast_hits` is given (whether plain hits take the fast path).
fn execute(
    args: RunArgs,
    fast_hits: Option<bool>,
    shard: Option<driver::ShardPlan>,
) -> anyhow::Result<()> {
    let simulated = fast_hits.is_some();
    let overrides = Overrides {
        duration: args.duration,
        rate: args.rate,
        policy: args.policy,
        backend: args.backend,
        alg: None,
        instances: args.instances,
    };
    let scenario = Scenario::find(&args.scenario)
        .and_then(|scenario| scenario.with_overrides(&overrides))
        .map_err(usage)?;
    let comparison = match &args.compare {
        Some(spec) => Some(Comparison::parse(spec).map_err(usage)?),
        None => scenario.compare.clone(),
    };
    if let (Some(plan), Some(comparison)) = (&shard, &comparison) {
        return Err(usage(format!(
            "{} runs the scenario once, and it asks for a comparison of {} (run each value \
             as its own sharded run, setting it with an option such as --policy)",
            plan.shard, comparison.key
        )));
    }
    if let Some(plan) = &shard {
        // Refused before anything starts, not when the shard's turn comes.
        plan.shard.instances(&scenario).map_err(usage)?;
    }
    let out = args.out.unwrap_or_else(|| {
        let out = default_out(&scenario.name);
        match &shard {
            Some(plan) => out.join(format!("shard-{}", plan.shard.index)),
            None => out,
        }
    });
    check_out(&out)?;
    let listener = Terminal::new(args.quiet, simulated);
    let runtime = runtime()?;
    // Ctrl-C or SIGTERM (how Kubernetes stops a pod) stops the current run (its reports are
    // still written) and any runs after it.
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime.spawn(async move {
        if stop_signal().await.is_err() {
            // No signal handling here: runs simply go to their end.
            return std::future::pending().await;
        }
        let _ = stop_tx.send(true);
        // A second signal does not wait for the reports.
        if stop_signal().await.is_ok() {
            std::process::exit(130);
        }
    });
    if let Some(plan) = shard {
        runtime.block_on(driver::run_shard_and_report(
            &scenario, plan, &out, &stop_rx, &listener,
        ))?;
    } else if let Some(fast_hits) = fast_hits {
        // Its own single-threaded runtime with a paused clock, on this thread.
        driver::simulate_and_report(
            &scenario,
            comparison.as_ref(),
            fast_hits,
            &out,
            &stop_rx,
            &listener,
        )?;
    } else {
        runtime.block_on(driver::run_and_report(
            &scenario,
            comparison.as_ref(),
            driver::Mode::RealTime,
            &out,
            &stop_rx,
            &listener,
        ))?;
    }
    Ok(())
}

/// The next Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// Shows runs on the terminal: a progress bar per run (when stderr is a terminal), then a
/// one-line summary; nothing when quiet.
struct Terminal {
    quiet: bool,
    /// Runs are simulated: the bar moves in simulated time.
    simulated: bool,
    bar: Mutex<Option<(ProgressBar, String)>>,
}

impl Terminal {
    fn new(quiet: bool, simulated: bool) -> Self {
        Terminal {
            quiet,
            simulated,
            bar: Mutex::new(None),
        }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<(ProgressBar, String)>> {
        self.bar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RunListener for Terminal {
    fn started(&self, scenario: &Scenario, variant: Option<(&str, &str)>) {
        if self.quiet {
            return;
        }
        if let Some((key, value)) = variant {
            eprintln!("{key} = {value}");
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(scenario.duration.as_millis() as u64);
            let template = if self.simulated {
                "{spinner} {msg} [{bar:30}] {percent}% simulated in {elapsed}"
            } else {
                "{spinner} {msg} [{bar:30}] {elapsed}/{duration}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            *self.bar() = Some((bar, scenario.name.clone()));
        }
    }

    fn progress(&self, progress: Progress) {
        if let Some((bar, name)) = self.bar().as_ref() {
            bar.set_position(progress.elapsed.min(progress.duration).as_millis() as u64);
            let at = if self.simulated {
                format!(
                    " at {}",
                    humantime::format_duration(Duration::from_secs(progress.elapsed.as_secs()))
                )
            } else {
                String::new()
            };
            bar.set_message(format!(
                "{name}{at}: {} done, {} dropped",
                progress.finished, progress.dropped
            ));
        }
    }

    fn finished(&self, report: &Report, dir: &Path) {
        if let Some((bar, _)) = self.bar().take() {
            bar.finish_and_clear();
        }
        if report.run.interrupted {
            eprintln!("interrupted: the reports hold what was measured");
        }
        if !self.quiet {
            print_summary(report, dir);
        }
    }

    fn comparison_written(&self, files: &[PathBuf]) {
        if !self.quiet {
            for path in files {
                println!("{}", path.display());
            }
        }
    }
}

pub(crate) fn print_summary(report: &Report, dir: &Path) {
    let (run, m) = (&report.run, &report.metrics);
    let r = &m.requests;
    println!(
        "{}{} ({} policy, {} {}): {} sent, {} ok, {} 401, {} dropped; p99 {} µs; hit rate {}; max herd {}; reports in {}",
        run.scenario,
        if run.mode == report::RunMode::Simulated {
            " simulated"
        } else {
            ""
        },
        run.policy,
        run.backend,
        run.alg,
        r.sent,
        r.ok,
        r.unauthorized,
        r.dropped,
        m.latency_us.p99.map_or("-".to_owned(), |v| v.to_string()),
        m.cache.hit_rate.map_or("-".to_owned(), |h| format!("{h:.4}")),
        m.stampede.max_herd.map_or("-".to_owned(), |h| h.to_string()),
        dir.display()
    );
}

/// Refuses, before any work, an output folder that cannot be written: a file in its place, a
/// name too long, no permission (exit 2, naming it). Creates it.
pub(crate) fn check_out(out: &Path) -> anyhow::Result<()> {
    let refused = |why: String| usage(format!("output folder {}: {why}", out.display()));
    if out.exists() && !out.is_dir() {
        return Err(refused("a file is in its place".to_owned()));
    }
    std::fs::create_dir_all(out).map_err(|e| refused(format!("cannot create it: {e}")))?;
    tempfile::Builder::new()
        .prefix(".tokenbench-write-check")
        .tempfile_in(out)
        .map_err(|e| refused(format!("cannot write in it: {e}")))?;
    Ok(())
}

/// `reports/<scenario>-<UTC time>`.
pub(crate) fn default_out(scenario: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_owned();
    PathBuf::from("reports").join(format!("{}-{stamp}", driver::folder_name(scenario)))
}
