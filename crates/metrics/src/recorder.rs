//! The recorder of one run, shared by every task of the run.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::{
    batch::{Batch, Kept},
    connections::{ConnectionCounters, Peer},
    error::MetricsError,
    fleet::{ClientCounters, Fleet, Slot},
    histogram::{new_histogram, MAX_HERD, MAX_LATENCY_US, MAX_SIGNING_NS},
    invalidation::Invalidation,
    latency_log::LatencyLog,
    record::{Class, RequestRecord, TokenAnswer},
    rss::{peak_rss_bytes, rss_bytes},
    snapshot::{MemoryStats, MetricsSnapshot, RequestCounts, UserStats},
    tally::{ConnectionsTally, IdpTally, Tally},
    window::{second, timeline_interval, Window, WindowView},
};

/// The recorder of one run. Share it with `Arc`; every method takes `&self`.
pub struct Metrics {
    start: Instant,
    /// `VmRSS` when the recorder was made.
    start_rss: Option<u64>,
    started_at: SystemTime,
    requests: RequestCounters,
    fleet: Fleet,
    /// The instances of the fleet this recorder measures, ascending (all but in a shard).
    measured: Vec<usize>,
    instances: Vec<ClientCounters>,
    apis: Vec<ClientCounters>,
    idp: IdpCounters,
    /// New connections to the identity provider and to the backend.
    idp_connections: ConnectionCounters,
    backend_connections: ConnectionCounters,
    window: Mutex<Window>,
    signing: Mutex<SigningState>,
    /// Waits of the requests that waited for a token, µs.
    token_wait: Mutex<Histogram<u64>>,
    /// Herd sizes of the episodes that ended.
    herds: Mutex<Histogram<u64>>,
    /// (event, instance) pairs not yet recovered: the fast path skips the invalidation lock
    /// while it is 0.
    unrecovered: AtomicUsize,
    invalidation: Mutex<Invalidation>,
    /// The users of an on-behalf-of run, set at its end.
    users: Mutex<Option<UserStats>>,
    user_evictions: AtomicU64,
}

#[derive(Default)]
struct RequestCounters {
    sent: AtomicU64,
    ok: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    waited_for_token: AtomicU64,
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

// `elapsed`, `offset`, `record_request` and `record_dropped` run once per request or batch of
// dropped arrivals from the driver, another crate: `#[inline]` lets them inline there as they did when
// the driver and the recorder were one crate (without it the driver completed 7 % fewer
// requests per second, medians of 14 alternating 5 s saturated runs).
impl Metrics {
    /// A recorder for a run of `instances` gateway instances that starts at `start`, with a
    /// timeline of one row per second.
    pub fn new(instances: usize, start: Instant) -> Result<Self, MetricsError> {
        Self::with_interval(Fleet::single(instances), None, start, 1)
    }

    /// A recorder for a run of `fleet` planned to last `planned`: its timeline rows are
    /// [`timeline_interval`]`(planned)` seconds long (1 s up to an hour).
    pub fn for_run(fleet: Fleet, start: Instant, planned: Duration) -> Result<Self, MetricsError> {
        Self::with_interval(fleet, None, start, timeline_interval(planned))
    }

    /// A recorder for one shard of a run of `fleet`, which runs the instances `measured`:
    /// recoveries are followed for those only, and the snapshot's per-instance and per-region
    /// figures count those only.
    pub fn for_shard(
        fleet: Fleet,
        measured: Vec<usize>,
        start: Instant,
        planned: Duration,
    ) -> Result<Self, MetricsError> {
        Self::with_interval(fleet, Some(measured), start, timeline_interval(planned))
    }

    fn with_interval(
        fleet: Fleet,
        measured: Option<Vec<usize>>,
        start: Instant,
        interval: u64,
    ) -> Result<Self, MetricsError> {
        let counters = |n: usize| (0..n).map(|_| ClientCounters::default()).collect();
        let instances = fleet.region_of.len();
        let mut measured = measured.unwrap_or_else(|| (0..instances).collect());
        measured.retain(|&i| i < instances);
        measured.sort_unstable();
        measured.dedup();
        let mut flags = vec![false; instances];
        for &i in &measured {
            flags[i] = true;
        }
        Ok(Metrics {
            start,
            start_rss: rss_bytes(),
            started_at: SystemTime::now(),
            requests: RequestCounters::default(),
            measured,
            instances: counters(instances),
            apis: counters(fleet.apis.len()),
            fleet,
            idp: IdpCounters::default(),
            idp_connections: ConnectionCounters::new()?,
            backend_connections: ConnectionCounters::new()?,
            window: Mutex::new(Window::new(interval)?),
            signing: Mutex::new(SigningState {
                histogram: new_histogram(MAX_SIGNING_NS, "signing")?,
                sum_ns: 0,
            }),
            token_wait: Mutex::new(new_histogram(MAX_LATENCY_US, "token wait")?),
            herds: Mutex::new(new_histogram(MAX_HERD, "herd sizes")?),
            unrecovered: AtomicUsize::new(0),
            invalidation: Mutex::new(Invalidation::new(flags)),
            users: Mutex::new(None),
            user_evictions: AtomicU64::new(0),
        })
    }

    /// The number of gateway instances of the fleet.
    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// The run's start.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Now, as an offset from the run's start.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// `instant` as an offset from the run's start (zero if before it).
    #[inline]
    pub fn offset(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.start)
    }

    /// Records a completed request. A record naming an instance out of range counts in
    /// the totals and the timeline only.
    #[inline]
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
        if let Some(wait) = record
            .token_obtained_at
            .and_then(|obtained| obtained.checked_sub(record.sent_at))
            .filter(|wait| !wait.is_zero())
        {
            r.waited_for_token.fetch_add(1, Ordering::Relaxed);
            lock(&self.token_wait).saturating_record(micros(wait));
        }
        lock(&self.window).record(second(record.finished_at), latency, service, class);
        if self.unrecovered.load(Ordering::Acquire) > 0 && record.instance < self.instances() {
            let mut invalidation = lock(&self.invalidation);
            let recovered = invalidation.on_request(record, class == Class::Ok);
            self.unrecovered.fetch_sub(recovered, Ordering::AcqRel);
        }
    }

    /// A batch for 2xx completions recorded outside the recorder's lock
    /// ([`record_ok_batched`](Self::record_ok_batched)).
    pub fn batch(&self) -> Result<Batch, MetricsError> {
        Batch::new(lock(&self.window).interval())
    }

    /// Records a 2xx completion into `batch`; it reaches the figures when its timeline
    /// interval is handed over: when the batch moves three intervals on, or at
    /// [`flush_batch`](Self::flush_batch). Its instance's recovery is not followed: record
    /// so only while no instance is [`recovering`](Self::recovering).
    #[inline]
    pub fn record_ok_batched(&self, batch: &mut Batch, record: &RequestRecord) {
        let latency = record.finished_at.saturating_sub(record.intended_start);
        let service = record.finished_at.saturating_sub(record.sent_at);
        if let Some(kept) = batch.add(record.finished_at, latency, service) {
            self.hand_over(batch, kept);
        }
    }

    /// Hands the batch's intervals before the one of second `before` over (all with
    /// `u64::MAX`): call it as the run's clock moves on, and before a snapshot.
    pub fn flush_batch(&self, batch: &mut Batch, before: u64) {
        for kept in batch.take_before(before) {
            self.hand_over(batch, kept);
        }
    }

    fn hand_over(&self, batch: &mut Batch, kept: Kept) {
        let r = &self.requests;
        r.sent.fetch_add(kept.count, Ordering::Relaxed);
        r.ok.fetch_add(kept.count, Ordering::Relaxed);
        lock(&self.window).record_kept(&kept);
        batch.reuse(kept);
    }

    /// Records `count` arrivals of the second of `at` that could not start because the
    /// in-flight limit was reached.
    #[inline]
    pub fn record_dropped(&self, at: Duration, count: u64) {
        self.requests.dropped.fetch_add(count, Ordering::Relaxed);
        lock(&self.window).count_dropped(second(at), count);
    }

    /// The counters of `slot`'s instance and API (none for an instance or API out of
    /// range).
    fn slot_counters(&self, slot: Slot) -> impl Iterator<Item = &ClientCounters> {
        self.instances
            .get(slot.instance)
            .into_iter()
            .chain(self.apis.get(slot.api))
    }

    /// `n` token lookups of a client found a usable token (`slot`: an instance, or an
    /// instance and an API).
    pub fn cache_hits(&self, slot: impl Into<Slot>, n: u64) {
        for counters in self.slot_counters(slot.into()) {
            ClientCounters::add(&counters.hits, n);
        }
    }

    /// A token lookup of a client found a usable token.
    pub fn cache_hit(&self, slot: impl Into<Slot>) {
        self.cache_hits(slot, 1);
    }

    /// A token lookup of a client found none.
    pub fn cache_miss(&self, slot: impl Into<Slot>) {
        for counters in self.slot_counters(slot.into()) {
            ClientCounters::add(&counters.misses, 1);
        }
    }

    /// A miss episode of a client started.
    pub fn episode_started(&self, slot: impl Into<Slot>) {
        for counters in self.slot_counters(slot.into()) {
            ClientCounters::add(&counters.episodes_started, 1);
        }
    }

    /// A miss episode of a client ended with `herd_size` token requests.
    pub fn episode_ended(&self, slot: impl Into<Slot>, herd_size: u32) {
        for counters in self.slot_counters(slot.into()) {
            counters.episode_ended(herd_size);
        }
        lock(&self.herds).saturating_record(u64::from(herd_size));
    }

    /// A fetch of a client started at `at`: one token request, and one more fetch in
    /// progress until [`fetch_finished`](Self::fetch_finished).
    pub fn fetch_started(&self, slot: impl Into<Slot>, at: Duration) {
        let now = self.idp.fetches_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.idp.peak_fetches.fetch_max(now, Ordering::Relaxed);
        self.token_request(slot.into(), at);
    }

    /// A token request of a client was answered with `status` (429 or 503) and will be
    /// retried: counts that answer and, at `at`, the retry.
    pub fn token_retry(&self, slot: impl Into<Slot>, at: Duration, status: u16) {
        self.token_answer(if status == 429 {
            TokenAnswer::Throttled
        } else {
            TokenAnswer::Error
        });
        self.token_request(slot.into(), at);
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

    /// A new connection to `peer` was opened in `took` (connect, and the TLS handshake if
    /// `tls`).
    pub fn connection_opened(&self, peer: Peer, took: Duration, tls: bool) {
        self.connections(peer).opened(took, tls);
    }

    /// A new connection to `peer` could not be opened.
    pub fn connection_failed(&self, peer: Peer) {
        self.connections(peer).failed();
    }

    fn connections(&self, peer: Peer) -> &ConnectionCounters {
        match peer {
            Peer::Idp => &self.idp_connections,
            Peer::Backend => &self.backend_connections,
        }
    }

    /// Sets the identity provider's peak of concurrent token requests (for the embedded
    /// mock, `StatsSnapshot::token_requests_peak_in_flight`). Without it, the report gives
    /// the peak of concurrent fetches counted by the gateway.
    pub fn set_idp_peak_concurrent(&self, peak: u64) {
        *lock(&self.idp.peak_concurrent) = Some(peak);
    }

    /// A user's cached token was evicted (an on-behalf-of run's cache was full).
    pub fn user_evicted(&self) {
        self.user_evictions.fetch_add(1, Ordering::Relaxed);
    }

    /// The users of an on-behalf-of run, counted by the driver at its end: the population
    /// drawn from, the distinct users served, the users' tokens cached now and the limit of
    /// one instance's cache. Evictions are counted here ([`user_evicted`](Self::user_evicted)).
    pub fn set_users(&self, population: u64, distinct: u64, cache_entries: u64, entry_limit: u64) {
        *lock(&self.users) = Some(UserStats {
            population,
            distinct,
            cache_entries,
            entry_limit,
            evictions: 0,
            token_requests_per_user: None,
        });
    }

    /// Tokens start being rejected at `at` (a `revoke-tokens` or `rotate-idp-keys` event).
    /// Events must be reported in time order.
    pub fn revocation_event(&self, at: Duration) {
        let followed = lock(&self.invalidation).add_event(at);
        self.unrecovered.fetch_add(followed, Ordering::AcqRel);
    }

    /// Whether some instance has not yet recovered from a revocation event (its requests
    /// then feed the recovery measurement one by one).
    pub fn recovering(&self) -> bool {
        self.unrecovered.load(Ordering::Acquire) > 0
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
            waited_for_token: Some(r.waited_for_token.load(Ordering::Relaxed)),
        }
    }

    /// Everything measured, for a run of length `end`. Does not change the recorder: it
    /// can be taken during a run, and again later.
    pub fn snapshot(&self, end: Duration) -> MetricsSnapshot {
        self.snapshot_and_tally(end).0
    }

    /// The snapshot, and the tally it was derived from (what a shard writes for merging).
    pub fn snapshot_and_tally(&self, end: Duration) -> (MetricsSnapshot, Tally) {
        let WindowView {
            latency,
            service,
            timeline,
            log,
            interval,
            token_seconds,
        } = lock(&self.window).snapshot(end);
        let idp = &self.idp;
        let signing = lock(&self.signing);
        let tally = Tally {
            duration_ns: u64::try_from(end.as_nanos()).unwrap_or(u64::MAX),
            started_at_unix_ns: self
                .started_at
                .duration_since(UNIX_EPOCH)
                .ok()
                .and_then(|d| u64::try_from(d.as_nanos()).ok()),
            interval_s: interval,
            fleet: self.fleet.clone(),
            measured: self.measured.clone(),
            requests: self.counts(),
            idp: IdpTally {
                token_requests: idp.token_requests.load(Ordering::Relaxed),
                ok: idp.ok.load(Ordering::Relaxed),
                throttled: idp.throttled.load(Ordering::Relaxed),
                errors: idp.errors.load(Ordering::Relaxed),
                peak_fetches: idp.peak_fetches.load(Ordering::Relaxed),
                peak_concurrent: *lock(&idp.peak_concurrent),
            },
            instances: self.instances.iter().map(ClientCounters::read).collect(),
            apis: self.apis.iter().map(ClientCounters::read).collect(),
            timeline,
            token_seconds,
            signing: signing.histogram.clone(),
            signing_sum_ns: signing.sum_ns,
            token_wait: lock(&self.token_wait).clone(),
            herds: lock(&self.herds).clone(),
            invalidation: lock(&self.invalidation).tally(),
            connections: ConnectionsTally {
                idp: self.idp_connections.tally(),
                backend: self.backend_connections.tally(),
            },
            memory: MemoryStats {
                peak_rss_bytes: peak_rss_bytes(),
                start_rss_bytes: self.start_rss,
            },
        };
        drop(signing);
        let log = LatencyLog {
            start_time: Some(self.started_at),
            ..log
        };
        let mut snapshot = tally.snapshot(latency.as_ref(), service.as_ref(), log);
        snapshot.users = lock(&self.users).map(|users| UserStats {
            evictions: self.user_evictions.load(Ordering::Relaxed),
            token_requests_per_user: (users.distinct > 0)
                .then(|| snapshot.idp.token_requests as f64 / users.distinct as f64),
            ..users
        });
        (snapshot, tally)
    }

    fn token_request(&self, slot: Slot, at: Duration) {
        self.idp.token_requests.fetch_add(1, Ordering::Relaxed);
        for counters in self.slot_counters(slot) {
            ClientCounters::add(&counters.token_requests, 1);
        }
        lock(&self.window).count_token_request(second(at));
        if self.unrecovered.load(Ordering::Acquire) > 0 && slot.instance < self.instances() {
            lock(&self.invalidation).on_token_request(slot.instance, at);
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
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("instances", &self.instances())
            .field("requests", &self.counts())
            .finish_non_exhaustive()
    }
}

pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves consistent state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
