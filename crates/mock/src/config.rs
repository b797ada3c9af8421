//! What the mock servers are started with.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use signer::{Algorithm, Certificate};

use crate::{
    clock::{Clock, SystemClock},
    error::ConfigError,
    faults::{Latency, TokenFaults},
    jwks::JwksSource,
};

/// Token lifetime when none is set: 3599 s, as Entra issues.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
/// How long the loopback server waits for a request's body when none is set: as long as it
/// waits for headers.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Clock skew tolerated on assertion and token times when none is set: 5 minutes, as Entra.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// The resource (`aud` of access tokens) the default configuration registers.
pub const DEFAULT_RESOURCE: &str = "api://tokenbench-backend";
/// The app role the default backend requires.
pub const DEFAULT_ROLE: &str = "Backend.Access";
/// The delegated permission (`scp`) clients are granted on [`DEFAULT_RESOURCE`] by default.
pub const DEFAULT_DELEGATED_SCOPE: &str = "Data.Read";
/// The redirect URI clients register by default.
pub const DEFAULT_REDIRECT_URI: &str = "https://localhost/callback";
/// The tenant the default configuration serves.
pub const DEFAULT_TENANT: &str = "tokenbench";
/// Longest token lifetime accepted: one day (Entra issues at most about 24 h).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

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
    /// Delegated permissions consented for it, per resource identifier: the `scp` it may
    /// obtain for users (`<resource>/.default` asks for all of them).
    pub delegated_scopes: HashMap<String, Vec<String>>,
    /// Redirect URIs authorization codes may be issued to.
    pub redirect_uris: Vec<String>,
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("certificates", &self.certificates)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("extra_algorithms", &self.extra_algorithms)
            .field("roles", &self.roles)
            .field("delegated_scopes", &self.delegated_scopes)
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

impl ClientRegistration {
    /// A client authenticating with `certificates`, granted [`DEFAULT_ROLE`] and
    /// [`DEFAULT_DELEGATED_SCOPE`] on [`DEFAULT_RESOURCE`], with [`DEFAULT_REDIRECT_URI`]
    /// registered; EC and Ed25519 certificates enable ES256 and EdDSA.
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
            delegated_scopes: HashMap::from([(
                DEFAULT_RESOURCE.to_owned(),
                vec![DEFAULT_DELEGATED_SCOPE.to_owned()],
            )]),
            redirect_uris: vec![DEFAULT_REDIRECT_URI.to_owned()],
        }
    }

    /// Also lets the client authenticate with `secret`.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}

/// Whose tokens the protected backend accepts.
#[derive(Clone, Debug, Default)]
pub enum BackendTrust {
    /// The mock's own identity provider (the issuer of [`BackendConfig::tenant`]), whose
    /// keys it reads in-process; revocation applies to its tokens.
    #[default]
    Embedded,
    /// Another OpenID provider: tokens whose `iss` is `issuer`, verified with the keys of
    /// the JWKS `keys` fetches (RSA, EC P-256 or Ed25519, each for the algorithms its JWK
    /// allows), fetched again when a token names an unknown `kid`.
    OpenId {
        /// The required `iss`.
        issuer: String,
        /// Where its JWKS comes from.
        keys: std::sync::Arc<dyn JwksSource>,
    },
}

/// What the protected backend checks (as an APIM validate-jwt policy would).
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Whose tokens it accepts.
    pub trust: BackendTrust,
    /// Required `aud`: the resource identifier.
    pub audience: String,
    /// Further resource identifiers whose tokens it accepts too: one mock backend standing
    /// for several APIs, each with its own resource (and so its own tokens).
    pub other_audiences: Vec<String>,
    /// The tenant whose issuer is required (trusting the embedded provider).
    pub tenant: String,
    /// The app role a token must carry in its `roles` claim (403 without it); `None`: no
    /// role is required.
    pub required_role: Option<String>,
    /// The `azpacr` a token must carry (403 otherwise), as an APIM `validate-jwt` policy with
    /// a required claim: `"2"` admits only clients that authenticated with a certificate,
    /// `"1"` with a secret. `None`: any.
    pub required_azpacr: Option<String>,
    /// A delegated permission a token must carry in its space-separated `scp` claim (403
    /// otherwise): tokens obtained for a user. `None`: none is required.
    pub required_scope: Option<String>,
    /// Added latency before each answer.
    pub latency: Latency,
    /// Tolerated clock skew on a token's `exp` and `nbf`: 0 by default, as APIM's
    /// `validate-jwt` (`clock-skew` defaults to 0), so a token is refused from its `exp` on.
    /// (The identity provider's skew on assertions is [`MockConfig::clock_skew`].)
    pub clock_skew: Duration,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            trust: BackendTrust::Embedded,
            audience: DEFAULT_RESOURCE.to_owned(),
            other_audiences: Vec::new(),
            tenant: DEFAULT_TENANT.to_owned(),
            required_role: Some(DEFAULT_ROLE.to_owned()),
            required_azpacr: None,
            required_scope: None,
            latency: Latency::None,
            clock_skew: Duration::ZERO,
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
    /// With it, each token's `expires_in` is drawn uniformly in whole seconds from
    /// `token_lifetime` to this, as Entra draws its access tokens' lifetimes from 60 to 90
    /// minutes so that clients do not refresh in step.
    pub token_lifetime_max: Option<Duration>,
    /// Tolerated clock skew on assertion times at the token endpoint (Entra: 5 minutes).
    pub clock_skew: Duration,
    /// Token endpoint faults at start.
    pub token_faults: TokenFaults,
    /// The protected backend.
    pub backend: BackendConfig,
    /// Time source for claims and checks.
    pub clock: Arc<dyn Clock>,
    /// Seed of the injected faults' random draws (latencies, error rate): the same requests
    /// in the same order then draw the same faults. `None`: the operating system's entropy.
    pub seed: Option<u64>,
    /// How long the loopback server waits for a request's body once its headers are in: a
    /// client slower than that (a trickled body, a `Content-Length` never met, an
    /// `Expect: 100-continue` without a body) gets 408 and its connection closed. Valid
    /// clients send their few hundred bytes at once.
    pub body_read_timeout: Duration,
    /// Most connections the loopback server holds open at once; past it, new connections wait
    /// in the listen backlog until one closes. `None`: half the process's file-descriptor
    /// limit (the other half for the clients of a run in the same process), at most 65,536.
    pub max_connections: Option<usize>,
    /// Serve HTTPS (TLS 1.3 and 1.2) on the loopback server, with a CA and a server
    /// certificate for the loopback names generated at start
    /// ([`MockServer::ca_pem`](crate::server::MockServer::ca_pem)). In-process use ignores it.
    pub tls: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            tenants: vec![DEFAULT_TENANT.to_owned()],
            clients: Vec::new(),
            resources: vec![DEFAULT_RESOURCE.to_owned()],
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            token_lifetime_max: None,
            clock_skew: DEFAULT_CLOCK_SKEW,
            token_faults: TokenFaults::default(),
            backend: BackendConfig::default(),
            clock: Arc::new(SystemClock),
            seed: None,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: None,
            tls: false,
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
        if let Some(max) = self.token_lifetime_max {
            if max < self.token_lifetime || max > MAX_TOKEN_LIFETIME {
                return Err(ConfigError::TokenLifetimeMax {
                    min: self.token_lifetime,
                    max,
                });
            }
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
        if let BackendTrust::OpenId { .. } = self.backend.trust {
            // Its issuer and audiences are another provider's, not this one's.
            return Ok(());
        }
        if !self.tenants.contains(&self.backend.tenant) {
            return Err(ConfigError::BackendTenant {
                tenant: self.backend.tenant.clone(),
            });
        }
        for audience in std::iter::once(&self.backend.audience).chain(&self.backend.other_audiences)
        {
            if !self.resources.contains(audience) {
                return Err(ConfigError::BackendAudience {
                    audience: audience.clone(),
                });
            }
        }
        Ok(())
    }
}
