//! The arrival loop of a run: each arrival of the schedule to its gateway instance at its
//! time, as a request task of its own, or dropped when every in-flight slot of the
//! instance is busy at its time.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use metrics::{Metrics, RequestOutcome, RequestRecord, Slot};
use scenario::arrivals::Schedule;
use tokio::{
    sync::{oneshot, watch},
    time::Instant,
};

use crate::{
    api_picker::ApiPicker, fast_hits::FastHits, gateway::Gateway, mode::Mode, users::UserPicker,
};

/// How long a request (its token and its backend call) may take before it counts as an
/// error. Checked once a second by the watchdog: a timer per request cost 5 % of the
/// driver's throughput.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Behind schedule the arrival loop does not wait; it yields after this many arrivals so
/// that a stop and the tasks it spawned get their turn.
const ARRIVALS_PER_YIELD: u32 = 64;
/// How far ahead of a simulation's clock its fast path may record hits: far enough to skip
/// most waits, near enough that requests still in flight record their completions in time
/// order with the hits (the timeline keeps three intervals open).
const FAST_LEAD: Duration = Duration::from_millis(100);
/// In real time, how close to its time an arrival is sent without waiting: tokio's timer
/// wakes on a 1 ms grid, so a wait shorter than half a tick would end up to a tick late
/// (wrk2 rounds its waits to the millisecond alike). An early request's latency counts from
/// its send.
const EARLY_SEND: Duration = Duration::from_micros(500);

/// The resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// What the watchdog tells running requests.
#[derive(Clone, Copy, Default)]
pub(crate) struct Watchdog {
    /// The run's clock, advanced once a second.
    pub(crate) now: Duration,
    /// Set at the drain deadline: every request still running ends.
    pub(crate) abandon: bool,
}

impl Watchdog {
    /// Whether a request sent at `sent_at` must end now.
    fn ends(&self, sent_at: Duration) -> bool {
        self.abandon || self.now >= sent_at + REQUEST_TIMEOUT
    }
}

/// Everything the arrival loop reads and feeds.
pub(crate) struct Dispatcher {
    pub(crate) schedule: Schedule,
    pub(crate) start: Instant,
    pub(crate) mode: Mode,
    /// Whether this run serves each instance (all but those of other shards).
    pub(crate) serves: Vec<bool>,
    pub(crate) pick_api: ApiPicker,
    /// Draws each arrival's user, in an on-behalf-of run.
    pub(crate) pick_user: Option<UserPicker>,
    pub(crate) gateways: Vec<Arc<Gateway>>,
    pub(crate) metrics: Arc<Metrics>,
    /// A simulation's fast path for plain hits, and the clock it last read.
    pub(crate) fast_hits: Option<(FastHits, Instant)>,
    /// Requests running on any instance: while fewer than half an instance's limit, no
    /// instance can be near it (one load, instead of reading the instance's semaphore).
    pub(crate) running: Arc<AtomicUsize>,
    pub(crate) watchdog: watch::Receiver<Watchdog>,
}

impl Dispatcher {
    /// Dispatches the schedule's arrivals until its end, or until `stop` resolves (sent or
    /// dropped); returns whether it was stopped. Requests it started keep running.
    ///
    /// In real time an arrival due within [`EARLY_SEND`] goes at once, and one that finds
    /// every slot busy waits for a freed slot until its time. A simulation's clock is exact:
    /// it waits for each arrival's time and drops an arrival that finds every slot busy.
    pub(crate) async fn run(self, mut stop: oneshot::Receiver<()>) -> bool {
        let Dispatcher {
            schedule,
            start,
            mode,
            serves,
            mut pick_api,
            mut pick_user,
            gateways,
            metrics,
            mut fast_hits,
            running,
            watchdog: watchdog_rx,
        } = self;
        let instances = gateways.len();
        let (early, waits_for_slots) = if mode.is_simulated() {
            (Duration::ZERO, false)
        } else {
            (EARLY_SEND, true)
        };
        let mut slot_deadline = std::pin::pin!(tokio::time::sleep_until(start));
        let mut interrupted = false;
        let mut next_instance = 0usize;
        let mut arrivals_behind = 0u32;
        let mut dropped = DroppedArrivals::default();
        'arrivals: for arrival in schedule {
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
            let user = pick_user.as_mut().map(|users| users.pick(arrival.user));
            if !serves[instance] {
                continue;
            }
            let gateway = &gateways[instance];
            let slot = Slot { instance, api };
            // A simulation records a plain hit at once, even a little ahead of its clock. Its
            // clock moves only while this loop awaits: read once per wait, not per arrival (a
            // paused clock is read under a lock).
            let record_fast = |fast: &mut FastHits, clock: Instant| {
                gateway.client(api).is_some_and(|client| {
                    fast.record(
                        client,
                        slot,
                        arrival.at,
                        clock - start,
                        spare_permits(&running, gateway),
                        &metrics,
                    )
                })
            };
            if let Some((fast, clock)) = &mut fast_hits {
                if due > *clock + FAST_LEAD {
                    *clock = Instant::now();
                    fast.flush(*clock - start, &metrics);
                }
                if due <= *clock + FAST_LEAD && record_fast(fast, *clock) {
                    continue;
                }
            }
            if Instant::now() + early < due {
                arrivals_behind = 0;
                // Ahead of schedule: what was dropped reaches the progress reports now.
                dropped.flush(&metrics);
                tokio::select! {
                    biased;
                    _ = &mut stop => {
                        interrupted = true;
                        break 'arrivals;
                    }
                    () = tokio::time::sleep_until(due - early) => {}
                }
            } else {
                // Already due: no timer (registering one per arrival cost a tenth of the
                // driver's throughput).
                arrivals_behind += 1;
                if arrivals_behind % ARRIVALS_PER_YIELD == 0 {
                    tokio::select! {
                        biased;
                        _ = &mut stop => {
                            interrupted = true;
                            break 'arrivals;
                        }
                        () = tokio::task::yield_now() => {}
                    }
                }
            }
            if let Some((fast, clock)) = &mut fast_hits {
                *clock = Instant::now();
                fast.flush(*clock - start, &metrics);
                if record_fast(fast, *clock) {
                    continue;
                }
            }
            let permit = match Arc::clone(&gateway.in_flight).try_acquire_owned() {
                Ok(permit) => Some(permit),
                // Every slot busy before the arrival's time: the first slot freed by then takes
                // it. The wait is for a freed slot, or the timer (a tick late at worst).
                Err(_) if waits_for_slots => loop {
                    if Instant::now() >= due {
                        break None;
                    }
                    // The timer fires on a 1 ms grid: a deadline armed for an earlier arrival
                    // of the same tick serves this one too (a wake before `due` waits again).
                    // Arming one per arrival cost as much as the wait.
                    if slot_deadline.is_elapsed() || slot_deadline.deadline() + TIMER_TICK <= due {
                        slot_deadline.as_mut().reset(due);
                    }
                    tokio::select! {
                        biased;
                        _ = &mut stop => {
                            interrupted = true;
                            break 'arrivals;
                        }
                        // When the slot was freed is not known: the loop's wake stands for it,
                        // so a wake delayed past `due` drops an arrival a slot was freed for
                        // just in time.
                        permit = Arc::clone(&gateway.in_flight).acquire_owned() => {
                            break permit.ok().filter(|_| Instant::now() <= due);
                        }
                        () = &mut slot_deadline => {}
                    }
                },
                Err(_) => None,
            };
            let Some(permit) = permit else {
                dropped.add(arrival.at, &metrics);
                continue;
            };
            running.fetch_add(1, Ordering::Relaxed);
            let running = Arc::clone(&running);
            let (gateway, metrics, mut watchdog) = (
                Arc::clone(gateway),
                Arc::clone(&metrics),
                watchdog_rx.clone(),
            );
            // Boxed: the request's future is some 2 KB, which the task would otherwise copy
            // as it is spawned and again as it finishes.
            tokio::spawn(Box::pin(async move {
                let sent_at = metrics.elapsed();
                // Sent early (within EARLY_SEND of its time), it waited for nothing: its latency
                // counts from the send.
                let intended_start = arrival.at.min(sent_at);
                let request = gateway.request(
                    instance,
                    api,
                    user,
                    intended_start,
                    sent_at,
                    arrival.path.as_deref(),
                    &metrics,
                );
                let record = tokio::select! {
                    record = request => record,
                    _ = watchdog.wait_for(|state| state.ends(sent_at)) => RequestRecord {
                        instance,
                        intended_start,
                        sent_at,
                        finished_at: metrics.elapsed(),
                        outcome: RequestOutcome::BackendError,
                        token_obtained_at: None,
                    },
                };
                metrics.record_request(&record);
                drop(permit);
                running.fetch_sub(1, Ordering::Relaxed);
            }));
        }

        dropped.flush(&metrics);
        if let Some((fast, _)) = &mut fast_hits {
            fast.flush(Duration::MAX, &metrics);
        }
        interrupted
    }
}

/// Dropped arrivals counted here and handed to the metrics per second of the run, or per
/// [`DROPPED_PER_HAND_OVER`]: each hand-over takes the metrics' lock, which a lock per
/// arrival made a bottleneck past saturation (two arrivals of three dropped).
#[derive(Default)]
struct DroppedArrivals {
    /// The time of the first arrival not handed over.
    at: Duration,
    count: u64,
}

/// Most dropped arrivals counted before they are handed over; the loop also hands them over
/// whenever it waits for an arrival's time, so progress reports see them soon.
const DROPPED_PER_HAND_OVER: u64 = 4096;

impl DroppedArrivals {
    fn add(&mut self, at: Duration, metrics: &Metrics) {
        if self.count > 0
            && (at.as_secs() != self.at.as_secs() || self.count >= DROPPED_PER_HAND_OVER)
        {
            self.flush(metrics);
        }
        if self.count == 0 {
            self.at = at;
        }
        self.count += 1;
    }

    fn flush(&mut self, metrics: &Metrics) {
        if self.count > 0 {
            metrics.record_dropped(self.at, self.count);
            self.count = 0;
        }
    }
}

/// Whether `gateway` has half its in-flight permits or more free, `running` requests running
/// on all instances.
fn spare_permits(running: &AtomicUsize, gateway: &Gateway) -> bool {
    running.load(Ordering::Relaxed) * 2 < gateway.max_in_flight as usize || gateway.spare_permits()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        let fleet = metrics::Fleet {
            region_of: vec![0],
            apis: vec!["default".to_owned()],
        };
        Metrics::for_run(fleet, Instant::now(), Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn dropped_arrivals_reach_the_metrics_per_second_and_every_4096() {
        let metrics = metrics();
        let mut dropped = DroppedArrivals::default();
        let ms = Duration::from_millis;
        for at in [ms(100), ms(900)] {
            dropped.add(at, &metrics);
        }
        assert_eq!(metrics.counts().dropped, 0, "held within the second");
        dropped.add(ms(1_000), &metrics);
        assert_eq!(
            metrics.counts().dropped,
            2,
            "handed over at the next second"
        );
        for _ in 1..DROPPED_PER_HAND_OVER {
            dropped.add(ms(1_500), &metrics);
        }
        assert_eq!(metrics.counts().dropped, 2);
        dropped.add(ms(1_500), &metrics);
        assert_eq!(metrics.counts().dropped, 2 + DROPPED_PER_HAND_OVER);
        dropped.flush(&metrics);
        assert_eq!(metrics.counts().dropped, 3 + DROPPED_PER_HAND_OVER);
        dropped.flush(&metrics);
        assert_eq!(
            metrics.counts().dropped,
            3 + DROPPED_PER_HAND_OVER,
            "nothing twice"
        );
        // Each in the second it arrived in.
        let (snapshot, _) = metrics.snapshot_and_tally(Duration::from_secs(5));
        let per_second: Vec<u64> = snapshot.timeline.iter().map(|row| row.dropped).collect();
        assert_eq!(per_second[..2], [2, 1 + DROPPED_PER_HAND_OVER]);
    }
}
