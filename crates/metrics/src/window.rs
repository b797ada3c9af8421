//! Per-second state of a run: timeline counts, the open seconds' histograms, and the closed
//! seconds' totals and interval log.

use std::{collections::VecDeque, time::Duration};

use hdrhistogram::Histogram;

use crate::{
    error::MetricsError,
    histogram::{merge, new_histogram, p99, MAX_LATENCY_US},
    latency_log::{encode, Encoded, LatencyLog, LogInterval},
    record::Class,
    snapshot::TimelineRow,
};

/// Longest timeline (7 days, in seconds); anything later is counted in its last second.
pub const MAX_TIMELINE_SECONDS: u64 = 7 * 24 * 3600;
/// Seconds whose latency histograms stay open for late records before they are closed into
/// the timeline and the interval log. A record that arrives later still than that (which
/// needs its recording to lag its completion by two seconds) is counted in its own second's
/// row, but its latency in the oldest open second.
const OPEN_SECONDS: usize = 3;

/// Per-second state: timeline counts, the open seconds' histograms, closed intervals.
pub(crate) struct Window {
    rows: Vec<Row>,
    /// The second of `open[0]`; every earlier second is closed.
    first_open: u64,
    /// Histograms of seconds `first_open .. first_open + OPEN_SECONDS`.
    open: VecDeque<SecondHistograms>,
    /// Latency of every closed second.
    closed_latency: Histogram<u64>,
    /// Service time of every closed second.
    closed_service: Histogram<u64>,
    /// Closed seconds' intervals, in order.
    log: Vec<LogInterval>,
    unencodable: u64,
}

/// What a snapshot reads from the [`Window`].
pub(crate) struct WindowView {
    /// Latency of every second so far; `None` if nothing was recorded.
    pub(crate) latency: Option<Histogram<u64>>,
    /// Service time of every second so far; `None` if nothing was recorded.
    pub(crate) service: Option<Histogram<u64>>,
    pub(crate) timeline: Vec<TimelineRow>,
    /// Without its start time.
    pub(crate) log: LatencyLog,
}

#[derive(Clone, Copy, Default)]
struct Row {
    requests: u64,
    ok: u64,
    unauthorized: u64,
    token_requests: u64,
    dropped: u64,
    /// Set when the second is closed.
    p99_us: Option<u64>,
}

struct SecondHistograms {
    latency: Histogram<u64>,
    service: Histogram<u64>,
}

impl Window {
    pub(crate) fn new() -> Result<Self, MetricsError> {
        let mut open = VecDeque::with_capacity(OPEN_SECONDS);
        for _ in 0..OPEN_SECONDS {
            open.push_back(SecondHistograms {
                latency: new_histogram(MAX_LATENCY_US, "per-second latency")?,
                service: new_histogram(MAX_LATENCY_US, "per-second service time")?,
            });
        }
        Ok(Window {
            rows: Vec::new(),
            first_open: 0,
            open,
            closed_latency: new_histogram(MAX_LATENCY_US, "latency")?,
            closed_service: new_histogram(MAX_LATENCY_US, "service time")?,
            log: Vec::new(),
            unencodable: 0,
        })
    }

    pub(crate) fn count_dropped(&mut self, second: u64) {
        self.row(second).dropped += 1;
    }

    pub(crate) fn count_token_request(&mut self, second: u64) {
        self.row(second).token_requests += 1;
    }

    fn row(&mut self, second: u64) -> &mut Row {
        let index = usize::try_from(second).unwrap_or(usize::MAX);
        if self.rows.len() <= index {
            self.rows.resize(index + 1, Row::default());
        }
        &mut self.rows[index]
    }

    pub(crate) fn record(&mut self, second: u64, latency_us: u64, service_us: u64, class: Class) {
        let row = self.row(second);
        row.requests += 1;
        match class {
            Class::Ok => row.ok += 1,
            Class::Unauthorized => row.unauthorized += 1,
            Class::Forbidden | Class::Error => {}
        }
        while second >= self.first_open + OPEN_SECONDS as u64 {
            self.close_first();
        }
        let slot = usize::try_from(second.saturating_sub(self.first_open)).unwrap_or(0);
        if let Some(hists) = self.open.get_mut(slot) {
            hists.latency.saturating_record(latency_us);
            hists.service.saturating_record(service_us);
        }
    }

    /// Closes the oldest open second: its p99 into its row, its histograms into the totals
    /// and the log; its histograms are reset and reused for the next second.
    fn close_first(&mut self) {
        let second = self.first_open;
        if let Some(mut hists) = self.open.pop_front() {
            let p99 = p99(&hists.latency);
            self.row(second).p99_us = p99;
            merge(&mut self.closed_latency, &hists.latency);
            merge(&mut self.closed_service, &hists.service);
            match encode_interval(second, &hists) {
                Some(interval) => self.log.push(interval),
                None => self.unencodable += 1,
            }
            hists.latency.reset();
            hists.service.reset();
            self.open.push_back(hists);
        }
        self.first_open += 1;
    }

    /// Totals, the timeline and the log up to `end`, counting the open seconds without
    /// closing them.
    pub(crate) fn snapshot(&self, end: Duration) -> WindowView {
        let mut latency = self.closed_latency.clone();
        let mut service = self.closed_service.clone();
        for hists in &self.open {
            merge(&mut latency, &hists.latency);
            merge(&mut service, &hists.service);
        }
        let end_seconds = end.as_secs() + u64::from(end.subsec_nanos() > 0);
        let seconds = end_seconds
            .min(MAX_TIMELINE_SECONDS)
            .max(self.rows.len() as u64)
            .max(self.first_open);
        let open_slot = |t: u64| {
            t.checked_sub(self.first_open)
                .and_then(|slot| usize::try_from(slot).ok())
                .and_then(|slot| self.open.get(slot))
        };
        let timeline = (0..seconds)
            .map(|t| {
                let row = usize::try_from(t)
                    .ok()
                    .and_then(|i| self.rows.get(i))
                    .copied()
                    .unwrap_or_default();
                let p99_us = match open_slot(t) {
                    Some(hists) => p99(&hists.latency),
                    None => row.p99_us,
                };
                TimelineRow {
                    t,
                    requests: row.requests,
                    ok: row.ok,
                    unauthorized: row.unauthorized,
                    token_requests: row.token_requests,
                    p99_us,
                    dropped: row.dropped,
                }
            })
            .collect();
        let mut intervals = self.log.clone();
        let mut unencodable = self.unencodable;
        for t in self.first_open..seconds {
            let interval = match open_slot(t) {
                Some(hists) => encode_interval(t, hists),
                None => Some(LogInterval {
                    second: t,
                    latency: Encoded::Empty,
                    service: Encoded::Empty,
                }),
            };
            match interval {
                Some(interval) => intervals.push(interval),
                None => unencodable += 1,
            }
        }
        let log = LatencyLog {
            start_time: None,
            duration: end,
            intervals,
            unencodable,
        };
        let some = |h: Histogram<u64>| (!h.is_empty()).then_some(h);
        WindowView {
            latency: some(latency),
            service: some(service),
            timeline,
            log,
        }
    }
}

fn encode_interval(second: u64, hists: &SecondHistograms) -> Option<LogInterval> {
    Some(LogInterval {
        second,
        latency: encode(&hists.latency)?,
        service: encode(&hists.service)?,
    })
}

pub(crate) fn second(at: Duration) -> u64 {
    at.as_secs().min(MAX_TIMELINE_SECONDS - 1)
}
