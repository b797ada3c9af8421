//! 401-invalidation: recoveries of each instance after each revocation event.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    record::RequestRecord,
    snapshot::{InvalidationStats, RecoveryLatency},
};

pub(crate) struct Invalidation {
    /// Whether each instance of the fleet is measured here (a shard measures some).
    measured: Vec<bool>,
    events: Vec<Revocation>,
    failed_requests: u64,
    recoveries: Vec<Duration>,
}

struct Revocation {
    at: Duration,
    /// Per instance of the fleet; `None` for one not measured here.
    instances: Vec<Option<Recovery>>,
}

#[derive(Clone, Copy, Default)]
struct Recovery {
    recovered_at: Option<Duration>,
    token_requests: u64,
}

impl Invalidation {
    /// Follows the instances whose `measured` flag is set, of a fleet of `measured.len()`.
    pub(crate) fn new(measured: Vec<bool>) -> Self {
        Invalidation {
            measured,
            events: Vec::new(),
            failed_requests: 0,
            recoveries: Vec::new(),
        }
    }

    /// Starts following the recovery of the measured instances from an event at `at`;
    /// returns how many they are.
    pub(crate) fn add_event(&mut self, at: Duration) -> usize {
        let instances: Vec<_> = self
            .measured
            .iter()
            .map(|&measured| measured.then(Recovery::default))
            .collect();
        self.events.push(Revocation { at, instances });
        self.measured.iter().filter(|&&m| m).count()
    }

    /// Applies a completed request; returns the number of (event, instance) pairs it
    /// recovered.
    pub(crate) fn on_request(&mut self, record: &RequestRecord, ok: bool) -> usize {
        let mut recovered = 0;
        let mut in_window = false;
        for event in &mut self.events {
            if event.at > record.finished_at {
                continue;
            }
            let Some(Some(pair)) = event.instances.get_mut(record.instance) else {
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

    pub(crate) fn on_token_request(&mut self, instance: usize, at: Duration) {
        for event in &mut self.events {
            if event.at > at {
                continue;
            }
            if let Some(Some(pair)) = event.instances.get_mut(instance) {
                if pair.recovered_at.is_none_or(|r| at < r) {
                    pair.token_requests += 1;
                }
            }
        }
    }

    /// What was measured, in mergeable form.
    pub(crate) fn tally(&self) -> InvalidationTally {
        let pairs = || {
            self.events
                .iter()
                .flat_map(|e| e.instances.iter().flatten())
        };
        InvalidationTally {
            revocations: self.events.len() as u64,
            recoveries_ns: self
                .recoveries
                .iter()
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .collect(),
            unrecovered: pairs().filter(|p| p.recovered_at.is_none()).count() as u64,
            failed_requests: self.failed_requests,
            redundant_fetches: pairs().map(|p| p.token_requests.saturating_sub(1)).sum(),
        }
    }
}

/// 401-invalidation in mergeable form: counts, and every recovery's latency (shards measure
/// disjoint instances, so their recoveries together are the whole run's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InvalidationTally {
    /// Revocation events seen (every shard sees every event).
    revocations: u64,
    /// Each recovery's latency, ns.
    recoveries_ns: Vec<u64>,
    unrecovered: u64,
    failed_requests: u64,
    redundant_fetches: u64,
}

impl InvalidationTally {
    /// Adds another shard's. Each shard saw the run's events; one stopped early saw fewer.
    pub(crate) fn add(&mut self, other: &InvalidationTally) {
        self.revocations = self.revocations.max(other.revocations);
        self.recoveries_ns.extend_from_slice(&other.recoveries_ns);
        self.unrecovered += other.unrecovered;
        self.failed_requests += other.failed_requests;
        self.redundant_fetches += other.redundant_fetches;
    }

    pub(crate) fn stats(&self) -> InvalidationStats {
        let mut sorted = self.recoveries_ns.clone();
        sorted.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        let rank = |p: f64| {
            let n = sorted.len();
            let index = ((p * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            sorted.get(index).copied().map(ms)
        };
        InvalidationStats {
            events: sorted.len() as u64,
            revocations: self.revocations,
            unrecovered: self.unrecovered,
            latency_ms: RecoveryLatency {
                p50: rank(0.50),
                p99: rank(0.99),
                max: sorted.last().copied().map(ms),
            },
            failed_requests: self.failed_requests,
            redundant_fetches: self.redundant_fetches,
        }
    }
}
