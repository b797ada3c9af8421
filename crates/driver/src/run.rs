//! One run of a scenario in real time: arrivals on schedule, requests on the gateway
//! instances, the drain, and the report of what was measured.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use metrics::{Fleet, Metrics, RequestOutcome, RequestRecord, Slot, Tally};
use report::{Report, RunInfo, ShardHeader};
use scenario::{Scenario, Shard, Traffic};
use tokio::{sync::watch, time::Instant};

use crate::{
    api_picker::ApiPicker, error::RunError, fast_hits::FastHits, gateway::Gateway, mode::Mode,
    target::Target,
};

/// How long a request (its token and its backend call) may take before it counts as an
/// error. Checked once a second by the watchdog: a timer per request cost 5 % of the
/// driver's throughput.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Behind schedule the arrival loop does not wait; it yields after this many arrivals so
/// that a stop, the progress bar and the tasks it spawned get their turn.
const ARRIVALS_PER_YIELD: u32 = 64;
/// How far ahead of a simulation's clock its fast path may record hits: far enough to skip
/// most waits, near enough that requests still in flight record their completions in time
/// order with the hits (the timeline keeps three intervals open).
const FAST_LEAD: Duration = Duration::from_millis(100);
/// How long the driver waits for requests in flight after the last arrival's run time.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a caller sees while a run goes on.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// The scenario's duration.
    pub duration: Duration,
    /// Requests finished so far.
    pub finished: u64,
    /// Arrivals dropped so far.
    pub dropped: u64,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report (write it with [`Report::write_all`]).
    pub report: Report,
    /// Whether the run was stopped before its scenario's end.
    pub interrupted: bool,
    /// What a shard writes for merging (`tally.json`); `None` for an unsharded run.
    pub tally: Option<Tally>,
}

/// One shard of a run split over several load generators, and when all of them start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// Which shard.
    pub shard: Shard,
    /// The wall-clock instant every shard starts at; `None`: at once.
    pub start_at: Option<SystemTime>,
}

/// Runs `scenario` in `mode` until its end or until `stop` completes, then gives requests in
/// flight up to 10 s to finish (counting the rest as errors) and reports what was measured.
/// `on_progress` is called four times a second of the run's clock (virtual in a simulation).
pub async fn run(
    scenario: &Scenario,
    mode: Mode,
    stop: impl Future<Output = ()> + Send,
    on_progress: impl Fn(Progress) + Send + Sync,
) -> Result<RunOutcome, RunError> {
    run_planned(scenario, mode, None, stop, on_progress).await
}

/// Runs one shard of `scenario` in real time: its gateway instances only, fed the arrivals
/// the unsharded schedule gives them, from `plan.start_at`. The outcome's tally is what
/// `tokenbench merge` merges.
pub async fn run_shard(
    scenario: &Scenario,
    plan: ShardPlan,
    stop: impl Future<Output = ()> + Send,
    on_progress: impl Fn(Progress) + Send + Sync,
) -> Result<RunOutcome, RunError> {
    run_planned(scenario, Mode::RealTime, Some(plan), stop, on_progress).await
}

/// [`run`] or [`run_shard`]: a whole run when `shard` is `None`.
pub(crate) async fn run_planned(
    scenario: &Scenario,
    mode: Mode,
    shard: Option<ShardPlan>,
    stop: impl Future<Output = ()> + Send,
    on_progress: impl Fn(Progress) + Send + Sync,
) -> Result<RunOutcome, RunError> {
    let instances = usize::try_from(scenario.gateway.instances)
        .unwrap_or(1)
        .max(1);
    // Whether this run serves each instance (all but those of other shards).
    let mut serves = vec![shard.is_none(); instances];
    if let Some(plan) = &shard {
        for i in plan.shard.instances(scenario)? {
            serves[i as usize] = true;
        }
    }
    metrics::reset_peak_rss();
    let target = Target::start(scenario, mode).await?;
    let schedule = scenario.arrivals()?;
    let mut stop = std::pin::pin!(stop);
    let mut interrupted = false;
    let mut late = Duration::ZERO;
    if let Some(start_at) = shard.and_then(|plan| plan.start_at) {
        match start_at.duration_since(SystemTime::now()) {
            // Sleeping on the runtime's clock: wall-clock jumps during the wait are not
            // followed, which over minutes is well within a millisecond.
            Ok(wait) => tokio::select! {
                biased;
                () = &mut stop => interrupted = true,
                () = tokio::time::sleep(wait) => {}
            },
            Err(passed) => late = passed.duration(),
        }
    }
    if mode.is_simulated() {
        // Timers fire on a 1 ms grid counted from when the runtime's time driver started,
        // a few µs of wall-clock time away from where the paused clock stands. Sleeping
        // moves the paused clock onto the grid, so that every delay of the run rounds alike
        // from one simulation to the next.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let start = Instant::now();
    let fleet = Fleet {
        region_of: (0..instances)
            .map(|i| scenario.gateway.region_of(i as u32) as usize)
            .collect(),
        apis: scenario.apis.iter().map(|api| api.name.clone()).collect(),
    };
    let metrics = Arc::new(match &shard {
        None => Metrics::for_run(fleet, start, scenario.duration)?,
        Some(_) => {
            let measured = (0..instances).filter(|&i| serves[i]).collect();
            Metrics::for_shard(fleet, measured, start, scenario.duration)?
        }
    });
    let mut pick_api = ApiPicker::new(scenario)?;
    let removals = Arc::new(AtomicU64::new(0));
    // Requests running on any instance: while fewer than half an instance's limit, no
    // instance can be near it (one load, instead of reading the instance's semaphore).
    let running = Arc::new(AtomicUsize::new(0));
    let gateways = Gateway::build_all(scenario, &target, &metrics, instances, &removals)?;
    let mut events = target.schedule_events(scenario, start, &metrics);
    let mut fast_hits = target
        .in_process()
        .filter(|_| mode == Mode::Simulated { fast_hits: true })
        .map(|(mock, _)| {
            FastHits::new(scenario, mock, start, &removals, &metrics).map(|fast| (fast, start))
        })
        .transpose()?;

    let mut progress_tick = tokio::time::interval(Duration::from_millis(250));
    let report_progress = || {
        let counts = metrics.counts();
        on_progress(Progress {
            elapsed: start.elapsed(),
            duration: scenario.duration,
            finished: counts.sent,
            dropped: counts.dropped,
        })
    };
    // Ends requests past REQUEST_TIMEOUT, and every request still running at the drain
    // deadline: they record themselves as errors, so nothing sent disappears from the report.
    let (watchdog, watchdog_rx) = watch::channel(Watchdog::default());
    let watchdog_ticks = tokio::spawn({
        let (watchdog, metrics) = (watchdog.clone(), Arc::clone(&metrics));
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = metrics.elapsed();
                watchdog.send_modify(|state| state.now = now);
            }
        }
    });

    let mut next_instance = 0usize;
    let mut arrivals_behind = 0u32;
    'arrivals: for arrival in schedule {
        if interrupted {
            break;
        }
        let due = start + arrival.at;
        let instance = match arrival.instance {
            Some(hint) => usize::try_from(hint).unwrap_or(0) % instances,
            None => {
                let instance = next_instance;
                next_instance = (next_instance + 1) % instances;
                instance
            }
        };
        // Picked for every arrival, so that a shard's draws are the unsharded run's.
        let api = pick_api.pick(arrival.api.as_deref());
        if !serves[instance] {
            continue;
        }
        let gateway = &gateways[instance];
        let slot = Slot { instance, api };
        // A simulation records a plain hit at once, even a little ahead of its clock. Its
        // clock moves only while this loop awaits: read once per wait, not per arrival (a
        // paused clock is read under a lock).
        if let Some((fast, clock)) = &mut fast_hits {
            if due > *clock + FAST_LEAD {
                *clock = Instant::now();
                fast.flush(*clock - start, &metrics);
            }
            if due <= *clock + FAST_LEAD
                && fast.record(
                    gateway.client(api),
                    slot,
                    arrival.at,
                    *clock - start,
                    spare_permits(&running, gateway),
                    &metrics,
                )
            {
                continue;
            }
        }
        if Instant::now() < due {
            arrivals_behind = 0;
            loop {
                tokio::select! {
                    biased;
                    () = &mut stop => {
                        interrupted = true;
                        break 'arrivals;
                    }
                    () = tokio::time::sleep_until(due) => break,
                    _ = progress_tick.tick() => report_progress(),
                }
            }
        } else {
            // Already due: no timer (registering one per arrival cost a tenth of the
            // driver's throughput).
            arrivals_behind += 1;
            if arrivals_behind % ARRIVALS_PER_YIELD == 0 {
                tokio::select! {
                    biased;
                    () = &mut stop => {
                        interrupted = true;
                        break 'arrivals;
                    }
                    _ = progress_tick.tick() => report_progress(),
                    () = tokio::task::yield_now() => {}
                }
            }
        }
        if let Some((fast, clock)) = &mut fast_hits {
            *clock = Instant::now();
            fast.flush(*clock - start, &metrics);
            if fast.record(
                gateway.client(api),
                slot,
                arrival.at,
                *clock - start,
                spare_permits(&running, gateway),
                &metrics,
            ) {
                continue;
            }
        }
        let Ok(permit) = Arc::clone(&gateway.in_flight).try_acquire_owned() else {
            metrics.record_dropped(arrival.at);
            continue;
        };
        running.fetch_add(1, Ordering::Relaxed);
        let running = Arc::clone(&running);
        let (gateway, metrics, mut watchdog) = (
            Arc::clone(gateway),
            Arc::clone(&metrics),
            watchdog_rx.clone(),
        );
        tokio::spawn(async move {
            let sent_at = metrics.elapsed();
            let request = gateway.request(
                instance,
                api,
                arrival.at,
                sent_at,
                arrival.path.as_deref(),
                &metrics,
            );
            let record = tokio::select! {
                record = request => record,
                _ = watchdog.wait_for(|state| state.ends(sent_at)) => RequestRecord {
                    instance,
                    intended_start: arrival.at,
                    sent_at,
                    finished_at: metrics.elapsed(),
                    outcome: RequestOutcome::BackendError,
                    token_obtained_at: None,
                },
            };
            metrics.record_request(&record);
            drop(permit);
            running.fetch_sub(1, Ordering::Relaxed);
        });
    }

    if let Some((fast, _)) = &mut fast_hits {
        fast.flush(Duration::MAX, &metrics);
    }
    // The schedule may end before the run time (a replay, sparse traffic): the run lasts its
    // duration unless stopped.
    if !interrupted {
        let end = start + scenario.duration;
        loop {
            tokio::select! {
                biased;
                () = &mut stop => {
                    interrupted = true;
                    break;
                }
                () = tokio::time::sleep_until(end) => break,
                _ = progress_tick.tick() => report_progress(),
            }
        }
    }
    events.abort_all();
    let measured_until = metrics.elapsed();
    // Requests in flight get up to DRAIN_TIMEOUT (or until a stop) to finish; the rest are
    // abandoned and counted as errors.
    let drain = async {
        for gateway in &gateways {
            let _ = gateway.in_flight.acquire_many(gateway.max_in_flight).await;
        }
    };
    let drained = tokio::select! {
        () = drain => true,
        () = tokio::time::sleep(DRAIN_TIMEOUT) => false,
        () = &mut stop, if !interrupted => false,
    };
    if !drained {
        watchdog.send_modify(|state| state.abandon = true);
        let all_recorded = async {
            for gateway in &gateways {
                let _ = gateway.in_flight.acquire_many(gateway.max_in_flight).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), all_recorded).await;
    }
    watchdog_ticks.abort();
    report_progress();

    if let Some(mock) = target.mock() {
        metrics.set_idp_peak_concurrent(mock.stats.snapshot().token_requests_peak_in_flight);
    }
    let (snapshot, tally) =
        metrics.snapshot_and_tally(measured_until.max(Duration::from_millis(1)));
    let info = RunInfo {
        interrupted,
        shard: shard.map(|plan| ShardHeader {
            index: plan.shard.index,
            count: plan.shard.count,
            scenario_digest: scenario.digest(),
            start_at: plan.start_at.and_then(metrics::format_rfc3339),
            late_ms: u64::try_from(late.as_millis()).unwrap_or(u64::MAX),
        }),
        ..run_info(scenario, &target, mode)
    };
    let report = Report::new(info, snapshot);
    target.shutdown().await;
    Ok(RunOutcome {
        report,
        interrupted,
        tally: shard.map(|_| tally),
    })
}

/// Whether `gateway` has half its in-flight permits or more free, `running` requests running
/// on all instances.
fn spare_permits(running: &AtomicUsize, gateway: &Gateway) -> bool {
    running.load(Ordering::Relaxed) * 2 < gateway.max_in_flight as usize || gateway.spare_permits()
}

/// What the watchdog tells running requests.
#[derive(Clone, Copy, Default)]
struct Watchdog {
    /// The run's clock, advanced once a second.
    now: Duration,
    /// Set at the drain deadline: every request still running ends.
    abandon: bool,
}

impl Watchdog {
    /// Whether a request sent at `sent_at` must end now.
    fn ends(&self, sent_at: Duration) -> bool {
        self.abandon || self.now >= sent_at + REQUEST_TIMEOUT
    }
}

fn run_info(scenario: &Scenario, target: &Target, mode: Mode) -> RunInfo {
    let signing_cost = target.charged_signing_cost();
    let (backend, alg) = target.signer_label();
    RunInfo {
        scenario: scenario.name.clone(),
        policy: scenario.gateway.policy.as_str().to_owned(),
        backend,
        alg,
        rate: match &scenario.traffic {
            Traffic::Replay { .. } => None,
            traffic => Some(traffic.mean_rate(scenario.duration)),
        },
        seed: Some(scenario.seed),
        interrupted: false,
        mode: mode.run_mode(),
        signing_cost_us: signing_cost
            .map(|cost| u64::try_from(cost.as_micros()).unwrap_or(u64::MAX)),
        shard: None,
        merged: None,
    }
}
