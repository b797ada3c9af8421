//! One gateway instance: its token client, its backend connections, its in-flight limit.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use client::{HyperTransport, TokenCache, TokenClient, Transport};
use http::{HeaderValue, StatusCode};
use metrics::{ConnectionRecorder, InstanceObserver, Metrics, Peer, RequestOutcome, RequestRecord};
use mock::Mock;
use scenario::{CacheScope, Scenario};
use tokio::sync::Semaphore;

use crate::{backend_client::BackendClient, error::RunError, in_process, target::Target};

/// Mixed with the client's number into the seed of each token client, so that clients draw
/// different jitter from one scenario seed.
const CLIENT_SEED_STRIDE: u64 = 0xd1b5_4a32_d192_ed03;

/// One gateway instance: its token client, its way to the backend, its in-flight limit.
pub(crate) struct Gateway {
    /// Its token client of each API (indexed as the scenario's `apis`).
    clients: Vec<TokenClient>,
    backend: Backend,
    pub(crate) in_flight: Arc<Semaphore>,
    /// Cached tokens removed after a 401 or 403, by every instance of the run.
    removals: Arc<AtomicU64>,
    pub(crate) max_in_flight: u32,
    retry_on_401: bool,
}

impl Gateway {
    pub(crate) fn build_all(
        scenario: &Scenario,
        target: &Target,
        metrics: &Arc<Metrics>,
        instances: usize,
        removals: &Arc<AtomicU64>,
    ) -> Result<Vec<Arc<Gateway>>, RunError> {
        let gateway = &scenario.gateway;
        // One cache per sharing group: per instance, per region or for the fleet.
        let groups = match gateway.cache {
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
                let cache = match gateway.cache {
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
                let clients = (0..scenario.apis.len())
                    .map(|api| {
                        let slot = (instance * scenario.apis.len() + api) as u64;
                        let mut client = TokenClient::builder(
                            target.token_config(scenario, api),
                            target.auth().clone(),
                        )
                        .cache(cache)
                        .observer(Arc::new(InstanceObserver::for_api(
                            Arc::clone(metrics),
                            instance,
                            api,
                        )))
                        .transport(Arc::clone(&transport))
                        .seed(scenario.seed ^ (slot + 1).wrapping_mul(CLIENT_SEED_STRIDE));
                        if let Some((_, virtual_time)) = target.in_process() {
                            client = client.virtual_time(virtual_time);
                        }
                        client.build()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
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
                    clients,
                    backend,
                    in_flight: Arc::new(Semaphore::new(max_in_flight as usize)),
                    removals: Arc::clone(removals),
                    max_in_flight,
                    retry_on_401: gateway.retry_on_401,
                }))
            })
            .collect()
    }

    /// Its token client of API `api`.
    pub(crate) fn client(&self, api: usize) -> &TokenClient {
        &self.clients[api]
    }

    /// Whether half its in-flight permits or more are free.
    pub(crate) fn spare_permits(&self) -> bool {
        self.in_flight.available_permits() * 2 >= self.max_in_flight as usize
    }

    /// One request to API `api` (an index of the scenario's `apis`), sent at `sent_at`:
    /// token, backend call, and on 401/403 the rejection report (and one retry with a new
    /// token if the scenario asks for it).
    pub(crate) async fn request(
        &self,
        instance: usize,
        api: usize,
        intended_start: Duration,
        sent_at: Duration,
        path: Option<&str>,
        metrics: &Metrics,
    ) -> RequestRecord {
        let mut token_obtained_at = None;
        let mut outcome = RequestOutcome::TokenError;
        // The run picks `api` among the scenario's APIs, one client each.
        let client = &self.clients[api];
        for attempt in 0..=u8::from(self.retry_on_401) {
            let token = match client.get_token().await {
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
                if client.report_rejected(&token, status) {
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
