//! The caching token client.

use std::{
    fmt,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use http::{StatusCode, Uri};
use rand::Rng as _;
use signer::{Algorithm, AssertionBuilder};
use tokio::{sync::watch, time::Instant};
use zeroize::Zeroizing;

use crate::{
    cache::{next_id, Entry, Episode, InFlight, Slow},
    observer::{
        EpisodeEnded, FetchFinished, FetchOutcome, FetchReason, FetchStarted, NoopObserver,
        Rejected, Retrying, Signed, TokenObserver,
    },
    response::{self, TokenResponse},
    token::TokenInner,
    transport::{FormBody, HyperTransport, Transport, TransportError, MAX_BODY_BYTES},
    CacheKey, CachePolicy, ClientAuth, ClientSecret, Error, RetryPolicy, Token, TokenCache,
    TokenClientConfig,
};

/// `client_assertion_type` of RFC 7523 assertions.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The result every waiter of a shared fetch receives.
type SharedResult = Option<Result<Token, Error>>;

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
}

struct Inner {
    key: CacheKey,
    entry: Arc<Entry>,
    policy: CachePolicy,
    uri: Uri,
    auth: Authenticator,
    timeout: Duration,
    cache_fraction: f64,
    refresh_window: Option<Duration>,
    refresh_jitter: Duration,
    retry: RetryPolicy,
    observer: Arc<dyn TokenObserver>,
    transport: Arc<dyn Transport>,
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
        }
    }

    /// A token: the cached one if it is usable, else one fetched as the policy says.
    pub async fn get_token(&self) -> Result<Token, Error> {
        if let Some(token) = self.inner.lookup() {
            return Ok(token);
        }
        self.inner.miss().await
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
        let key = CacheKey::new(config.token_url, config.client_id, config.scope);
        let cache = self.cache.unwrap_or_default();
        let entry = cache.entry(&key, config.policy)?;
        Ok(TokenClient {
            inner: Arc::new(Inner {
                key,
                entry,
                policy: config.policy,
                uri,
                auth,
                timeout: config.timeout,
                cache_fraction: config.cache_fraction,
                refresh_window: config.refresh_window,
                refresh_jitter: config.refresh_jitter,
                retry: config.retry,
                observer: self.observer.unwrap_or_else(|| Arc::new(NoopObserver)),
                transport,
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
        let now = Instant::now();
        let guard = self.entry.replica().load();
        let cached = guard.as_ref()?;
        match self.policy {
            CachePolicy::Apim | CachePolicy::SingleFlight => {
                if now >= cached.fresh_until {
                    return None;
                }
            }
            CachePolicy::RefreshAhead => {
                if now >= cached.expires_at {
                    return None;
                }
                if now >= cached.refresh_at
                    && self.entry.refresh_claimed.load(Ordering::Relaxed) != cached.generation
                {
                    self.claim_refresh(cached.generation);
                }
            }
        }
        let token = Token(Arc::clone(cached));
        drop(guard);
        self.observer.hit(&self.key);
        Some(token)
    }

    /// Whether `token` may be handed out at `now`.
    fn usable(&self, token: &Token, now: Instant) -> bool {
        match self.policy {
            CachePolicy::RefreshAhead => now < token.expires_at(),
            CachePolicy::Apim | CachePolicy::SingleFlight => now < token.fresh_until(),
        }
    }

    fn miss(self: &Arc<Self>) -> crate::transport::BoxFuture<'_, Result<Token, Error>> {
        // Boxed: keeps the slow path's state out of `get_token`'s future.
        match self.policy {
            CachePolicy::Apim => Box::pin(self.apim_miss()),
            CachePolicy::SingleFlight | CachePolicy::RefreshAhead => {
                Box::pin(self.coordinated_miss())
            }
        }
    }

    /// `apim`: the miss signs and fetches on its own.
    async fn apim_miss(self: &Arc<Self>) -> Result<Token, Error> {
        let now = Instant::now();
        let (guard, started) = {
            let mut slow = self.entry.lock();
            let cached_valid = slow.current.as_ref().is_some_and(|t| now < t.fresh_until());
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
        let (mut result, fetch, started) = {
            let mut slow = self.entry.lock();
            if let Some(token) = slow.current.as_ref().filter(|t| self.usable(t, now)) {
                // A fetch stored this token between the lock-free lookup and the lock.
                let token = token.clone();
                drop(slow);
                if self.policy == CachePolicy::RefreshAhead && now >= token.refresh_at() {
                    self.claim_refresh(token.generation());
                }
                self.observer.hit(&self.key);
                return Ok(token);
            }
            let started = start_episode(&mut slow, now);
            match &slow.in_flight {
                Some(in_flight) => (in_flight.result.clone(), None, started),
                None => {
                    let (guard, result) = self.shared_fetch(&mut slow, FetchReason::Miss);
                    (result, Some(guard), started)
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
        let shared = match result.wait_for(Option::is_some).await {
            Ok(shared) => shared.clone(),
            Err(_) => None,
        };
        shared.unwrap_or_else(|| Err(self.aborted()))
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
    ) -> (FetchGuard, watch::Receiver<SharedResult>) {
        let (sender, receiver) = watch::channel(None);
        let id = next_id();
        slow.in_flight = Some(InFlight {
            id,
            result: receiver.clone(),
        });
        slow.fetches += 1;
        let guard = FetchGuard::new(Arc::clone(self), reason, Some((id, sender)));
        (guard, receiver)
    }

    /// `refresh-ahead`: starts the background refresh of `generation` unless one was.
    #[cold]
    fn claim_refresh(self: &Arc<Self>, generation: u64) {
        let claimed = &self.entry.refresh_claimed;
        let seen = claimed.load(Ordering::Relaxed);
        if seen == generation
            || claimed
                .compare_exchange(seen, generation, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(Arc::clone(self).refresh(generation));
            }
            // No runtime to refresh in: leave it to a later hit, or to the miss at expiry.
            Err(_) => {
                let _ =
                    claimed.compare_exchange(generation, seen, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// `refresh-ahead`: refreshes `generation` in the background. After a failure the old
    /// token keeps being served, and the refresh is tried again once half its remaining
    /// lifetime has passed (at least 1 s later), until it expires or is replaced.
    async fn refresh(self: Arc<Self>, generation: u64) {
        loop {
            let (guard, expires_at) = {
                let mut slow = self.entry.lock();
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
                let (guard, _) = self.shared_fetch(&mut slow, FetchReason::Refresh);
                (guard, expires_at)
            };
            if guard.run().await.is_ok() {
                return;
            }
            let now = Instant::now();
            let wait = (expires_at.saturating_duration_since(now) / 2).max(Duration::from_secs(1));
            if now + wait >= expires_at {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One fetch: sign, request, and retry 429/503 as the retry policy allows.
    async fn fetch(&self, state: &mut FetchState) -> Result<TokenResponse, Error> {
        let mut retry = 0;
        loop {
            let (request, episode, herd_size) = RequestGuard::begin(&self.entry);
            state.requests += 1;
            if !state.announced {
                state.announced = true;
                state.episode = episode;
                tracing::debug!(key = %self.key, reason = ?state.reason, herd_size, "token fetch started");
                self.observer.fetch_started(
                    &self.key,
                    &FetchStarted {
                        reason: state.reason,
                        episode,
                        herd_size,
                    },
                );
            }
            let form = self.form()?;
            let answer = tokio::time::timeout(
                self.timeout,
                self.transport.post_form(&self.uri, form, MAX_BODY_BYTES),
            )
            .await;
            drop(request);
            let url = || self.key.token_url().to_owned();
            let error = match answer {
                Err(_) => {
                    return Err(Error::Timeout {
                        url: url(),
                        timeout: self.timeout,
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
                Ok(Ok(answer)) => match response::parse(self.key.token_url(), &answer) {
                    Ok(token) => return Ok(token),
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
            if retry >= self.retry.max_retries {
                return Err(error);
            }
            retry += 1;
            let delay = self.retry_delay(retry, retry_after);
            tracing::debug!(key = %self.key, status, retry, ?delay, "token request throttled; retrying");
            self.observer.retrying(
                &self.key,
                &Retrying {
                    status,
                    retry,
                    delay,
                    retry_after,
                },
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// The delay before retry `retry` (from 1): the larger of the capped `Retry-After` and
    /// a backoff uniform in `[b/2, b]`, `b = min(max_backoff, initial_backoff × 2^(retry-1))`.
    fn retry_delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
        let ceiling = self
            .retry
            .initial_backoff
            .saturating_mul(factor)
            .min(self.retry.max_backoff);
        let backoff = if ceiling.is_zero() {
            Duration::ZERO
        } else {
            let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
        };
        let asked = retry_after.map_or(Duration::ZERO, |d| d.min(self.retry.max_retry_after));
        backoff.max(asked)
    }

    /// The form body of one token request; signs a fresh assertion if the client uses a
    /// certificate.
    fn form(&self) -> Result<FormBody, Error> {
        // Large enough for an RSA-4096 assertion, so that the secret is never reallocated.
        let mut form = form_urlencoded::Serializer::new(String::with_capacity(2048));
        form.append_pair("grant_type", "client_credentials")
            .append_pair("client_id", self.key.client_id())
            .append_pair("scope", self.key.scope());
        match &self.auth {
            Authenticator::Assertion {
                builder,
                backend,
                alg,
            } => {
                let start = std::time::Instant::now();
                let assertion = Zeroizing::new(builder.build().map_err(|e| Error::Assertion {
                    client_id: self.key.client_id().to_owned(),
                    source: Arc::new(e),
                })?);
                let duration = start.elapsed();
                self.observer.signed(
                    &self.key,
                    &Signed {
                        backend,
                        alg: *alg,
                        duration,
                    },
                );
                form.append_pair("client_assertion_type", JWT_BEARER)
                    .append_pair("client_assertion", &assertion);
            }
            Authenticator::Secret(secret) => {
                form.append_pair("client_secret", secret.expose());
            }
        }
        Ok(FormBody::new(form.finish()))
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
        let fresh_until = now + expires_in.mul_f64(self.cache_fraction);
        let refresh_at = match self.policy {
            CachePolicy::RefreshAhead => {
                let opens = match self.refresh_window {
                    Some(window) => expires_at.checked_sub(window).map_or(now, |t| t.max(now)),
                    None => fresh_until,
                };
                let jitter = self.refresh_jitter.min((expires_at - opens) / 2);
                let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
                opens + Duration::from_nanos(rand::rng().random_range(0..=nanos))
            }
            CachePolicy::Apim | CachePolicy::SingleFlight => fresh_until,
        };
        let scope = response
            .scope
            .unwrap_or_else(|| self.key.scope().to_owned());
        Ok(Token(Arc::new(TokenInner::new(
            response.access_token,
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

/// Starts a miss episode unless one is running; returns its id if it started one.
fn start_episode(slow: &mut Slow, now: Instant) -> Option<u64> {
    if slow.episode.is_some() {
        return None;
    }
    let id = next_id();
    slow.episode = Some(Episode {
        id,
        started: now,
        herd_size: slow.requests,
    });
    Some(id)
}

/// Ends the running episode, if any.
fn end_episode(slow: &mut Slow, now: Instant, stored: bool) -> Option<EpisodeEnded> {
    let episode = slow.episode.take()?;
    slow.last_episode = Some((episode.id, episode.herd_size));
    Some(EpisodeEnded {
        episode: episode.id,
        herd_size: episode.herd_size,
        duration: now.saturating_duration_since(episode.started),
        stored,
    })
}

/// The herd size of `episode` now: running, or the last one ended.
fn herd_size(slow: &Slow, episode: Option<u64>) -> u32 {
    let Some(id) = episode else { return 0 };
    match (&slow.episode, slow.last_episode) {
        (Some(running), _) if running.id == id => running.herd_size,
        (_, Some((last, herd))) if last == id => herd,
        _ => 0,
    }
}

/// What a fetch has done so far.
struct FetchState {
    reason: FetchReason,
    episode: Option<u64>,
    requests: u32,
    announced: bool,
}

/// One fetch, counted in the entry's `fetches` from creation. Ending it (or dropping it
/// unfinished) updates the entry, ends the episode if it is over, hands the result to a
/// shared fetch's waiters and reports to the observer.
struct FetchGuard {
    inner: Arc<Inner>,
    state: FetchState,
    started: Instant,
    shared: Option<(u64, watch::Sender<SharedResult>)>,
    done: bool,
}

impl FetchGuard {
    fn new(
        inner: Arc<Inner>,
        reason: FetchReason,
        shared: Option<(u64, watch::Sender<SharedResult>)>,
    ) -> Self {
        FetchGuard {
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
        let inner = Arc::clone(&self.inner);
        let response = inner.fetch(&mut self.state).await;
        let now = Instant::now();
        let result = response.and_then(|r| inner.make_token(r, now));
        self.finish(result, now)
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
        if let Some((_, sender)) = self.shared.take() {
            sender.send_replace(Some(result.clone()));
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
            (ended, herd_size(&slow, self.state.episode))
        };
        if self.state.announced {
            let event = FetchFinished {
                reason: self.state.reason,
                episode: self.state.episode,
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
            // Dropped unfinished: waiters see the sender go and get `FetchAborted`.
            self.settle(None, Instant::now(), FetchOutcome::Cancelled);
        }
    }
}

/// One token request in progress, counted in the entry and its running episode.
struct RequestGuard<'a> {
    entry: &'a Entry,
}

impl<'a> RequestGuard<'a> {
    /// Counts a request; returns the running episode and its herd size with this request.
    fn begin(entry: &'a Entry) -> (Self, Option<u64>, u32) {
        let mut slow = entry.lock();
        slow.requests += 1;
        let (episode, herd) = match slow.episode.as_mut() {
            Some(episode) => {
                episode.herd_size += 1;
                (Some(episode.id), episode.herd_size)
            }
            None => (None, 0),
        };
        (RequestGuard { entry }, episode, herd)
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.entry.lock().requests -= 1;
    }
}
