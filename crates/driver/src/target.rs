//! Where the gateway gets tokens and sends requests: the embedded mock servers, started for
//! the run, or real ones.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use client::{ClientAuth, TokenClientConfig, Transport, VirtualTime};
use metrics::Metrics;
use mock::{
    clock::RuntimeClock, server::MockServer, ClientRegistration, Mock, MockConfig, TokenFaults,
};
use scenario::{BackendSpec, ExternalCredentials, IdpSpec, Scenario, SignerSpec};
use signer::{keygen, Credential};
use tokio::{task::JoinSet, time::Instant};

use crate::{
    error::RunError,
    events::{apply_event, EventFaults},
    in_process::InProcessIdp,
    mode::Mode,
};

/// Assertions signed to measure the signing cost a simulation charges (its median): about
/// 50 ms for RSA-2048 on the slowest backend.
const CALIBRATION_SAMPLES: u32 = 31;

/// The base URL the in-process mock's URLs (issuer, token endpoint) are made from: a name
/// that resolves nowhere, so that nothing of a simulation can reach the network.
const IN_PROCESS_BASE_URL: &str = "http://simulated.tokenbench.invalid";

/// The client id the embedded identity provider registers for the gateway.
const EMBEDDED_CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

/// Where the gateway gets tokens and sends requests: the embedded mock servers, or real ones.
pub(crate) enum Target {
    Embedded {
        mock: EmbeddedMock,
        auth: ClientAuth,
    },
    External {
        token_config: TokenClientConfig,
        auth: ClientAuth,
        backend_url: String,
    },
}

/// The embedded mock: a loopback server, or in-process on a virtual clock.
pub(crate) enum EmbeddedMock {
    Server(MockServer),
    InProcess {
        mock: Arc<Mock>,
        virtual_time: VirtualTime,
    },
}

impl EmbeddedMock {
    fn mock(&self) -> &Arc<Mock> {
        match self {
            EmbeddedMock::Server(server) => server.mock(),
            EmbeddedMock::InProcess { mock, .. } => mock,
        }
    }
}

impl Target {
    pub(crate) async fn start(scenario: &Scenario, mode: Mode) -> Result<Self, RunError> {
        if mode == Mode::Simulated {
            check_simulable(scenario)?;
        }
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
                let mut config = MockConfig {
                    seed: Some(scenario.seed),
                    clients: vec![registration],
                    token_lifetime: idp.token_lifetime,
                    token_lifetime_max: idp.token_lifetime_max,
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
                let mock = match mode {
                    Mode::RealTime => {
                        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                        EmbeddedMock::Server(MockServer::start(config, loopback).await?)
                    }
                    Mode::Simulated => {
                        let signing_cost = match (&scenario.signer, &auth) {
                            (
                                SignerSpec::Assertion {
                                    signing_cost: Some(cost),
                                    ..
                                },
                                _,
                            ) => *cost,
                            (_, ClientAuth::Certificate(credential)) => {
                                let credential = credential.clone();
                                tokio::task::spawn_blocking(move || {
                                    signer::bench::assertion_cost(&credential, CALIBRATION_SAMPLES)
                                })
                                .await
                                .map_err(|e| RunError::Setup(format!("calibration task: {e}")))??
                            }
                            (_, ClientAuth::Secret(_)) => Duration::ZERO,
                        };
                        let (origin, epoch) = (Instant::now(), SystemTime::now());
                        let epoch_ms = epoch
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                        config.clock = Arc::new(RuntimeClock::new(origin, epoch_ms));
                        // The provider's RSA key takes up to a second to generate.
                        let mock = tokio::task::spawn_blocking(move || {
                            Mock::new(&config, IN_PROCESS_BASE_URL)
                        })
                        .await
                        .map_err(|e| RunError::Setup(format!("mock setup task: {e}")))??;
                        EmbeddedMock::InProcess {
                            mock: Arc::new(mock),
                            virtual_time: VirtualTime {
                                origin,
                                epoch,
                                signing_cost,
                            },
                        }
                    }
                };
                Ok(Target::Embedded { mock, auth })
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

    pub(crate) fn mock(&self) -> Option<&Arc<Mock>> {
        match self {
            Target::Embedded { mock, .. } => Some(mock.mock()),
            Target::External { .. } => None,
        }
    }

    /// The in-process mock and its virtual clock, when the run is simulated.
    pub(crate) fn in_process(&self) -> Option<(&Arc<Mock>, VirtualTime)> {
        match self {
            Target::Embedded {
                mock: EmbeddedMock::InProcess { mock, virtual_time },
                ..
            } => Some((mock, *virtual_time)),
            _ => None,
        }
    }

    /// The virtual time charged per signature, in a simulation with a certificate.
    pub(crate) fn charged_signing_cost(&self) -> Option<Duration> {
        match (self.in_process(), self.auth()) {
            (Some((_, virtual_time)), ClientAuth::Certificate(_)) => {
                Some(virtual_time.signing_cost)
            }
            _ => None,
        }
    }

    /// The token requests' transport when it is not a new hyper client.
    pub(crate) fn token_transport(&self) -> Option<Arc<dyn Transport>> {
        self.in_process()
            .map(|(mock, _)| Arc::new(InProcessIdp(Arc::clone(mock))) as Arc<dyn Transport>)
    }

    pub(crate) fn token_config(&self, scenario: &Scenario) -> TokenClientConfig {
        let mut config = match self {
            Target::Embedded { mock, .. } => {
                let urls = mock.mock().urls();
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
            Target::Embedded { mock, .. } => (mock.mock().urls().backend_url.clone(), true),
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
        if let Target::Embedded {
            mock: EmbeddedMock::Server(server),
            ..
        } = self
        {
            server.shutdown().await;
        }
    }
}

/// A simulation runs the embedded identity provider and backend in-process; real ones
/// cannot follow a virtual clock.
fn check_simulable(scenario: &Scenario) -> Result<(), RunError> {
    if let IdpSpec::External(idp) = &scenario.idp {
        return Err(RunError::NotSimulable(format!(
            "[idp] token_url = {:?} is a real identity provider; a simulation runs the \
             embedded one (remove token_url and its credentials)",
            idp.token_url
        )));
    }
    if let BackendSpec::External { url } = &scenario.backend {
        return Err(RunError::NotSimulable(format!(
            "[backend] url = {url:?} is a real backend; a simulation runs the embedded one \
             (remove url)"
        )));
    }
    Ok(())
}
