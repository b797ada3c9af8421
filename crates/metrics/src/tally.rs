//! A run's measurements before anything is derived from them: what a shard writes
//! (`tally.json`) so that shards merge exactly, and what every snapshot is computed from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::{
    connections::{ConnectionTally, ConnectionsStats},
    fleet::{api_stats, region_stats, Fleet, Totals},
    histogram::merge,
    invalidation::InvalidationTally,
    latency_log::LatencyLog,
    snapshot::{
        spectrum, CacheStats, IdpStats, MemoryStats, MetricsSnapshot, Percentiles, RequestCounts,
        SigningStats, StampedeStats, TimelineRow,
    },
    window::token_peaks,
    MetricsError,
};

/// A run's measurements in mergeable form: counts, per-instance and per-API counters, the
/// token requests of each second, the timeline's counts, the histograms of signing times,
/// token waits and herd sizes, every recovery after a revocation. Latency histograms are not
/// in it: they are the interval log's (`latency.hlog`).
///
/// Every figure of a [`MetricsSnapshot`] is derived from a tally and the latency histograms
/// by one crate-internal function, so the figures of merged shards are derived from the
/// merged data exactly as a single run's are, never averaged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tally {
    /// The run's length, ns.
    pub(crate) duration_ns: u64,
    /// When the recorder was made, ns since the Unix epoch.
    pub(crate) started_at_unix_ns: Option<u64>,
    /// Seconds per timeline row and per interval of the latency log.
    pub(crate) interval_s: u64,
    /// The whole fleet, also the instances other shards measure.
    pub(crate) fleet: Fleet,
    /// The instances measured here, ascending.
    pub(crate) measured: Vec<usize>,
    pub(crate) requests: RequestCounts,
    pub(crate) idp: IdpTally,
    /// Per instance of the fleet (zero for one not measured here).
    pub(crate) instances: Vec<Totals>,
    /// Per API of the fleet.
    pub(crate) apis: Vec<Totals>,
    /// The timeline's counts (each row's `p99_us` is derived from the latency log).
    pub(crate) timeline: Vec<TimelineRow>,
    /// Token requests issued in each second from the start.
    pub(crate) token_seconds: Vec<u32>,
    #[serde(with = "encoded")]
    pub(crate) signing: Histogram<u64>,
    /// The sum of every signing time, ns (for the exact mean).
    pub(crate) signing_sum_ns: u128,
    /// Waits of the requests that waited for a token, µs.
    #[serde(with = "encoded")]
    pub(crate) token_wait: Histogram<u64>,
    /// Herd sizes of the episodes that ended.
    #[serde(with = "encoded")]
    pub(crate) herds: Histogram<u64>,
    pub(crate) invalidation: InvalidationTally,
    pub(crate) connections: ConnectionsTally,
    pub(crate) memory: MemoryStats,
}

/// New connections to each server, in mergeable form.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ConnectionsTally {
    pub(crate) idp: ConnectionTally,
    pub(crate) backend: ConnectionTally,
}

/// Token requests to the identity provider, in mergeable form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdpTally {
    pub(crate) token_requests: u64,
    pub(crate) ok: u64,
    pub(crate) throttled: u64,
    pub(crate) errors: u64,
    /// The peak of concurrent fetches counted by the gateway.
    pub(crate) peak_fetches: u64,
    /// The identity provider's own peak, when the driver set it.
    pub(crate) peak_concurrent: Option<u64>,
}

impl Tally {
    /// The run's length.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.duration_ns)
    }

    /// When the run started (wall clock), if known.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.started_at_unix_ns
            .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns))
    }

    /// The instances measured, ascending.
    pub fn measured(&self) -> &[usize] {
        &self.measured
    }

    /// Seconds per timeline row and latency-log interval.
    pub fn interval_s(&self) -> u64 {
        self.interval_s
    }

    /// Every figure, from this tally and the run's latency histograms: `latency` and
    /// `service` over the whole run (`None` without completions), `log` per interval.
    pub(crate) fn snapshot(
        &self,
        latency: Option<&Histogram<u64>>,
        service: Option<&Histogram<u64>>,
        log: LatencyLog,
    ) -> MetricsSnapshot {
        let (latency_us, latency_spectrum) = latency
            .map(|h| (Percentiles::of(h), spectrum(h)))
            .unwrap_or_default();
        let (peak_second, peak_minute) = token_peaks(&self.token_seconds);
        let measured = || self.measured.iter().filter_map(|&i| self.instances.get(i));
        let totals = Totals::sum(measured());
        let idp = &self.idp;
        MetricsSnapshot {
            duration: self.duration(),
            started_at: self.started_at(),
            instances: self.measured.len(),
            requests: self.requests,
            latency_us,
            service_time_us: service.map(Percentiles::of).unwrap_or_default(),
            token_wait_us: Percentiles::of(&self.token_wait),
            latency_spectrum,
            cache: CacheStats {
                hits: totals.hits,
                misses: totals.misses,
                hit_rate: totals.hit_rate(),
                instances: self
                    .measured
                    .iter()
                    .filter_map(|&i| Some(self.instances.get(i)?.instance_stats(i)))
                    .collect(),
            },
            // Not tallied: a sharded run has none (the driver refuses users in shards).
            users: None,
            idp: IdpStats {
                token_requests: idp.token_requests,
                ok: idp.ok,
                throttled: idp.throttled,
                errors: idp.errors,
                peak_concurrent: idp.peak_concurrent.unwrap_or(idp.peak_fetches),
                peak_concurrent_fetches: idp.peak_fetches,
                peak_second: Some(peak_second),
                peak_minute: Some(peak_minute),
            },
            signing: self.signing_stats(),
            stampede: self.stampede_stats(&totals),
            invalidation: self.invalidation.stats(),
            connections: ConnectionsStats {
                idp: self.connections.idp.stats(),
                backend: self.connections.backend.stats(),
            },
            memory: self.memory,
            regions: region_stats(&self.fleet, &self.instances, &self.measured),
            apis: api_stats(&self.fleet, &self.apis, self.measured.len()),
            timeline_interval_s: self.interval_s,
            timeline: self.timeline.clone(),
            latency_log: log,
        }
    }

    fn signing_stats(&self) -> SigningStats {
        let h = &self.signing;
        let count = h.len();
        let at = |q: f64| (count > 0).then(|| h.value_at_quantile(q));
        SigningStats {
            count,
            mean_ns: (count > 0).then(|| self.signing_sum_ns as f64 / count as f64),
            p50_ns: at(0.5),
            p99_ns: at(0.99),
        }
    }

    fn stampede_stats(&self, totals: &Totals) -> StampedeStats {
        let herds = &self.herds;
        let at = |q: f64| (!herds.is_empty()).then(|| herds.value_at_quantile(q));
        StampedeStats {
            episodes: totals.episodes,
            max_herd: (totals.episodes > 0).then_some(totals.max_herd),
            mean_herd: totals.mean_herd(),
            p50_herd: at(0.5),
            p99_herd: at(0.99),
            unfinished: totals.episodes_started.saturating_sub(totals.episodes),
        }
    }

    /// Checks that the tally's parts agree with its fleet (a tally read back from a file may
    /// not be one this crate wrote).
    pub(crate) fn check(&self) -> Result<(), MetricsError> {
        let instances = self.fleet.region_of.len();
        let problem = if self.instances.len() != instances {
            format!(
                "{} instance counters for a fleet of {instances}",
                self.instances.len()
            )
        } else if self.apis.len() != self.fleet.apis.len() {
            format!(
                "{} API counters for {} APIs",
                self.apis.len(),
                self.fleet.apis.len()
            )
        } else if let Some(i) = self.measured.iter().find(|&&i| i >= instances) {
            format!("instance {i} measured in a fleet of {instances}")
        } else if self.interval_s == 0 {
            "a timeline interval of 0 s".to_owned()
        } else {
            return Ok(());
        };
        Err(MetricsError::Mismatch(format!(
            "a tally is inconsistent: {problem}"
        )))
    }

    /// Adds `other`, a tally of other instances of the same fleet whose clock is `shift_s`
    /// seconds (a whole number of intervals) behind this one's start. Timeline rows'
    /// `p99_us` are left for the caller to derive from the merged latency log.
    pub(crate) fn add(&mut self, other: &Tally, shift_s: u64) -> Result<(), MetricsError> {
        let mismatch = |what: String| Err(MetricsError::Mismatch(what));
        if other.fleet != self.fleet {
            return mismatch(format!(
                "fleets differ: {} instances in {} regions calling {:?} against {} instances in \
                 {} regions calling {:?}",
                other.fleet.region_of.len(),
                other.fleet.regions(),
                other.fleet.apis,
                self.fleet.region_of.len(),
                self.fleet.regions(),
                self.fleet.apis
            ));
        }
        if other.interval_s != self.interval_s {
            return mismatch(format!(
                "timeline intervals differ: {} s against {} s",
                other.interval_s, self.interval_s
            ));
        }
        if let Some(both) = other.measured.iter().find(|i| self.measured.contains(i)) {
            return mismatch(format!("instance {both} was measured twice"));
        }
        let r = &mut self.requests;
        let o = &other.requests;
        r.sent += o.sent;
        r.ok += o.ok;
        r.unauthorized += o.unauthorized;
        r.forbidden += o.forbidden;
        r.errors += o.errors;
        r.dropped += o.dropped;
        r.waited_for_token = match (r.waited_for_token, o.waited_for_token) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        let (idp, o) = (&mut self.idp, &other.idp);
        idp.token_requests += o.token_requests;
        idp.ok += o.ok;
        idp.throttled += o.throttled;
        idp.errors += o.errors;
        // Shards' peaks need not coincide: their sum bounds the merged run's from above.
        idp.peak_fetches += o.peak_fetches;
        idp.peak_concurrent = match (idp.peak_concurrent, o.peak_concurrent) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        for (into, from) in self.instances.iter_mut().zip(&other.instances) {
            into.add(from);
        }
        for (into, from) in self.apis.iter_mut().zip(&other.apis) {
            into.add(from);
        }
        self.measured.extend_from_slice(&other.measured);
        self.measured.sort_unstable();

        let rows = usize::try_from(shift_s / self.interval_s).unwrap_or(usize::MAX);
        for (i, row) in other.timeline.iter().enumerate() {
            let index = i.saturating_add(rows);
            if self.timeline.len() <= index {
                self.timeline.resize(index + 1, TimelineRow::default());
            }
            let into = &mut self.timeline[index];
            into.t = index as u64 * self.interval_s;
            into.requests += row.requests;
            into.ok += row.ok;
            into.unauthorized += row.unauthorized;
            into.token_requests += row.token_requests;
            into.dropped += row.dropped;
        }
        let seconds = usize::try_from(shift_s).unwrap_or(usize::MAX);
        for (i, &n) in other.token_seconds.iter().enumerate() {
            let index = i.saturating_add(seconds);
            if self.token_seconds.len() <= index {
                self.token_seconds.resize(index + 1, 0);
            }
            self.token_seconds[index] = self.token_seconds[index].saturating_add(n);
        }
        self.duration_ns = self.duration_ns.max(
            other
                .duration_ns
                .saturating_add(shift_s.saturating_mul(1_000_000_000)),
        );
        merge(&mut self.signing, &other.signing);
        self.signing_sum_ns += other.signing_sum_ns;
        merge(&mut self.token_wait, &other.token_wait);
        merge(&mut self.herds, &other.herds);
        self.invalidation.add(&other.invalidation);
        self.connections.idp.add(&other.connections.idp);
        self.connections.backend.add(&other.connections.backend);
        // Each shard is its own process: the merged figure is the largest shard's.
        let max = |a: Option<u64>, b: Option<u64>| a.max(b);
        self.memory = MemoryStats {
            peak_rss_bytes: max(self.memory.peak_rss_bytes, other.memory.peak_rss_bytes),
            start_rss_bytes: max(self.memory.start_rss_bytes, other.memory.start_rss_bytes),
        };
        Ok(())
    }
}

/// A histogram as base64 of its V2 DEFLATE encoding (HdrHistogram's interchange format);
/// `null` when empty.
pub(crate) mod encoded {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use hdrhistogram::{
        serialization::{Deserializer as HistogramReader, Serializer as _, V2DeflateSerializer},
        Histogram,
    };
    use serde::{de, Deserialize, Deserializer, Serializer};

    use crate::histogram::{new_histogram, MAX_SIGNING_NS};

    pub fn serialize<S: Serializer>(histogram: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        if histogram.is_empty() {
            return s.serialize_none();
        }
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(histogram, &mut bytes)
            .map_err(|e| serde::ser::Error::custom(format!("cannot encode a histogram: {e}")))?;
        s.serialize_some(&STANDARD.encode(bytes))
    }

    /// The encoded histogram keeps its own bounds; an empty one gets the widest a tally has.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => new_histogram(MAX_SIGNING_NS, "empty").map_err(de::Error::custom),
            Some(text) => {
                let bytes = STANDARD
                    .decode(text.as_bytes())
                    .map_err(|e| de::Error::custom(format!("a histogram is not base64: {e}")))?;
                HistogramReader::new()
                    .deserialize(&mut bytes.as_slice())
                    .map_err(|e| de::Error::custom(format!("a histogram cannot be decoded: {e:?}")))
            }
        }
    }
}
