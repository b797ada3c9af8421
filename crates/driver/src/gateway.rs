//! One gateway instance: its token client, its backend connections, its in-flight limit.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use client::{
    CachePolicy, DelegatedTokenClient, Error as TokenError, HyperTransport, Token, TokenCache,
    TokenClient, Transport, UserGrant,
};
use http::{HeaderValue, StatusCode};
use metrics::{ConnectionRecorder, InstanceObserver, Metrics, Peer, RequestOutcome, RequestRecord};
use mock::{Latency, LatencySampler, Mock};
use rand::{rngs::SmallRng, SeedableRng as _};
use scenario::{CacheScope, Flow, Scenario};
use tokio::sync::Semaphore;

use crate::{
    backend_client::BackendClient,
    error::RunError,
    in_process,
    target::Target,
    users::{user_name, Users},
};

/// Mixed with the client's number into the seed of each token client, so that clients draw
/// different jitter from one scenario seed.
const CLIENT_SEED_STRIDE: u64 = 0xd1b5_4a32_d192_ed03;
/// Mixed into the seed of the managed store's lookup latencies.
const LOOKUP_DRAWS: u64 = 0x94d0_49bb_1331_11eb;

/// One gateway instance: its token client, its way to the backend, its in-flight limit.
pub(crate) struct Gateway {
    tokens: Tokens,
    backend: Backend,
    pub(crate) in_flight: Arc<Semaphore>,
    /// Cached tokens removed after a 401 or 403, by every instance of the run.
    removals: Arc<AtomicU64>,
    pub(crate) max_in_flight: u32,
    retry_on_401: bool,
    /// `credential-manager`: what each token lookup costs (a call to the managed store).
    lookup: Option<Lookup>,
}

/// The cost of a lookup in a managed store, drawn per lookup.
struct Lookup {
    latency: LatencySampler,
    draws: Mutex<SmallRng>,
}

/// How an instance gets the backend's tokens, per API (indexed as the scenario's `apis`).
enum Tokens {
    /// Its own token per API.
    App(Vec<TokenClient>),
    /// A token per user and API, exchanged on behalf of the user for the user's own token.
    Users {
        clients: Vec<DelegatedTokenClient>,
        users: Arc<Users>,
    },
}

impl Gateway {
    /// The instances of the run; with `users`, an on-behalf-of run's.
    pub(crate) fn build_all(
        scenario: &Scenario,
        target: &Target,
        metrics: &Arc<Metrics>,
        instances: usize,
        removals: &Arc<AtomicU64>,
        users: Option<&Arc<Users>>,
    ) -> Result<Vec<Arc<Gateway>>, RunError> {
        let gateway = &scenario.gateway;
        // A managed store is the fleet's, whatever the scenario's sharing.
        let sharing = match gateway.policy {
            CachePolicy::CredentialManager => CacheScope::Fleet,
            _ => gateway.cache,
        };
        // One cache per sharing group: per instance, per region or for the fleet.
        let groups = match sharing {
            CacheScope::Instance => instances,
            CacheScope::Region => gateway.regions as usize,
            CacheScope::Fleet => 1,
        };
        let caches: Vec<TokenCache> = (0..groups).map(|_| TokenCache::new()).collect();
        let (backend_base, embedded_backend) = target.backend_base();
        let max_in_flight = gateway.max_in_flight.max(1);
        let in_process = target.token_transport();
        (0..instances)
            .map(|instance| {
                let cache = match sharing {
                    CacheScope::Instance => &caches[instance],
                    CacheScope::Region => &caches[gateway.region_of(instance as u32) as usize],
                    CacheScope::Fleet => &caches[0],
                };
                // An instance's clients share its connections to the identity provider.
                let transport: Arc<dyn Transport> = match &in_process {
                    Some(transport) => Arc::clone(transport),
                    None => Arc::new(HyperTransport::observed(
                        Arc::clone(target.tls()),
                        Some(Arc::new(ConnectionRecorder::new(
                            Arc::clone(metrics),
                            Peer::Idp,
                        ))),
                    )),
                };
                // What every client of the instance shares: settings, credentials,
                // observer, transport, seed, clock.
                let client = |api: usize| {
                    let slot = (instance * scenario.apis.len() + api) as u64;
                    let mut builder = TokenClient::builder(
                        target.token_config(scenario, api),
                        target.auth().clone(),
                    )
                    .observer(Arc::new(InstanceObserver::for_api(
                        Arc::clone(metrics),
                        instance,
                        api,
                    )))
                    .transport(Arc::clone(&transport))
                    .seed(scenario.seed ^ (slot + 1).wrapping_mul(CLIENT_SEED_STRIDE));
                    if let Some((_, virtual_time)) = target.in_process() {
                        builder = builder.virtual_time(virtual_time);
                    }
                    builder
                };
                let apis = 0..scenario.apis.len();
                let tokens = match (scenario.gateway.flow, users) {
                    (Flow::ClientCredentials, _) => Tokens::App(
                        apis.map(|api| client(api).cache(cache).build())
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    (Flow::OnBehalfOf, Some(users)) => Tokens::Users {
                        clients: apis
                            .map(|api| {
                                DelegatedTokenClient::over(client(api))
                                    .max_entries(scenario.gateway.user_cache_entries as usize)
                                    .build()
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        users: Arc::clone(users),
                    },
                    (Flow::OnBehalfOf, None) => {
                        return Err(RunError::Setup(
                            "an on-behalf-of run needs the embedded identity provider to mint \
                             its users' tokens"
                                .to_owned(),
                        ))
                    }
                };
                let backend = match target.in_process() {
                    Some((mock, _)) => Backend::InProcess(Arc::clone(mock)),
                    None => Backend::Http(
                        BackendClient::new(
                            &backend_base,
                            embedded_backend,
                            max_in_flight as usize,
                            target.tls(),
                        )?
                        .observed(Arc::new(ConnectionRecorder::new(
                            Arc::clone(metrics),
                            Peer::Backend,
                        ))),
                    ),
                };
                Ok(Arc::new(Gateway {
                    tokens,
                    backend,
                    in_flight: Arc::new(Semaphore::new(max_in_flight as usize)),
                    removals: Arc::clone(removals),
                    max_in_flight,
                    retry_on_401: gateway.retry_on_401,
                    lookup: (gateway.policy == CachePolicy::CredentialManager
                        && gateway.lookup_latency != Latency::None)
                        .then(|| Lookup {
                            latency: gateway.lookup_latency.sampler(),
                            draws: Mutex::new(SmallRng::seed_from_u64(
                                scenario.seed
                                    ^ LOOKUP_DRAWS
                                    ^ (instance as u64 + 1).wrapping_mul(CLIENT_SEED_STRIDE),
                            )),
                        }),
                }))
            })
            .collect()
    }

    /// Its token client of API `api`; `None` in an on-behalf-of run (a client per user).
    pub(crate) fn client(&self, api: usize) -> Option<&TokenClient> {
        match &self.tokens {
            Tokens::App(clients) => Some(&clients[api]),
            Tokens::Users { .. } => None,
        }
    }

    /// Users' tokens it caches now, over its APIs (0 without users).
    pub(crate) fn cached_users(&self) -> usize {
        match &self.tokens {
            Tokens::App(_) => 0,
            Tokens::Users { clients, .. } => clients.iter().map(|c| c.entries()).sum(),
        }
    }

    /// Whether half its in-flight permits or more are free.
    pub(crate) fn spare_permits(&self) -> bool {
        self.in_flight.available_permits() * 2 >= self.max_in_flight as usize
    }

    /// One request to API `api` (an index of the scenario's `apis`) from `user` (in an
    /// on-behalf-of run), sent at `sent_at`: token, backend call, and on 401/403 the
    /// rejection report (and one retry with a new token if the scenario asks for it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn request(
        &self,
        instance: usize,
        api: usize,
        user: Option<u32>,
        intended_start: Duration,
        sent_at: Duration,
        path: Option<&str>,
        metrics: &Metrics,
    ) -> RequestRecord {
        let mut token_obtained_at = None;
        let mut outcome = RequestOutcome::TokenError;
        let user = user.map(|user| (user, user_name(user)));
        if let (Tokens::Users { users, .. }, Some((user, _))) = (&self.tokens, &user) {
            users.see(*user);
        }
        for attempt in 0..=u8::from(self.retry_on_401) {
            let token = match self.token(api, user.as_ref()).await {
                Ok(token) => token,
                Err(_) => {
                    outcome = RequestOutcome::TokenError;
                    break;
                }
            };
            token_obtained_at = Some(metrics.offset(token.obtained_at()));
            let status = self.backend.get(path, token.authorization()).await;
            outcome = status.map_or(RequestOutcome::BackendError, |status| {
                RequestOutcome::Status(status.as_u16())
            });
            let rejected = status.filter(|status| {
                *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN
            });
            if let Some(status) = rejected {
                let removed = match (&self.tokens, &user) {
                    (Tokens::App(clients), _) => clients[api].report_rejected(&token, status),
                    (Tokens::Users { clients, .. }, Some((_, name))) => {
                        clients[api].report_rejected(name, &token, status)
                    }
                    (Tokens::Users { .. }, None) => false,
                };
                if removed {
                    self.removals.fetch_add(1, Ordering::AcqRel);
                }
            }
            let rejected = rejected.is_some();
            if !(rejected && attempt == 0 && self.retry_on_401) {
                break;
            }
        }
        RequestRecord {
            instance,
            intended_start,
            sent_at,
            finished_at: metrics.elapsed(),
            outcome,
            token_obtained_at,
        }
    }
}

impl Gateway {
    /// The token for a request to API `api` from `user` (number and name), if any.
    async fn token(&self, api: usize, user: Option<&(u32, String)>) -> Result<Token, TokenError> {
        if let Some(lookup) = &self.lookup {
            let delay = {
                let mut draws = lookup.draws.lock().unwrap_or_else(PoisonError::into_inner);
                lookup.latency.sample(&mut *draws)
            };
            tokio::time::sleep(delay).await;
        }
        match (&self.tokens, user) {
            (Tokens::App(clients), _) => clients[api].get_token().await,
            (Tokens::Users { clients, users }, Some((user, name))) => {
                // The user's own token is minted (or taken from those held) only when the
                // cache needs it: on a miss, or for a refresh coming due.
                let own = || {
                    users
                        .own_token(*user)
                        .map(|own| UserGrant::on_behalf_of(&own))
                        .map_err(|reason| TokenError::Config {
                            field: "user",
                            reason,
                        })
                };
                clients[api].get_token_with(name, own).await
            }
            (Tokens::Users { .. }, None) => Err(TokenError::Config {
                field: "user",
                reason: "a request of an on-behalf-of run came from no user".to_owned(),
            }),
        }
    }
}

/// Where an instance's requests go.
// One per gateway instance: boxing the pool would only add an indirection to every request.
#[allow(clippy::large_enum_variant)]
enum Backend {
    /// Over keep-alive connections.
    Http(BackendClient),
    /// To the embedded backend in-process (a simulation), which serves every path alike.
    InProcess(Arc<Mock>),
}

impl Backend {
    /// `GET path` with `authorization`; `None` when no answer came.
    async fn get(&self, path: Option<&str>, authorization: &HeaderValue) -> Option<StatusCode> {
        match self {
            Backend::Http(client) => client.get(path, authorization).await,
            Backend::InProcess(mock) => Some(in_process::backend_get(mock, authorization).await),
        }
    }
}
