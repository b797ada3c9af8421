//! 401-invalidation: recoveries of each instance after each revocation event.

use std::time::Duration;

use crate::{
    record::RequestRecord,
    snapshot::{InvalidationStats, RecoveryLatency},
};

#[derive(Default)]
pub(crate) struct Invalidation {
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

impl Invalidation {
    /// Starts following the recovery of `instances` instances from an event at `at`.
    pub(crate) fn add_event(&mut self, at: Duration, instances: usize) {
        self.events.push(Revocation {
            at,
            instances: vec![Recovery::default(); instances],
        });
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

    pub(crate) fn on_token_request(&mut self, instance: usize, at: Duration) {
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

    pub(crate) fn stats(&self) -> InvalidationStats {
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
