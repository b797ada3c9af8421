//! The caching token client.

use std::{
    fmt,
    sync::{atomic::Ordering, Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use http::{StatusCode, Uri};
use rand::{rngs::StdRng, Rng as _, SeedableRng as _};
use signer::{Algorithm, AssertionBuilder, CLIENT_ASSERTION_TYPE};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::{
    cache::{next_id, Entry, Episode, EpisodeHerd, InFlight, Slow, TokenSettings},
    flight::Flight,
    grant::{FetchCredential, Grant, Prepared, UserGrant},
    observer::{
        EpisodeEnded, FetchFinished, FetchOutcome, FetchReason, FetchStarted, NoopObserver,
        Rejected, Retrying, Signed, TokenObserver,
    },
    response::{self, TokenResponse},
    token::TokenInner,
    transport::{FormBody, HyperTransport, Transport, TransportError, MAX_BODY_BYTES},
    virtual_time::VirtualTime,
    CacheKey, CachePolicy, ClientAuth, ClientSecret, Error, RetryPolicy, Token, TokenCache,
    TokenClientConfig,
};

/// A caching OAuth 2.0 client-credentials client for one token URL, client id and scope.
///
/// Cheap to clone (clones share everything). Needs a tokio runtime with the time driver
/// for misses (hits work anywhere).
#[derive(Clone)]
pub struct TokenClient {
    inner: Arc<Inner>,
}

/// Builds a [`TokenClient`]; see [`TokenClient::builder`].
pub struct TokenClientBuilder {
    config: TokenClientConfig,
    auth: ClientAuth,
    cache: Option<TokenCache>,
    observer: Option<Arc<dyn TokenObserver>>,
    transport: Option<Arc<dyn Transport>>,
    pub(crate) seed: Option<u64>,
    virtual_time: Option<VirtualTime>,
}

struct Inner {
    key: CacheKey,
    entry: Arc<Entry>,
    policy: CachePolicy,
    /// The entry's settings (`policy` among them).
    settings: TokenSettings,
    uri: Uri,
    /// How the client authenticates: shared by a delegated client's per-user clients.
    auth: Arc<Authenticator>,
    /// What its requests ask with.
    grant: Grant,
    timeout: Duration,
    retry: RetryPolicy,
    observer: Arc<dyn TokenObserver>,
    transport: Arc<dyn Transport>,
    /// Draws of refresh jitter and retry backoff.
    draws: Mutex<StdRng>,
    virtual_time: Option<VirtualTime>,
}

enum Authenticator {
    Assertion {
        builder: Box<AssertionBuilder>,
        backend: &'static str,
        alg: Algorithm,
    },
    Secret(ClientSecret),
}

impl TokenClient {
    /// A builder for a client with these settings and credentials. By default the client
    /// has a private cache, no observer and a [`HyperTransport`].
    pub fn builder(config: TokenClientConfig, auth: ClientAuth) -> TokenClientBuilder {
        TokenClientBuilder {
            config,
            auth,
            cache: None,
            observer: None,
            transport: None,
            seed: None,
            virtual_time: None,
        }
    }

    /// A token: the cached one if it is usable, else one fetched as the policy says.
    pub async fn get_token(&self) -> Result<Token, Error> {
        if let Some(token) = self.inner.lookup() {
            return Ok(token);
        }
        self.inner.miss().await
    }

    /// A user's token (this client being one user's, from a
    /// [`DelegatedTokenClient`](crate::DelegatedTokenClient)). `grant` is called only when a
    /// credential is needed: on a miss, whose fetch fails with its error, and on a hit
    /// whose refresh comes due (the refresh is left to a later lookup if it fails), so that
    /// a refresh sends the user's current credential, not the one of the last miss.
    pub(crate) async fn get_user_token(
        &self,
        grant: impl FnOnce() -> Result<UserGrant, Error>,
    ) -> Result<Token, Error> {
        let inner = &self.inner;
        if let Some((token, refresh_due)) = inner.lookup_with::<false>() {
            if refresh_due {
                if let Ok(grant) = grant() {
                    inner.grant.set(grant);
                    inner.claim_refresh(token.generation());
                }
            }
            return Ok(token);
        }
        inner.grant.set(grant()?);
        inner.miss().await
    }

    /// A client of the same settings, credentials, observer and transport for `user`'s
    /// tokens, with a cache entry of its own (one replica: one user's requests are few) and
    /// its draws seeded by `seed`.
    pub(crate) fn for_user(&self, user: &str, seed: u64) -> TokenClient {
        let inner = &self.inner;
        let key = CacheKey::for_user(
            inner.key.token_url(),
            inner.key.client_id(),
            inner.key.scope(),
            user,
        );
        TokenClient {
            inner: Arc::new(Inner {
                key,
                entry: Arc::new(Entry::new(inner.settings, 1)),
                policy: inner.policy,
                settings: inner.settings,
                uri: inner.uri.clone(),
                auth: Arc::clone(&inner.auth),
                grant: Grant::user(),
                timeout: inner.timeout,
                retry: inner.retry,
                observer: Arc::clone(&inner.observer),
                transport: Arc::clone(&inner.transport),
                draws: Mutex::new(StdRng::seed_from_u64(seed)),
                virtual_time: inner.virtual_time,
            }),
        }
    }

    /// Its observer.
    pub(crate) fn observer(&self) -> &dyn TokenObserver {
        &*self.inner.observer
    }

    /// Reports that a backend rejected `token` with `status`. Only 401 and 403 count (other
    /// statuses are ignored). `apim` removes the cached token whatever it is; the other
    /// policies only if it is still `token`. Returns whether a cached token was removed.
    pub fn report_rejected(&self, token: &Token, status: StatusCode) -> bool {
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return false;
        }
        let inner = &self.inner;
        let removed = {
            let mut slow = inner.entry.lock();
            let is_current = slow
                .current
                .as_ref()
                .is_some_and(|current| current.generation() == token.generation());
            if inner.policy == CachePolicy::Apim || is_current {
                inner.entry.remove(&mut slow)
            } else {
                None
            }
        };
        tracing::debug!(key = %inner.key, %status, token = %token, removed = removed.is_some(), "token rejected");
        inner.observer.rejected(
            &inner.key,
            &Rejected {
                status,
                generation: token.generation(),
                removed,
            },
        );
        removed.is_some()
    }

    /// The cached token and the instant until which every lookup is a plain hit returning
    /// it (unless [`report_rejected`](Self::report_rejected) removes it meanwhile): no wait,
    /// no fetch, no refresh. That is while it is fresh, and under `refresh-ahead` until its
    /// refresh window opens. `None` when a lookup now would not be a plain hit, and while a
    /// fetch for the key is in flight or a refresh of the token is claimed: the token it
    /// brings could replace this one with a shorter life.
    ///
    /// A simulation counts the lookups before then as hits without making each; nothing is
    /// reported to the observer.
    pub fn hit_horizon(&self) -> Option<(Token, Instant)> {
        let inner = &self.inner;
        let now = Instant::now();
        let cached = inner.entry.replica().load_full()?;
        if !inner.usable(&cached, now) {
            return None;
        }
        let until = match inner.policy {
            CachePolicy::RefreshAhead | CachePolicy::CredentialManager => {
                let claimed = inner.entry.refresh_claimed.load(Ordering::Relaxed);
                if claimed == cached.generation || now >= cached.refresh_at {
                    return None;
                }
                cached.refresh_at
            }
            CachePolicy::Apim | CachePolicy::SingleFlight => cached.fresh_until,
        };
        if inner.entry.lock().fetches > 0 {
            return None;
        }
        Some((Token(cached), until))
    }

    /// The cache key: token URL, client id, scope.
    pub fn key(&self) -> &CacheKey {
        &self.inner.key
    }

    /// The cache policy.
    pub fn policy(&self) -> CachePolicy {
        self.inner.policy
    }
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("key", &self.inner.key)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl TokenClientBuilder {
    /// Uses `cache` (shared with every other client built with a handle of it).
    pub fn cache(mut self, cache: &TokenCache) -> Self {
        self.cache = Some(cache.clone());
        self
    }

    /// Reports events to `observer`.
    pub fn observer(mut self, observer: Arc<dyn TokenObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sends token requests through `transport` instead of a new [`HyperTransport`].
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Seeds the draws of refresh jitter and retry backoff (by default the operating
    /// system's entropy): with the same requests in the same order, the same delays.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs the client on a virtual clock (see [`VirtualTime`]).
    pub fn virtual_time(mut self, virtual_time: VirtualTime) -> Self {
        self.virtual_time = Some(virtual_time);
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<TokenClient, Error> {
        let config = self.config;
        let uri = config.validate()?;
        let auth = match self.auth {
            ClientAuth::Certificate(credential) => {
                let audience = config
                    .assertion_audience
                    .clone()
                    .unwrap_or_else(|| config.token_url.clone());
                Authenticator::Assertion {
                    builder: Box::new(
                        AssertionBuilder::new(&credential, config.client_id.clone(), audience)
                            .with_lifetime(config.assertion_lifetime),
                    ),
                    backend: credential.signing_key().backend(),
                    alg: credential.algorithm(),
                }
            }
            ClientAuth::Secret(secret) => Authenticator::Secret(secret),
        };
        let transport = match self.transport {
            Some(transport) => transport,
            None => Arc::new(HyperTransport::new()?),
        };
        let retry = config.retry_policy();
        let settings = TokenSettings::new(
            config.policy,
            config.cache_fraction,
            config.refresh_window,
            config.refresh_jitter,
        );
        let key = CacheKey::new(config.token_url, config.client_id, config.scope);
        let cache = self.cache.unwrap_or_default();
        let entry = cache.entry(&key, settings)?;
        Ok(TokenClient {
            inner: Arc::new(Inner {
                key,
                entry,
                policy: config.policy,
                settings,
                uri,
                auth: Arc::new(auth),
                grant: Grant::ClientCredentials,
                timeout: config.timeout,
                retry,
                observer: self.observer.unwrap_or_else(|| Arc::new(NoopObserver)),
                transport,
                draws: Mutex::new(
                    self.seed
                        .map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
                ),
                virtual_time: self.virtual_time,
            }),
        })
    }
}

impl fmt::Debug for TokenClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClientBuilder")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// The hit path: no lock, no allocation.
    #[inline]
    fn lookup(self: &Arc<Self>) -> Option<Token> {
        self.lookup_with::<true>().map(|(token, _)| token)
    }

    /// A hit, reported to the observer, and whether the token's refresh is due and not
    /// yet claimed: `START_REFRESH` claims it here (a client that holds its credential);
    /// otherwise the caller does, with the credential it hands over.
    #[inline]
    fn lookup_with<const START_REFRESH: bool>(self: &Arc<Self>) -> Option<(Token, bool)> {
        let now = Instant::now();
        let guard = self.entry.replica().load();
        let cached = guard.as_ref()?;
        if !self.usable(cached, now) {
            return None;
        }
        let due = self.refresh_due(cached, now);
        if START_REFRESH && due {
            self.claim_refresh(cached.generation);
        }
        let token = Token(Arc::clone(cached));
        drop(guard);
        self.observer.hit(&self.key);
        Some((token, due))
    }

    /// Whether `token` may be handed out at `now`: until it really expires under
    /// `refresh-ahead` and `credential-manager`, while it is fresh under the others.
    #[inline]
    fn usable(&self, token: &TokenInner, now: Instant) -> bool {
        now < match self.policy {
            CachePolicy::RefreshAhead | CachePolicy::CredentialManager => token.expires_at,
            CachePolicy::Apim | CachePolicy::SingleFlight => token.fresh_until,
        }
    }

    /// `refresh-ahead` and `credential-manager`: whether `token` is in its refresh window
    /// and no refresh was started for it yet.
    #[inline]
    fn refresh_due(&self, token: &TokenInner, now: Instant) -> bool {
        self.policy.refreshes_ahead()
            && now >= token.refresh_at
            && self.entry.refresh_claimed.load(Ordering::Relaxed) != token.generation
    }

    /// Starts the background refresh of `token` if it is due.
    #[inline]
    fn refresh_if_due(self: &Arc<Self>, token: &TokenInner, now: Instant) {
        if self.refresh_due(token, now) {
            self.claim_refresh(token.generation);
        }
    }

    fn miss(self: &Arc<Self>) -> crate::transport::BoxFuture<'_, Result<Token, Error>> {
        // Boxed: keeps the slow path's state out of `get_token`'s future.
        match self.policy {
            CachePolicy::Apim => Box::pin(self.apim_miss()),
            CachePolicy::SingleFlight
            | CachePolicy::RefreshAhead
            | CachePolicy::CredentialManager => Box::pin(self.coordinated_miss()),
        }
    }

    /// `apim`: the miss signs and fetches on its own.
    async fn apim_miss(self: &Arc<Self>) -> Result<Token, Error> {
        let now = Instant::now();
        let (guard, started) = {
            let mut slow = self.entry.lock();
            let cached_valid = slow
                .current
                .as_ref()
                .is_some_and(|t| self.usable(&t.0, now));
            let started = if cached_valid {
                None
            } else {
                start_episode(&mut slow, now)
            };
            slow.fetches += 1;
            (
                FetchGuard::new(Arc::clone(self), FetchReason::Miss, None),
                started,
            )
        };
        self.observer.miss(&self.key);
        if let Some(id) = started {
            self.observer.episode_started(&self.key, id);
        }
        guard.run().await
    }

    /// `single-flight` and `refresh-ahead`: the miss joins the fetch in flight or starts
    /// one that later misses join.
    async fn coordinated_miss(self: &Arc<Self>) -> Result<Token, Error> {
        let now = Instant::now();
        let (passenger, fetch, started) = {
            let mut slow = self.entry.lock();
            if let Some(token) = slow.current.as_ref().filter(|t| self.usable(&t.0, now)) {
                // A fetch stored this token between the lock-free lookup and the lock.
                let token = token.clone();
                drop(slow);
                self.refresh_if_due(&token.0, now);
                self.observer.hit(&self.key);
                return Ok(token);
            }
            let started = start_episode(&mut slow, now);
            match &slow.in_flight {
                Some(in_flight) => (in_flight.flight.join(), None, started),
                None => {
                    let (guard, flight) = self.shared_fetch(&mut slow, FetchReason::Miss);
                    (flight.join(), Some(guard), started)
                }
            }
        };
        self.observer.miss(&self.key);
        if let Some(id) = started {
            self.observer.episode_started(&self.key, id);
        }
        if let Some(guard) = fetch {
            // In its own task, so that no waiter's cancellation cancels it.
            tokio::spawn(guard.run());
        }
        passenger.result().await
    }

    fn aborted(&self) -> Error {
        Error::FetchAborted {
            url: self.key.token_url().to_owned(),
        }
    }

    /// Registers a shared fetch (the caller holds the lock: `slow`); the guard runs it.
    fn shared_fetch(
        self: &Arc<Self>,
        slow: &mut Slow,
        reason: FetchReason,
    ) -> (FetchGuard, Arc<Flight>) {
        let flight = Arc::new(Flight::default());
        let id = next_id();
        slow.in_flight = Some(InFlight {
            id,
            flight: Arc::clone(&flight),
        });
        slow.fetches += 1;
        let guard = FetchGuard::new(Arc::clone(self), reason, Some((id, Arc::clone(&flight))));
        (guard, flight)
    }

    /// `refresh-ahead`: starts the background refresh of `generation` unless one was.
    #[cold]
    fn claim_refresh(self: &Arc<Self>, generation: u64) {
        let claimed = &self.entry.refresh_claimed;
        let seen = claimed.load(Ordering::Relaxed);
        // Generations only grow: a claim at or past this one is this token's or a newer
        // token's (an old timer must not take it over).
        if seen >= generation
            || claimed
                .compare_exchange(seen, generation, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(refresh(
                    Arc::downgrade(self),
                    Arc::clone(&self.entry),
                    generation,
                ));
            }
            // No runtime to refresh in: leave it to a later hit, or to the miss at expiry.
            Err(_) => {
                let _ =
                    claimed.compare_exchange(generation, seen, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// `credential-manager`: the store refreshes `token` when its refresh window opens,
    /// whether or not a lookup comes then (a lookup inside the window would start the same
    /// refresh; whichever comes first does). Holds only a weak reference to the client.
    fn schedule_refresh(self: &Arc<Self>, token: &Token) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, generation, at) =
            (Arc::downgrade(self), token.generation(), token.refresh_at());
        runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(inner) = client.upgrade() else {
                return;
            };
            // A replaced token's timer must not take the current token's claim.
            let current = inner.entry.lock().current.as_ref().map(Token::generation);
            if current == Some(generation) {
                inner.claim_refresh(generation);
            }
        });
    }

    /// Counts a token request about to be prepared in the running miss episode, if any;
    /// returns the episode and its herd size with this request.
    fn count_request(&self) -> Option<(EpisodeHerd, u32)> {
        let slow = self.entry.lock();
        let episode = slow.episode.as_ref()?;
        let size = episode.herd.add();
        Some((episode.herd.clone(), size))
    }

    /// Takes back a request counted in `episode` that was never sent (its assertion could
    /// not be signed), unless the episode has ended meanwhile (its size was reported).
    fn uncount_request(&self, episode: &EpisodeHerd) {
        let slow = self.entry.lock();
        if slow
            .episode
            .as_ref()
            .is_some_and(|e| e.herd.id == episode.id)
        {
            episode.remove();
        }
    }

    /// The delay before retry `retry` (from 1), with
    /// `b = min(max_backoff, initial_backoff × 2^(retry-1))`: the capped `Retry-After` plus
    /// a jitter uniform in `[0, b/2]` if the answer had one, else a backoff uniform in
    /// `[b/2, b]`.
    fn retry_delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
        let ceiling = self
            .retry
            .initial_backoff
            .saturating_mul(factor)
            .min(self.retry.max_backoff);
        match retry_after {
            Some(asked) => {
                asked.min(self.retry.max_retry_after) + self.uniform(Duration::ZERO, ceiling / 2)
            }
            None => self.uniform(ceiling / 2, ceiling),
        }
    }

    /// The form body of one token request with `prepared`'s grant; signs a fresh assertion
    /// if the client uses a certificate.
    fn form(&self, prepared: &Prepared) -> Result<FormBody, Error> {
        // Large enough for an RSA-4096 assertion and a user's token, so that the secrets are
        // never reallocated.
        let mut form = form_urlencoded::Serializer::new(String::with_capacity(8192));
        prepared.append_to(&mut form);
        form.append_pair("client_id", self.key.client_id())
            .append_pair("scope", self.key.scope());
        match &*self.auth {
            Authenticator::Assertion {
                builder,
                backend,
                alg,
            } => {
                let start = std::time::Instant::now();
                let signed = match &self.virtual_time {
                    Some(clock) => builder.build_issued_at(clock.now_secs()),
                    None => builder.build(),
                };
                let assertion = Zeroizing::new(signed.map_err(|e| Error::Assertion {
                    client_id: self.key.client_id().to_owned(),
                    source: Arc::new(e),
                })?);
                let duration = self
                    .virtual_time
                    .map_or_else(|| start.elapsed(), |clock| clock.signing_cost);
                self.observer.signed(
                    &self.key,
                    &Signed {
                        backend,
                        alg: *alg,
                        duration,
                    },
                );
                form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
                    .append_pair("client_assertion", &assertion);
            }
            Authenticator::Secret(secret) => {
                form.append_pair("client_secret", secret.expose());
            }
        }
        Ok(FormBody::new(form.finish()))
    }

    /// A duration uniform in `[low, high]` (`low` if `high <= low`).
    fn uniform(&self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let mut draws = self.draws.lock().unwrap_or_else(PoisonError::into_inner);
        Duration::from_nanos(draws.random_range(nanos(low)..=nanos(high)))
    }

    /// The token of a response that arrived at `now`.
    fn make_token(&self, response: TokenResponse, now: Instant) -> Result<Token, Error> {
        let expires_in = response.expires_in;
        let expires_at = now
            .checked_add(expires_in)
            .ok_or_else(|| Error::InvalidResponse {
                url: self.key.token_url().to_owned(),
                reason: format!("expires_in {} s is too large", expires_in.as_secs()),
            })?;
        let fresh_until = now + expires_in.mul_f64(self.settings.cache_fraction);
        let refresh_at = match self.policy {
            CachePolicy::RefreshAhead | CachePolicy::CredentialManager => {
                // The window opens `refresh_window` before the expiry (by default when the
                // token stops being fresh), but never before half the lifetime.
                let opens = match self.settings.refresh_window {
                    Some(window) => expires_at.checked_sub(window).unwrap_or(now),
                    None => fresh_until,
                }
                .max(now + expires_in / 2);
                let window = expires_at.saturating_duration_since(opens);
                opens + self.uniform(Duration::ZERO, self.settings.refresh_jitter.min(window / 2))
            }
            CachePolicy::Apim | CachePolicy::SingleFlight => fresh_until,
        };
        let scope = response
            .scope
            .unwrap_or_else(|| self.key.scope().to_owned());
        Ok(Token(Arc::new(TokenInner::new(
            response.bearer,
            response.authorization,
            response.token_type,
            scope,
            expires_in,
            now,
            fresh_until,
            refresh_at,
            expires_at,
        ))))
    }
}

/// `refresh-ahead`: refreshes `generation` in the background. After a failure the old token
/// keeps being served, and the refresh is tried again once half its remaining lifetime has
/// passed (at least 1 s later), until it expires or is replaced. Holds only a weak
/// reference to the client between attempts: once every handle of the client is dropped it
/// stops, and lets another client of the entry (a shared cache) claim the refresh.
async fn refresh(client: Weak<Inner>, entry: Arc<Entry>, generation: u64) {
    loop {
        let (guard, expires_at) = {
            let Some(inner) = client.upgrade() else {
                let _ = entry.refresh_claimed.compare_exchange(
                    generation,
                    0,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                return;
            };
            let mut slow = inner.entry.lock();
            let now = Instant::now();
            let Some(current) = slow.current.as_ref() else {
                return;
            };
            if current.generation() != generation
                || now >= current.expires_at()
                || slow.in_flight.is_some()
            {
                return;
            }
            let expires_at = current.expires_at();
            let (guard, _) = inner.shared_fetch(&mut slow, FetchReason::Refresh);
            (guard, expires_at)
        };
        let users = guard.inner.grant.is_user();
        if guard.run().await.is_ok() {
            return;
        }
        let now = Instant::now();
        let wait = (expires_at.saturating_duration_since(now) / 2).max(Duration::from_secs(1));
        if now + wait >= expires_at {
            return;
        }
        tokio::time::sleep(wait).await;
        if users {
            // The credential it was claimed with may be stale by now (a user's token
            // expires): release the claim, so that the next lookup hands over a current one.
            let _ = entry.refresh_claimed.compare_exchange(
                generation,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return;
        }
    }
}

/// Starts a miss episode unless one is running; returns its id if it started one. Its herd
/// starts empty: requests already in progress were issued before it.
fn start_episode(slow: &mut Slow, now: Instant) -> Option<u64> {
    if slow.episode.is_some() {
        return None;
    }
    let id = next_id();
    slow.episode = Some(Episode {
        herd: EpisodeHerd::new(id),
        started: now,
    });
    Some(id)
}

/// Ends the running episode, if any.
fn end_episode(slow: &mut Slow, now: Instant, stored: bool) -> Option<EpisodeEnded> {
    let episode = slow.episode.take()?;
    Some(EpisodeEnded {
        episode: episode.herd.id,
        herd_size: episode.herd.size(),
        duration: now.saturating_duration_since(episode.started),
        stored,
    })
}

/// What a fetch has done so far.
struct FetchState {
    reason: FetchReason,
    /// The episode running when it started.
    episode: Option<EpisodeHerd>,
    /// Requests sent.
    requests: u32,
    announced: bool,
}

/// One fetch, counted in the entry's `fetches` from creation. Ending it (or dropping it
/// unfinished) updates the entry, ends the episode if it is over, hands the result to a
/// shared fetch's waiters and reports to the observer.
struct FetchGuard {
    inner: Arc<Inner>,
    /// What its attempts send, taken when it started.
    credential: FetchCredential,
    state: FetchState,
    started: Instant,
    shared: Option<(u64, Arc<Flight>)>,
    done: bool,
}

impl FetchGuard {
    fn new(inner: Arc<Inner>, reason: FetchReason, shared: Option<(u64, Arc<Flight>)>) -> Self {
        FetchGuard {
            credential: inner.grant.for_fetch(),
            inner,
            state: FetchState {
                reason,
                episode: None,
                requests: 0,
                announced: false,
            },
            started: Instant::now(),
            shared,
            done: false,
        }
    }

    async fn run(mut self) -> Result<Token, Error> {
        let response = self.fetch().await;
        let now = Instant::now();
        let result = response.and_then(|r| self.inner.make_token(r, now));
        self.finish(result, now)
    }

    /// Whether nobody is left to use this fetch's result: no handle of its client remains
    /// (this guard holds the only reference) and no miss waits for it.
    fn abandoned(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
            && self
                .shared
                .as_ref()
                .is_none_or(|(_, flight)| flight.waiting() == 0)
    }

    /// Signs, requests, and retries 429/503 as the retry policy allows (unless the fetch is
    /// abandoned meanwhile).
    async fn fetch(&mut self) -> Result<TokenResponse, Error> {
        let inner = &*self.inner;
        let mut retry = 0;
        loop {
            let counted = inner.count_request();
            if !self.state.announced {
                self.state.announced = true;
                self.state.episode = counted.as_ref().map(|(episode, _)| episode.clone());
                let herd_size = counted.as_ref().map_or(0, |(_, size)| *size);
                tracing::debug!(key = %inner.key, reason = ?self.state.reason, herd_size, "token fetch started");
                inner.observer.fetch_started(
                    &inner.key,
                    &FetchStarted {
                        reason: self.state.reason,
                        episode: self.state.episode.as_ref().map(|e| e.id),
                        herd_size,
                    },
                );
            }
            // A refresh token's slot stays claimed until this attempt's answer is in.
            let prepared = self.credential.prepare(inner.key.client_id()).await;
            let (form, prepared) = match prepared.and_then(|p| Ok((inner.form(&p)?, p))) {
                Ok(both) => both,
                Err(error) => {
                    if let Some((episode, _)) = &counted {
                        inner.uncount_request(episode);
                    }
                    return Err(error);
                }
            };
            if let (Some(clock), Authenticator::Assertion { .. }) =
                (&inner.virtual_time, &*inner.auth)
            {
                // The signature took no virtual time: charge it.
                tokio::time::sleep(clock.signing_cost).await;
            }
            self.state.requests += 1;
            let answer = tokio::time::timeout(
                inner.timeout,
                inner.transport.post_form(&inner.uri, form, MAX_BODY_BYTES),
            )
            .await;
            let url = || inner.key.token_url().to_owned();
            let error = match answer {
                Err(_) => {
                    return Err(Error::Timeout {
                        url: url(),
                        timeout: inner.timeout,
                    })
                }
                Ok(Err(TransportError::BodyTooLarge { status, limit })) => {
                    return Err(Error::ResponseTooLarge {
                        url: url(),
                        status,
                        limit,
                    })
                }
                Ok(Err(error)) => {
                    return Err(Error::Transport {
                        url: url(),
                        reason: error.to_string(),
                    })
                }
                Ok(Ok(answer)) => match response::parse(inner.key.token_url(), &answer) {
                    Ok(mut token) => {
                        prepared.rotated(token.refresh_token.take());
                        return Ok(token);
                    }
                    Err(error) => error,
                },
            };
            let Error::Endpoint {
                status: status @ (429 | 503),
                retry_after,
                ..
            } = error
            else {
                return Err(error);
            };
            if retry >= inner.retry.max_retries {
                return Err(error);
            }
            if self.abandoned() {
                tracing::debug!(key = %inner.key, status, "token request throttled; no client left to retry for");
                return Err(error);
            }
            retry += 1;
            let delay = inner.retry_delay(retry, retry_after);
            tracing::debug!(key = %inner.key, status, retry, ?delay, "token request throttled; retrying");
            inner.observer.retrying(
                &inner.key,
                &Retrying {
                    status,
                    retry,
                    delay,
                    retry_after,
                },
            );
            drop(prepared);
            tokio::time::sleep(delay).await;
            if self.abandoned() {
                return Err(error);
            }
        }
    }

    fn finish(mut self, result: Result<Token, Error>, now: Instant) -> Result<Token, Error> {
        self.done = true;
        let outcome = match &result {
            Ok(token) => FetchOutcome::Stored {
                generation: token.generation(),
            },
            Err(error) => FetchOutcome::Failed(error.clone()),
        };
        self.settle(result.as_ref().ok(), now, outcome);
        if let Some((_, flight)) = self.shared.take() {
            flight.land(result.clone());
        }
        result
    }

    /// Updates the entry and reports the end of the fetch.
    fn settle(&mut self, token: Option<&Token>, now: Instant, outcome: FetchOutcome) {
        let inner = &self.inner;
        let (ended, herd) = {
            let mut slow = inner.entry.lock();
            slow.fetches -= 1;
            if let Some((id, _)) = &self.shared {
                if slow.in_flight.as_ref().is_some_and(|f| f.id == *id) {
                    slow.in_flight = None;
                }
            }
            let ended = match token {
                Some(token) => {
                    inner.entry.publish(&mut slow, token);
                    end_episode(&mut slow, now, true)
                }
                None if slow.fetches == 0 => end_episode(&mut slow, now, false),
                None => None,
            };
            (
                ended,
                self.state.episode.as_ref().map_or(0, EpisodeHerd::size),
            )
        };
        if token.is_some() {
            inner.grant.clear_sent(&self.credential);
        }
        // The store refreshes with a credential of its own: the client's, never a user's
        // (users' tokens are refreshed when a lookup hands one over, as under refresh-ahead).
        if let (Some(token), CachePolicy::CredentialManager, false) =
            (token, inner.policy, inner.grant.is_user())
        {
            inner.schedule_refresh(token);
        }
        if self.state.announced {
            let event = FetchFinished {
                reason: self.state.reason,
                episode: self.state.episode.as_ref().map(|e| e.id),
                herd_size: herd,
                requests: self.state.requests,
                duration: now.saturating_duration_since(self.started),
                outcome,
            };
            match &event.outcome {
                FetchOutcome::Failed(error) => {
                    tracing::debug!(key = %inner.key, requests = event.requests, %error, "token fetch failed")
                }
                FetchOutcome::Stored { .. } | FetchOutcome::Cancelled => {
                    tracing::debug!(key = %inner.key, requests = event.requests, outcome = ?event.outcome, "token fetch ended")
                }
            }
            inner.observer.fetch_finished(&inner.key, &event);
        }
        if let Some(ended) = ended {
            inner.observer.episode_ended(&inner.key, &ended);
        }
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if !self.done {
            self.settle(None, Instant::now(), FetchOutcome::Cancelled);
            if let Some((_, flight)) = self.shared.take() {
                flight.land(Err(self.inner.aborted()));
            }
        }
    }
}
