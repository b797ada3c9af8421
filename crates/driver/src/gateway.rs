//! One gateway instance: its token client, its backend connections, its in-flight limit.

use std::{sync::Arc, time::Duration};

use client::{TokenCache, TokenClient};
use http::StatusCode;
use metrics::{InstanceObserver, Metrics, RequestOutcome, RequestRecord};
use scenario::Scenario;
use tokio::sync::Semaphore;

use crate::{backend_client::BackendClient, error::RunError, target::Target};

/// One gateway instance: its token client, its connection pool to the backend, its in-flight
/// limit.
pub(crate) struct Gateway {
    client: TokenClient,
    backend: BackendClient,
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
        (0..instances)
            .map(|instance| {
                let cache = shared.clone().unwrap_or_default();
                let observer = Arc::new(InstanceObserver::new(Arc::clone(metrics), instance));
                let client =
                    TokenClient::builder(target.token_config(scenario), target.auth().clone())
                        .cache(&cache)
                        .observer(observer)
                        .build()?;
                let backend =
                    BackendClient::new(&backend_base, embedded_backend, max_in_flight as usize)?;
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
