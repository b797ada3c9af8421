//! The measurements of one run, recorded concurrently, read as a snapshot; `docs/metrics.md`
//! defines each figure.
//!
//! One [`Metrics`] per run, shared through an [`Arc`](std::sync::Arc) by every task of the run. The driver
//! owns the clock: every time is a [`Duration`](std::time::Duration) offset from the run's start (the
//! [`tokio::time::Instant`] given to [`Metrics::new`]); [`Metrics::elapsed`] gives the current
//! one. The recording path is cheap and its memory is bounded whatever the request count:
//! counters are atomics, latencies go into HdrHistograms under one short mutex section per
//! request, and nothing is kept per request. What grows with time is per timeline interval
//! of the run (one row and one compressed histogram interval; the interval is 1 s up to an
//! hour and longer for longer runs, see [`timeline_interval`]), per second (one token-request
//! counter, for the busiest second and minute) and per revocation event.
//!
//! Every figure of a snapshot is derived from a [`Tally`], the measurements before anything is
//! derived from them, and the latency histograms. A shard of a run writes its tally, and
//! [`merge_shards`] adds the shards' tallies and interval logs and derives the whole run's
//! figures from the sums, exactly as for one run.
//!
//! What is measured, and from what:
//!
//! - **requests** ([`Metrics::record_request`] at each completion, [`Metrics::record_dropped`]
//!   for the arrivals refused by the in-flight limit, a second's at a time): `sent` counts recorded completions
//!   (`ok` 2xx + `unauthorized` 401 + `forbidden` 403 + `errors`: any other status, a token
//!   error that prevented the backend call, or a backend call without an answer);
//! - **latency** from the request's *intended* start (its scheduled arrival, so queueing
//!   behind a slow system is counted: coordinated omission corrected) and **service time**
//!   from its actual start, both in µs, for every recorded completion whatever its outcome;
//!   one interval per timeline interval of the run goes to an HdrHistogram interval log
//!   ([`LatencyLog`]);
//! - **cache hit rate** `hits / (hits + misses)` of token lookups, per instance and in total,
//!   from the client's observer ([`InstanceObserver`]);
//! - **token requests** to the identity provider: each fetch's first request (counted when
//!   the fetch starts) and each retry (counted when it is scheduled), with their answers
//!   (`ok`, `throttled` = 429, `errors` = anything else). An attempt that was never sent (its
//!   assertion could not be signed, or its retry was abandoned because nobody waited for it
//!   any more) counts with its fetch's final answer: an error, or `throttled` when the
//!   answer before the abandoned retry was a 429. So once every fetch has ended
//!   `token_requests = ok + throttled + errors`; the client's herd sizes leave such attempts
//!   out (see [`client::observer`]);
//! - **signing cost** from each signature's wall time (ns);
//! - **stampede**: miss episodes and their herd sizes as the client reports them when an
//!   episode ends (see [`client::observer`]); the identity provider's peak concurrent token
//!   requests as set by the driver ([`Metrics::set_idp_peak_concurrent`]), or else the peak of
//!   concurrent fetches counted here; the token requests of the busiest second and minute;
//! - **401-invalidation** after each [`Metrics::revocation_event`]: see [`InvalidationStats`];
//! - **timeline**: per interval, completions, 2xx, 401, token requests, dropped arrivals and
//!   the 99th percentile latency of that interval's completions ([`TimelineRow`]);
//! - **peak RSS** ([`peak_rss_bytes`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
pub mod catalog;
mod connections;
mod error;
mod fleet;
mod histogram;
mod invalidation;
mod latency_log;
mod merge;
mod observer;
mod record;
mod recorder;
mod rss;
mod snapshot;
mod tally;
mod window;

pub use batch::Batch;
pub use connections::{ConnectionStats, ConnectionsStats, Peer};
pub use error::MetricsError;
pub use fleet::{Fleet, GroupStats, Slot};
pub use histogram::{MAX_LATENCY_US, MAX_SIGNING_NS, SIGNIFICANT_DIGITS};
pub use latency_log::{LatencyLog, SERVICE_TIME_TAG};
pub use merge::{merge_shards, Merged, ShardMeasurements};
pub use observer::{ConnectionRecorder, InstanceObserver};
pub use record::{RequestOutcome, RequestRecord, TokenAnswer};
pub use recorder::Metrics;
pub use rss::{peak_rss_bytes, reset_peak_rss};
pub use snapshot::{
    format_rfc3339, CacheStats, IdpStats, InstanceStats, InvalidationStats, MemoryStats,
    MetricsSnapshot, Percentiles, RecoveryLatency, RequestCounts, SigningStats, SpectrumPoint,
    StampedeStats, TimelineRow, UserStats,
};
pub use tally::Tally;
pub use window::{timeline_interval, MAX_TIMELINE_ROWS, MAX_TIMELINE_SECONDS};
