//! Why a run could not start or finish.

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
    Metrics(#[from] metrics::MetricsError),
    /// The scenario's traffic cannot be scheduled.
    #[error("traffic: {0}")]
    Traffic(#[from] scenario::TrafficError),
    /// A compared value that does not apply to the scenario.
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    /// The reports could not be written.
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// The scenario needs something a simulation cannot do (a real identity provider or
    /// backend).
    #[error("cannot simulate this scenario: {0}")]
    NotSimulable(String),
    /// Anything else at start-up.
    #[error("run setup: {0}")]
    Setup(String),
    /// The embedded backend cannot get the external identity provider's signing keys.
    #[error("[backend] issuer {issuer:?}: cannot get the provider's signing keys: {reason}")]
    ProviderKeys {
        /// The issuer.
        issuer: String,
        /// What failed (discovery or the JWKS, with its URL).
        reason: String,
    },
    /// The backend URL is not usable.
    #[error("backend URL {url:?}: {reason}")]
    BackendUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}
