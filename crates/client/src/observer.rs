//! What happens inside a client, for whoever measures it.
//!
//! A [`TokenObserver`] receives every lookup's outcome, every miss episode, fetch, signature
//! and retry, and every rejection report. All methods have no-op defaults. They are called
//! from the task that caused the event (a shared fetch runs in a task of its own), never
//! while the client holds a lock, and must be cheap: [`hit`](TokenObserver::hit) is on the
//! hit path.
//!
//! **Miss episodes and herd size** (`docs/metrics.md`). An episode starts with a miss on a key for
//! which no episode is running and no valid token is cached (under `single-flight` and
//! `refresh-ahead`, that is a miss with no fetch in progress, or one that joins a background
//! refresh). It ends when a token is stored, or, if its fetches all fail, when the last
//! fetch in progress for the key ends. Its herd size is the number of token requests issued
//! for the key during the episode, by any fetch, retries included. Requests already in
//! progress when it started are not counted: they were issued before it (so an episode whose
//! first miss joins a background refresh already in flight can end with a herd of 0). A
//! request counts from the moment its fetch starts preparing it (signing the assertion), so
//! concurrent signers are part of the herd; a request whose assertion cannot be signed is
//! taken back out, since nothing was sent (unless its episode ended in the meantime, with
//! its size already reported).

use std::time::Duration;

use http::StatusCode;
use signer::Algorithm;

use crate::{CacheKey, Error};

/// Receives the client's events. Implementations must be cheap and must not block.
pub trait TokenObserver: Send + Sync {
    /// A lookup found a usable token.
    fn hit(&self, key: &CacheKey) {
        let _ = key;
    }

    /// A lookup found no usable token; the caller fetches or waits for a fetch.
    fn miss(&self, key: &CacheKey) {
        let _ = key;
    }

    /// A miss episode started.
    fn episode_started(&self, key: &CacheKey, episode: u64) {
        let _ = (key, episode);
    }

    /// A fetch (one or more token requests until a token or a final error) started.
    fn fetch_started(&self, key: &CacheKey, event: &FetchStarted) {
        let _ = (key, event);
    }

    /// A client assertion was signed.
    fn signed(&self, key: &CacheKey, event: &Signed) {
        let _ = (key, event);
    }

    /// A token request was answered with 429 or 503 and will be retried after a delay.
    fn retrying(&self, key: &CacheKey, event: &Retrying) {
        let _ = (key, event);
    }

    /// A fetch ended.
    fn fetch_finished(&self, key: &CacheKey, event: &FetchFinished) {
        let _ = (key, event);
    }

    /// A miss episode ended.
    fn episode_ended(&self, key: &CacheKey, event: &EpisodeEnded) {
        let _ = (key, event);
    }

    /// A token was reported rejected with 401 or 403.
    fn rejected(&self, key: &CacheKey, event: &Rejected) {
        let _ = (key, event);
    }

    /// A user's cached token was evicted to keep a delegated cache within its entry limit
    /// (the least recently used user's).
    fn evicted(&self, key: &CacheKey) {
        let _ = key;
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl TokenObserver for NoopObserver {}

/// Why a fetch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchReason {
    /// A lookup missed.
    Miss,
    /// `refresh-ahead`: the cached token entered its refresh window.
    Refresh,
}

/// The start of a fetch.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FetchStarted {
    /// Why it runs.
    pub reason: FetchReason,
    /// The miss episode it belongs to (`None` for a refresh no miss has joined).
    pub episode: Option<u64>,
    /// The episode's herd size counting this fetch's first request (0 without an episode).
    pub herd_size: u32,
}

/// The end of a fetch.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FetchFinished {
    /// Why it ran.
    pub reason: FetchReason,
    /// The miss episode it belonged to when it started.
    pub episode: Option<u64>,
    /// That episode's herd size when this fetch ended: its final size if the episode has
    /// ended by then (0 without an episode).
    pub herd_size: u32,
    /// Token requests this fetch sent (1 + retries; one whose assertion could not be
    /// signed was not sent and does not count).
    pub requests: u32,
    /// From the fetch's start (before signing) to its end.
    pub duration: Duration,
    /// What came of it.
    pub outcome: FetchOutcome,
}

/// What came of a fetch.
#[derive(Clone, Debug)]
pub enum FetchOutcome {
    /// A token was obtained and stored.
    Stored {
        /// Its generation.
        generation: u64,
    },
    /// The fetch failed; the cache is unchanged.
    Failed(Error),
    /// The fetch was dropped before it ended (its caller gave up, or the runtime shut down).
    Cancelled,
}

/// One client assertion signed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Signed {
    /// The crypto backend.
    pub backend: &'static str,
    /// The algorithm.
    pub alg: Algorithm,
    /// Wall time of building and signing the assertion.
    pub duration: Duration,
}

/// A retry about to wait. After the delay the request is sent again, unless by then no
/// handle of the client is left and no miss waits for the fetch (a background refresh, or
/// a shared fetch, that nobody would use).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Retrying {
    /// The status that is retried (429 or 503).
    pub status: u16,
    /// The number of the retry, from 1.
    pub retry: u32,
    /// The delay before it.
    pub delay: Duration,
    /// The answer's `Retry-After`, if it had one (before capping).
    pub retry_after: Option<Duration>,
}

/// The end of a miss episode.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EpisodeEnded {
    /// The episode.
    pub episode: u64,
    /// Token requests issued for the key during the episode.
    pub herd_size: u32,
    /// From the first miss to the end.
    pub duration: Duration,
    /// Whether it ended with a token stored (`false`: every fetch of it failed).
    pub stored: bool,
}

/// A rejection report.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Rejected {
    /// The backend's status, 401 or 403.
    pub status: StatusCode,
    /// The generation of the rejected token.
    pub generation: u64,
    /// The generation of the token removed from the cache, if one was.
    pub removed: Option<u64>,
}
