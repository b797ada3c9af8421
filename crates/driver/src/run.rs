//! One run of a scenario in real time: arrivals on schedule, requests on the gateway
//! instances, the drain, and the report of what was measured.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize},
        Arc,
    },
    time::{Duration, SystemTime},
};

use client::CachePolicy;
use metrics::{Fleet, Metrics, Tally};
use report::{Report, RunInfo, ShardHeader};
use scenario::{Flow, Scenario, Shard, Traffic};
use tokio::{
    sync::{oneshot, watch},
    time::Instant,
};

use crate::{
    api_picker::ApiPicker,
    dispatch::{Dispatcher, Watchdog},
    error::RunError,
    fast_hits::FastHits,
    gateway::Gateway,
    mode::Mode,
    target::Target,
    users::{UserPicker, Users},
};

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
    if shard.is_some() && scenario.gateway.flow == Flow::OnBehalfOf {
        // Distinct users are a union over shards, which tallies of counts cannot merge.
        return Err(RunError::Setup(
            "an on-behalf-of run cannot be sharded yet: its distinct users would not merge"
                .to_owned(),
        ));
    }
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
    let pick_api = ApiPicker::new(scenario)?;
    let pick_user = UserPicker::new(scenario)?;
    // Only the embedded identity provider mints users' tokens (the scenario's check makes
    // sure an on-behalf-of run has it).
    let users = target.mock().and_then(|mock| Users::new(scenario, mock));
    let removals = Arc::new(AtomicU64::new(0));
    // Requests running on any instance: while fewer than half an instance's limit, no
    // instance can be near it (one load, instead of reading the instance's semaphore).
    let running = Arc::new(AtomicUsize::new(0));
    let gateways = Gateway::build_all(
        scenario,
        &target,
        &metrics,
        instances,
        &removals,
        users.as_ref(),
    )?;
    let mut events = target.schedule_events(scenario, start, &metrics);
    let fast_hits = target
        .in_process()
        .filter(|_| mode == Mode::Simulated { fast_hits: true })
        // Users' tokens are looked up per user, and a managed store's lookups take time: no
        // plain hits to take ahead of time.
        .filter(|_| {
            scenario.gateway.flow == Flow::ClientCredentials
                && scenario.gateway.policy != CachePolicy::CredentialManager
        })
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

    if !interrupted {
        let (stop_dispatch, dispatch_stopped) = oneshot::channel();
        let dispatcher = Dispatcher {
            schedule,
            start,
            mode,
            serves,
            pick_api,
            pick_user,
            gateways: gateways.clone(),
            metrics: Arc::clone(&metrics),
            fast_hits,
            running,
            watchdog: watchdog_rx,
        }
        .run(dispatch_stopped);
        // In real time the loop runs on a worker thread, where a freed slot wakes it without
        // a thread switch (on the caller's thread it parked and woke once per request); a
        // simulation has one thread.
        let mut dispatch: Pin<Box<dyn Future<Output = bool> + Send>> = if mode.is_simulated() {
            Box::pin(dispatcher)
        } else {
            let task = tokio::spawn(dispatcher);
            Box::pin(async move {
                match task.await {
                    Ok(stopped) => stopped,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => true,
                }
            })
        };
        let mut stop_dispatch = Some(stop_dispatch);
        let stopped = loop {
            tokio::select! {
                biased;
                () = &mut stop, if stop_dispatch.is_some() => {
                    if let Some(tx) = stop_dispatch.take() {
                        let _ = tx.send(());
                    }
                }
                stopped = &mut dispatch => break stopped,
                _ = progress_tick.tick() => report_progress(),
            }
        };
        // `stop` may have fired as the schedule ended: it is not polled again.
        interrupted = stopped || stop_dispatch.is_none();
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
    if let (Some(users), Some(population)) = (&users, scenario.user_population()) {
        metrics.set_users(
            u64::from(population),
            users.distinct(),
            gateways.iter().map(|g| g.cached_users() as u64).sum(),
            u64::from(scenario.gateway.user_cache_entries),
        );
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
