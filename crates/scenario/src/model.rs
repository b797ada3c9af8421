//! The scenario model: what a run does, as checked values with public fields.

use std::{fmt, path::PathBuf, time::Duration};

use client::{CachePolicy, ClientSecret};
use mock::Latency;
use signer::{Algorithm, CryptoBackend, KeySpec};
use zeroize::Zeroizing;

use crate::{
    arrivals::{self, Schedule},
    comparison::Comparison,
    traffic::{Traffic, TrafficError},
};

/// Run length when a scenario sets none (and does not replay a trace).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// Seed when a scenario sets none.
pub const DEFAULT_SEED: u64 = 1;
/// In-flight limit per instance when a scenario sets none.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
/// Token lifetime of the embedded identity provider when a scenario sets none (as Entra).
pub const DEFAULT_TOKEN_LIFETIME: Duration = mock::DEFAULT_TOKEN_LIFETIME;
/// RSA key size when a scenario sets none.
pub const DEFAULT_KEY_BITS: u32 = 2048;

/// doing so, call [`Scenario::validate`] (or use [`Scenario::with_overrides`], which does).
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (the `name` key, or the file name without `.toml`).
    pub name: String,
    /// Where it came from (a path, or `builtin:NAME.toml`).
    pub origin: String,
    /// Run length.
    pub duration: Duration,
    /// Seed of every random choice of the run (arrivals, latencies).
    pub seed: u64,
    /// The arrival process.
    pub traffic: Traffic,
    /// The users requests come from (`[traffic] users`), with
    /// [`Flow::OnBehalfOf`]; `None` otherwise.
    pub users: Option<Users>,
    /// The gateway instances.
    pub gateway: Gateway,
    /// How the gateway authenticates to the identity provider.
    pub signer: SignerSpec,
    /// The identity provider.
    pub idp: IdpSpec,
    /// The protected backend.
    pub backend: BackendSpec,
    /// The APIs every gateway instance calls, each with its own scope, token client and
    /// tokens; arrivals pick one by weight. Never empty (default: one, [`Api::default`]).
    pub apis: Vec<Api>,
    /// Events, by time (equal times in file order).
    pub events: Vec<Event>,
    /// Runs to compare, if the scenario asks for a comparison.
    pub compare: Option<Comparison>,
    /// Whether the embedded identity provider and backend serve HTTPS (`tls = true`), with
    /// a CA generated for the run that the gateway trusts. An external server's URL says
    /// whether it is https.
    pub tls: bool,
    /// Whether `duration` came from the replayed trace (it follows the speed then).
    pub(crate) duration_from_trace: bool,
}

/// The gateway: its instances and their token caches.
#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    /// Instances (1 to [`MAX_INSTANCES`](crate::MAX_INSTANCES)). Default 1.
    pub instances: u32,
    /// Regions the instances are spread over, in contiguous blocks (1 to `instances`).
    /// Default 1.
    pub regions: u32,
    /// Which instances share a token cache. Default: each its own. Under
    /// [`CachePolicy::CredentialManager`] the fleet shares one store, whatever this says.
    pub cache: CacheScope,
    /// The cache policy. Default `apim`, the reference policy.
    pub policy: CachePolicy,
    /// Share of `expires_in` a token is cached for, in `(0, 1]`. Default 0.95.
    pub cache_fraction: f64,
    /// Most requests in flight per instance; arrivals beyond are dropped. Default
    /// [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: u32,
    /// Retry a request once after a 401/403 (with a new token). Default false, as the
    /// reference policy.
    pub retry_on_401: bool,
    /// How it gets the backend's tokens. Default [`Flow::ClientCredentials`].
    pub flow: Flow,
    /// [`Flow::OnBehalfOf`]: most users' tokens each instance caches (per API), the least
    /// recently used evicted beyond. Default [`client::DEFAULT_MAX_ENTRIES`].
    pub user_cache_entries: u32,
    /// [`CachePolicy::CredentialManager`]: what each token lookup costs an instance (its
    /// call to the managed store, `get-authorization-context`). Default none. Ignored under
    /// the other policies, so that a comparison of policies runs one scenario.
    pub lookup_latency: Latency,
}

/// How the gateway gets the backend's tokens (`[gateway] flow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flow {
    /// Tokens of its own (`"client-credentials"`): one per API, whoever the request is for.
    #[default]
    ClientCredentials,
    /// A token per user (`"on-behalf-of"`), exchanged for the user's own token that came
    /// with the request: requests come from `[traffic] users`, and the backend requires the
    /// delegated permission [`mock::DEFAULT_DELEGATED_SCOPE`] instead of an app role.
    OnBehalfOf,
}

impl Flow {
    /// The name scenario files and reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::ClientCredentials => "client-credentials",
            Flow::OnBehalfOf => "on-behalf-of",
        }
    }
}

/// The users requests come from (`[traffic] users = { count, distribution, exponent }`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Users {
    /// How many (1 to [`MAX_USERS`](crate::MAX_USERS)); users are numbered from 0.
    pub count: u32,
    /// How each request's user is drawn.
    pub distribution: UserDistribution,
}

/// How each request's user is drawn from [`Users::count`] (seeded by the scenario's seed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UserDistribution {
    /// Every user alike (`"uniform"`, the default).
    Uniform,
    /// Zipf's law (`"zipf"`): user `k` (from 1) with weight `1 / k^exponent`, so a few users
    /// make most requests, as real audiences do.
    Zipf {
        /// Above 0, at most [`MAX_ZIPF_EXPONENT`](crate::MAX_ZIPF_EXPONENT) (default 1).
        exponent: f64,
    },
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            instances: 1,
            regions: 1,
            cache: CacheScope::Instance,
            policy: CachePolicy::Apim,
            cache_fraction: client::config::DEFAULT_CACHE_FRACTION,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry_on_401: false,
            flow: Flow::ClientCredentials,
            user_cache_entries: client::DEFAULT_MAX_ENTRIES as u32,
            lookup_latency: Latency::None,
        }
    }
}

impl Gateway {
    /// The region of `instance`: regions hold contiguous blocks of instances, as even as
    /// the division allows (1,000 instances in 4 regions: 0–249, 250–499, …).
    pub fn region_of(&self, instance: u32) -> u32 {
        let (instances, regions) = (u64::from(self.instances.max(1)), u64::from(self.regions));
        // Below `regions` since instance < instances.
        (u64::from(instance) * regions / instances) as u32
    }
}

/// Which gateway instances share one token cache (`[gateway] shared_cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheScope {
    /// Each instance its own (`false`, the default).
    Instance,
    /// The instances of one region share one (`"region"`), as the units of an APIM region
    /// share its built-in cache.
    Region,
    /// All instances share one (`true`).
    Fleet,
}

/// One API behind the gateway: its own scope, token client per instance, and tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Api {
    /// Its name: letters, digits, `-`, `_`, `.` (it names the API's resource and scope).
    pub name: String,
    /// Its share of the traffic, relative to the other APIs' weights. Default 1.
    pub weight: f64,
}

impl Default for Api {
    /// The one API of a scenario without `[[apis]]`: `default`, the embedded identity
    /// provider's default resource.
    fn default() -> Self {
        Api {
            name: DEFAULT_API.to_owned(),
            weight: 1.0,
        }
    }
}

/// The name of the API of a scenario without `[[apis]]`.
pub const DEFAULT_API: &str = "default";

/// How the gateway authenticates to the identity provider.
#[derive(Clone, Debug)]
pub enum SignerSpec {
    /// Certificate-signed client assertions. With the embedded identity provider, the run
    /// generates a key of [`SignerSpec::key_spec`] and its certificate.
    Assertion {
        /// The crypto backend.
        backend: &'static dyn CryptoBackend,
        /// The algorithm; `None`: the key's default (PS256 for RSA keys).
        alg: Option<Algorithm>,
        /// RSA modulus size (2048, 3072 or 4096); unused for ES256 and EdDSA.
        key_bits: u32,
        /// Virtual time a simulation charges per signature; `None`: the signing key's
        /// median cost, measured when the simulation starts.
        signing_cost: Option<Duration>,
    },
    /// A client secret (the embedded identity provider registers it).
    Secret(ClientSecret),
}

impl Default for SignerSpec {
    fn default() -> Self {
        SignerSpec::Assertion {
            backend: signer::backend::default_backend(),
            alg: None,
            key_bits: DEFAULT_KEY_BITS,
            signing_cost: None,
        }
    }
}

impl SignerSpec {
    /// The kind of key to generate: RSA of `key_bits` for PS256, RS256 or no algorithm,
    /// P-256 for ES256, Ed25519 for EdDSA; `None` for a client secret.
    pub fn key_spec(&self) -> Option<KeySpec> {
        match self {
            SignerSpec::Assertion { alg, key_bits, .. } => match alg {
                Some(Algorithm::Es256) => Some(KeySpec::P256),
                Some(Algorithm::EdDsa) => Some(KeySpec::Ed25519),
                _ => KeySpec::rsa(*key_bits as usize).ok(),
            },
            SignerSpec::Secret(_) => None,
        }
    }

    /// The backend's name, or `None` for a client secret.
    pub fn backend_name(&self) -> Option<&'static str> {
        match self {
            SignerSpec::Assertion { backend, .. } => Some(backend.name()),
            SignerSpec::Secret(_) => None,
        }
    }
}

/// The password of an encrypted key or PKCS#12 file. Zeroed on drop; `Debug` hides it.
#[derive(Clone)]
pub struct KeyPassword(Zeroizing<String>);

impl KeyPassword {
    /// A password, zeroed on drop.
    pub fn new(password: String) -> Self {
        KeyPassword(Zeroizing::new(password))
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPassword(<redacted>)")
    }
}

/// The identity provider.
#[derive(Clone, Debug)]
pub enum IdpSpec {
    /// The embedded mock, started in-process for the run.
    Embedded(EmbeddedIdp),
    /// A real provider.
    External(ExternalIdp),
}

impl Default for IdpSpec {
    fn default() -> Self {
        IdpSpec::Embedded(EmbeddedIdp::default())
    }
}

/// Settings of the embedded mock identity provider.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedIdp {
    /// `expires_in` of its tokens: whole seconds, at least 1 s. Default 3599 s. With
    /// `token_lifetime_max`, the shortest.
    pub token_lifetime: Duration,
    /// With it, each token's lifetime is drawn uniformly (whole seconds) from
    /// `token_lifetime` to this, as Entra draws 60 to 90 minutes (`token_lifetime = { min =
    /// "60m", max = "90m" }`).
    pub token_lifetime_max: Option<Duration>,
    /// Latency of its token endpoint. Default none.
    pub latency: Latency,
    /// Share of token requests answered with an injected 500 or 503, 0 to 1. Default 0.
    pub error_rate: f64,
    /// Per-client throttling of token requests (sustained requests per second). Default none.
    pub throttle_rps: Option<f64>,
}

impl Default for EmbeddedIdp {
    fn default() -> Self {
        EmbeddedIdp {
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            token_lifetime_max: None,
            latency: Latency::None,
            error_rate: 0.0,
            throttle_rps: None,
        }
    }
}

/// A real identity provider.
#[derive(Clone, Debug)]
pub struct ExternalIdp {
    /// Its token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The scope, e.g. `api://backend/.default`.
    pub scope: String,
    /// The assertions' `aud`, when not the token URL.
    pub audience: Option<String>,
    /// The client's credentials.
    pub credentials: ExternalCredentials,
    /// CA certificates (PEM) to trust besides Mozilla's and the operating system's, for an
    /// https token URL (resolved against the scenario file's folder). A run trusts one set
    /// of CAs for all its connections: this file, `[backend] ca_file`, and the embedded
    /// servers' CA alike.
    pub ca_file: Option<PathBuf>,
}

/// Credentials for an external identity provider.
#[derive(Clone, Debug)]
pub enum ExternalCredentials {
    /// A key and certificate (resolved against the scenario file's folder), signed with the
    /// `[signer]` backend and algorithm.
    Certificate {
        /// The private key (PEM, DER, or a .pfx/.p12 bundle).
        key: PathBuf,
        /// The certificate (optional with a .pfx that bundles it).
        cert: Option<PathBuf>,
        /// The key's password, if it is encrypted.
        password: Option<KeyPassword>,
    },
    /// A client secret.
    Secret(ClientSecret),
}

/// The protected backend.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendSpec {
    /// The embedded mock backend: it accepts the embedded identity provider's tokens, or
    /// with `trust` those of an external one.
    Embedded {
        /// Added latency of each answer.
        latency: Latency,
        /// Tolerated clock skew on a token's `exp` and `nbf` (`[backend] clock_skew`): 0 by
        /// default, as APIM's `validate-jwt`.
        clock_skew: Duration,
        /// The external identity provider whose tokens it validates (`[backend] issuer`);
        /// `None`: the embedded one's.
        trust: Option<ProviderTrust>,
        /// The `azpacr` a token must carry (`[backend] require_azpacr`: `"2"` admits only
        /// clients that authenticated with a certificate); 403 otherwise.
        require_azpacr: Option<String>,
    },
    /// A real backend: requests go to this base URL plus the request path.
    External {
        /// Base URL.
        url: String,
        /// CA certificates (PEM) to trust besides Mozilla's and the operating system's, for
        /// an https URL (resolved against the scenario file's folder; trusted for every
        /// connection of the run, as `[idp] ca_file` is).
        ca_file: Option<PathBuf>,
    },
}

impl Default for BackendSpec {
    fn default() -> Self {
        BackendSpec::Embedded {
            latency: Latency::None,
            clock_skew: Duration::ZERO,
            trust: None,
            require_azpacr: None,
        }
    }
}

/// An OpenID provider the embedded backend validates tokens of, as an APIM `validate-jwt`
/// policy with `openid-config` would: signature (keys from the provider's JWKS), issuer,
/// audience, times, and optionally a role.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderTrust {
    /// The required `iss` (`[backend] issuer`); its discovery document
    /// (`{issuer}/.well-known/openid-configuration`) names the JWKS unless `jwks_url` does.
    pub issuer: String,
    /// The JWKS URL (`[backend] jwks_url`), skipping discovery.
    pub jwks_url: Option<String>,
    /// The required `aud` (`[backend] audience`).
    pub audience: String,
    /// An app role the token's `roles` must hold (`[backend] role`); 403 without it.
    pub role: Option<String>,
}

/// Something that happens at a time of the run (to the embedded identity provider).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Offset from the start of the run (before its end).
    pub at: Duration,
    /// What happens.
    pub kind: EventKind,
}

/// The kinds of [`Event`].
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// Every token issued so far is rejected by the backend from now on (401).
    RevokeTokens,
    /// The identity provider signs with a new key; tokens under the old one get 401.
    RotateIdpKeys,
    /// The token endpoint answers 503 for `duration`.
    IdpOutage {
        /// How long.
        duration: Duration,
    },
    /// The token endpoint throttles each client to `rate` requests per second for `duration`.
    IdpThrottle {
        /// Sustained token requests per second.
        rate: f64,
        /// How long.
        duration: Duration,
    },
}

impl EventKind {
    /// The name scenario files use (`revoke-tokens`, …).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RevokeTokens => "revoke-tokens",
            EventKind::RotateIdpKeys => "rotate-idp-keys",
            EventKind::IdpOutage { .. } => "idp-outage",
            EventKind::IdpThrottle { .. } => "idp-throttle",
        }
    }
}

impl Scenario {
    /// How many users requests come from in an on-behalf-of run: `[traffic] users.count`,
    /// or the distinct users a replayed trace names (its user column); `None` when neither
    /// says.
    pub fn user_population(&self) -> Option<u32> {
        self.users
            .map(|users| users.count)
            .or_else(|| match &self.traffic {
                Traffic::Replay { trace, .. } if !trace.user_names().is_empty() => {
                    u32::try_from(trace.user_names().len()).ok()
                }
                _ => None,
            })
    }

    /// The arrivals of a run of this scenario (deterministic for its seed).
    pub fn arrivals(&self) -> Result<Schedule, TrafficError> {
        arrivals::schedule(&self.traffic, self.duration, self.seed)
    }
}
