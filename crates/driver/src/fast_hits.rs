//! A simulation's fast path for cache hits: an arrival whose lookup is bound to be a plain
//! hit with a token the backend accepts is recorded without a task, a timer or a call.
//!
//! At fleet scale nearly every request is such a hit, and the per-request path costs about
//! 2 µs of tokio machinery each: a day of 432 million requests would take a quarter of an
//! hour. The fast path records what the per-request path would have recorded, the same way:
//!
//! - **When it applies.** The client says until when every lookup is a plain hit
//!   ([`client::TokenClient::hit_horizon`]: the token stays fresh and, under
//!   `refresh-ahead`, no refresh is due), and the backend's own check accepts the token now
//!   ([`mock::ProtectedBackend::check`]), unless a 401 or 403 of a request still in flight
//!   removes the cached token (every horizon is then found again). Nothing but a
//!   `revoke-tokens` or `rotate-idp-keys` event changes the backend's answer for an
//!   unexpired token, so the horizon also ends at the next such event, and a hit that would
//!   reach the backend after it takes the per-request path. It does not apply while an
//!   instance has not recovered from such an event (its recovery is measured per request),
//!   nor to an instance with half its in-flight permits taken (the limit could drop
//!   arrivals).
//! - **What it records.** The request as the per-request path times it on the same 1 ms
//!   timer grid: it starts at the tick its arrival falls in, the backend answers `latency`
//!   later, rounded up to the next tick; the latency is drawn from the backend's
//!   distribution with a generator of the scenario's seed. One hit for the client, one 200
//!   for the request, handed to the recorder a timeline interval at a time.
//!
//! `crates/driver/tests/simulate.rs` checks that a simulation counts the same with and
//! without it.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use client::TokenClient;
use metrics::{Batch, Metrics, MetricsError, RequestOutcome, RequestRecord, Slot};
use mock::{LatencySampler, Mock};
use rand::{rngs::SmallRng, SeedableRng as _};
use scenario::{EventKind, Scenario};
use tokio::time::Instant;

/// Mixed into the seed of the fast path's latency draws, apart from the backend's own.
const FAST_DRAWS: u64 = 0x2545_f491_4f6c_dd1d;

/// The fast path's state: each client's horizon, the events that end horizons, the draws,
/// and what it recorded but has not handed over yet.
pub(crate) struct FastHits {
    mock: Arc<Mock>,
    start: Instant,
    latency: LatencySampler,
    /// Xoshiro, not ChaCha: a draw per hit, and nothing to keep secret.
    draws: SmallRng,
    /// Offsets of the events after which tokens issued before may be refused, in order.
    invalidations: Vec<Duration>,
    /// Per client (instance × APIs + API), side by side (one cache line per hit).
    clients: Vec<ClientState>,
    /// Cached tokens the gateways removed after a 401 or 403 so far, and how many the
    /// horizons have seen.
    removals: Arc<AtomicU64>,
    seen_removals: u64,
    /// The timeline interval whose start last handed the hits over.
    hits_handed_at: u64,
    /// Requests recorded, not yet handed over.
    batch: Batch,
    apis: usize,
}

impl FastHits {
    /// The fast path of a run of `scenario` against `mock` from `start`; `removals` counts
    /// the cached tokens the gateways remove.
    pub(crate) fn new(
        scenario: &Scenario,
        mock: &Arc<Mock>,
        start: Instant,
        removals: &Arc<AtomicU64>,
        metrics: &Metrics,
    ) -> Result<Self, MetricsError> {
        let mut invalidations: Vec<Duration> = scenario
            .events
            .iter()
            .filter(|event| {
                matches!(
                    event.kind,
                    EventKind::RevokeTokens | EventKind::RotateIdpKeys
                )
            })
            .map(|event| event.at)
            .collect();
        invalidations.sort();
        let apis = scenario.apis.len();
        let clients = scenario.gateway.instances as usize * apis;
        Ok(FastHits {
            mock: Arc::clone(mock),
            start,
            latency: mock.backend.latency().sampler(),
            draws: SmallRng::seed_from_u64(scenario.seed ^ FAST_DRAWS),
            invalidations,
            clients: vec![ClientState::default(); clients],
            removals: Arc::clone(removals),
            seen_removals: removals.load(Ordering::Acquire),
            hits_handed_at: 0,
            batch: metrics.batch()?,
            apis,
        })
    }

    /// Hands what was recorded before `now` (the run's clock) to the recorder: no record
    /// finishes before the clock any more (the hits per client once per timeline interval).
    /// `Duration::MAX`: everything.
    pub(crate) fn flush(&mut self, now: Duration, metrics: &Metrics) {
        let second = now.as_secs();
        metrics.flush_batch(&mut self.batch, second);
        let interval = second / self.batch.interval();
        if interval == self.hits_handed_at {
            return;
        }
        self.hits_handed_at = interval;
        for (client, state) in self.clients.iter_mut().enumerate() {
            if state.hits > 0 {
                let slot = Slot {
                    instance: client / self.apis,
                    api: client % self.apis,
                };
                metrics.cache_hits(slot, std::mem::take(&mut state.hits));
            }
        }
    }

    /// Records the arrival at `at` on `client` (of `slot`) as a hit if it is bound to be a
    /// plain one; false when it must take the per-request path. `now`: the run's clock,
    /// which may be behind `at`; `spare_permits`: whether the instance has half its in-flight
    /// permits or more free.
    pub(crate) fn record(
        &mut self,
        client: &TokenClient,
        slot: Slot,
        at: Duration,
        now: Duration,
        spare_permits: bool,
        metrics: &Metrics,
    ) -> bool {
        if !spare_permits || metrics.recovering() {
            return false;
        }
        let removals = self.removals.load(Ordering::Acquire);
        if removals != self.seen_removals {
            // Some cached token is gone: find every horizon again.
            for state in &mut self.clients {
                state.horizon = Duration::ZERO;
            }
            self.seen_removals = removals;
        }
        let index = slot.instance * self.apis + slot.api;
        let Some(known) = self.clients.get(index).map(|state| state.horizon) else {
            return false;
        };
        // Events not applied yet (at `now` or later) end what the backend's answer now says.
        let invalidation = self.next_invalidation(now);
        let horizon = if at < known {
            known.min(invalidation)
        } else {
            let fresh = self.horizon(client, invalidation);
            self.clients[index].horizon = fresh;
            fresh
        };
        if at >= horizon {
            return false;
        }
        let sent_at = ceil_ms(at);
        let finished_at = ceil_ms(sent_at + self.latency.sample(&mut self.draws));
        // The backend checks the token when it answers: not across an event.
        if finished_at >= invalidation {
            return false;
        }
        self.clients[index].hits += 1;
        metrics.record_ok_batched(
            &mut self.batch,
            &RequestRecord {
                instance: slot.instance,
                intended_start: at,
                sent_at,
                finished_at,
                outcome: RequestOutcome::Status(200),
                token_obtained_at: None,
            },
        );
        true
    }

    /// Until when lookups of `client` are plain hits with a token the backend accepts, at
    /// most `invalidation`; zero when a lookup now is not one.
    fn horizon(&self, client: &TokenClient, invalidation: Duration) -> Duration {
        let Some((token, until)) = client.hit_horizon() else {
            return Duration::ZERO;
        };
        let accepted = self
            .mock
            .backend
            .check(Some(token.authorization().as_bytes()))
            .is_ok();
        if !accepted {
            return Duration::ZERO;
        }
        until
            .saturating_duration_since(self.start)
            .min(invalidation)
    }

    /// The first event at `now` or later that may invalidate tokens (`Duration::MAX`: none):
    /// one at `now` may not have been applied yet.
    fn next_invalidation(&self, now: Duration) -> Duration {
        let next = self.invalidations.partition_point(|event| *event < now);
        self.invalidations
            .get(next)
            .copied()
            .unwrap_or(Duration::MAX)
    }
}

/// What the fast path keeps per client.
#[derive(Clone, Copy, Default)]
struct ClientState {
    /// Until when its lookups are plain hits with a token the backend accepts (zero: not
    /// known).
    horizon: Duration,
    /// Hits recorded, not yet handed over.
    hits: u64,
}

/// `at` rounded up to the next whole millisecond: when tokio's timer fires a deadline of `at`
/// on a run whose start is on its 1 ms grid.
fn ceil_ms(at: Duration) -> Duration {
    let nanos = at.subsec_nanos();
    let rounded_up = nanos.div_ceil(1_000_000) * 1_000_000;
    Duration::new(at.as_secs(), 0) + Duration::from_nanos(u64::from(rounded_up))
}
