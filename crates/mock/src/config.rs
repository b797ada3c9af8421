//! What the mock servers are started with.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use signer::{Algorithm, Certificate};

use crate::{
    clock::{Clock, SystemClock},
    faults::{Latency, TokenFaults},
};

/// Token lifetime when none is set: 3599 s, as Entra issues.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
/// Clock skew tolerated on assertion and token times when none is set: 5 minutes, as Entra.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// The resource (`aud` of access tokens) the default configuration registers.
pub const DEFAULT_RESOURCE: &str = "api://tokenbench-backend";
/// The app role the default backend requires.
pub const DEFAULT_ROLE: &str = "Backend.Access";
/// The tenant the default configuration serves.
pub const DEFAULT_TENANT: &str = "tokenbench";
/// Longest token lifetime accepted: one day (Entra issues at most about 24 h).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// An impossible setting; the message names it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `tenants` is empty.
    #[error("tenants: at least one tenant is required")]
    NoTenant,
    /// `token_lifetime` is below 1 s or above [`MAX_TOKEN_LIFETIME`].
    #[error("token_lifetime must be within 1s and 1 day (86400s), not {lifetime:?}")]
    TokenLifetime {
        /// The lifetime given.
        lifetime: Duration,
    },
    /// A client has neither a certificate nor a secret.
    #[error("clients: client {client_id} has neither a certificate nor a secret")]
    ClientWithoutCredentials {
        /// The client.
        client_id: String,
    },
    /// A client id appears twice.
    #[error("clients: client {client_id} is registered twice")]
    DuplicateClient {
        /// The client.
        client_id: String,
    },
    /// `backend.tenant` is not one of `tenants`.
    #[error("backend.tenant {tenant} is not one of the tenants served")]
    BackendTenant {
        /// The tenant given.
        tenant: String,
    },
    /// `backend.audience` is not one of `resources`.
    #[error("backend.audience {audience} is not one of the resources")]
    BackendAudience {
        /// The audience given.
        audience: String,
    },
    /// A latency parameter is negative, infinite or NaN.
    #[error("latency {field} must be a finite number ≥ 0, not {value}")]
    LatencyValue {
        /// The parameter (`ms`, `min_ms`, `max_ms`, `median_ms`, `p99_ms`).
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// A uniform latency whose bounds are reversed.
    #[error("latency min_ms {min_ms} is above max_ms {max_ms}")]
    LatencyBounds {
        /// Lower bound.
        min_ms: f64,
        /// Upper bound.
        max_ms: f64,
    },
    /// A log-normal latency without `0 < median_ms ≤ p99_ms`.
    #[error("log-normal latency needs 0 < median_ms ≤ p99_ms, not {median_ms} and {p99_ms}")]
    LogNormal {
        /// Median.
        median_ms: f64,
        /// 99th percentile.
        p99_ms: f64,
    },
    /// `error_rate` outside 0.0 to 1.0.
    #[error("error_rate must be within 0.0 and 1.0, not {0}")]
    ErrorRate(f64),
    /// `throttle_rps` not a finite number above 0.
    #[error("throttle_rps must be a finite number above 0, not {0}")]
    ThrottleRps(f64),
    /// `throttle_burst` not a finite number of at least 1 (a bucket that never holds a
    /// whole token would refuse every request).
    #[error("throttle_burst must be a finite number ≥ 1, not {0}")]
    ThrottleBurst(f64),
}

/// For callers collecting messages as strings (`problems.push(err)`).
impl From<ConfigError> for String {
    fn from(error: ConfigError) -> String {
        error.to_string()
    }
}

/// A registered application (client) of the identity provider.
#[derive(Clone)]
pub struct ClientRegistration {
    /// The client (application) id.
    pub client_id: String,
    /// Certificates whose keys may sign its assertions (several during rotation, as Entra allows).
    pub certificates: Vec<Certificate>,
    /// A client secret, if it may authenticate with one.
    pub secret: Option<String>,
    /// Assertion algorithms accepted from it. PS256 and RS256 always are; ES256 and EdDSA only
    /// when listed here.
    pub extra_algorithms: Vec<Algorithm>,
    /// App roles granted to it, per resource identifier.
    pub roles: HashMap<String, Vec<String>>,
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("certificates", &self.certificates)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("extra_algorithms", &self.extra_algorithms)
            .field("roles", &self.roles)
            .finish()
    }
}

impl ClientRegistration {
    /// A client authenticating with `certificates`, granted [`DEFAULT_ROLE`] on
    /// [`DEFAULT_RESOURCE`]; EC and Ed25519 certificates enable ES256 and EdDSA.
    pub fn with_certificates(client_id: impl Into<String>, certificates: Vec<Certificate>) -> Self {
        let mut extra_algorithms = Vec::new();
        for cert in &certificates {
            for &alg in cert.public_key().kind().algorithms() {
                if !alg.is_rsa() && !extra_algorithms.contains(&alg) {
                    extra_algorithms.push(alg);
                }
            }
        }
        ClientRegistration {
            client_id: client_id.into(),
            certificates,
            secret: None,
            extra_algorithms,
            roles: HashMap::from([(DEFAULT_RESOURCE.to_owned(), vec![DEFAULT_ROLE.to_owned()])]),
        }
    }

    /// Also lets the client authenticate with `secret`.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}

/// What the protected backend checks (as an APIM validate-jwt policy would).
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Required `aud`: the resource identifier.
    pub audience: String,
    /// The tenant whose issuer is required.
    pub tenant: String,
    /// The app role a token must carry.
    pub required_role: String,
    /// Added latency before each answer.
    pub latency: Latency,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            audience: DEFAULT_RESOURCE.to_owned(),
            tenant: DEFAULT_TENANT.to_owned(),
            required_role: DEFAULT_ROLE.to_owned(),
            latency: Latency::None,
        }
    }
}

/// Everything the mock identity provider and backend start with.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Tenants served (the `{tenant}` path segment, and the `tid` of their tokens).
    pub tenants: Vec<String>,
    /// Registered clients.
    pub clients: Vec<ClientRegistration>,
    /// Resource identifiers clients may request `<resource>/.default` for.
    pub resources: Vec<String>,
    /// `expires_in` of issued tokens.
    pub token_lifetime: Duration,
    /// Tolerated clock skew on assertion and token times.
    pub clock_skew: Duration,
    /// Token endpoint faults at start.
    pub token_faults: TokenFaults,
    /// The protected backend.
    pub backend: BackendConfig,
    /// Time source for claims and checks.
    pub clock: Arc<dyn Clock>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            tenants: vec![DEFAULT_TENANT.to_owned()],
            clients: Vec::new(),
            resources: vec![DEFAULT_RESOURCE.to_owned()],
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            clock_skew: DEFAULT_CLOCK_SKEW,
            token_faults: TokenFaults::default(),
            backend: BackendConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MockConfig {
    /// Checks the configuration; the error names the bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tenants.is_empty() {
            return Err(ConfigError::NoTenant);
        }
        if self.token_lifetime < Duration::from_secs(1) || self.token_lifetime > MAX_TOKEN_LIFETIME
        {
            return Err(ConfigError::TokenLifetime {
                lifetime: self.token_lifetime,
            });
        }
        self.token_faults.validate()?;
        self.backend.latency.validate()?;
        let mut seen = std::collections::HashSet::new();
        for client in &self.clients {
            if client.certificates.is_empty() && client.secret.is_none() {
                return Err(ConfigError::ClientWithoutCredentials {
                    client_id: client.client_id.clone(),
                });
            }
            if !seen.insert(client.client_id.as_str()) {
                return Err(ConfigError::DuplicateClient {
                    client_id: client.client_id.clone(),
                });
            }
        }
        if !self.tenants.contains(&self.backend.tenant) {
            return Err(ConfigError::BackendTenant {
                tenant: self.backend.tenant.clone(),
            });
        }
        if !self.resources.contains(&self.backend.audience) {
            return Err(ConfigError::BackendAudience {
                audience: self.backend.audience.clone(),
            });
        }
        Ok(())
    }
}
