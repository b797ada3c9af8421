//! Where the gateway gets tokens and sends requests: the embedded mock servers, started for
//! the run, or real ones.

use std::sync::Arc;

use client::{ClientAuth, TokenClientConfig};
use metrics::Metrics;
use mock::{server::MockServer, ClientRegistration, MockConfig, TokenFaults};
use scenario::{BackendSpec, ExternalCredentials, IdpSpec, Scenario, SignerSpec};
use signer::{keygen, Credential};
use tokio::{task::JoinSet, time::Instant};

use crate::{
    error::RunError,
    events::{apply_event, EventFaults},
};

/// The client id the embedded identity provider registers for the gateway.
const EMBEDDED_CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

/// Where the gateway gets tokens and sends requests: the embedded mock servers, or real ones.
pub(crate) enum Target {
    Embedded {
        server: MockServer,
        auth: ClientAuth,
    },
    External {
        token_config: TokenClientConfig,
        auth: ClientAuth,
        backend_url: String,
    },
}

impl Target {
    pub(crate) async fn start(scenario: &Scenario) -> Result<Self, RunError> {
        match &scenario.idp {
            IdpSpec::Embedded(idp) => {
                let (auth, registration) = match &scenario.signer {
                    SignerSpec::Assertion { backend, alg, .. } => {
                        let spec = scenario
                            .signer
                            .key_spec()
                            .unwrap_or(keygen::KeySpec::Rsa2048);
                        // RSA key generation takes up to a second: keep it off the runtime.
                        let material = tokio::task::spawn_blocking(move || {
                            keygen::generate(spec, "tokenbench gateway", 1)
                        })
                        .await
                        .map_err(|e| RunError::Setup(format!("key generation task: {e}")))??;
                        let key = material.private_key("generated gateway key")?;
                        let cert = material.certificate("generated gateway certificate")?;
                        let credential = Credential::new(*backend, &key, cert.clone(), *alg)?;
                        (
                            ClientAuth::Certificate(credential),
                            ClientRegistration::with_certificates(EMBEDDED_CLIENT_ID, vec![cert]),
                        )
                    }
                    SignerSpec::Secret(secret) => (
                        ClientAuth::Secret(secret.clone()),
                        ClientRegistration::with_certificates(EMBEDDED_CLIENT_ID, vec![])
                            .with_secret(secret.expose()),
                    ),
                };
                let backend_latency = match &scenario.backend {
                    BackendSpec::Embedded { latency } => *latency,
                    BackendSpec::External { .. } => mock::Latency::None,
                };
                let config = MockConfig {
                    clients: vec![registration],
                    token_lifetime: idp.token_lifetime,
                    token_faults: TokenFaults {
                        latency: idp.latency,
                        error_rate: idp.error_rate,
                        throttle_rps: idp.throttle_rps,
                        ..TokenFaults::default()
                    },
                    backend: mock::BackendConfig {
                        latency: backend_latency,
                        ..mock::BackendConfig::default()
                    },
                    ..MockConfig::default()
                };
                let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                let server = MockServer::start(config, loopback).await?;
                Ok(Target::Embedded { server, auth })
            }
            IdpSpec::External(idp) => {
                let auth = match &idp.credentials {
                    ExternalCredentials::Certificate {
                        key,
                        cert,
                        password,
                    } => {
                        let (backend, alg) = match &scenario.signer {
                            SignerSpec::Assertion { backend, alg, .. } => (*backend, *alg),
                            SignerSpec::Secret(_) => (signer::backend::default_backend(), None),
                        };
                        ClientAuth::Certificate(Credential::load(
                            backend,
                            key,
                            cert.as_deref(),
                            password.as_ref().map(|p| p.expose()),
                            alg,
                        )?)
                    }
                    ExternalCredentials::Secret(secret) => ClientAuth::Secret(secret.clone()),
                };
                let mut token_config = TokenClientConfig::new(
                    idp.token_url.clone(),
                    idp.client_id.clone(),
                    idp.scope.clone(),
                );
                token_config.assertion_audience = idp.audience.clone();
                let backend_url = match &scenario.backend {
                    BackendSpec::External { url } => url.clone(),
                    BackendSpec::Embedded { .. } => {
                        return Err(RunError::BackendUrl {
                            url: String::new(),
                            reason: "an external identity provider needs an external backend"
                                .to_owned(),
                        })
                    }
                };
                Ok(Target::External {
                    token_config,
                    auth,
                    backend_url,
                })
            }
        }
    }

    pub(crate) fn mock(&self) -> Option<&Arc<mock::Mock>> {
        match self {
            Target::Embedded { server, .. } => Some(server.mock()),
            Target::External { .. } => None,
        }
    }

    pub(crate) fn token_config(&self, scenario: &Scenario) -> TokenClientConfig {
        let mut config = match self {
            Target::Embedded { server, .. } => {
                let urls = server.urls();
                TokenClientConfig::new(
                    urls.token_url.clone(),
                    EMBEDDED_CLIENT_ID,
                    urls.scope.clone(),
                )
            }
            Target::External { token_config, .. } => token_config.clone(),
        };
        config.policy = scenario.gateway.policy;
        config.cache_fraction = scenario.gateway.cache_fraction;
        config
    }

    pub(crate) fn auth(&self) -> &ClientAuth {
        match self {
            Target::Embedded { auth, .. } | Target::External { auth, .. } => auth,
        }
    }

    /// The backend's base URL, and whether it is the embedded one.
    pub(crate) fn backend_base(&self) -> (String, bool) {
        match self {
            Target::Embedded { server, .. } => (server.urls().backend_url.clone(), true),
            Target::External { backend_url, .. } => {
                (backend_url.trim_end_matches('/').to_owned(), false)
            }
        }
    }

    /// Starts the tasks that apply the scenario's events at their times.
    pub(crate) fn schedule_events(
        &self,
        scenario: &Scenario,
        start: Instant,
        metrics: &Arc<Metrics>,
    ) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        let Some(mock) = self.mock().cloned() else {
            return tasks;
        };
        let faults = Arc::new(EventFaults::new(&mock));
        for event in scenario.events.clone() {
            let (mock, metrics, faults) =
                (Arc::clone(&mock), Arc::clone(metrics), Arc::clone(&faults));
            // One task per event: an event that lasts (an outage, a throttle) never delays
            // the next one.
            tasks.spawn(async move {
                tokio::time::sleep_until(start + event.at).await;
                apply_event(&mock, &event.kind, &metrics, &faults).await;
            });
        }
        tasks
    }

    pub(crate) async fn shutdown(self) {
        if let Target::Embedded { server, .. } = self {
            server.shutdown().await;
        }
    }
}
