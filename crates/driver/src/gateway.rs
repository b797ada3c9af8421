//! One gateway instance: its token client, its backend connections, its in-flight limit.

use std::{sync::Arc, time::Duration};

use client::{TokenCache, TokenClient};
use http::{HeaderValue, StatusCode};
use metrics::{InstanceObserver, Metrics, RequestOutcome, RequestRecord};
use mock::Mock;
use scenario::Scenario;
use tokio::sync::Semaphore;

use crate::{backend_client::BackendClient, error::RunError, in_process, target::Target};

/// Mixed with the instance number into the seed of each instance's token client, so that
/// instances draw different jitter from one scenario seed.
const CLIENT_SEED_STRIDE: u64 = 0xd1b5_4a32_d192_ed03;

/// One gateway instance: its token client, its way to the backend, its in-flight limit.
pub(crate) struct Gateway {
    client: TokenClient,
    backend: Backend,
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) max_in_flight: u32,
    retry_on_401: bool,
}

impl Gateway {
    pub(crate) fn build_all(
        scenario: &Scenario,
        target: &Target,
        metrics: &Arc<Metrics>,
        instances: usize,
    ) -> Result<Vec<Arc<Gateway>>, RunError> {
        let shared = scenario.gateway.shared_cache.then(TokenCache::new);
        let (backend_base, embedded_backend) = target.backend_base();
        let max_in_flight = scenario.gateway.max_in_flight.max(1);
        let token_transport = target.token_transport();
        (0..instances)
            .map(|instance| {
                let cache = shared.clone().unwrap_or_default();
                let observer = Arc::new(InstanceObserver::new(Arc::clone(metrics), instance));
                let seed = scenario.seed ^ (instance as u64 + 1).wrapping_mul(CLIENT_SEED_STRIDE);
                let mut client =
                    TokenClient::builder(target.token_config(scenario), target.auth().clone())
                        .cache(&cache)
                        .observer(observer)
                        .seed(seed);
                if let Some(transport) = &token_transport {
                    client = client.transport(Arc::clone(transport));
                }
                let backend = match target.in_process() {
                    Some((mock, virtual_time)) => {
                        client = client.virtual_time(virtual_time);
                        Backend::InProcess(Arc::clone(mock))
                    }
                    None => Backend::Http(BackendClient::new(
                        &backend_base,
                        embedded_backend,
                        max_in_flight as usize,
                    )?),
                };
                let client = client.build()?;
                Ok(Arc::new(Gateway {
                    client,
                    backend,
                    in_flight: Arc::new(Semaphore::new(max_in_flight as usize)),
                    max_in_flight,
                    retry_on_401: scenario.gateway.retry_on_401,
                }))
            })
            .collect()
    }

    /// One request, sent at `sent_at`: token, backend call, and on 401/403 the rejection
    /// report (and one retry with a new token if the scenario asks for it).
    pub(crate) async fn request(
        &self,
        instance: usize,
        intended_start: Duration,
        sent_at: Duration,
        path: Option<&str>,
        metrics: &Metrics,
    ) -> RequestRecord {
        let mut token_obtained_at = None;
        let mut outcome = RequestOutcome::TokenError;
        for attempt in 0..=u8::from(self.retry_on_401) {
            let token = match self.client.get_token().await {
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
                self.client.report_rejected(&token, status);
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
