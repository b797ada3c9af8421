//! Everything measured in a run at one moment: the figures of `report.json`.

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::connections::ConnectionsStats;
use crate::{fleet::GroupStats, latency_log::LatencyLog};

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
    /// Requests that waited for a token: the token they called the backend with arrived
    /// after they started (their waits are `token_wait_us`); `null` in reports written
    /// before it was counted (so that comparing with one shows it as new, not as grown).
    #[serde(default)]
    pub waited_for_token: Option<u64>,
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
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
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

/// Points per halving of `1 - p` in the latency spectrum.
const SPECTRUM_TICKS_PER_HALVING: u32 = 4;

/// The latency percentile spectrum of `histogram`: see [`MetricsSnapshot::latency_spectrum`].
pub(crate) fn spectrum(histogram: &Histogram<u64>) -> Vec<SpectrumPoint> {
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
    /// Anything else (see [`TokenAnswer::Error`](crate::TokenAnswer::Error)).
    pub errors: u64,
    /// The identity provider's peak of concurrent token requests, as the driver set it
    /// ([`Metrics::set_idp_peak_concurrent`](crate::Metrics::set_idp_peak_concurrent)); else `peak_concurrent_fetches`.
    pub peak_concurrent: u64,
    /// The peak of fetches in progress at once across instances, counted by the gateway
    /// (a fetch runs from signing its assertion to its final answer, retry delays included).
    #[serde(default)]
    pub peak_concurrent_fetches: u64,
    /// Token requests issued in the busiest second of the run (seconds counted from its
    /// start); `null` in reports written before it was measured.
    #[serde(default)]
    pub peak_second: Option<u64>,
    /// Token requests issued in the busiest minute of the run (minutes counted from its
    /// start); `null` in reports written before it was measured.
    #[serde(default)]
    pub peak_minute: Option<u64>,
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
    /// The median herd size; `null` without episodes (or in reports written before it).
    #[serde(default)]
    pub p50_herd: Option<u64>,
    /// The 99th percentile herd size.
    #[serde(default)]
    pub p99_herd: Option<u64>,
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

/// The users of an on-behalf-of run (`users` in the report; absent from other runs), where
/// the gateway caches a token per user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserStats {
    /// Users the traffic draws from (`[traffic] users.count`).
    pub population: u64,
    /// Distinct users whose requests reached a gateway instance.
    pub distinct: u64,
    /// Users' tokens cached at the end, over every instance and API.
    pub cache_entries: u64,
    /// Most users' tokens one instance caches per API (`[gateway] user_cache_entries`).
    pub entry_limit: u64,
    /// Users' tokens evicted (least recently used) to stay within the limit.
    pub evictions: u64,
    /// Token requests per distinct user; `null` without users.
    pub token_requests_per_user: Option<f64>,
}

/// One interval of the run: `[t, t + timeline_interval_s)` seconds from the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// The interval's first second, from 0.
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

/// Everything measured, at one moment: the figures of `report.json`, which embeds it.
///
/// In JSON, `duration` is `duration_s` (seconds) and `started_at` RFC 3339 (UTC); figures
/// without data are `null`. The metric catalog (`catalog::CATALOG`) describes each figure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// The run's length at the snapshot (the `end` given).
    #[serde(rename = "duration_s", with = "seconds")]
    pub duration: Duration,
    /// Wall-clock time when the recorder was created; `None` in a report that lacks it.
    #[serde(default, with = "rfc3339")]
    pub started_at: Option<SystemTime>,
    /// Gateway instances.
    #[serde(default)]
    pub instances: usize,
    /// Request counts.
    pub requests: RequestCounts,
    /// Latency from the intended start, µs.
    pub latency_us: Percentiles,
    /// Service time from the actual start, µs.
    pub service_time_us: Percentiles,
    /// How long the requests that waited for a token waited for it (from their start to
    /// the token's arrival), µs.
    #[serde(default)]
    pub token_wait_us: Percentiles,
    /// The latency percentile spectrum: points at `p = 1 - 2^(-k/4)` for `k = 0, 1, …` while
    /// `1 / (1 - p)` is below the request count, then the maximum at `p = 1 - 1/count`.
    #[serde(default)]
    pub latency_spectrum: Vec<SpectrumPoint>,
    /// Token lookups.
    pub cache: CacheStats,
    /// The users of an on-behalf-of run; absent from other runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UserStats>,
    /// Token requests.
    pub idp: IdpStats,
    /// Signing cost.
    pub signing: SigningStats,
    /// Miss episodes.
    pub stampede: StampedeStats,
    /// 401-invalidation.
    pub invalidation: InvalidationStats,
    /// New connections to the identity provider and to the backend (zero in a simulation,
    /// which has none, and in reports written before they were counted).
    #[serde(default)]
    pub connections: ConnectionsStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Token lookups and fetches per region of the fleet (one region without `regions`).
    #[serde(default)]
    pub regions: Vec<GroupStats>,
    /// Token lookups and fetches per API (one API without `[[apis]]`).
    #[serde(default)]
    pub apis: Vec<GroupStats>,
    /// Seconds per timeline row and per interval of the latency log: 1 for runs up to an
    /// hour, longer for longer runs ([`timeline_interval`](crate::timeline_interval)).
    #[serde(default = "one_second")]
    pub timeline_interval_s: u64,
    /// One row per interval from 0 until the end (or the last recorded interval, if later).
    pub timeline: Vec<TimelineRow>,
    /// The latency and service-time histograms per interval (not in JSON: a snapshot read
    /// back has an empty log).
    #[serde(skip)]
    pub latency_log: LatencyLog,
}

/// The timeline interval of reports written before it could be longer.
fn one_second() -> u64 {
    1
}

impl MetricsSnapshot {
    /// [`started_at`](Self::started_at) as RFC 3339 text (UTC), as `report.json` has it.
    pub fn started_at_rfc3339(&self) -> Option<String> {
        self.started_at.and_then(rfc3339::format)
    }
}

/// `at` as RFC 3339 text (UTC, with its fraction of a second), as `report.json` writes times.
pub fn format_rfc3339(at: SystemTime) -> Option<String> {
    rfc3339::format(at)
}

/// A [`Duration`] as a number of seconds.
mod seconds {
    use std::time::Duration;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(duration.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(|_| {
            de::Error::custom(format!(
                "duration_s must be a number of seconds ≥ 0, not {secs}"
            ))
        })
    }
}

/// A wall-clock time as RFC 3339 text (UTC), `null` when unknown.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{de, Deserialize, Deserializer, Serializer};
    use time::{format_description::well_known::Rfc3339, OffsetDateTime};

    pub fn format(at: SystemTime) -> Option<String> {
        OffsetDateTime::from(at).format(&Rfc3339).ok()
    }

    pub fn serialize<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match at.and_then(format) {
            Some(text) => s.serialize_some(&text),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                OffsetDateTime::parse(&text, &Rfc3339)
                    .map(SystemTime::from)
                    .map_err(|e| de::Error::custom(format!("started_at {text:?}: {e}")))
            })
            .transpose()
    }
}
