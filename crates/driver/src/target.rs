//! Where the gateway gets tokens and sends requests: the embedded mock servers, started for
//! the run, or real ones.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use client::{ClientAuth, TlsTrust, TokenClientConfig, Transport, VirtualTime};
use metrics::Metrics;
use mock::{clock::RuntimeClock, server::MockServer, BackendTrust, Mock, MockConfig, TokenFaults};
use rustls::ClientConfig;
use scenario::{
    Api, BackendSpec, ExternalCredentials, Flow, IdpSpec, Scenario, SignerSpec, DEFAULT_API,
};
use signer::Credential;
use tokio::{task::JoinSet, time::Instant};

use crate::{
    backend_client::BackendClient,
    credentials::{self, GatewayCredentials, EMBEDDED_CLIENT_ID},
    error::RunError,
    events::{apply_event, EventFaults},
    in_process::InProcessIdp,
    mode::Mode,
    provider_keys::RemoteJwks,
};

/// The base URL the in-process mock's URLs (issuer, token endpoint) are made from: a name
/// that resolves nowhere, so that nothing of a simulation can reach the network.
const IN_PROCESS_BASE_URL: &str = "http://simulated.tokenbench.invalid";

/// Where the gateway gets tokens and sends requests, and what it trusts to reach them.
pub(crate) struct Target {
    kind: TargetKind,
    /// The TLS client settings of every https connection of the run: Mozilla's roots, the
    /// operating system's, the embedded servers' CA and the scenario's `ca_file`s.
    tls: Arc<ClientConfig>,
}

/// The embedded mock servers, or real ones.
pub(crate) enum TargetKind {
    Embedded {
        mock: EmbeddedMock,
        auth: ClientAuth,
        /// The backend and algorithm the report names.
        label: (String, String),
        /// In a simulation with a certificate: the virtual time charged per signature.
        signing_cost: Option<Duration>,
        /// A real backend (`[backend] url`) in front of which the embedded identity provider
        /// runs; `None`: the embedded backend.
        backend_url: Option<String>,
    },
    External {
        token_config: TokenClientConfig,
        auth: ClientAuth,
        backend: BackendBehindExternalIdp,
    },
}

/// The backend of a run against an external identity provider.
pub(crate) enum BackendBehindExternalIdp {
    /// A real one at this base URL (`[backend] url`).
    Real(String),
    /// The embedded backend, validating the provider's tokens (`[backend] issuer`).
    Embedded(MockServer),
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
        if mode.is_simulated() {
            check_simulable(scenario)?;
        }
        let mut trust = TlsTrust::new();
        if let BackendSpec::External {
            ca_file: Some(file),
            ..
        } = &scenario.backend
        {
            trust.add_pem_file(file)?;
        }
        let kind = TargetKind::start(scenario, mode, &mut trust).await?;
        let target = Target {
            kind,
            tls: trust.client_config()?,
        };
        if !mode.is_simulated() {
            let (base, embedded) = target.backend_base();
            BackendClient::new(&base, embedded, 1, &target.tls)?
                .check_reachable(&base)
                .await?;
        }
        Ok(target)
    }

    /// The TLS client settings of the run's https connections.
    pub(crate) fn tls(&self) -> &Arc<ClientConfig> {
        &self.tls
    }

    pub(crate) fn mock(&self) -> Option<&Arc<Mock>> {
        self.kind.mock()
    }
}

impl TargetKind {
    /// Starts the embedded servers (and trusts their CA) or describes the real ones.
    async fn start(
        scenario: &Scenario,
        mode: Mode,
        trust: &mut TlsTrust,
    ) -> Result<Self, RunError> {
        match &scenario.idp {
            IdpSpec::Embedded(idp) => {
                let GatewayCredentials {
                    auth,
                    mut registration,
                    label,
                    signing_cost,
                } = credentials::generate(scenario, mode).await?;
                let (backend_latency, backend_skew, require_azpacr) = match &scenario.backend {
                    BackendSpec::Embedded {
                        latency,
                        clock_skew,
                        require_azpacr,
                        ..
                    } => (*latency, *clock_skew, require_azpacr.clone()),
                    BackendSpec::External { .. } => (mock::Latency::None, Duration::ZERO, None),
                };
                // One resource per API; the gateway's client may call each, and the one
                // backend accepts them all.
                let resources: Vec<String> = scenario.apis.iter().map(api_resource).collect();
                for resource in &resources {
                    registration
                        .roles
                        .insert(resource.clone(), vec![mock::DEFAULT_ROLE.to_owned()]);
                    registration.delegated_scopes.insert(
                        resource.clone(),
                        vec![mock::DEFAULT_DELEGATED_SCOPE.to_owned()],
                    );
                }
                // On behalf of users, tokens carry the users' delegated permission, not the
                // gateway's app role: the backend checks that instead, as a validate-jwt
                // policy of a delegated API does.
                let (required_role, required_scope) = match scenario.gateway.flow {
                    Flow::ClientCredentials => (Some(mock::DEFAULT_ROLE.to_owned()), None),
                    Flow::OnBehalfOf => (None, Some(mock::DEFAULT_DELEGATED_SCOPE.to_owned())),
                };
                let mut config = MockConfig {
                    seed: Some(scenario.seed),
                    clients: vec![registration],
                    resources: resources.clone(),
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
                        clock_skew: backend_skew,
                        required_azpacr: require_azpacr,
                        required_role,
                        required_scope,
                        audience: resources[0].clone(),
                        other_audiences: resources[1..].to_vec(),
                        ..mock::BackendConfig::default()
                    },
                    tls: scenario.tls,
                    ..MockConfig::default()
                };
                let mock = match mode {
                    Mode::RealTime => {
                        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                        let server = MockServer::start(config, loopback).await?;
                        if let Some(ca) = server.ca_pem() {
                            trust.add_pem("the embedded servers' CA", ca.as_bytes())?;
                        }
                        EmbeddedMock::Server(server)
                    }
                    Mode::Simulated { .. } => {
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
                                signing_cost: signing_cost.unwrap_or_default(),
                            },
                        }
                    }
                };
                let backend_url = match &scenario.backend {
                    BackendSpec::External { url, .. } => Some(url.clone()),
                    BackendSpec::Embedded { .. } => None,
                };
                Ok(TargetKind::Embedded {
                    mock,
                    auth,
                    label,
                    signing_cost,
                    backend_url,
                })
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
                if let Some(file) = &idp.ca_file {
                    trust.add_pem_file(file)?;
                }
                let backend = match &scenario.backend {
                    BackendSpec::External { url, .. } => {
                        BackendBehindExternalIdp::Real(url.clone())
                    }
                    BackendSpec::Embedded {
                        latency,
                        clock_skew,
                        trust: Some(provider),
                        require_azpacr,
                    } => {
                        let keys = RemoteJwks::locate(provider, trust.client_config()?).await?;
                        let config = MockConfig {
                            seed: Some(scenario.seed),
                            backend: mock::BackendConfig {
                                trust: BackendTrust::OpenId {
                                    issuer: provider.issuer.clone(),
                                    keys: Arc::new(keys),
                                },
                                audience: provider.audience.clone(),
                                required_role: provider.role.clone(),
                                required_azpacr: require_azpacr.clone(),
                                latency: *latency,
                                clock_skew: *clock_skew,
                                ..mock::BackendConfig::default()
                            },
                            tls: scenario.tls,
                            ..MockConfig::default()
                        };
                        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                        let server = MockServer::start(config, loopback).await?;
                        if let Some(ca) = server.ca_pem() {
                            trust.add_pem("the embedded backend's CA", ca.as_bytes())?;
                        }
                        // Fetched before the run, so that an unreachable JWKS fails here
                        // rather than as every request refused.
                        let backend_keys = &server.mock().backend;
                        if let Err(e) = backend_keys.reload_keys().await {
                            server.shutdown().await;
                            return Err(RunError::ProviderKeys {
                                issuer: provider.issuer.clone(),
                                reason: e.to_string(),
                            });
                        }
                        BackendBehindExternalIdp::Embedded(server)
                    }
                    BackendSpec::Embedded { trust: None, .. } => {
                        return Err(RunError::BackendUrl {
                            url: String::new(),
                            reason: "an external identity provider needs an external backend \
                                     or [backend] issuer"
                                .to_owned(),
                        })
                    }
                };
                Ok(TargetKind::External {
                    token_config,
                    auth,
                    backend,
                })
            }
        }
    }

    fn mock(&self) -> Option<&Arc<Mock>> {
        match self {
            TargetKind::Embedded { mock, .. } => Some(mock.mock()),
            TargetKind::External { .. } => None,
        }
    }
}

impl Target {
    /// The in-process mock and its virtual clock, when the run is simulated.
    pub(crate) fn in_process(&self) -> Option<(&Arc<Mock>, VirtualTime)> {
        match &self.kind {
            TargetKind::Embedded {
                mock: EmbeddedMock::InProcess { mock, virtual_time },
                ..
            } => Some((mock, *virtual_time)),
            _ => None,
        }
    }

    /// The virtual time charged per signature, in a simulation with a certificate.
    pub(crate) fn charged_signing_cost(&self) -> Option<Duration> {
        match &self.kind {
            TargetKind::Embedded { signing_cost, .. } => *signing_cost,
            TargetKind::External { .. } => None,
        }
    }

    /// The signer backend and algorithm a report names: the scenario's, or for a client
    /// secret `client-secret` and `none`.
    pub(crate) fn signer_label(&self) -> (String, String) {
        match &self.kind {
            TargetKind::Embedded { label, .. } => label.clone(),
            TargetKind::External { auth, .. } => match auth {
                ClientAuth::Certificate(credential) => (
                    credential.signing_key().backend().to_owned(),
                    credential.algorithm().as_str().to_owned(),
                ),
                ClientAuth::Secret(_) => ("client-secret".to_owned(), "none".to_owned()),
            },
        }
    }

    /// The token requests' transport when it is not a new hyper client.
    pub(crate) fn token_transport(&self) -> Option<Arc<dyn Transport>> {
        self.in_process()
            .map(|(mock, _)| Arc::new(InProcessIdp(Arc::clone(mock))) as Arc<dyn Transport>)
    }

    /// The token client settings for API `api` (an index of `scenario.apis`).
    pub(crate) fn token_config(&self, scenario: &Scenario, api: usize) -> TokenClientConfig {
        let mut config = match &self.kind {
            TargetKind::Embedded { mock, .. } => TokenClientConfig::new(
                mock.mock().urls().token_url.clone(),
                EMBEDDED_CLIENT_ID,
                format!("{}/.default", api_resource(&scenario.apis[api])),
            ),
            TargetKind::External { token_config, .. } => token_config.clone(),
        };
        config.policy = scenario.gateway.policy;
        config.cache_fraction = scenario.gateway.cache_fraction;
        config
    }

    pub(crate) fn auth(&self) -> &ClientAuth {
        match &self.kind {
            TargetKind::Embedded { auth, .. } | TargetKind::External { auth, .. } => auth,
        }
    }

    /// The backend's base URL, and whether it is the embedded one.
    pub(crate) fn backend_base(&self) -> (String, bool) {
        match &self.kind {
            TargetKind::Embedded {
                backend_url: None,
                mock,
                ..
            } => (mock.mock().urls().backend_url.clone(), true),
            TargetKind::External {
                backend: BackendBehindExternalIdp::Embedded(server),
                ..
            } => (server.urls().backend_url.clone(), true),
            TargetKind::Embedded {
                backend_url: Some(url),
                ..
            }
            | TargetKind::External {
                backend: BackendBehindExternalIdp::Real(url),
                ..
            } => (url.trim_end_matches('/').to_owned(), false),
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
        match self.kind {
            TargetKind::Embedded {
                mock: EmbeddedMock::Server(server),
                ..
            }
            | TargetKind::External {
                backend: BackendBehindExternalIdp::Embedded(server),
                ..
            } => server.shutdown().await,
            _ => {}
        }
    }
}

/// The embedded identity provider's resource for `api`: its default resource for the one
/// API of a scenario without `[[apis]]`, a resource under it for each named one.
fn api_resource(api: &Api) -> String {
    if api.name == DEFAULT_API {
        mock::DEFAULT_RESOURCE.to_owned()
    } else {
        format!("{}/{}", mock::DEFAULT_RESOURCE, api.name)
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
    if let BackendSpec::External { url, .. } = &scenario.backend {
        return Err(RunError::NotSimulable(format!(
            "[backend] url = {url:?} is a real backend; a simulation runs the embedded one \
             (remove url)"
        )));
    }
    if scenario.tls {
        return Err(RunError::NotSimulable(
            "tls = true: a simulation has no connections to encrypt (run it in real time, \
             or remove tls)"
                .to_owned(),
        ));
    }
    Ok(())
}
