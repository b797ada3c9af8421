//! The observers that feed a gateway instance's events into a [`Metrics`]: its token
//! client's, and its connections'.

use std::{sync::Arc, time::Duration};

use client::{
    observer::{EpisodeEnded, FetchFinished, FetchOutcome, FetchStarted, Retrying, Signed},
    transport::ConnectionObserver,
    CacheKey, TokenObserver,
};

use crate::{connections::Peer, fleet::Slot, record::TokenAnswer, recorder::Metrics};

/// Feeds one gateway instance's token client events into a [`Metrics`]: build the
/// instance's `TokenClient` with `.observer(Arc::new(InstanceObserver::new(metrics, i)))`,
/// or, for its client of API `a`, `InstanceObserver::for_api(metrics, i, a)`.
///
/// It keeps numbers only: no key, token or assertion content reaches the metrics.
#[derive(Clone, Debug)]
pub struct InstanceObserver {
    metrics: Arc<Metrics>,
    slot: Slot,
}

impl InstanceObserver {
    /// The observer of `instance`.
    pub fn new(metrics: Arc<Metrics>, instance: usize) -> Self {
        Self::for_api(metrics, instance, 0)
    }

    /// The observer of `instance`'s client of API `api`.
    pub fn for_api(metrics: Arc<Metrics>, instance: usize, api: usize) -> Self {
        InstanceObserver {
            metrics,
            slot: Slot { instance, api },
        }
    }

    /// The instance it reports for.
    pub fn instance(&self) -> usize {
        self.slot.instance
    }
}

impl TokenObserver for InstanceObserver {
    fn hit(&self, _key: &CacheKey) {
        self.metrics.cache_hit(self.slot);
    }

    fn miss(&self, _key: &CacheKey) {
        self.metrics.cache_miss(self.slot);
    }

    fn episode_started(&self, _key: &CacheKey, _episode: u64) {
        self.metrics.episode_started(self.slot);
    }

    fn fetch_started(&self, _key: &CacheKey, _event: &FetchStarted) {
        self.metrics
            .fetch_started(self.slot, self.metrics.elapsed());
    }

    fn signed(&self, _key: &CacheKey, event: &Signed) {
        self.metrics.signed(event.duration);
    }

    fn retrying(&self, _key: &CacheKey, event: &Retrying) {
        self.metrics
            .token_retry(self.slot, self.metrics.elapsed(), event.status);
    }

    fn fetch_finished(&self, _key: &CacheKey, event: &FetchFinished) {
        self.metrics.fetch_finished(match &event.outcome {
            FetchOutcome::Stored { .. } => TokenAnswer::Ok,
            FetchOutcome::Failed(error) if error.status() == Some(429) => TokenAnswer::Throttled,
            FetchOutcome::Failed(_) | FetchOutcome::Cancelled => TokenAnswer::Error,
        });
    }

    fn episode_ended(&self, _key: &CacheKey, event: &EpisodeEnded) {
        self.metrics.episode_ended(self.slot, event.herd_size);
    }

    fn evicted(&self, _key: &CacheKey) {
        self.metrics.user_evicted();
    }
}

/// Feeds the new connections to one server into a [`Metrics`]: give it to the token
/// transport (`HyperTransport::observed`) for [`Peer::Idp`], to the backend pool for
/// [`Peer::Backend`].
#[derive(Clone, Debug)]
pub struct ConnectionRecorder {
    metrics: Arc<Metrics>,
    peer: Peer,
}

impl ConnectionRecorder {
    /// The recorder of the connections to `peer`.
    pub fn new(metrics: Arc<Metrics>, peer: Peer) -> Self {
        ConnectionRecorder { metrics, peer }
    }
}

impl ConnectionObserver for ConnectionRecorder {
    fn opened(&self, took: Duration, tls: bool) {
        self.metrics.connection_opened(self.peer, took, tls);
    }

    fn failed(&self) {
        self.metrics.connection_failed(self.peer);
    }
}
