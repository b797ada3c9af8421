//! The token cache: one entry per (token URL, client id, scope), shareable by many clients.
//!
//! The hit path reads a per-core replica of the cached token: an [`ArcSwapOption`] holding
//! a copy of the token with its own reference count, on its own cache line, picked by a
//! per-thread slot. A hit is a lock-free load, a time comparison and one reference-count
//! increment on a line that (with at least as many replicas as cores) no other core
//! writes, so concurrent hits scale instead of bouncing one shared count between cores.
//! Everything else (misses, stores, removals, fetch coordination, episode accounting)
//! happens under the entry's mutex, off the hit path.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use arc_swap::ArcSwapOption;
use tokio::{sync::watch, time::Instant};

use crate::{token::TokenInner, CachePolicy, Error, Token};

/// What a cached token is looked up by.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<KeyParts>);

#[derive(PartialEq, Eq, Hash)]
struct KeyParts {
    token_url: String,
    client_id: String,
    scope: String,
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
        }))
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
            .finish()
    }
}

impl fmt::Display for CacheKey {
    /// `client_id scope @ token_url`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} @ {}",
            self.client_id(),
            self.scope(),
            self.token_url()
        )
    }
}

/// A token cache. Cloning gives another handle to the same cache: clients built with
/// handles of one cache share their tokens per key (as gateway instances with a shared
/// cache would); clients built without one get a private cache each.
///
/// All clients of one key in one cache must use the same [`CachePolicy`].
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

struct Shared {
    entries: Mutex<HashMap<CacheKey, Arc<Entry>>>,
    replicas: usize,
}

impl TokenCache {
    /// An empty cache with one token replica per core (rounded up to a power of two, at
    /// least 2, at most 64).
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_replicas(cores.clamp(2, 64))
    }

    /// An empty cache with `replicas` copies of each token (rounded up to a power of two,
    /// at least 1). Threads are spread over the copies; fewer copies than busy cores make
    /// concurrent hits contend on shared reference counts (1 shows the effect).
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

    /// The entry of `key`, created if missing; refuses a policy other than the entry's.
    pub(crate) fn entry(&self, key: &CacheKey, policy: CachePolicy) -> Result<Arc<Entry>, Error> {
        let mut entries = lock(&self.shared.entries);
        let entry = entries
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Entry::new(policy, self.shared.replicas)));
        if entry.policy != policy {
            return Err(Error::Config {
                field: "policy",
                reason: format!(
                    "the shared cache already serves {key} with policy {}, not {policy}",
                    entry.policy
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

/// Keeps `T` on its own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

/// One key's cached token and the state of its fetches.
pub(crate) struct Entry {
    policy: CachePolicy,
    replicas: Box<[Padded<ArcSwapOption<TokenInner>>]>,
    mask: usize,
    /// `refresh-ahead`: the generation whose background refresh has been started.
    pub(crate) refresh_claimed: AtomicU64,
    state: Mutex<Slow>,
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
    /// Token requests in progress for the key.
    pub(crate) requests: u32,
    /// The running miss episode.
    pub(crate) episode: Option<Episode>,
    /// The last ended episode and its herd size.
    pub(crate) last_episode: Option<(u64, u32)>,
}

/// A fetch that waiters can join.
pub(crate) struct InFlight {
    pub(crate) id: u64,
    pub(crate) result: watch::Receiver<Option<Result<Token, Error>>>,
}

/// A running miss episode.
pub(crate) struct Episode {
    pub(crate) id: u64,
    pub(crate) started: Instant,
    pub(crate) herd_size: u32,
}

/// Ids of episodes and shared fetches: unique in the process, from 1.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// This thread's replica slot: threads take consecutive numbers on first use.
#[inline]
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|slot| *slot)
}

impl Entry {
    fn new(policy: CachePolicy, replicas: usize) -> Self {
        Entry {
            policy,
            replicas: (0..replicas)
                .map(|_| Padded(ArcSwapOption::empty()))
                .collect(),
            mask: replicas - 1,
            refresh_claimed: AtomicU64::new(0),
            state: Mutex::new(Slow::default()),
        }
    }

    /// The replica this thread reads.
    #[inline]
    pub(crate) fn replica(&self) -> &ArcSwapOption<TokenInner> {
        &self.replicas[thread_slot() & self.mask].0
    }

    /// The slow-path state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Slow> {
        lock(&self.state)
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
