//! The open-model load driver: a scenario's arrivals, on gateway instances that each ask their
//! token client and call the protected backend, against the embedded mock servers (or real
//! ones), measured into a [`Report`].
//!
//! Each arrival starts at its scheduled time whatever earlier requests are doing (open model);
//! its latency counts from that intended start, so a slow system cannot hide its queueing
//! (no coordinated omission). An arrival that finds its instance at the in-flight limit is
//! dropped and counted.

use std::{future::Future, sync::Arc, time::Duration};

use client::{ClientAuth, TokenCache, TokenClient, TokenClientConfig};
use http::StatusCode;
use mock::{server::MockServer, ClientRegistration, MockConfig, TokenFaults};
use signer::{keygen, Credential};
use tokio::{
    sync::{watch, Mutex as AsyncMutex, Semaphore},
    task::JoinSet,
    time::Instant,
};

use crate::{
    backend_client::BackendClient,
    metrics::{InstanceObserver, Metrics, MetricsError, RequestOutcome, RequestRecord},
    report::{Report, RunInfo},
    scenario::{
        BackendSpec, EventKind, ExternalCredentials, IdpSpec, Scenario, SignerSpec, Traffic,
    },
};

/// The client id the embedded identity provider registers for the gateway.
const EMBEDDED_CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
/// How long a request (its token and its backend call) may take before it counts as an
/// error. Checked once a second by the watchdog: a timer per request cost 5 % of the
/// driver's throughput.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Behind schedule the arrival loop does not wait; it yields after this many arrivals so
/// that a stop, the progress bar and the tasks it spawned get their turn.
const ARRIVALS_PER_YIELD: u32 = 64;
/// How long the driver waits for requests in flight after the last arrival's run time.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Key material for the gateway could not be made or loaded.
    #[error("signer: {0}")]
    Signer(#[from] signer::Error),
    /// The embedded mock servers could not start.
    #[error("embedded identity provider and backend: {0}")]
    Mock(#[from] mock::MockError),
    /// A token client could not be built.
    #[error("token client: {0}")]
    Client(#[from] client::Error),
    /// The metrics recorder could not be set up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The scenario's traffic cannot be scheduled.
    #[error("traffic: {0}")]
    Traffic(#[from] crate::scenario::TrafficError),
    /// Anything else at start-up.
    #[error("run setup: {0}")]
    Setup(String),
    /// The backend URL is not usable.
    #[error("backend URL {url:?}: {reason}")]
    BackendUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// What a caller sees while a run goes on.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// The scenario's duration.
    pub duration: Duration,
    /// Requests finished so far.
    pub finished: u64,
    /// Arrivals dropped so far.
    pub dropped: u64,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report (write it with [`Report::write_all`]).
    pub report: Report,
    /// Whether the run was stopped before its scenario's end.
    pub interrupted: bool,
}

/// Runs `scenario` until its end or until `stop` completes, then gives requests in flight up
/// to 10 s to finish (counting the rest as errors) and reports what was measured.
/// `on_progress` is called about four times a second.
pub async fn run(
    scenario: &Scenario,
    stop: impl Future<Output = ()> + Send,
    on_progress: impl Fn(Progress) + Send + Sync,
) -> Result<RunOutcome, RunError> {
    let instances = usize::try_from(scenario.gateway.instances)
        .unwrap_or(1)
        .max(1);
    crate::metrics::reset_peak_rss();
    let target = Target::start(scenario).await?;
    let schedule = scenario.arrivals()?;

    let start = Instant::now();
    let metrics = Arc::new(Metrics::new(instances, start)?);
    let gateways = Gateway::build_all(scenario, &target, &metrics, instances)?;
    let mut events = target.schedule_events(scenario, start, &metrics);

    let mut stop = std::pin::pin!(stop);
    let mut interrupted = false;
    let mut progress_tick = tokio::time::interval(Duration::from_millis(250));
    let report_progress = || {
        let counts = metrics.counts();
        on_progress(Progress {
            elapsed: start.elapsed(),
            duration: scenario.duration,
            finished: counts.sent,
            dropped: counts.dropped,
        })
    };
    // Ends requests past REQUEST_TIMEOUT, and every request still running at the drain
    // deadline: they record themselves as errors, so nothing sent disappears from the report.
    let (watchdog, watchdog_rx) = watch::channel(Watchdog::default());
    let watchdog_ticks = tokio::spawn({
        let (watchdog, metrics) = (watchdog.clone(), Arc::clone(&metrics));
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = metrics.elapsed();
                watchdog.send_modify(|state| state.now = now);
            }
        }
    });

    let mut next_instance = 0usize;
    let mut arrivals_behind = 0u32;
    'arrivals: for arrival in schedule {
        let due = start + arrival.at;
        if Instant::now() < due {
            arrivals_behind = 0;
            loop {
                tokio::select! {
                    biased;
                    () = &mut stop => {
                        interrupted = true;
                        break 'arrivals;
                    }
                    () = tokio::time::sleep_until(due) => break,
                    _ = progress_tick.tick() => report_progress(),
                }
            }
        } else {
            // Already due: no timer (registering one per arrival cost a tenth of the
            // driver's throughput).
            arrivals_behind += 1;
            if arrivals_behind % ARRIVALS_PER_YIELD == 0 {
                tokio::select! {
                    biased;
                    () = &mut stop => {
                        interrupted = true;
                        break 'arrivals;
                    }
                    _ = progress_tick.tick() => report_progress(),
                    () = tokio::task::yield_now() => {}
                }
            }
        }
        let instance = match arrival.instance {
            Some(hint) => usize::try_from(hint).unwrap_or(0) % instances,
            None => {
                let instance = next_instance;
                next_instance = (next_instance + 1) % instances;
                instance
            }
        };
        let gateway = &gateways[instance];
        let Ok(permit) = Arc::clone(&gateway.in_flight).try_acquire_owned() else {
            metrics.record_dropped(arrival.at);
            continue;
        };
        let (gateway, metrics, mut watchdog) = (
            Arc::clone(gateway),
            Arc::clone(&metrics),
            watchdog_rx.clone(),
        );
        tokio::spawn(async move {
            let sent_at = metrics.elapsed();
            let request = gateway.request(
                instance,
                arrival.at,
                sent_at,
                arrival.path.as_deref(),
                &metrics,
            );
            let record = tokio::select! {
                record = request => record,
                _ = watchdog.wait_for(|state| state.ends(sent_at)) => RequestRecord {
                    instance,
                    intended_start: arrival.at,
                    sent_at,
                    finished_at: metrics.elapsed(),
                    outcome: RequestOutcome::BackendError,
                    token_obtained_at: None,
                },
            };
            metrics.record_request(&record);
            drop(permit);
        });
    }

    // The schedule may end before the run time (a replay, sparse traffic): the run lasts its
    // duration unless stopped.
    if !interrupted {
        let end = start + scenario.duration;
        loop {
            tokio::select! {
                biased;
                () = &mut stop => {
                    interrupted = true;
                    break;
                }
                () = tokio::time::sleep_until(end) => break,
                _ = progress_tick.tick() => report_progress(),
            }
        }
    }
    events.abort_all();
    let measured_until = metrics.elapsed();
    // Requests in flight get up to DRAIN_TIMEOUT (or until a stop) to finish; the rest are
    // abandoned and counted as errors.
    let drain = async {
        for gateway in &gateways {
            let _ = gateway.in_flight.acquire_many(gateway.max_in_flight).await;
        }
    };
    let drained = tokio::select! {
        () = drain => true,
        () = tokio::time::sleep(DRAIN_TIMEOUT) => false,
        () = &mut stop, if !interrupted => false,
    };
    if !drained {
        watchdog.send_modify(|state| state.abandon = true);
        let all_recorded = async {
            for gateway in &gateways {
                let _ = gateway.in_flight.acquire_many(gateway.max_in_flight).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), all_recorded).await;
    }
    watchdog_ticks.abort();
    report_progress();

    if let Some(mock) = target.mock() {
        metrics.set_idp_peak_concurrent(mock.stats.snapshot().token_requests_peak_in_flight);
    }
    let snapshot = metrics.snapshot(measured_until.max(Duration::from_millis(1)));
    let info = RunInfo {
        interrupted,
        ..run_info(scenario, target.auth())
    };
    let report = Report::new(info, snapshot);
    target.shutdown().await;
    Ok(RunOutcome {
        report,
        interrupted,
    })
}

/// What the watchdog tells running requests.
#[derive(Clone, Copy, Default)]
struct Watchdog {
    /// The run's clock, advanced once a second.
    now: Duration,
    /// Set at the drain deadline: every request still running ends.
    abandon: bool,
}

impl Watchdog {
    /// Whether a request sent at `sent_at` must end now.
    fn ends(&self, sent_at: Duration) -> bool {
        self.abandon || self.now >= sent_at + REQUEST_TIMEOUT
    }
}

fn run_info(scenario: &Scenario, auth: &ClientAuth) -> RunInfo {
    let (backend, alg) = match auth {
        ClientAuth::Certificate(credential) => (
            credential.signing_key().backend().to_owned(),
            credential.algorithm().as_str().to_owned(),
        ),
        ClientAuth::Secret(_) => ("client-secret".to_owned(), "none".to_owned()),
    };
    RunInfo {
        scenario: scenario.name.clone(),
        policy: scenario.gateway.policy.as_str().to_owned(),
        backend,
        alg,
        rate: match &scenario.traffic {
            Traffic::Replay { .. } => None,
            traffic => Some(traffic.mean_rate(scenario.duration)),
        },
        seed: Some(scenario.seed),
        interrupted: false,
    }
}

/// Where the gateway gets tokens and sends requests: the embedded mock servers, or real ones.
enum Target {
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
    async fn start(scenario: &Scenario) -> Result<Self, RunError> {
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

    fn mock(&self) -> Option<&Arc<mock::Mock>> {
        match self {
            Target::Embedded { server, .. } => Some(server.mock()),
            Target::External { .. } => None,
        }
    }

    fn token_config(&self, scenario: &Scenario) -> TokenClientConfig {
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

    fn auth(&self) -> &ClientAuth {
        match self {
            Target::Embedded { auth, .. } | Target::External { auth, .. } => auth,
        }
    }

    /// The backend's base URL, and whether it is the embedded one.
    fn backend_base(&self) -> (String, bool) {
        match self {
            Target::Embedded { server, .. } => (server.urls().backend_url.clone(), true),
            Target::External { backend_url, .. } => {
                (backend_url.trim_end_matches('/').to_owned(), false)
            }
        }
    }

    /// Starts the tasks that apply the scenario's events at their times.
    fn schedule_events(
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

    async fn shutdown(self) {
        if let Target::Embedded { server, .. } = self {
            server.shutdown().await;
        }
    }
}

/// The token-endpoint faults the events change, over the scenario's own: the outage end and
/// the throttle in force. Every change recomputes the whole document, so an outage is never
/// restarted by a throttle and a throttle's end does not undo an outage.
struct EventFaults {
    base: mock::TokenFaults,
    state: AsyncMutex<(Option<Instant>, Option<f64>)>,
}

impl EventFaults {
    fn new(mock: &mock::Mock) -> Self {
        EventFaults {
            base: mock.faults().token,
            state: AsyncMutex::new((None, None)),
        }
    }

    async fn update(
        &self,
        mock: &mock::Mock,
        change: impl FnOnce(&mut (Option<Instant>, Option<f64>)),
    ) {
        let mut state = self.state.lock().await;
        change(&mut state);
        let (outage_until, throttle) = *state;
        let mut document = mock.faults();
        document.token = mock::TokenFaults {
            outage_ms: outage_until
                .map(|until| until.saturating_duration_since(Instant::now()))
                .filter(|left| !left.is_zero())
                .map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
            throttle_rps: throttle.or(self.base.throttle_rps),
            ..self.base.clone()
        };
        // Validated when the scenario was loaded; the mock checks again and keeps the old
        // faults on error.
        let _ = mock.set_faults(document);
    }
}

async fn apply_event(mock: &mock::Mock, kind: &EventKind, metrics: &Metrics, faults: &EventFaults) {
    match kind {
        EventKind::RevokeTokens => {
            mock.backend.revoke_all();
            // From now on tokens are rejected: the recovery clock starts here.
            metrics.revocation_event(metrics.elapsed());
        }
        EventKind::RotateIdpKeys => {
            if mock.idp.rotate_keys().await.is_ok() {
                mock.backend.reload_keys();
                metrics.revocation_event(metrics.elapsed());
            }
        }
        EventKind::IdpOutage { duration } => {
            let until = Instant::now() + *duration;
            faults.update(mock, |state| state.0 = Some(until)).await;
            tokio::time::sleep_until(until).await;
            faults.update(mock, |state| state.0 = None).await;
        }
        EventKind::IdpThrottle { rate, duration } => {
            faults.update(mock, |state| state.1 = Some(*rate)).await;
            tokio::time::sleep(*duration).await;
            faults.update(mock, |state| state.1 = None).await;
        }
    }
}

/// One gateway instance: its token client, its connection pool to the backend, its in-flight
/// limit.
struct Gateway {
    client: TokenClient,
    backend: BackendClient,
    in_flight: Arc<Semaphore>,
    max_in_flight: u32,
    retry_on_401: bool,
}

impl Gateway {
    fn build_all(
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
    async fn request(
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
