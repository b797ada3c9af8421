//! The catalog of a run's figures: one entry per figure that reports show, in the order they
//! show them, with what regression checks need to judge it.
//!
//! The report tables (`report.md`, `report.html`, comparisons) and the flattening of a
//! report into named metrics for regression checks both read [`CATALOG`]. Adding a figure to
//! the reports is its measurement in the recorder and its field in the snapshot, plus one
//! entry here.
//!
//! ```
//! use metrics::catalog::{Section, CATALOG};
//!
//! let herd = CATALOG.iter().find(|m| m.path == "stampede.max_herd").unwrap();
//! assert_eq!(herd.section, Section::Stampede);
//! assert!(herd.judged.is_some());
//! ```

use std::fmt;

use serde::Serialize;

use crate::snapshot::MetricsSnapshot;

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Lower is better (latencies, herd sizes, token requests).
    Lower,
    /// Higher is better (signatures per second, hit rate, ok requests).
    Higher,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Lower => "lower is better",
            Direction::Higher => "higher is better",
        })
    }
}

/// What a metric is, which sets its default tolerance in regression checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Reproduced by a seeded run: request, token-request and herd counts, the hit rate.
    Count,
    /// Taken side by side within one document: one backend's rate over another's.
    Ratio,
    /// A raw time, rate or size: latencies, signatures per second, peak RSS.
    Timing,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Count => "count",
            Class::Ratio => "ratio",
            Class::Timing => "timing",
        })
    }
}

/// The unit of a figure, which also says how reports write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A whole number of the named things (`requests`, `lookups`, …).
    Count(&'static str),
    /// A mean of a count of the named things, with decimals.
    Mean(&'static str),
    /// The named things per second.
    PerSecond(&'static str),
    /// A fraction from 0 to 1, shown as a percentage.
    Fraction,
    /// Microseconds.
    Micros,
    /// Milliseconds.
    Millis,
    /// Nanoseconds.
    Nanos,
    /// Bytes.
    Bytes,
}

impl Unit {
    /// The unit as regression checks name it (`requests`, `µs`, `fraction`, …).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Count(things) | Unit::Mean(things) => things,
            Unit::PerSecond(_) => "per second",
            Unit::Fraction => "fraction",
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::Nanos => "ns",
            Unit::Bytes => "bytes",
        }
    }
}

/// The part of a report a figure belongs to (one table each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Request counts.
    Requests,
    /// Latency from the intended start.
    Latency,
    /// Service time from the actual start.
    ServiceTime,
    /// Token lookups.
    Cache,
    /// Users and their tokens (on-behalf-of runs).
    Users,
    /// Token requests to the identity provider.
    Idp,
    /// Signing cost.
    Signing,
    /// Miss episodes and herds.
    Stampede,
    /// Recovery after revocations.
    Invalidation,
    /// New connections to the identity provider and to the backend.
    Connections,
    /// Memory.
    Memory,
}

impl Section {
    /// Every section, in report order.
    pub const ALL: [Section; 11] = [
        Section::Requests,
        Section::Latency,
        Section::ServiceTime,
        Section::Cache,
        Section::Users,
        Section::Idp,
        Section::Signing,
        Section::Stampede,
        Section::Invalidation,
        Section::Connections,
        Section::Memory,
    ];

    /// Its title in reports.
    pub fn title(self) -> &'static str {
        match self {
            Section::Requests => "Requests",
            Section::Latency => "Latency from intended start",
            Section::ServiceTime => "Service time from actual start",
            Section::Cache => "Token cache",
            Section::Users => "Users (on behalf of)",
            Section::Idp => "Identity provider",
            Section::Signing => "Signing",
            Section::Stampede => "Stampede",
            Section::Invalidation => "401 invalidation",
            Section::Connections => "New connections",
            Section::Memory => "Memory",
        }
    }
}

/// How regression checks judge a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Which way it improves.
    pub direction: Direction,
    /// Its class (its default tolerance).
    pub class: Class,
}

/// One figure of a run.
#[derive(Clone, Copy, Debug)]
pub struct MetricDescription {
    /// Its dotted path in `report.json` (`stampede.max_herd`), the tail of its regression
    /// name; for a figure derived from others, a name in the same style.
    pub path: &'static str,
    /// Its row label in the report tables.
    pub label: &'static str,
    /// Its table.
    pub section: Section,
    /// Its unit.
    pub unit: Unit,
    /// How regression checks judge it; `None`: shown, never compared (settings of the run,
    /// figures whose change is neither better nor worse).
    pub judged: Option<Judgement>,
    /// Its value in a snapshot; `None` where there is no data (a percentile without
    /// samples, a hit rate without lookups).
    pub value: fn(&MetricsSnapshot) -> Option<f64>,
}

const fn judged(direction: Direction, class: Class) -> Option<Judgement> {
    Some(Judgement { direction, class })
}

const LOWER_COUNT: Option<Judgement> = judged(Direction::Lower, Class::Count);
const HIGHER_COUNT: Option<Judgement> = judged(Direction::Higher, Class::Count);
const LOWER_TIMING: Option<Judgement> = judged(Direction::Lower, Class::Timing);

fn count(v: u64) -> Option<f64> {
    Some(v as f64)
}

fn maybe(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

const fn entry(
    section: Section,
    path: &'static str,
    label: &'static str,
    unit: Unit,
    judged: Option<Judgement>,
    value: fn(&MetricsSnapshot) -> Option<f64>,
) -> MetricDescription {
    MetricDescription {
        path,
        label,
        section,
        unit,
        judged,
        value,
    }
}

use Section::{
    Cache, Connections, Idp, Invalidation, Latency, Memory, Requests, ServiceTime, Signing,
    Stampede, Users,
};

const REQUESTS: Unit = Unit::Count("requests");
const CONNECTIONS: Unit = Unit::Count("connections");

/// Every figure of a run, in report order.
pub const CATALOG: &[MetricDescription] = &[
    entry(
        Requests,
        "requests.sent",
        "sent",
        REQUESTS,
        HIGHER_COUNT,
        |s| count(s.requests.sent),
    ),
    entry(
        Requests,
        "requests.ok",
        "ok (2xx)",
        REQUESTS,
        HIGHER_COUNT,
        |s| count(s.requests.ok),
    ),
    entry(
        Requests,
        "requests.unauthorized",
        "unauthorized (401)",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.requests.unauthorized),
    ),
    entry(
        Requests,
        "requests.forbidden",
        "forbidden (403)",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.requests.forbidden),
    ),
    entry(
        Requests,
        "requests.errors",
        "errors",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.requests.errors),
    ),
    entry(
        Requests,
        "requests.dropped",
        "dropped (in-flight limit)",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.requests.dropped),
    ),
    entry(
        Requests,
        "requests.waited_for_token",
        "waited for a token",
        REQUESTS,
        LOWER_COUNT,
        |s| maybe(s.requests.waited_for_token),
    ),
    // A rate of a run of any length; the counts above are what regression checks compare.
    entry(
        Requests,
        "requests.per_second",
        "completed per second",
        Unit::PerSecond("requests"),
        None,
        |s| {
            let secs = s.duration.as_secs_f64();
            (secs > 0.0).then(|| s.requests.sent as f64 / secs)
        },
    ),
    entry(
        Latency,
        "latency_us.p50",
        "p50",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.latency_us.p50),
    ),
    entry(
        Latency,
        "latency_us.p90",
        "p90",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.latency_us.p90),
    ),
    entry(
        Latency,
        "latency_us.p99",
        "p99",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.latency_us.p99),
    ),
    entry(
        Latency,
        "latency_us.p999",
        "p99.9",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.latency_us.p999),
    ),
    entry(
        Latency,
        "latency_us.max",
        "max",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.latency_us.max),
    ),
    entry(
        ServiceTime,
        "service_time_us.p50",
        "p50",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.service_time_us.p50),
    ),
    entry(
        ServiceTime,
        "service_time_us.p90",
        "p90",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.service_time_us.p90),
    ),
    entry(
        ServiceTime,
        "service_time_us.p99",
        "p99",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.service_time_us.p99),
    ),
    entry(
        ServiceTime,
        "service_time_us.p999",
        "p99.9",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.service_time_us.p999),
    ),
    entry(
        ServiceTime,
        "service_time_us.max",
        "max",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.service_time_us.max),
    ),
    entry(
        Cache,
        "cache.hits",
        "hits",
        Unit::Count("lookups"),
        HIGHER_COUNT,
        |s| count(s.cache.hits),
    ),
    entry(
        Cache,
        "cache.misses",
        "misses",
        Unit::Count("lookups"),
        LOWER_COUNT,
        |s| count(s.cache.misses),
    ),
    entry(
        Cache,
        "cache.hit_rate",
        "hit rate",
        Unit::Fraction,
        HIGHER_COUNT,
        |s| s.cache.hit_rate,
    ),
    entry(
        Users,
        "users.population",
        "users in the traffic",
        Unit::Count("users"),
        None,
        |s| s.users.map(|u| u.population as f64),
    ),
    entry(
        Users,
        "users.distinct",
        "distinct users served",
        Unit::Count("users"),
        None,
        |s| s.users.map(|u| u.distinct as f64),
    ),
    entry(
        Users,
        "users.cache_entries",
        "users' tokens cached at the end",
        Unit::Count("tokens"),
        None,
        |s| s.users.map(|u| u.cache_entries as f64),
    ),
    entry(
        Users,
        "users.entry_limit",
        "entry limit per instance and API",
        Unit::Count("tokens"),
        None,
        |s| s.users.map(|u| u.entry_limit as f64),
    ),
    entry(
        Users,
        "users.evictions",
        "evicted (least recently used)",
        Unit::Count("tokens"),
        LOWER_COUNT,
        |s| s.users.map(|u| u.evictions as f64),
    ),
    entry(
        Users,
        "users.token_requests_per_user",
        "token requests per user",
        Unit::Mean("token requests"),
        LOWER_COUNT,
        |s| s.users.and_then(|u| u.token_requests_per_user),
    ),
    entry(
        Idp,
        "idp.token_requests",
        "token requests",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.idp.token_requests),
    ),
    // Follows token_requests, which is judged.
    entry(Idp, "idp.ok", "ok", REQUESTS, None, |s| count(s.idp.ok)),
    entry(
        Idp,
        "idp.throttled",
        "throttled (429)",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.idp.throttled),
    ),
    entry(Idp, "idp.errors", "errors", REQUESTS, LOWER_COUNT, |s| {
        count(s.idp.errors)
    }),
    entry(
        Idp,
        "idp.peak_concurrent",
        "peak concurrent",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.idp.peak_concurrent),
    ),
    entry(
        Idp,
        "idp.peak_concurrent_fetches",
        "peak concurrent fetches (gateway)",
        Unit::Count("fetches"),
        LOWER_COUNT,
        |s| count(s.idp.peak_concurrent_fetches),
    ),
    entry(
        Idp,
        "idp.peak_second",
        "token requests in the busiest second",
        REQUESTS,
        LOWER_COUNT,
        |s| maybe(s.idp.peak_second),
    ),
    entry(
        Idp,
        "idp.peak_minute",
        "token requests in the busiest minute",
        REQUESTS,
        LOWER_COUNT,
        |s| maybe(s.idp.peak_minute),
    ),
    entry(
        Signing,
        "signing.count",
        "signatures",
        Unit::Count("signatures"),
        LOWER_COUNT,
        |s| count(s.signing.count),
    ),
    entry(
        Signing,
        "signing.mean_ns",
        "mean",
        Unit::Nanos,
        LOWER_TIMING,
        |s| s.signing.mean_ns,
    ),
    entry(
        Signing,
        "signing.p50_ns",
        "p50",
        Unit::Nanos,
        LOWER_TIMING,
        |s| maybe(s.signing.p50_ns),
    ),
    entry(
        Signing,
        "signing.p99_ns",
        "p99",
        Unit::Nanos,
        LOWER_TIMING,
        |s| maybe(s.signing.p99_ns),
    ),
    entry(
        Stampede,
        "stampede.episodes",
        "miss episodes",
        Unit::Count("episodes"),
        LOWER_COUNT,
        |s| count(s.stampede.episodes),
    ),
    entry(
        Stampede,
        "stampede.max_herd",
        "max herd",
        REQUESTS,
        LOWER_COUNT,
        |s| maybe(s.stampede.max_herd),
    ),
    entry(
        Stampede,
        "stampede.mean_herd",
        "mean herd",
        Unit::Mean("requests"),
        LOWER_COUNT,
        |s| s.stampede.mean_herd,
    ),
    entry(
        Stampede,
        "stampede.p50_herd",
        "median herd",
        REQUESTS,
        LOWER_COUNT,
        |s| maybe(s.stampede.p50_herd),
    ),
    entry(
        Stampede,
        "stampede.p99_herd",
        "p99 herd",
        REQUESTS,
        LOWER_COUNT,
        |s| maybe(s.stampede.p99_herd),
    ),
    entry(
        Stampede,
        "token_wait_us.p50",
        "token wait p50 (requests that waited)",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.token_wait_us.p50),
    ),
    entry(
        Stampede,
        "token_wait_us.p99",
        "token wait p99",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.token_wait_us.p99),
    ),
    entry(
        Stampede,
        "token_wait_us.max",
        "token wait max",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.token_wait_us.max),
    ),
    entry(
        Stampede,
        "stampede.unfinished",
        "unfinished episodes",
        Unit::Count("episodes"),
        LOWER_COUNT,
        |s| count(s.stampede.unfinished),
    ),
    // The scenario's events: an input, not an outcome.
    entry(
        Invalidation,
        "invalidation.revocations",
        "revocation events",
        Unit::Count("events"),
        None,
        |s| count(s.invalidation.revocations),
    ),
    // Revocations × instances less `unrecovered`, which is judged.
    entry(
        Invalidation,
        "invalidation.events",
        "recoveries (events × instances)",
        Unit::Count("instances"),
        None,
        |s| count(s.invalidation.events),
    ),
    entry(
        Invalidation,
        "invalidation.unrecovered",
        "not recovered",
        Unit::Count("instances"),
        LOWER_COUNT,
        |s| count(s.invalidation.unrecovered),
    ),
    entry(
        Invalidation,
        "invalidation.latency_ms.p50",
        "latency p50",
        Unit::Millis,
        LOWER_TIMING,
        |s| s.invalidation.latency_ms.p50,
    ),
    entry(
        Invalidation,
        "invalidation.latency_ms.p99",
        "latency p99",
        Unit::Millis,
        LOWER_TIMING,
        |s| s.invalidation.latency_ms.p99,
    ),
    entry(
        Invalidation,
        "invalidation.latency_ms.max",
        "latency max",
        Unit::Millis,
        LOWER_TIMING,
        |s| s.invalidation.latency_ms.max,
    ),
    entry(
        Invalidation,
        "invalidation.failed_requests",
        "failed requests",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.invalidation.failed_requests),
    ),
    entry(
        Invalidation,
        "invalidation.redundant_fetches",
        "redundant fetches",
        REQUESTS,
        LOWER_COUNT,
        |s| count(s.invalidation.redundant_fetches),
    ),
    // Reuse keeps these low; how low depends on timing, so they are judged as timings.
    entry(
        Connections,
        "connections.idp.opened",
        "to the identity provider",
        CONNECTIONS,
        LOWER_TIMING,
        |s| count(s.connections.idp.opened),
    ),
    entry(
        Connections,
        "connections.idp.tls_handshakes",
        "… of them with a TLS handshake",
        CONNECTIONS,
        None,
        |s| count(s.connections.idp.tls_handshakes),
    ),
    entry(
        Connections,
        "connections.idp.failed",
        "… failed to open",
        CONNECTIONS,
        LOWER_COUNT,
        |s| count(s.connections.idp.failed),
    ),
    entry(
        Connections,
        "connections.idp.open_us.p50",
        "time to open p50 (TCP + TLS)",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.connections.idp.open_us.p50),
    ),
    entry(
        Connections,
        "connections.idp.open_us.p99",
        "time to open p99",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.connections.idp.open_us.p99),
    ),
    entry(
        Connections,
        "connections.backend.opened",
        "to the backend",
        CONNECTIONS,
        LOWER_TIMING,
        |s| count(s.connections.backend.opened),
    ),
    entry(
        Connections,
        "connections.backend.tls_handshakes",
        "… of them with a TLS handshake",
        CONNECTIONS,
        None,
        |s| count(s.connections.backend.tls_handshakes),
    ),
    entry(
        Connections,
        "connections.backend.failed",
        "… failed to open",
        CONNECTIONS,
        LOWER_COUNT,
        |s| count(s.connections.backend.failed),
    ),
    entry(
        Connections,
        "connections.backend.open_us.p50",
        "time to open p50 (TCP + TLS)",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.connections.backend.open_us.p50),
    ),
    entry(
        Connections,
        "connections.backend.open_us.p99",
        "time to open p99",
        Unit::Micros,
        LOWER_TIMING,
        |s| maybe(s.connections.backend.open_us.p99),
    ),
    entry(
        Memory,
        "memory.peak_rss_bytes",
        "peak RSS",
        Unit::Bytes,
        LOWER_TIMING,
        |s| maybe(s.memory.peak_rss_bytes),
    ),
    // Context for the peak: what the process held before the run.
    entry(
        Memory,
        "memory.start_rss_bytes",
        "RSS at start",
        Unit::Bytes,
        None,
        |s| maybe(s.memory.start_rss_bytes),
    ),
];
