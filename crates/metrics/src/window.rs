//! Per-interval state of a run: timeline counts, the open intervals' histograms, the closed
//! intervals' totals and interval log, and token requests per second.
//!
//! The timeline's interval is 1 s for runs up to an hour and grows with longer ones
//! ([`timeline_interval`]) so that a simulated day has thousands of rows, not 86,400, and
//! costs as little to record.

use std::{collections::VecDeque, time::Duration};

use hdrhistogram::Histogram;

use crate::{
    batch::Kept,
    error::MetricsError,
    histogram::{merge, new_histogram, p99, MAX_LATENCY_US},
    latency_log::{encode, Encoded, LatencyLog, LogInterval},
    record::Class,
    snapshot::TimelineRow,
};

/// Longest timeline (7 days, in seconds); anything later is counted in its last second.
pub const MAX_TIMELINE_SECONDS: u64 = 7 * 24 * 3600;
/// Most rows a run's planned length gives its timeline (an hour of seconds): longer runs get a
/// longer [`timeline_interval`].
pub const MAX_TIMELINE_ROWS: u64 = 3600;
/// The timeline intervals a run may get, in seconds: each divides the next, and every one from
/// a minute on is a whole number of minutes.
const INTERVALS: [u64; 12] = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 3600, 7200];
/// Intervals whose latency histograms stay open for late records before they are closed into
/// the timeline and the interval log. A record that arrives later still than that (which
/// needs its recording to lag its completion by two intervals) is counted in its own
/// interval's row, but its latency in the oldest open interval.
const OPEN_INTERVALS: usize = 3;

/// The timeline interval of a run planned to last `planned`: the shortest of 1, 2, 5, 10, 30 s,
/// 1, 2, 5, 10, 20 min, 1, 2 h that gives at most [`MAX_TIMELINE_ROWS`] rows.
pub fn timeline_interval(planned: Duration) -> u64 {
    let seconds = planned.as_secs() + u64::from(planned.subsec_nanos() > 0);
    INTERVALS
        .into_iter()
        .find(|interval| seconds.div_ceil(*interval) <= MAX_TIMELINE_ROWS)
        .unwrap_or(INTERVALS[INTERVALS.len() - 1])
}

/// Per-interval state: timeline counts, the open intervals' histograms, closed intervals, and
/// token requests per second.
pub(crate) struct Window {
    /// Seconds per row.
    interval: u64,
    rows: Vec<Row>,
    /// Token requests in each second (for the busiest second and minute).
    token_seconds: Vec<u32>,
    /// The row of `open[0]`; every earlier row is closed.
    first_open: u64,
    /// Histograms of rows `first_open .. first_open + OPEN_INTERVALS`.
    open: VecDeque<IntervalHistograms>,
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
    /// Seconds per timeline row.
    pub(crate) interval: u64,
    /// Token requests in each second from the start.
    pub(crate) token_seconds: Vec<u32>,
}

#[derive(Clone, Copy, Default)]
struct Row {
    requests: u64,
    ok: u64,
    unauthorized: u64,
    token_requests: u64,
    dropped: u64,
    /// Set when the interval is closed.
    p99_us: Option<u64>,
}

pub(crate) struct IntervalHistograms {
    pub(crate) latency: Histogram<u64>,
    pub(crate) service: Histogram<u64>,
}

impl Window {
    /// A window of `interval`-second rows (at least 1).
    pub(crate) fn new(interval: u64) -> Result<Self, MetricsError> {
        let mut open = VecDeque::with_capacity(OPEN_INTERVALS);
        for _ in 0..OPEN_INTERVALS {
            open.push_back(IntervalHistograms {
                latency: new_histogram(MAX_LATENCY_US, "per-interval latency")?,
                service: new_histogram(MAX_LATENCY_US, "per-interval service time")?,
            });
        }
        Ok(Window {
            interval: interval.max(1),
            rows: Vec::new(),
            token_seconds: Vec::new(),
            first_open: 0,
            open,
            closed_latency: new_histogram(MAX_LATENCY_US, "latency")?,
            closed_service: new_histogram(MAX_LATENCY_US, "service time")?,
            log: Vec::new(),
            unencodable: 0,
        })
    }

    /// Seconds per row.
    pub(crate) fn interval(&self) -> u64 {
        self.interval
    }

    /// Records a batch's 2xx completions of one interval.
    pub(crate) fn record_kept(&mut self, kept: &Kept) {
        let index = kept.index;
        let row = self.row(index);
        row.requests += kept.count;
        row.ok += kept.count;
        while index >= self.first_open + OPEN_INTERVALS as u64 {
            self.close_first();
        }
        let slot = usize::try_from(index.saturating_sub(self.first_open)).unwrap_or(0);
        if let Some(hists) = self.open.get_mut(slot) {
            merge(&mut hists.latency, &kept.latency);
            merge(&mut hists.service, &kept.service);
        }
    }

    pub(crate) fn count_dropped(&mut self, second: u64, count: u64) {
        self.row(second / self.interval).dropped += count;
    }

    pub(crate) fn count_token_request(&mut self, second: u64) {
        self.row(second / self.interval).token_requests += 1;
        let index = usize::try_from(second).unwrap_or(usize::MAX);
        if self.token_seconds.len() <= index {
            self.token_seconds.resize(index + 1, 0);
        }
        self.token_seconds[index] = self.token_seconds[index].saturating_add(1);
    }

    fn row(&mut self, index: u64) -> &mut Row {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        if self.rows.len() <= index {
            self.rows.resize(index + 1, Row::default());
        }
        &mut self.rows[index]
    }

    pub(crate) fn record(&mut self, second: u64, latency_us: u64, service_us: u64, class: Class) {
        let index = second / self.interval;
        let row = self.row(index);
        row.requests += 1;
        match class {
            Class::Ok => row.ok += 1,
            Class::Unauthorized => row.unauthorized += 1,
            Class::Forbidden | Class::Error => {}
        }
        while index >= self.first_open + OPEN_INTERVALS as u64 {
            self.close_first();
        }
        let slot = usize::try_from(index.saturating_sub(self.first_open)).unwrap_or(0);
        if let Some(hists) = self.open.get_mut(slot) {
            hists.latency.saturating_record(latency_us);
            hists.service.saturating_record(service_us);
        }
    }

    /// Closes the oldest open interval: its p99 into its row, its histograms into the totals
    /// and the log; its histograms are reset and reused for the next interval.
    fn close_first(&mut self) {
        let index = self.first_open;
        if let Some(mut hists) = self.open.pop_front() {
            let p99 = p99(&hists.latency);
            self.row(index).p99_us = p99;
            merge(&mut self.closed_latency, &hists.latency);
            merge(&mut self.closed_service, &hists.service);
            match encode_interval(index * self.interval, &hists) {
                Some(interval) => self.log.push(interval),
                None => self.unencodable += 1,
            }
            // Resetting clears every bucket: skipped for the empty intervals of sparse runs.
            if !hists.latency.is_empty() || !hists.service.is_empty() {
                hists.latency.reset();
                hists.service.reset();
            }
            self.open.push_back(hists);
        }
        self.first_open += 1;
    }

    /// Totals, the timeline and the log up to `end`, counting the open intervals without
    /// closing them.
    pub(crate) fn snapshot(&self, end: Duration) -> WindowView {
        let mut latency = self.closed_latency.clone();
        let mut service = self.closed_service.clone();
        for hists in &self.open {
            merge(&mut latency, &hists.latency);
            merge(&mut service, &hists.service);
        }
        let end_seconds = end.as_secs() + u64::from(end.subsec_nanos() > 0);
        let rows = end_seconds
            .min(MAX_TIMELINE_SECONDS)
            .div_ceil(self.interval)
            .max(self.rows.len() as u64)
            .max(self.first_open);
        let open_slot = |t: u64| {
            t.checked_sub(self.first_open)
                .and_then(|slot| usize::try_from(slot).ok())
                .and_then(|slot| self.open.get(slot))
        };
        let timeline = (0..rows)
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
                    t: t * self.interval,
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
        for t in self.first_open..rows {
            let interval = match open_slot(t) {
                Some(hists) => encode_interval(t * self.interval, hists),
                None => Some(LogInterval {
                    second: t * self.interval,
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
            interval: Duration::from_secs(self.interval),
            intervals,
            unencodable,
        };
        let some = |h: Histogram<u64>| (!h.is_empty()).then_some(h);
        WindowView {
            latency: some(latency),
            service: some(service),
            timeline,
            log,
            interval: self.interval,
            token_seconds: self.token_seconds.clone(),
        }
    }
}

/// Token requests in the busiest second and in the busiest minute (minutes counted from the
/// start), of `token_seconds`, the token requests in each second.
pub(crate) fn token_peaks(token_seconds: &[u32]) -> (u64, u64) {
    let second = token_seconds.iter().max().copied().unwrap_or(0);
    let minute = token_seconds
        .chunks(60)
        .map(|minute| minute.iter().map(|&n| u64::from(n)).sum::<u64>())
        .max()
        .unwrap_or(0);
    (u64::from(second), minute)
}

/// The interval starting at `second`.
pub(crate) fn encode_interval(second: u64, hists: &IntervalHistograms) -> Option<LogInterval> {
    Some(LogInterval {
        second,
        latency: encode(&hists.latency)?,
        service: encode(&hists.service)?,
    })
}

pub(crate) fn second(at: Duration) -> u64 {
    at.as_secs().min(MAX_TIMELINE_SECONDS - 1)
}
