//! The token cache: one entry per (token URL, client id, scope, and for a user's token the
//! user), shareable by many clients.
//!
//! The hit path reads one of several replicas of the cached token: an [`ArcSwapOption`]
//! holding a copy of the token with its own reference count, on its own cache line. The
//! replica is picked by per-thread striping: each thread takes the next number of a
//! process-wide counter the first time it reads any cache, and reads the replica at that
//! number modulo the replica count. A hit is a lock-free load, a time comparison and one
//! reference-count increment on that replica. Threads are not pinned to cores and two
//! threads whose numbers are equal modulo the replica count share a replica (and bounce its
//! reference count between their cores), so a cache keeps several replicas per core (see
//! [`TokenCache::new`]) to make that rare for the few threads that hit it at once (an
//! executor's workers). Everything else (misses, stores, removals, fetch coordination,
//! episode accounting) happens under the entry's mutex, off the hit path and on cache lines
//! of its own.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use crate::{flight::Flight, token::TokenInner, CachePolicy, Error, Token};

/// What a cached token is looked up by.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<KeyParts>);

#[derive(PartialEq, Eq, Hash)]
struct KeyParts {
    token_url: String,
    client_id: String,
    scope: String,
    /// The user a delegated token is for; `None` for the client's own tokens.
    user: Option<String>,
}

impl CacheKey {
    /// The key of a token for `client_id` and `scope` from `token_url`.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        scope: impl Into<String>,
    ) -> Self {
        CacheKey(Arc::new(KeyParts {
            token_url: token_url.into(),
            client_id: client_id.into(),
            scope: scope.into(),
            user: None,
        }))
    }

    /// The key of a token for `user`, obtained by `client_id` for `scope` from `token_url`.
    pub fn for_user(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        scope: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        CacheKey(Arc::new(KeyParts {
            token_url: token_url.into(),
            client_id: client_id.into(),
            scope: scope.into(),
            user: Some(user.into()),
        }))
    }

    /// The user a delegated token is for; `None` for the client's own tokens.
    pub fn user(&self) -> Option<&str> {
        self.0.user.as_deref()
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        &self.0.token_url
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The scope.
    pub fn scope(&self) -> &str {
        &self.0.scope
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("token_url", &self.token_url())
            .field("client_id", &self.client_id())
            .field("scope", &self.scope())
            .field("user", &self.user())
            .finish()
    }
}

impl fmt::Display for CacheKey {
    /// `client_id scope @ token_url`, or `client_id scope for user @ token_url`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.client_id(), self.scope())?;
        if let Some(user) = self.user() {
            write!(f, " for {user}")?;
        }
        write!(f, " @ {}", self.token_url())
    }
}

/// A token cache. Cloning gives another handle to the same cache: clients built with
/// handles of one cache share their tokens per key (as gateway instances with a shared
/// cache would); clients built without one get a private cache each.
///
/// The key is the token URL, the client id and the scope, nothing else: clients sharing a
/// cache share one token per key whatever their credential (a token fetched by a client
/// with a certificate is served to one configured with a client secret, and the other way
/// round) and whatever their per-client settings, which apply only to the fetches that
/// client runs: assertion audience and lifetime, timeout, retry policy, observer, transport.
///
/// The settings that decide how a cached token is used must be the same for every client
/// of one key in one cache: the [`CachePolicy`], `cache_fraction`, and under
/// `refresh-ahead` `refresh_window` and `refresh_jitter` (a token's freshness and refresh
/// point are fixed when it is stored, by the client that fetched it). Building a client
/// that differs from the key's first client in one of them fails with
/// [`Error::Config`] naming that setting.
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

struct Shared {
    entries: Mutex<HashMap<CacheKey, Arc<Entry>>>,
    replicas: usize,
}

impl TokenCache {
    /// An empty cache with four token replicas per available core (at least 8, at most
    /// 256, a power of two), so that the threads hitting it at once rarely share one.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_replicas(cores.saturating_mul(4).clamp(8, 256))
    }

    /// An empty cache with `replicas` copies of each token (rounded up to a power of two,
    /// at least 1, at most 1024). Threads are striped over the copies by the order in which
    /// they first read a cache; threads that land on one copy contend on its reference
    /// count (1 replica shows the effect). Each store writes every copy.
    pub fn with_replicas(replicas: usize) -> Self {
        TokenCache {
            shared: Arc::new(Shared {
                entries: Mutex::new(HashMap::new()),
                replicas: replicas.clamp(1, 1024).next_power_of_two(),
            }),
        }
    }

    /// Copies kept of each token.
    pub fn replicas(&self) -> usize {
        self.shared.replicas
    }

    /// Keys with an entry (an entry exists once a client was built for the key).
    pub fn len(&self) -> usize {
        lock(&self.shared.entries).len()
    }

    /// Whether no client was built on this cache yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of `key`, created if missing; refuses settings other than the entry's.
    pub(crate) fn entry(
        &self,
        key: &CacheKey,
        settings: TokenSettings,
    ) -> Result<Arc<Entry>, Error> {
        let mut entries = lock(&self.shared.entries);
        let entry = entries
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Entry::new(settings, self.shared.replicas)));
        if let Some((field, theirs, ours)) = entry.settings.mismatch(&settings) {
            return Err(Error::Config {
                field,
                reason: format!(
                    "the shared cache already serves {key} with {field} {theirs}, not {ours}"
                ),
            });
        }
        Ok(Arc::clone(entry))
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("keys", &self.len())
            .field("replicas", &self.shared.replicas)
            .finish()
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves consistent state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The settings that decide how a key's cached token is used; every client of one key in
/// one cache has the same (see [`TokenCache`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenSettings {
    pub(crate) policy: CachePolicy,
    pub(crate) cache_fraction: f64,
    /// `None` unless the policy is `refresh-ahead`.
    pub(crate) refresh_window: Option<Duration>,
    /// Zero unless the policy is `refresh-ahead`.
    pub(crate) refresh_jitter: Duration,
}

impl TokenSettings {
    /// The settings of a client; those its policy does not use are left out.
    pub(crate) fn new(
        policy: CachePolicy,
        cache_fraction: f64,
        refresh_window: Option<Duration>,
        refresh_jitter: Duration,
    ) -> Self {
        let refresh_ahead = policy.refreshes_ahead();
        TokenSettings {
            policy,
            cache_fraction,
            refresh_window: refresh_window.filter(|_| refresh_ahead),
            refresh_jitter: if refresh_ahead {
                refresh_jitter
            } else {
                Duration::ZERO
            },
        }
    }

    /// The first setting in which `other` differs: its name, this value, `other`'s value.
    fn mismatch(&self, other: &TokenSettings) -> Option<(&'static str, String, String)> {
        let window =
            |w: Option<Duration>| w.map_or_else(|| "none".to_owned(), |w| format!("{w:?}"));
        if self.policy != other.policy {
            Some(("policy", self.policy.to_string(), other.policy.to_string()))
        } else if self.cache_fraction != other.cache_fraction {
            Some((
                "cache_fraction",
                self.cache_fraction.to_string(),
                other.cache_fraction.to_string(),
            ))
        } else if self.refresh_window != other.refresh_window {
            Some((
                "refresh_window",
                window(self.refresh_window),
                window(other.refresh_window),
            ))
        } else if self.refresh_jitter != other.refresh_jitter {
            Some((
                "refresh_jitter",
                format!("{:?}", self.refresh_jitter),
                format!("{:?}", other.refresh_jitter),
            ))
        } else {
            None
        }
    }
}

/// Keeps `T` on its own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

/// One key's cached token and the state of its fetches.
pub(crate) struct Entry {
    settings: TokenSettings,
    /// Read on every hit (with `mask`): never written after creation.
    replicas: Box<[Padded<ArcSwapOption<TokenInner>>]>,
    mask: usize,
    /// `refresh-ahead`: the generation whose background refresh has been started (read on
    /// hits inside the refresh window).
    pub(crate) refresh_claimed: AtomicU64,
    /// On cache lines of its own, so that slow-path locking does not disturb hits.
    state: Padded<Mutex<Slow>>,
}

/// The state behind the entry's mutex.
#[derive(Default)]
pub(crate) struct Slow {
    /// The cached token (what the replicas copy).
    pub(crate) current: Option<Token>,
    /// `single-flight` and `refresh-ahead`: the fetch that misses join.
    pub(crate) in_flight: Option<InFlight>,
    /// Fetches in progress for the key, any policy.
    pub(crate) fetches: u32,
    /// The running miss episode.
    pub(crate) episode: Option<Episode>,
}

/// A fetch that waiters can join.
pub(crate) struct InFlight {
    pub(crate) id: u64,
    pub(crate) flight: Arc<Flight>,
}

/// A running miss episode.
pub(crate) struct Episode {
    pub(crate) herd: EpisodeHerd,
    pub(crate) started: Instant,
}

/// A miss episode's id and herd size. The size changes only under the entry's lock and
/// only while the episode runs; fetches keep a handle, so that they can report the final
/// size of an episode that has ended.
#[derive(Clone)]
pub(crate) struct EpisodeHerd {
    pub(crate) id: u64,
    size: Arc<AtomicU32>,
}

impl EpisodeHerd {
    pub(crate) fn new(id: u64) -> Self {
        EpisodeHerd {
            id,
            size: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The herd size.
    pub(crate) fn size(&self) -> u32 {
        self.size.load(Ordering::Relaxed)
    }

    /// Counts one more request (the caller holds the entry's lock and the episode runs);
    /// returns the new size.
    pub(crate) fn add(&self) -> u32 {
        self.size.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Takes back a request that was never sent (same conditions as [`add`](Self::add)).
    pub(crate) fn remove(&self) {
        self.size.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ids of episodes and shared fetches: unique in the process, from 1.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// This thread's stripe number: threads take consecutive numbers the first time they read
/// any cache, so the first threads to hit get distinct replicas (as long as there are more
/// replicas than such threads) but nothing ties a number to a core.
#[inline]
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|slot| *slot)
}

impl Entry {
    pub(crate) fn new(settings: TokenSettings, replicas: usize) -> Self {
        Entry {
            settings,
            replicas: (0..replicas)
                .map(|_| Padded(ArcSwapOption::empty()))
                .collect(),
            mask: replicas - 1,
            refresh_claimed: AtomicU64::new(0),
            state: Padded(Mutex::new(Slow::default())),
        }
    }

    /// The replica this thread reads: its stripe number modulo the replica count.
    #[inline]
    pub(crate) fn replica(&self) -> &ArcSwapOption<TokenInner> {
        &self.replicas[thread_slot() & self.mask].0
    }

    /// The slow-path state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Slow> {
        lock(&self.state.0)
    }

    /// Caches `token` (the caller holds the lock: `slow`).
    pub(crate) fn publish(&self, slow: &mut Slow, token: &Token) {
        // The first replica gets the caller's allocation; the others a copy each, with its
        // own reference count.
        for (i, replica) in self.replicas.iter().enumerate() {
            let copy = if i == 0 {
                Arc::clone(&token.0)
            } else {
                Arc::new(TokenInner::clone(&token.0))
            };
            replica.0.store(Some(copy));
        }
        slow.current = Some(token.clone());
    }

    /// Removes the cached token (the caller holds the lock: `slow`); returns its generation.
    pub(crate) fn remove(&self, slow: &mut Slow) -> Option<u64> {
        for replica in self.replicas.iter() {
            replica.0.store(None);
        }
        slow.current.take().map(|t| t.generation())
    }
}
