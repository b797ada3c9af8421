//! The measurements of one run (DESIGN §5), recorded concurrently, read as a snapshot.
//!
//! One [`Metrics`] per run, shared through an [`Arc`] by every task of the run. The driver
//! owns the clock: every time is a [`Duration`] offset from the run's start (the
//! [`tokio::time::Instant`] given to [`Metrics::new`]); [`Metrics::elapsed`] gives the current
//! one. The recording path is cheap and its memory is bounded whatever the request count:
//! counters are atomics, latencies go into HdrHistograms under one short mutex section per
//! request, and nothing is kept per request. What grows with time is per second of the run
//! (one timeline row and one compressed histogram interval) and per revocation event.
//!
//! What is measured, and from what:
//!
//! - **requests** ([`Metrics::record_request`] at each completion, [`Metrics::record_dropped`]
//!   for each arrival refused by the in-flight limit): `sent` counts recorded completions
//!   (`ok` 2xx + `unauthorized` 401 + `forbidden` 403 + `errors`: any other status, a token
//!   error that prevented the backend call, or a backend call without an answer);
//! - **latency** from the request's *intended* start (its scheduled arrival, so queueing
//!   behind a slow system is counted: coordinated omission corrected) and **service time**
//!   from its actual start, both in µs, for every recorded completion whatever its outcome;
//!   one interval per second of the run goes to an HdrHistogram interval log
//!   ([`LatencyLog`]);
//! - **cache hit rate** `hits / (hits + misses)` of token lookups, per instance and in total,
//!   from the client's observer ([`InstanceObserver`]);
//! - **token requests** to the identity provider: each fetch's first request (counted when
//!   the fetch starts) and each retry (counted when it is scheduled), with their answers
//!   (`ok`, `throttled` = 429, `errors` = anything else). An attempt that was never sent (its
//!   assertion could not be signed, or its retry was abandoned because nobody waited for it
//!   any more) counts as a request answered with an error, so that once every fetch has
//!   ended `token_requests = ok + throttled + errors`; the client's herd sizes leave such
//!   attempts out (see [`client::observer`]);
//! - **signing cost** from each signature's wall time (ns);
//! - **stampede**: miss episodes and their herd sizes as the client reports them when an
//!   episode ends (see [`client::observer`]); the identity provider's peak concurrent token
//!   requests as set by the driver ([`Metrics::set_idp_peak_concurrent`]), or else the peak of
//!   concurrent fetches counted here;
//! - **401-invalidation** after each [`Metrics::revocation_event`]: see [`InvalidationStats`];
//! - **timeline**: per second, completions, 2xx, 401, token requests, dropped arrivals and the
//!   99th percentile latency of that second's completions ([`TimelineRow`]);
//! - **peak RSS** ([`peak_rss_bytes`]).

use std::{
    collections::VecDeque,
    fmt,
    io::Write,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, SystemTime},
};

use client::{
    observer::{EpisodeEnded, FetchFinished, FetchOutcome, FetchStarted, Retrying, Signed},
    CacheKey, TokenObserver,
};
use hdrhistogram::{
    serialization::{
        interval_log::{IntervalLogWriterBuilder, Tag},
        Deserializer, Serializer as _, V2DeflateSerializer,
    },
    Histogram,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Highest latency or service time recorded (1 hour, in µs); longer ones count as this.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Highest signing time recorded (60 s, in ns); longer ones count as this.
pub const MAX_SIGNING_NS: u64 = 60_000_000_000;
/// Significant digits of every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// Longest timeline (7 days, in seconds); anything later is counted in its last second.
pub const MAX_TIMELINE_SECONDS: u64 = 7 * 24 * 3600;
/// Seconds whose latency histograms stay open for late records before they are closed into
/// the timeline and the interval log. A record that arrives later still than that (which
/// needs its recording to lag its completion by two seconds) is counted in its own second's
/// row, but its latency in the oldest open second.
const OPEN_SECONDS: usize = 3;
/// Points per halving of `1 - p` in the latency spectrum.
const SPECTRUM_TICKS_PER_HALVING: u32 = 4;
/// The tag of service-time intervals in the interval log (latency intervals are untagged).
pub const SERVICE_TIME_TAG: &str = "service_time";

/// Errors creating the recorder or writing its interval log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A histogram could not be created.
    #[error("cannot create the {what} histogram: {source}")]
    Histogram {
        /// Which histogram.
        what: &'static str,
        /// Why.
        source: hdrhistogram::CreationError,
    },
    /// The interval log could not be written.
    #[error("cannot write the latency interval log: {0}")]
    LogWrite(#[source] std::io::Error),
    /// A stored interval could not be decoded or encoded again.
    #[error("cannot encode the latency interval of second {second}: {reason}")]
    LogEncode {
        /// The interval's second.
        second: u64,
        /// What failed.
        reason: String,
    },
}

/// What came of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The backend answered with this HTTP status.
    Status(u16),
    /// The token client returned an error, so the backend was not called.
    TokenError,
    /// The backend call ended without an answer (connection failure, timeout).
    BackendError,
}

impl RequestOutcome {
    fn class(self) -> Class {
        match self {
            RequestOutcome::Status(200..=299) => Class::Ok,
            RequestOutcome::Status(401) => Class::Unauthorized,
            RequestOutcome::Status(403) => Class::Forbidden,
            RequestOutcome::Status(_)
            | RequestOutcome::TokenError
            | RequestOutcome::BackendError => Class::Error,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    Unauthorized,
    Forbidden,
    Error,
}

/// One completed request, as the driver reports it. All times are offsets from the run's
/// start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The gateway instance that served it (0-based, below [`Metrics::instances`]).
    pub instance: usize,
    /// When it was scheduled to arrive (the open model's arrival time).
    pub intended_start: Duration,
    /// When the driver actually started it (asking the token client, then the backend).
    pub sent_at: Duration,
    /// When its final answer arrived (after the retry, if one was made).
    pub finished_at: Duration,
    /// Its final outcome.
    pub outcome: RequestOutcome,
    /// When the token of its final backend call was obtained from the identity provider
    /// (`Token::obtained_at` as an offset from the run start, saturating at zero); `None`
    /// if it got no token.
    pub token_obtained_at: Option<Duration>,
}

/// How the identity provider answered a token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAnswer {
    /// A token.
    Ok,
    /// HTTP 429.
    Throttled,
    /// Anything else: another status, no answer, a request that could not be prepared, or
    /// a fetch cancelled before its answer was used.
    Error,
}

/// Request counts (`requests` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests recorded as completed: `ok + unauthorized + forbidden + errors`.
    pub sent: u64,
    /// 2xx from the backend.
    pub ok: u64,
    /// 401 from the backend.
    pub unauthorized: u64,
    /// 403 from the backend.
    pub forbidden: u64,
    /// Any other status, no token, or no answer.
    pub errors: u64,
    /// Arrivals that could not start because the in-flight limit was reached.
    pub dropped: u64,
}

/// Percentiles of a histogram in µs (`latency_us`, `service_time_us`); `null` without data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<u64>,
    /// 90th percentile.
    pub p90: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// 99.9th percentile.
    pub p999: Option<u64>,
    /// Largest value.
    pub max: Option<u64>,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let at = |q: f64| (!histogram.is_empty()).then(|| histogram.value_at_quantile(q));
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: (!histogram.is_empty()).then(|| histogram.max()),
        }
    }
}

/// One point of the latency percentile spectrum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// The percentile, 0 to 100.
    pub percentile: f64,
    /// The latency at that percentile, µs.
    pub latency_us: u64,
}

/// One gateway instance's token cache and fetches (`cache.instances[]` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStats {
    /// The instance (0-based).
    pub instance: usize,
    /// Lookups that found a usable token.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// `hits / (hits + misses)`; `null` without lookups.
    pub hit_rate: Option<f64>,
    /// Token requests it issued.
    pub token_requests: u64,
    /// Miss episodes that ended.
    pub episodes: u64,
    /// Its largest herd; `null` without episodes.
    pub max_herd: Option<u64>,
}

/// Token lookups (`cache` in the report).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Lookups that found a usable token, all instances.
    pub hits: u64,
    /// Lookups that found none, all instances.
    pub misses: u64,
    /// `hits / (hits + misses)`; `null` without lookups.
    pub hit_rate: Option<f64>,
    /// Per instance.
    #[serde(default)]
    pub instances: Vec<InstanceStats>,
}

/// Token requests to the identity provider, as the gateway saw them (`idp` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpStats {
    /// Token requests issued: each fetch's first request and each retry (an attempt never
    /// sent included, see the module documentation).
    pub token_requests: u64,
    /// Answered with a token.
    pub ok: u64,
    /// Answered with 429.
    pub throttled: u64,
    /// Anything else (see [`TokenAnswer::Error`]).
    pub errors: u64,
    /// The identity provider's peak of concurrent token requests, as the driver set it
    /// ([`Metrics::set_idp_peak_concurrent`]); else `peak_concurrent_fetches`.
    pub peak_concurrent: u64,
    /// The peak of fetches in progress at once across instances, counted by the gateway
    /// (a fetch runs from signing its assertion to its final answer, retry delays included).
    #[serde(default)]
    pub peak_concurrent_fetches: u64,
}

/// Signing cost (`signing` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SigningStats {
    /// Assertions signed.
    pub count: u64,
    /// Mean wall time of building and signing one, ns; `null` without signatures.
    pub mean_ns: Option<f64>,
    /// Median, ns.
    pub p50_ns: Option<u64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<u64>,
}

/// Miss episodes (`stampede` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StampedeStats {
    /// Miss episodes that ended (with a token stored or with every fetch failed).
    pub episodes: u64,
    /// The largest herd size: token requests issued for one key during one episode.
    pub max_herd: Option<u64>,
    /// The mean herd size.
    pub mean_herd: Option<f64>,
    /// Episodes that had started but not ended when the snapshot was taken (not counted in
    /// the herd figures).
    #[serde(default)]
    pub unfinished: u64,
}

/// Recovery latencies in ms (`invalidation.latency_ms`); nearest-rank percentiles over
/// every recovery of every instance; `null` without recoveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryLatency {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Longest.
    pub max: Option<f64>,
}

/// 401-invalidation after revocation events (`invalidation` in the report).
///
/// For each event (a `revoke-tokens` or `rotate-idp-keys` at time `T`) and each instance,
/// the instance *recovers* with its first completed request that finished at or after `T`,
/// got a 2xx from the backend, and used a token obtained strictly after `T`. Its latency is
/// that request's completion time minus `T`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InvalidationStats {
    /// Recoveries: (event, instance) pairs where the instance recovered. Each instance
    /// counts once per event, so a run with `E` events and `N` instances that all recovered
    /// reports `E × N`.
    pub events: u64,
    /// Revocation events the driver reported.
    #[serde(default)]
    pub revocations: u64,
    /// (event, instance) pairs without a recovery by the end of the run.
    #[serde(default)]
    pub unrecovered: u64,
    /// Time from the event to the recovery.
    pub latency_ms: RecoveryLatency,
    /// Requests that finished without a 2xx on an instance while it had not yet recovered
    /// from an event at or before their completion (each request counts once).
    pub failed_requests: u64,
    /// Token requests beyond one per instance per event: for each (event, instance) pair,
    /// the token requests that instance issued from the event until its recovery (or the
    /// end of the run), minus one.
    pub redundant_fetches: u64,
}

/// Memory (`memory` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// The process's peak resident set size (`VmHWM`), bytes; `null` where unknown.
    pub peak_rss_bytes: Option<u64>,
    /// The resident set size when measuring began (`VmRSS`), bytes: part of the peak that
    /// the run did not add (the binary, the embedded servers' keys, and in a `--compare`
    /// what earlier runs left with the allocator); `null` where unknown.
    #[serde(default)]
    pub start_rss_bytes: Option<u64>,
}

/// One second of the run: `[t, t + 1)` seconds from the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// The second, from 0.
    pub t: u64,
    /// Requests that completed in it.
    pub requests: u64,
    /// Of those, 2xx.
    pub ok: u64,
    /// Of those, 401.
    pub unauthorized: u64,
    /// Token requests issued in it.
    pub token_requests: u64,
    /// 99th percentile latency (from intended start) of its completions, µs; `null` without.
    pub p99_us: Option<u64>,
    /// Arrivals dropped in it.
    #[serde(default)]
    pub dropped: u64,
}

/// Everything measured, at one moment.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    /// The run's length at the snapshot (the `end` given).
    pub duration: Duration,
    /// Wall-clock time when the recorder was created.
    pub started_at: SystemTime,
    /// Gateway instances.
    pub instances: usize,
    /// Request counts.
    pub requests: RequestCounts,
    /// Latency from the intended start, µs.
    pub latency_us: Percentiles,
    /// Service time from the actual start, µs.
    pub service_time_us: Percentiles,
    /// The latency percentile spectrum: points at `p = 1 - 2^(-k/4)` for `k = 0, 1, …` while
    /// `1 / (1 - p)` is below the request count, then the maximum at `p = 1 - 1/count`.
    pub latency_spectrum: Vec<SpectrumPoint>,
    /// Token lookups.
    pub cache: CacheStats,
    /// Token requests.
    pub idp: IdpStats,
    /// Signing cost.
    pub signing: SigningStats,
    /// Miss episodes.
    pub stampede: StampedeStats,
    /// 401-invalidation.
    pub invalidation: InvalidationStats,
    /// Memory.
    pub memory: MemoryStats,
    /// One row per second from 0 until the end (or the last recorded second, if later).
    pub timeline: Vec<TimelineRow>,
    /// The latency and service-time histograms per second.
    pub latency_log: LatencyLog,
}

/// The per-second latency and service-time histograms of a run, written as an HdrHistogram
/// interval log (`latency.hlog`).
///
/// Values are µs. Each second has one untagged interval of latency from the intended start
/// and one interval tagged [`SERVICE_TIME_TAG`] of service time. Timestamps are seconds since
/// the run's start, which the log's `StartTime` and `BaseTime` headers give. Histograms are
/// V2-serialized and DEFLATE-compressed, the encoding the Java `HistogramLogReader` (and so
/// HistogramLogAnalyzer) reads. Held compressed in memory.
#[derive(Clone, Debug, Default)]
pub struct LatencyLog {
    start_time: Option<SystemTime>,
    /// The run's length: the last interval ends there.
    duration: Duration,
    intervals: Vec<LogInterval>,
    /// Intervals left out because their histograms could not be encoded.
    unencodable: u64,
}

#[derive(Clone, Debug)]
struct LogInterval {
    second: u64,
    latency: Encoded,
    service: Encoded,
}

#[derive(Clone, Debug)]
enum Encoded {
    Empty,
    V2Deflate(Vec<u8>),
}

impl LatencyLog {
    /// Intervals (seconds) in the log.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// Whether the log has no interval (a report read back from JSON has none).
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Writes the interval log to `out`.
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<(), MetricsError> {
        let empty = new_histogram(MAX_LATENCY_US, "empty interval")?;
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment("tokenbench latency log: values in microseconds")
            .add_comment(
                "untagged intervals: latency from the intended start (corrected for \
                 coordinated omission)",
            )
            .add_comment(&format!(
                "intervals tagged {SERVICE_TIME_TAG}: service time from the actual start"
            ))
            .with_max_value_divisor(1000.0);
        if self.unencodable > 0 {
            builder.add_comment(&format!(
                "{} intervals left out: their histograms could not be encoded",
                self.unencodable
            ));
        }
        if let Some(start) = self.start_time {
            builder.with_start_time(start).with_base_time(start);
        }
        let mut writer = builder
            .begin_log_with(out, &mut serializer)
            .map_err(MetricsError::LogWrite)?;
        for interval in &self.intervals {
            let start = Duration::from_secs(interval.second);
            let end = start + Duration::from_secs(1);
            let length = if self.duration > start && self.duration < end {
                self.duration - start
            } else {
                Duration::from_secs(1)
            };
            for (encoded, tag) in [
                (&interval.latency, None),
                (&interval.service, Tag::new(SERVICE_TIME_TAG)),
            ] {
                let decoded;
                let histogram = match encoded {
                    Encoded::Empty => &empty,
                    Encoded::V2Deflate(bytes) => {
                        decoded = Deserializer::new()
                            .deserialize::<u64, _>(&mut bytes.as_slice())
                            .map_err(|e| MetricsError::LogEncode {
                                second: interval.second,
                                reason: format!("{e:?}"),
                            })?;
                        &decoded
                    }
                };
                writer
                    .write_histogram(histogram, start, length, tag)
                    .map_err(|e| match e {
                        hdrhistogram::serialization::interval_log::IntervalLogWriterError::IoError(io) => {
                            MetricsError::LogWrite(io)
                        }
                        hdrhistogram::serialization::interval_log::IntervalLogWriterError::SerializeError(s) => {
                            MetricsError::LogEncode { second: interval.second, reason: s.to_string() }
                        }
                    })?;
            }
        }
        Ok(())
    }
}

/// The recorder of one run. Share it with `Arc`; every method takes `&self`.
pub struct Metrics {
    start: Instant,
    /// `VmRSS` when the recorder was made.
    start_rss: Option<u64>,
    started_at: SystemTime,
    requests: RequestCounters,
    instances: Vec<InstanceCounters>,
    idp: IdpCounters,
    window: Mutex<Window>,
    signing: Mutex<SigningState>,
    /// (event, instance) pairs not yet recovered: the fast path skips the invalidation lock
    /// while it is 0.
    unrecovered: AtomicUsize,
    invalidation: Mutex<Invalidation>,
}

#[derive(Default)]
struct RequestCounters {
    sent: AtomicU64,
    ok: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

/// One instance's counters, on their own cache lines.
#[derive(Default)]
#[repr(align(128))]
struct InstanceCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    token_requests: AtomicU64,
    episodes_started: AtomicU64,
    episodes: AtomicU64,
    herd_sum: AtomicU64,
    max_herd: AtomicU64,
}

#[derive(Default)]
struct IdpCounters {
    token_requests: AtomicU64,
    ok: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    fetches_in_flight: AtomicU64,
    peak_fetches: AtomicU64,
    /// The identity provider's own peak, once the driver sets it.
    peak_concurrent: Mutex<Option<u64>>,
}

struct SigningState {
    histogram: Histogram<u64>,
    sum_ns: u128,
}

/// Per-second state: timeline counts, the open seconds' histograms, closed intervals.
struct Window {
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
struct WindowView {
    /// Latency of every second so far; `None` if nothing was recorded.
    latency: Option<Histogram<u64>>,
    /// Service time of every second so far; `None` if nothing was recorded.
    service: Option<Histogram<u64>>,
    timeline: Vec<TimelineRow>,
    /// Without its start time.
    log: LatencyLog,
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

#[derive(Default)]
struct Invalidation {
    events: Vec<Revocation>,
    failed_requests: u64,
    recoveries: Vec<Duration>,
}

struct Revocation {
    at: Duration,
    instances: Vec<Recovery>,
}

#[derive(Clone, Copy, Default)]
struct Recovery {
    recovered_at: Option<Duration>,
    token_requests: u64,
}

impl Metrics {
    /// A recorder for a run of `instances` gateway instances that starts at `start`.
    pub fn new(instances: usize, start: Instant) -> Result<Self, MetricsError> {
        let mut open = VecDeque::with_capacity(OPEN_SECONDS);
        for _ in 0..OPEN_SECONDS {
            open.push_back(SecondHistograms {
                latency: new_histogram(MAX_LATENCY_US, "per-second latency")?,
                service: new_histogram(MAX_LATENCY_US, "per-second service time")?,
            });
        }
        Ok(Metrics {
            start,
            start_rss: rss_bytes(),
            started_at: SystemTime::now(),
            requests: RequestCounters::default(),
            instances: (0..instances)
                .map(|_| InstanceCounters::default())
                .collect(),
            idp: IdpCounters::default(),
            window: Mutex::new(Window {
                rows: Vec::new(),
                first_open: 0,
                open,
                closed_latency: new_histogram(MAX_LATENCY_US, "latency")?,
                closed_service: new_histogram(MAX_LATENCY_US, "service time")?,
                log: Vec::new(),
                unencodable: 0,
            }),
            signing: Mutex::new(SigningState {
                histogram: new_histogram(MAX_SIGNING_NS, "signing")?,
                sum_ns: 0,
            }),
            unrecovered: AtomicUsize::new(0),
            invalidation: Mutex::new(Invalidation::default()),
        })
    }

    /// The number of gateway instances.
    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// The run's start.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Now, as an offset from the run's start.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// `instant` as an offset from the run's start (zero if before it).
    pub fn offset(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.start)
    }

    /// Records a completed request. A record naming an instance out of range counts in
    /// the totals and the timeline only.
    pub fn record_request(&self, record: &RequestRecord) {
        let class = record.outcome.class();
        let r = &self.requests;
        r.sent.fetch_add(1, Ordering::Relaxed);
        match class {
            Class::Ok => &r.ok,
            Class::Unauthorized => &r.unauthorized,
            Class::Forbidden => &r.forbidden,
            Class::Error => &r.errors,
        }
        .fetch_add(1, Ordering::Relaxed);
        let latency = micros(record.finished_at.saturating_sub(record.intended_start));
        let service = micros(record.finished_at.saturating_sub(record.sent_at));
        lock(&self.window).record(second(record.finished_at), latency, service, class);
        if self.unrecovered.load(Ordering::Acquire) > 0 && record.instance < self.instances() {
            let mut invalidation = lock(&self.invalidation);
            let recovered = invalidation.on_request(record, class == Class::Ok);
            self.unrecovered.fetch_sub(recovered, Ordering::AcqRel);
        }
    }

    /// Records an arrival at `at` that could not start because the in-flight limit was
    /// reached.
    pub fn record_dropped(&self, at: Duration) {
        self.requests.dropped.fetch_add(1, Ordering::Relaxed);
        lock(&self.window).row(second(at)).dropped += 1;
    }

    /// A token lookup on `instance` found a usable token.
    pub fn cache_hit(&self, instance: usize) {
        if let Some(counters) = self.instances.get(instance) {
            counters.hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A token lookup on `instance` found none.
    pub fn cache_miss(&self, instance: usize) {
        if let Some(counters) = self.instances.get(instance) {
            counters.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A miss episode started on `instance`.
    pub fn episode_started(&self, instance: usize) {
        if let Some(counters) = self.instances.get(instance) {
            counters.episodes_started.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A miss episode of `instance` ended with `herd_size` token requests.
    pub fn episode_ended(&self, instance: usize, herd_size: u32) {
        if let Some(counters) = self.instances.get(instance) {
            counters.episodes.fetch_add(1, Ordering::Relaxed);
            counters
                .herd_sum
                .fetch_add(u64::from(herd_size), Ordering::Relaxed);
            counters
                .max_herd
                .fetch_max(u64::from(herd_size), Ordering::Relaxed);
        }
    }

    /// A fetch of `instance` started at `at`: one token request, and one more fetch in
    /// progress until [`fetch_finished`](Self::fetch_finished).
    pub fn fetch_started(&self, instance: usize, at: Duration) {
        let now = self.idp.fetches_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.idp.peak_fetches.fetch_max(now, Ordering::Relaxed);
        self.token_request(instance, at);
    }

    /// A token request of `instance` was answered with `status` (429 or 503) and will be
    /// retried: counts that answer and, at `at`, the retry.
    pub fn token_retry(&self, instance: usize, at: Duration, status: u16) {
        self.token_answer(if status == 429 {
            TokenAnswer::Throttled
        } else {
            TokenAnswer::Error
        });
        self.token_request(instance, at);
    }

    /// A fetch ended; `answer` is its last token request's answer.
    pub fn fetch_finished(&self, answer: TokenAnswer) {
        // Saturating: a finish without its start (a fetch started before the observer
        // was attached) must not wrap the gauge.
        let _ =
            self.idp
                .fetches_in_flight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        self.token_answer(answer);
    }

    /// An assertion was signed in `duration`.
    pub fn signed(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let mut signing = lock(&self.signing);
        signing.histogram.saturating_record(ns);
        signing.sum_ns += u128::from(ns);
    }

    /// Sets the identity provider's peak of concurrent token requests (for the embedded
    /// mock, `StatsSnapshot::token_requests_peak_in_flight`). Without it, the report gives
    /// the peak of concurrent fetches counted by the gateway.
    pub fn set_idp_peak_concurrent(&self, peak: u64) {
        *lock(&self.idp.peak_concurrent) = Some(peak);
    }

    /// Tokens start being rejected at `at` (a `revoke-tokens` or `rotate-idp-keys` event).
    /// Events must be reported in time order.
    pub fn revocation_event(&self, at: Duration) {
        let mut invalidation = lock(&self.invalidation);
        invalidation.events.push(Revocation {
            at,
            instances: vec![Recovery::default(); self.instances()],
        });
        self.unrecovered
            .fetch_add(self.instances(), Ordering::AcqRel);
    }

    /// Request counts so far (cheap: for progress displays).
    pub fn counts(&self) -> RequestCounts {
        let r = &self.requests;
        RequestCounts {
            sent: r.sent.load(Ordering::Relaxed),
            ok: r.ok.load(Ordering::Relaxed),
            unauthorized: r.unauthorized.load(Ordering::Relaxed),
            forbidden: r.forbidden.load(Ordering::Relaxed),
            errors: r.errors.load(Ordering::Relaxed),
            dropped: r.dropped.load(Ordering::Relaxed),
        }
    }

    /// Everything measured, for a run of length `end`. Does not change the recorder: it
    /// can be taken during a run, and again later.
    pub fn snapshot(&self, end: Duration) -> MetricsSnapshot {
        let WindowView {
            latency,
            service,
            timeline,
            log: latency_log,
        } = lock(&self.window).snapshot(end);
        let latency = latency.map(|h| (Percentiles::of(&h), spectrum(&h)));
        let (latency_us, latency_spectrum) = latency.unwrap_or_default();
        MetricsSnapshot {
            duration: end,
            started_at: self.started_at,
            instances: self.instances(),
            requests: self.counts(),
            latency_us,
            service_time_us: service.map(|h| Percentiles::of(&h)).unwrap_or_default(),
            latency_spectrum,
            cache: self.cache_stats(),
            idp: self.idp_stats(),
            signing: self.signing_stats(),
            stampede: self.stampede_stats(),
            invalidation: lock(&self.invalidation).stats(),
            memory: MemoryStats {
                peak_rss_bytes: peak_rss_bytes(),
                start_rss_bytes: self.start_rss,
            },
            timeline,
            latency_log: LatencyLog {
                start_time: Some(self.started_at),
                ..latency_log
            },
        }
    }

    fn token_request(&self, instance: usize, at: Duration) {
        self.idp.token_requests.fetch_add(1, Ordering::Relaxed);
        if let Some(counters) = self.instances.get(instance) {
            counters.token_requests.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.window).row(second(at)).token_requests += 1;
        if self.unrecovered.load(Ordering::Acquire) > 0 && instance < self.instances() {
            lock(&self.invalidation).on_token_request(instance, at);
        }
    }

    fn token_answer(&self, answer: TokenAnswer) {
        match answer {
            TokenAnswer::Ok => &self.idp.ok,
            TokenAnswer::Throttled => &self.idp.throttled,
            TokenAnswer::Error => &self.idp.errors,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    fn cache_stats(&self) -> CacheStats {
        let instances: Vec<InstanceStats> = self
            .instances
            .iter()
            .enumerate()
            .map(|(instance, c)| {
                let hits = c.hits.load(Ordering::Relaxed);
                let misses = c.misses.load(Ordering::Relaxed);
                let episodes = c.episodes.load(Ordering::Relaxed);
                InstanceStats {
                    instance,
                    hits,
                    misses,
                    hit_rate: ratio(hits, hits + misses),
                    token_requests: c.token_requests.load(Ordering::Relaxed),
                    episodes,
                    max_herd: (episodes > 0).then(|| c.max_herd.load(Ordering::Relaxed)),
                }
            })
            .collect();
        let hits = instances.iter().map(|i| i.hits).sum();
        let misses = instances.iter().map(|i| i.misses).sum();
        CacheStats {
            hits,
            misses,
            hit_rate: ratio(hits, hits + misses),
            instances,
        }
    }

    fn idp_stats(&self) -> IdpStats {
        let idp = &self.idp;
        let peak_fetches = idp.peak_fetches.load(Ordering::Relaxed);
        IdpStats {
            token_requests: idp.token_requests.load(Ordering::Relaxed),
            ok: idp.ok.load(Ordering::Relaxed),
            throttled: idp.throttled.load(Ordering::Relaxed),
            errors: idp.errors.load(Ordering::Relaxed),
            peak_concurrent: lock(&idp.peak_concurrent).unwrap_or(peak_fetches),
            peak_concurrent_fetches: peak_fetches,
        }
    }

    fn signing_stats(&self) -> SigningStats {
        let signing = lock(&self.signing);
        let h = &signing.histogram;
        let count = h.len();
        let at = |q: f64| (count > 0).then(|| h.value_at_quantile(q));
        SigningStats {
            count,
            mean_ns: (count > 0).then(|| signing.sum_ns as f64 / count as f64),
            p50_ns: at(0.5),
            p99_ns: at(0.99),
        }
    }

    fn stampede_stats(&self) -> StampedeStats {
        let (mut episodes, mut started, mut herd_sum, mut max_herd) = (0, 0, 0, 0);
        for c in &self.instances {
            episodes += c.episodes.load(Ordering::Relaxed);
            started += c.episodes_started.load(Ordering::Relaxed);
            herd_sum += c.herd_sum.load(Ordering::Relaxed);
            max_herd = max_herd.max(c.max_herd.load(Ordering::Relaxed));
        }
        StampedeStats {
            episodes,
            max_herd: (episodes > 0).then_some(max_herd),
            mean_herd: (episodes > 0).then(|| herd_sum as f64 / episodes as f64),
            unfinished: started.saturating_sub(episodes),
        }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("instances", &self.instances())
            .field("requests", &self.counts())
            .finish_non_exhaustive()
    }
}

impl Window {
    fn row(&mut self, second: u64) -> &mut Row {
        let index = usize::try_from(second).unwrap_or(usize::MAX);
        if self.rows.len() <= index {
            self.rows.resize(index + 1, Row::default());
        }
        &mut self.rows[index]
    }

    fn record(&mut self, second: u64, latency_us: u64, service_us: u64, class: Class) {
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
    fn snapshot(&self, end: Duration) -> WindowView {
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

impl Invalidation {
    /// Applies a completed request; returns the number of (event, instance) pairs it
    /// recovered.
    fn on_request(&mut self, record: &RequestRecord, ok: bool) -> usize {
        let mut recovered = 0;
        let mut in_window = false;
        for event in &mut self.events {
            if event.at > record.finished_at {
                continue;
            }
            let Some(pair) = event.instances.get_mut(record.instance) else {
                continue;
            };
            if pair.recovered_at.is_some() {
                continue;
            }
            if ok && record.token_obtained_at.is_some_and(|t| t > event.at) {
                pair.recovered_at = Some(record.finished_at);
                self.recoveries.push(record.finished_at - event.at);
                recovered += 1;
            } else {
                in_window = true;
            }
        }
        if in_window && !ok {
            self.failed_requests += 1;
        }
        recovered
    }

    fn on_token_request(&mut self, instance: usize, at: Duration) {
        for event in &mut self.events {
            if event.at > at {
                continue;
            }
            if let Some(pair) = event.instances.get_mut(instance) {
                if pair.recovered_at.is_none_or(|r| at < r) {
                    pair.token_requests += 1;
                }
            }
        }
    }

    fn stats(&self) -> InvalidationStats {
        let mut sorted = self.recoveries.clone();
        sorted.sort_unstable();
        let ms = |d: Duration| d.as_nanos() as f64 / 1e6;
        let rank = |p: f64| {
            let n = sorted.len();
            let index = ((p * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            sorted.get(index).copied().map(ms)
        };
        let pairs = self.events.iter().flat_map(|e| &e.instances);
        InvalidationStats {
            events: self.recoveries.len() as u64,
            revocations: self.events.len() as u64,
            unrecovered: pairs.clone().filter(|p| p.recovered_at.is_none()).count() as u64,
            latency_ms: RecoveryLatency {
                p50: rank(0.50),
                p99: rank(0.99),
                max: sorted.last().copied().map(ms),
            },
            failed_requests: self.failed_requests,
            redundant_fetches: pairs.map(|p| p.token_requests.saturating_sub(1)).sum(),
        }
    }
}

/// Feeds one gateway instance's token client events into a [`Metrics`]: build the
/// instance's `TokenClient` with `.observer(Arc::new(InstanceObserver::new(metrics, i)))`.
///
/// It keeps numbers only: no key, token or assertion content reaches the metrics.
#[derive(Clone, Debug)]
pub struct InstanceObserver {
    metrics: Arc<Metrics>,
    instance: usize,
}

impl InstanceObserver {
    /// The observer of `instance`.
    pub fn new(metrics: Arc<Metrics>, instance: usize) -> Self {
        InstanceObserver { metrics, instance }
    }

    /// The instance it reports for.
    pub fn instance(&self) -> usize {
        self.instance
    }
}

impl TokenObserver for InstanceObserver {
    fn hit(&self, _key: &CacheKey) {
        self.metrics.cache_hit(self.instance);
    }

    fn miss(&self, _key: &CacheKey) {
        self.metrics.cache_miss(self.instance);
    }

    fn episode_started(&self, _key: &CacheKey, _episode: u64) {
        self.metrics.episode_started(self.instance);
    }

    fn fetch_started(&self, _key: &CacheKey, _event: &FetchStarted) {
        self.metrics
            .fetch_started(self.instance, self.metrics.elapsed());
    }

    fn signed(&self, _key: &CacheKey, event: &Signed) {
        self.metrics.signed(event.duration);
    }

    fn retrying(&self, _key: &CacheKey, event: &Retrying) {
        self.metrics
            .token_retry(self.instance, self.metrics.elapsed(), event.status);
    }

    fn fetch_finished(&self, _key: &CacheKey, event: &FetchFinished) {
        self.metrics.fetch_finished(match &event.outcome {
            FetchOutcome::Stored { .. } => TokenAnswer::Ok,
            FetchOutcome::Failed(error) if error.status() == Some(429) => TokenAnswer::Throttled,
            FetchOutcome::Failed(_) | FetchOutcome::Cancelled => TokenAnswer::Error,
        });
    }

    fn episode_ended(&self, _key: &CacheKey, event: &EpisodeEnded) {
        self.metrics.episode_ended(self.instance, event.herd_size);
    }
}

/// The process's peak resident set size in bytes (`VmHWM` of `/proc/self/status`); `None`
/// where that is unavailable (other systems than Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// The process's resident set size in bytes (`VmRSS`); `None` where unavailable.
fn rss_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// The `key` line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_status_kb(&status, key)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = key;
        None
    }
}

/// Resets the process's peak RSS to its current RSS (Linux: `5` into `/proc/self/clear_refs`),
/// so that [`peak_rss_bytes`] measures from now: each run of a `--compare` its own peak.
/// Elsewhere, or if the kernel refuses, the peak stays process-wide.
pub fn reset_peak_rss() {
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The `key` line (`VmHWM:`, `VmRSS:`) of a `/proc/<pid>/status` text, in bytes.
#[cfg(target_os = "linux")]
fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let mut fields = line[key.len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

fn new_histogram(high: u64, what: &'static str) -> Result<Histogram<u64>, MetricsError> {
    Histogram::new_with_bounds(1, high, SIGNIFICANT_DIGITS)
        .map_err(|source| MetricsError::Histogram { what, source })
}

/// Adds `from` into `into`; values `into` cannot hold count as its highest.
fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if from.is_empty() {
        return;
    }
    if into.add(from).is_err() {
        for value in from.iter_recorded() {
            into.saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }
}

fn p99(histogram: &Histogram<u64>) -> Option<u64> {
    (!histogram.is_empty()).then(|| histogram.value_at_quantile(0.99))
}

fn encode(histogram: &Histogram<u64>) -> Option<Encoded> {
    if histogram.is_empty() {
        return Some(Encoded::Empty);
    }
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .ok()?;
    Some(Encoded::V2Deflate(bytes))
}

fn encode_interval(second: u64, hists: &SecondHistograms) -> Option<LogInterval> {
    Some(LogInterval {
        second,
        latency: encode(&hists.latency)?,
        service: encode(&hists.service)?,
    })
}

fn spectrum(histogram: &Histogram<u64>) -> Vec<SpectrumPoint> {
    let count = histogram.len();
    if count == 0 {
        return Vec::new();
    }
    let mut points = Vec::new();
    for k in 0..=64 * SPECTRUM_TICKS_PER_HALVING {
        let tail = 0.5f64.powf(f64::from(k) / f64::from(SPECTRUM_TICKS_PER_HALVING));
        if k > 0 && 1.0 / tail >= count as f64 {
            break;
        }
        let q = 1.0 - tail;
        points.push(SpectrumPoint {
            percentile: q * 100.0,
            latency_us: histogram.value_at_quantile(q),
        });
    }
    if count > 1 {
        points.push(SpectrumPoint {
            percentile: (1.0 - 1.0 / count as f64) * 100.0,
            latency_us: histogram.max(),
        });
    }
    points
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn second(at: Duration) -> u64 {
    at.as_secs().min(MAX_TIMELINE_SECONDS - 1)
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves consistent state.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::parse_status_kb;

    #[test]
    fn status_lines_are_read_in_bytes() {
        let status = "Name:\ttest\nVmPeak:\t  2000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(1234 * 1024));
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(1000 * 1024));
        assert_eq!(parse_status_kb("VmRSS:\t 1000 kB\n", "VmHWM:"), None);
        assert_eq!(parse_status_kb("VmHWM:\t 1000 pages\n", "VmHWM:"), None);
    }
}
