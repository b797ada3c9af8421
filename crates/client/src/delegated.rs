//! Tokens for users: one cache entry per user (for the client's scope), at most
//! `max_entries` of them, the least recently used evicted first; a miss fetches with the
//! user's on-behalf-of assertion or refresh token.

use std::{
    fmt,
    num::NonZeroUsize,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
};

use http::StatusCode;
use lru::LruCache;

use crate::{
    grant::UserGrant, ClientAuth, Error, Token, TokenClient, TokenClientBuilder, TokenClientConfig,
    TokenObserver, Transport, VirtualTime,
};

/// Entry limit of a [`DelegatedTokenClient`] when none is set.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// Largest entry limit accepted.
pub const MAX_ENTRIES_LIMIT: usize = 10_000_000;

/// Mixed with a user's number into the seed of that user's draws.
const USER_SEED_STRIDE: u64 = 0x9e37_79b9_7f4a_7c15;

/// A caching client of users' tokens (delegated: on-behalf-of or refresh token) for one
/// token URL, client id and scope. Each user's token is cached under the configured
/// [`CachePolicy`](crate::CachePolicy), as a [`TokenClient`] caches the client's own; the
/// cache holds at most `max_entries` users, evicting the least recently used (counted, and
/// reported to the observer).
///
/// Cheap to clone (clones share everything).
///
/// ```no_run
/// use client::{ClientAuth, ClientSecret, DelegatedTokenClient, TokenClientConfig, UserGrant};
///
/// # async fn example(incoming_user_token: &str) -> Result<(), client::Error> {
/// let config = TokenClientConfig::new(
///     "https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
///     "6731de76-14a6-49ae-97bc-6eba6914391e",
///     "api://backend/Data.Read",
/// );
/// let auth = ClientAuth::Secret(ClientSecret::new("…"));
/// let users = DelegatedTokenClient::builder(config, auth).max_entries(50_000).build()?;
/// let token = users
///     .get_token("alice", UserGrant::on_behalf_of(incoming_user_token))
///     .await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct DelegatedTokenClient {
    shared: Arc<Shared>,
}

struct Shared {
    /// The settings, credentials, observer and transport every user's client copies.
    template: TokenClient,
    seed: u64,
    users: Mutex<LruCache<Arc<str>, TokenClient>>,
    max_entries: usize,
    /// Users whose client was created: the seed of the next one's draws.
    created: AtomicU64,
    evictions: AtomicU64,
}

/// Builds a [`DelegatedTokenClient`]; see [`DelegatedTokenClient::builder`].
pub struct DelegatedTokenClientBuilder {
    client: TokenClientBuilder,
    max_entries: usize,
}

impl DelegatedTokenClient {
    /// A builder for a client with these settings (the scope is what every user's token is
    /// requested for) and credentials. By default it holds [`DEFAULT_MAX_ENTRIES`] users.
    pub fn builder(config: TokenClientConfig, auth: ClientAuth) -> DelegatedTokenClientBuilder {
        Self::over(TokenClient::builder(config, auth))
    }

    /// A builder whose users' clients copy what `client` sets: settings, credentials,
    /// observer, transport, seed, virtual time (not a cache: each user has an entry of its
    /// own).
    pub fn over(client: TokenClientBuilder) -> DelegatedTokenClientBuilder {
        DelegatedTokenClientBuilder {
            client,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }

    /// `user`'s token: the cached one if it is usable, else one fetched with `grant` as the
    /// policy says. A user not cached takes the place of the least recently used one when
    /// the cache is full.
    pub async fn get_token(&self, user: &str, grant: UserGrant) -> Result<Token, Error> {
        self.get_token_with(user, || Ok(grant)).await
    }

    /// As [`get_token`](Self::get_token), with the grant obtained only when one is needed:
    /// on a miss (its error is the lookup's), and on a hit whose refresh comes due (if it
    /// fails, a later lookup starts the refresh). A refresh-ahead refresh so sends the
    /// user's current credential, not the one of the last miss.
    pub async fn get_token_with(
        &self,
        user: &str,
        grant: impl FnOnce() -> Result<UserGrant, Error>,
    ) -> Result<Token, Error> {
        let client = self.client_of(user);
        client.get_user_token(grant).await
    }

    /// Reports that a backend rejected `user`'s `token` with `status`, as
    /// [`TokenClient::report_rejected`] does; `false` when the user is not cached.
    pub fn report_rejected(&self, user: &str, token: &Token, status: StatusCode) -> bool {
        let client = self.lock().peek(user).cloned();
        client.is_some_and(|client| client.report_rejected(token, status))
    }

    /// Users cached now.
    pub fn entries(&self) -> usize {
        self.lock().len()
    }

    /// The entry limit.
    pub fn max_entries(&self) -> usize {
        self.shared.max_entries
    }

    /// Users evicted so far to keep within the limit.
    pub fn evictions(&self) -> u64 {
        self.shared.evictions.load(Ordering::Relaxed)
    }

    /// The client of `user`'s tokens, created (evicting the least recently used user if the
    /// cache is full) if the user is not cached; either way the user becomes the most
    /// recently used.
    fn client_of(&self, user: &str) -> TokenClient {
        let shared = &*self.shared;
        let mut users = self.lock();
        if let Some(client) = users.get(user) {
            return client.clone();
        }
        let number = shared.created.fetch_add(1, Ordering::Relaxed) + 1;
        let client = shared
            .template
            .for_user(user, shared.seed ^ number.wrapping_mul(USER_SEED_STRIDE));
        // The map grows with the users seen, never allocated for the whole limit up front.
        let evicted = if users.len() >= shared.max_entries {
            users.pop_lru()
        } else {
            None
        };
        users.push(Arc::from(user), client.clone());
        drop(users);
        if let Some((_, evicted)) = evicted {
            shared.evictions.fetch_add(1, Ordering::Relaxed);
            shared.template.observer().evicted(evicted.key());
        }
        client
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Arc<str>, TokenClient>> {
        self.shared
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for DelegatedTokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegatedTokenClient")
            .field("key", self.shared.template.key())
            .field("policy", &self.shared.template.policy())
            .field("max_entries", &self.shared.max_entries)
            .finish_non_exhaustive()
    }
}

impl DelegatedTokenClientBuilder {
    /// Holds at most `max_entries` users (1 to [`MAX_ENTRIES_LIMIT`]).
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Reports events of every user's token to `observer` (and evictions).
    pub fn observer(mut self, observer: Arc<dyn TokenObserver>) -> Self {
        self.client = self.client.observer(observer);
        self
    }

    /// Sends token requests through `transport` instead of a new
    /// [`HyperTransport`](crate::HyperTransport).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.client = self.client.transport(transport);
        self
    }

    /// Seeds the draws of refresh jitter and retry backoff of every user's client (each
    /// user's from this and the user's number).
    pub fn seed(mut self, seed: u64) -> Self {
        self.client = self.client.seed(seed);
        self
    }

    /// Runs on a virtual clock (see [`VirtualTime`]).
    pub fn virtual_time(mut self, virtual_time: VirtualTime) -> Self {
        self.client = self.client.virtual_time(virtual_time);
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<DelegatedTokenClient, Error> {
        let max_entries = NonZeroUsize::new(self.max_entries)
            .filter(|n| n.get() <= MAX_ENTRIES_LIMIT)
            .ok_or_else(|| Error::Config {
                field: "max_entries",
                reason: format!("must be 1 to {MAX_ENTRIES_LIMIT}, not {}", self.max_entries),
            })?;
        let seed = self.client.seed.unwrap_or_else(rand::random);
        Ok(DelegatedTokenClient {
            shared: Arc::new(Shared {
                template: self.client.build()?,
                seed,
                users: Mutex::new(LruCache::unbounded()),
                max_entries: max_entries.get(),
                created: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
            }),
        })
    }
}

impl fmt::Debug for DelegatedTokenClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegatedTokenClientBuilder")
            .field("client", &self.client)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}
