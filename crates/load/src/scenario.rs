//! Scenario files: what a run does (traffic, gateway, signer, identity provider, backend and
//! events), read from TOML.
//!
//! ```toml
//! name = "stampede"          # default: the file name without .toml
//! duration = "40s"           # default: 30s (a replay: the trace's length)
//! seed = 7                   # default: 1; the same seed gives the same arrivals
//!
//! [traffic]                  # the arrival process (required), one of:
//! kind = "constant"          #   constant, poisson:  rate (req/s)
//! rate = 500                 #   ramp:               from, to (req/s, linear over the run)
//!                            #   step:               steps = [{ at = "0s", rate = 100 }, …]
//!                            #   burst:              every, size, and an optional base rate
//!                            #   replay:             trace (path from this file), speed (1.0)
//!
//! [gateway]
//! instances = 2              # default 1; each has its own token cache …
//! shared_cache = false       # … unless true: one cache for all
//! policy = "apim"            # apim (default) | single-flight | refresh-ahead
//! cache_fraction = 0.95      # share of expires_in a token is cached for, in (0, 1]
//! max_in_flight = 1000       # per instance; arrivals beyond are dropped
//! retry_on_401 = false       # retry once after a 401/403 (the reference policy does not)
//!
//! [signer]                   # a generated key and certificate …
//! backend = "aws-lc-rs"      # rsa | ring | aws-lc-rs (default: aws-lc-rs)
//! alg = "PS256"              # PS256 | RS256 | ES256 | EdDSA (default: PS256 for RSA keys)
//! key_bits = 2048            # RSA: 2048 | 3072 | 4096
//! # client_secret = "…"      # … or a client secret instead
//!
//! [idp]                      # the embedded mock identity provider …
//! token_lifetime = "10s"     # expires_in of its tokens (whole seconds, default 3599s)
//! latency = "200ms"          # or { kind = "uniform", min_ms = 5, max_ms = 50 }
//!                            # or { kind = "log-normal", median_ms = 20, p99_ms = 200 }
//! error_rate = 0.0           # share of token requests answered 500/503
//! throttle_rps = 50          # per-client token bucket (429 with Retry-After)
//! # … or an external one: token_url, client_id, scope, audience (optional), and
//! # key + cert (+ password) or client_secret
//!
//! [backend]
//! latency = "2ms"            # the embedded mock backend … or url = "https://…" (external)
//!
//! [[events]]                 # at a time of the run:
//! at = "15s"                 # revoke-tokens | rotate-idp-keys
//! kind = "idp-outage"        # | idp-outage (duration) | idp-throttle (rate, duration)
//! duration = "3s"
//!
//! [compare]                  # optional: run once per value (as `--compare backend=…`)
//! backend = ["rsa", "ring", "aws-lc-rs"]
//! ```
//!
//! Durations are human (`30s`, `2m`, `250ms`, `1m 30s`). Every error — TOML syntax, an
//! unknown key, a wrong type, an impossible value — is a [`ScenarioError`] naming the file,
//! the line and column, and the key.
//!
//! The shipped scenarios are built into the binary ([`builtin`], [`Scenario::find`]), so
//! `tokenbench run stampede` works from any folder.

use std::{
    fmt,
    marker::PhantomData,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use client::{CachePolicy, ClientSecret};
use mock::Latency;
use serde::{de, Deserialize, Deserializer};
use signer::{Algorithm, CryptoBackend, KeySpec};
use toml::de::{DeTable, DeValue};
use zeroize::Zeroizing;

use crate::{
    arrivals::{self, Schedule},
    trace::{Trace, TraceError},
};

/// The default scenario (`scenarios/default.toml`), run when no scenario is named.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/default.toml");

/// The shipped scenarios, by name.
const BUILTINS: [(&str, &str); 7] = [
    ("default", DEFAULT_SCENARIO),
    ("stampede", include_str!("../../../scenarios/stampede.toml")),
    (
        "revocation",
        include_str!("../../../scenarios/revocation.toml"),
    ),
    (
        "throttled-idp",
        include_str!("../../../scenarios/throttled-idp.toml"),
    ),
    (
        "key-rotation",
        include_str!("../../../scenarios/key-rotation.toml"),
    ),
    ("replay", include_str!("../../../scenarios/replay.toml")),
    ("backends", include_str!("../../../scenarios/backends.toml")),
];

/// The shipped traces, by their path relative to `scenarios/`.
const BUILTIN_TRACES: [(&str, &str); 1] = [(
    "traces/apim-gateway-logs.csv",
    include_str!("../../../scenarios/traces/apim-gateway-logs.csv"),
)];

/// The names of the shipped scenarios.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _)| *name)
}

/// The TOML of the shipped scenario `name` (`stampede` or `stampede.toml`).
pub fn builtin(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".toml").unwrap_or(name);
    BUILTINS
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, text)| *text)
}

/// The content of a shipped trace, by its path relative to `scenarios/`
/// (`traces/apim-gateway-logs.csv`, as the shipped `replay` scenario names it).
pub fn builtin_trace(path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("./").unwrap_or(path);
    BUILTIN_TRACES
        .iter()
        .find(|(builtin, _)| *builtin == path)
        .map(|(_, text)| *text)
}

/// Run length when a scenario sets none (and does not replay a trace).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// Seed when a scenario sets none.
pub const DEFAULT_SEED: u64 = 1;
/// Highest arrival rate any traffic may ask for, in requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most gateway instances a scenario may have.
pub const MAX_INSTANCES: u32 = 1000;
/// In-flight limit per instance when a scenario sets none.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
/// Token lifetime of the embedded identity provider when a scenario sets none (as Entra).
pub const DEFAULT_TOKEN_LIFETIME: Duration = mock::DEFAULT_TOKEN_LIFETIME;
/// RSA key size when a scenario sets none.
pub const DEFAULT_KEY_BITS: u32 = 2048;

/// Where in a scenario file something is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file (or `builtin:NAME.toml`).
    pub origin: String,
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// A scenario that cannot be read or used. File errors name the file, line, column and key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {origin}: {source}")]
    Read {
        /// The file.
        origin: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{at}: TOML syntax error: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the parser says.
        message: String,
    },
    /// A key of the file is unknown, has the wrong type or an impossible value, or is missing.
    #[error("{at}: `{key}`: {message}")]
    Invalid {
        /// Where (the key, or the value the error is about).
        at: Location,
        /// The key, dotted (`traffic.rate`, `events[1].at`; array indexes from 0).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The trace a replay names could not be loaded.
    #[error("{at}: `{key}`: {error}")]
    Trace {
        /// Where the trace is named.
        at: Location,
        /// The key (`traffic.trace`).
        key: String,
        /// Why the trace could not be loaded (names the trace and its line).
        error: TraceError,
    },
    /// An override (a command-line option, or a value of a comparison) cannot be parsed.
    #[error("cannot set `{key}` to {value:?}: {message}")]
    Override {
        /// The setting (`duration`, `rate`, `policy`, `backend`, `alg`, `instances`).
        key: String,
        /// The value given.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A scenario changed after loading (overrides, or its public fields) is inconsistent.
    #[error("scenario {scenario}: `{key}`: {message}")]
    Setting {
        /// The scenario's name.
        scenario: String,
        /// The key at fault (`events[0].at`, `signer.alg`, …).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No scenario file and no shipped scenario of that name.
    #[error(
        "no scenario file {name:?} and no built-in scenario of that name (built-in: {available})"
    )]
    NotFound {
        /// The name or path asked for.
        name: String,
        /// The shipped scenarios, comma-separated.
        available: String,
    },
}

/// A parsed and checked scenario. Fields are public so that a caller can adjust them; after
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
    /// The gateway instances.
    pub gateway: Gateway,
    /// How the gateway authenticates to the identity provider.
    pub signer: SignerSpec,
    /// The identity provider.
    pub idp: IdpSpec,
    /// The protected backend.
    pub backend: BackendSpec,
    /// Events, by time (equal times in file order).
    pub events: Vec<Event>,
    /// Runs to compare, if the scenario asks for a comparison.
    pub compare: Option<Comparison>,
    /// Whether `duration` came from the replayed trace (it follows the speed then).
    duration_from_trace: bool,
}

/// The arrival process of a run. Rates are requests per second.
#[derive(Clone, Debug)]
pub enum Traffic {
    /// Evenly spaced arrivals.
    Constant {
        /// Arrivals per second.
        rate: f64,
    },
    /// A Poisson process: exponential gaps with this mean rate.
    Poisson {
        /// Mean arrivals per second.
        rate: f64,
    },
    /// A rate changing linearly from `from` at the start to `to` at the end of the run.
    Ramp {
        /// Rate at the start.
        from: f64,
        /// Rate at the end.
        to: f64,
    },
    /// A piecewise-constant rate: each step holds until the next one (or the end). Before
    /// the first step, nothing arrives.
    Step {
        /// The steps, by time.
        steps: Vec<RateStep>,
    },
    /// `size` simultaneous arrivals at `every`, 2 × `every`, … (before the end), on top of
    /// evenly spaced arrivals at `rate` (which may be 0).
    Burst {
        /// Time between bursts.
        every: Duration,
        /// Arrivals per burst.
        size: u32,
        /// Base rate between bursts.
        rate: f64,
    },
    /// A recorded trace, its offsets divided by `speed`, cut at the end of the run.
    Replay {
        /// The trace.
        trace: Arc<Trace>,
        /// Playback speed (2.0: twice as fast).
        speed: f64,
    },
}

/// One step of [`Traffic::Step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateStep {
    /// When it starts.
    pub at: Duration,
    /// The rate from then on.
    pub rate: f64,
}

/// Traffic that cannot be scheduled. `key` is relative to the `traffic` section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("traffic.{key}: {message}")]
pub struct TrafficError {
    /// The key at fault (`rate`, `steps[1].at`, …).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl TrafficError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        TrafficError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Checks a rate: finite, within `[0, MAX_RATE]`, and above 0 unless `zero_ok`.
fn check_rate(key: impl Into<String>, rate: f64, zero_ok: bool) -> Result<(), TrafficError> {
    let low_ok = if zero_ok { rate >= 0.0 } else { rate > 0.0 };
    if rate.is_finite() && low_ok && rate <= MAX_RATE {
        Ok(())
    } else {
        let low = if zero_ok { "≥ 0" } else { "above 0" };
        Err(TrafficError::new(
            key,
            format!("rate must be a number {low} and at most {MAX_RATE} per second, not {rate}"),
        ))
    }
}

impl Traffic {
    /// Its kind, as the scenario file names it (`constant`, `poisson`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Traffic::Constant { .. } => "constant",
            Traffic::Poisson { .. } => "poisson",
            Traffic::Ramp { .. } => "ramp",
            Traffic::Step { .. } => "step",
            Traffic::Burst { .. } => "burst",
            Traffic::Replay { .. } => "replay",
        }
    }

    /// Checks every parameter for a run of `duration`.
    pub fn validate(&self, duration: Duration) -> Result<(), TrafficError> {
        match self {
            Traffic::Constant { rate } | Traffic::Poisson { rate } => {
                check_rate("rate", *rate, false)
            }
            Traffic::Ramp { from, to } => {
                check_rate("from", *from, true)?;
                check_rate("to", *to, true)?;
                if *from == 0.0 && *to == 0.0 {
                    return Err(TrafficError::new(
                        "to",
                        "a ramp from 0 to 0 has no arrivals",
                    ));
                }
                Ok(())
            }
            Traffic::Step { steps } => {
                if steps.is_empty() {
                    return Err(TrafficError::new("steps", "at least one step is needed"));
                }
                for (i, step) in steps.iter().enumerate() {
                    check_rate(format!("steps[{i}].rate"), step.rate, true)?;
                    if step.at >= duration {
                        return Err(TrafficError::new(
                            format!("steps[{i}].at"),
                            format!(
                                "step at {} is not before the end of the run ({})",
                                human(step.at),
                                human(duration)
                            ),
                        ));
                    }
                    if i > 0 && step.at <= steps[i - 1].at {
                        return Err(TrafficError::new(
                            format!("steps[{i}].at"),
                            format!(
                                "steps must be in increasing time order: {} is not after {}",
                                human(step.at),
                                human(steps[i - 1].at)
                            ),
                        ));
                    }
                }
                if steps.iter().all(|step| step.rate == 0.0) {
                    return Err(TrafficError::new("steps", "every step has rate 0"));
                }
                Ok(())
            }
            Traffic::Burst { every, size, rate } => {
                check_rate("rate", *rate, true)?;
                if every.is_zero() {
                    return Err(TrafficError::new("every", "must be above 0"));
                }
                if *size == 0 {
                    return Err(TrafficError::new("size", "must be at least 1"));
                }
                let burst_rate = f64::from(*size) / every.as_secs_f64();
                if burst_rate > MAX_RATE {
                    return Err(TrafficError::new(
                        "size",
                        format!(
                            "{size} arrivals every {} is {burst_rate:.0} per second, above \
                             {MAX_RATE}",
                            human(*every)
                        ),
                    ));
                }
                Ok(())
            }
            Traffic::Replay { speed, .. } => {
                if speed.is_finite() && *speed > 0.0 {
                    Ok(())
                } else {
                    Err(TrafficError::new(
                        "speed",
                        format!("must be a number above 0, not {speed}"),
                    ))
                }
            }
        }
    }

    /// The mean arrival rate over a run of `duration` (arrivals per second).
    pub fn mean_rate(&self, duration: Duration) -> f64 {
        let secs = duration.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        match self {
            Traffic::Constant { rate } | Traffic::Poisson { rate } => *rate,
            Traffic::Ramp { from, to } => (from + to) / 2.0,
            Traffic::Step { steps } => {
                let mut total = 0.0;
                for (i, step) in steps.iter().enumerate() {
                    let end = steps
                        .get(i + 1)
                        .map_or(duration, |next| next.at)
                        .min(duration);
                    total += step.rate * end.saturating_sub(step.at).as_secs_f64();
                }
                total / secs
            }
            Traffic::Burst { every, size, rate } => {
                let bursts = arrivals::burst_count(*every, duration);
                rate + bursts as f64 * f64::from(*size) / secs
            }
            Traffic::Replay { trace, speed } => {
                let limit = duration.as_secs_f64() * speed;
                let count = Duration::try_from_secs_f64(limit)
                    .map_or(trace.len(), |limit| trace.count_before(limit));
                count as f64 / secs
            }
        }
    }

    /// The same traffic with every rate multiplied by `factor` (a replay plays `factor` times
    /// faster; a burst's size is rounded, at least 1).
    pub fn scaled(&self, factor: f64) -> Traffic {
        match self {
            Traffic::Constant { rate } => Traffic::Constant {
                rate: rate * factor,
            },
            Traffic::Poisson { rate } => Traffic::Poisson {
                rate: rate * factor,
            },
            Traffic::Ramp { from, to } => Traffic::Ramp {
                from: from * factor,
                to: to * factor,
            },
            Traffic::Step { steps } => Traffic::Step {
                steps: steps
                    .iter()
                    .map(|step| RateStep {
                        at: step.at,
                        rate: step.rate * factor,
                    })
                    .collect(),
            },
            Traffic::Burst { every, size, rate } => Traffic::Burst {
                every: *every,
                // `as` saturates; validation refuses an absurd size.
                size: ((f64::from(*size) * factor).round() as u32).max(1),
                rate: rate * factor,
            },
            Traffic::Replay { trace, speed } => Traffic::Replay {
                trace: trace.clone(),
                speed: speed * factor,
            },
        }
    }
}

/// The gateway: its instances and their token caches.
#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    /// Instances (1 to [`MAX_INSTANCES`]). Default 1.
    pub instances: u32,
    /// One token cache for all instances instead of one each. Default false (APIM's cache is
    /// per instance).
    pub shared_cache: bool,
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
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            instances: 1,
            shared_cache: false,
            policy: CachePolicy::Apim,
            cache_fraction: client::config::DEFAULT_CACHE_FRACTION,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry_on_401: false,
        }
    }
}

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
    /// `expires_in` of its tokens: whole seconds, at least 1 s. Default 3599 s.
    pub token_lifetime: Duration,
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
    /// The embedded mock backend (it accepts the embedded identity provider's tokens).
    Embedded {
        /// Added latency of each answer.
        latency: Latency,
    },
    /// A real backend: requests go to this base URL plus the request path.
    External {
        /// Base URL.
        url: String,
    },
}

impl Default for BackendSpec {
    fn default() -> Self {
        BackendSpec::Embedded {
            latency: Latency::None,
        }
    }
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

/// A comparison: the same scenario run once per value of one setting (same seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// The setting: `policy`, `backend`, `alg` or `instances`.
    pub key: &'static str,
    /// Its values, as written (each one parses; see [`Comparison::runs`]).
    pub values: Vec<String>,
}

/// The settings a comparison may vary.
const COMPARABLE: [&str; 4] = ["policy", "backend", "alg", "instances"];

impl Comparison {
    /// Parses `KEY=V1,V2,…` (the `--compare` option), e.g. `policy=apim,single-flight`.
    pub fn parse(spec: &str) -> Result<Comparison, ScenarioError> {
        let fail = |key: &str, message: String| ScenarioError::Override {
            key: key.to_owned(),
            value: spec.to_owned(),
            message,
        };
        let (key, values) = spec
            .split_once('=')
            .ok_or_else(|| fail("compare", "expected KEY=V1,V2,…".to_owned()))?;
        let key = key.trim();
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        Comparison::new(key, values).map_err(|message| fail("compare", message))
    }

    fn new(key: &str, values: Vec<String>) -> Result<Comparison, String> {
        let key = COMPARABLE.into_iter().find(|k| *k == key).ok_or_else(|| {
            format!(
                "cannot compare {key:?}; expected one of {}",
                COMPARABLE.join(", ")
            )
        })?;
        if values.is_empty() {
            return Err("no values to compare".to_owned());
        }
        for (i, value) in values.iter().enumerate() {
            if values[..i].contains(value) {
                return Err(format!("{value:?} is listed twice"));
            }
            Overrides::default()
                .set(key, value)
                .map_err(|e| e.to_string())?;
        }
        Ok(Comparison { key, values })
    }

    /// One set of overrides per value, with the value as written.
    pub fn runs(&self) -> Result<Vec<(String, Overrides)>, ScenarioError> {
        self.values
            .iter()
            .map(|value| {
                let mut overrides = Overrides::default();
                overrides.set(self.key, value)?;
                Ok((value.clone(), overrides))
            })
            .collect()
    }
}

/// Changes to a loaded scenario, as the command line makes them.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Run length.
    pub duration: Option<Duration>,
    /// Mean arrival rate: every rate of the traffic is scaled so that the mean over the run
    /// is this (a replay plays faster or slower).
    pub rate: Option<f64>,
    /// Cache policy.
    pub policy: Option<CachePolicy>,
    /// Crypto backend.
    pub backend: Option<&'static dyn CryptoBackend>,
    /// Signature algorithm.
    pub alg: Option<Algorithm>,
    /// Gateway instances.
    pub instances: Option<u32>,
}

impl Overrides {
    /// Sets `key` (`duration`, `rate`, `policy`, `backend`, `alg` or `instances`) from text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ScenarioError> {
        let fail = |message: String| ScenarioError::Override {
            key: key.to_owned(),
            value: value.to_owned(),
            message,
        };
        match key {
            "duration" => self.duration = Some(value.parse::<Human>().map_err(fail)?.0),
            "rate" => {
                let rate: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| fail("expected a number of requests per second".into()))?;
                check_rate("rate", rate, false).map_err(|e| fail(e.message))?;
                self.rate = Some(rate);
            }
            "policy" => self.policy = Some(value.parse::<PolicyName>().map_err(fail)?.0),
            "backend" => self.backend = Some(value.parse::<BackendName>().map_err(fail)?.0),
            "alg" => self.alg = Some(value.parse::<AlgName>().map_err(fail)?.0),
            "instances" => {
                let n: u32 = value
                    .trim()
                    .parse()
                    .map_err(|_| fail("expected a whole number".into()))?;
                check_instances(n).map_err(fail)?;
                self.instances = Some(n);
            }
            _ => {
                return Err(fail(
                    "unknown setting; expected duration, rate, policy, backend, alg or instances"
                        .into(),
                ))
            }
        }
        Ok(())
    }
}

fn check_instances(n: u32) -> Result<(), String> {
    if (1..=MAX_INSTANCES).contains(&n) {
        Ok(())
    } else {
        Err(format!("instances must be 1 to {MAX_INSTANCES}, not {n}"))
    }
}

/// A problem found by [`Scenario::problems`]: a dotted key and a message.
struct Problem {
    key: String,
    message: String,
}

impl Problem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Scenario {
    /// Reads and checks the scenario file at `path`; a replayed trace is found relative to it.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            origin: path.display().to_string(),
            source,
        })?;
        Scenario::from_toml_str(&text, path)
    }

    /// Parses and checks a scenario; `origin` is its path, which names it in errors and
    /// locates a replayed trace (relative to its folder).
    pub fn from_toml_str(text: &str, origin: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let origin = origin.as_ref();
        let dir = origin.parent().unwrap_or(Path::new(""));
        let name = origin
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse(
            text,
            &origin.display().to_string(),
            &name,
            &TraceSource::Dir(dir),
        )
    }

    /// The shipped scenario `name` (see [`builtin_names`]), with its shipped trace.
    pub fn from_builtin(name: &str) -> Result<Scenario, ScenarioError> {
        let name = name.strip_suffix(".toml").unwrap_or(name);
        let text = builtin(name).ok_or_else(|| not_found(name))?;
        parse(
            text,
            &format!("builtin:{name}.toml"),
            name,
            &TraceSource::Builtin,
        )
    }

    /// A scenario file if `name_or_path` is one, else the shipped scenario of that name.
    pub fn find(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        let path = Path::new(name_or_path);
        if path.is_file() {
            Scenario::load(path)
        } else if builtin(name_or_path).is_some() {
            Scenario::from_builtin(name_or_path)
        } else {
            Err(not_found(name_or_path))
        }
    }

    /// The arrivals of a run of this scenario (deterministic for its seed).
    pub fn arrivals(&self) -> Result<Schedule, TrafficError> {
        arrivals::schedule(&self.traffic, self.duration, self.seed)
    }

    /// The scenario with `overrides` applied, checked again.
    pub fn with_overrides(mut self, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
        if let Some(duration) = overrides.duration {
            self.duration = duration;
            self.duration_from_trace = false;
        }
        if let Some(rate) = overrides.rate {
            let mean = self.traffic.mean_rate(self.duration);
            if mean <= 0.0 {
                return Err(self.setting(Problem::new(
                    "traffic",
                    "has no arrivals within the run, so it cannot be scaled to a rate",
                )));
            }
            self.traffic = self.traffic.scaled(rate / mean);
            if self.duration_from_trace {
                if let Traffic::Replay { trace, speed } = &self.traffic {
                    self.duration = replay_duration(trace, *speed);
                }
            }
        }
        if let Some(policy) = overrides.policy {
            self.gateway.policy = policy;
        }
        if let Some(instances) = overrides.instances {
            self.gateway.instances = instances;
        }
        if overrides.backend.is_some() || overrides.alg.is_some() {
            let SignerSpec::Assertion { backend, alg, .. } = &mut self.signer else {
                let key = if overrides.backend.is_some() {
                    "backend"
                } else {
                    "alg"
                };
                return Err(self.setting(Problem::new(
                    format!("signer.{key}"),
                    "the scenario authenticates with a client secret, not a signed assertion",
                )));
            };
            if let Some(new) = overrides.backend {
                *backend = new;
            }
            if let Some(new) = overrides.alg {
                *alg = Some(new);
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks the scenario as a whole (after its public fields were changed).
    pub fn validate(&self) -> Result<(), ScenarioError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(self.setting(problem)),
            None => Ok(()),
        }
    }

    fn setting(&self, problem: Problem) -> ScenarioError {
        ScenarioError::Setting {
            scenario: self.name.clone(),
            key: problem.key,
            message: problem.message,
        }
    }

    /// Every inconsistency, each with its dotted key (events by their index in `events`).
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let duration = self.duration;
        if duration.is_zero() {
            problems.push(Problem::new("duration", "must be above 0"));
        }
        if let Err(e) = self.traffic.validate(duration) {
            problems.push(Problem::new(format!("traffic.{}", e.key), e.message));
        }
        let gateway = &self.gateway;
        if let Err(message) = check_instances(gateway.instances) {
            problems.push(Problem::new("gateway.instances", message));
        }
        let fraction = gateway.cache_fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            problems.push(Problem::new(
                "gateway.cache_fraction",
                format!("must be above 0 and at most 1, not {fraction}"),
            ));
        }
        if gateway.max_in_flight == 0 {
            problems.push(Problem::new("gateway.max_in_flight", "must be at least 1"));
        }
        if let SignerSpec::Assertion {
            backend,
            alg,
            key_bits,
        } = &self.signer
        {
            if ![2048, 3072, 4096].contains(key_bits) {
                problems.push(Problem::new(
                    "signer.key_bits",
                    format!("must be 2048, 3072 or 4096, not {key_bits}"),
                ));
            }
            if let Some(alg) = alg {
                if !backend.supports(*alg) {
                    problems.push(Problem::new(
                        "signer.alg",
                        format!("the {} backend does not implement {alg}", backend.name()),
                    ));
                }
            }
        }
        match &self.idp {
            IdpSpec::Embedded(idp) => {
                let lifetime = idp.token_lifetime;
                if lifetime < Duration::from_secs(1) || lifetime.subsec_nanos() != 0 {
                    problems.push(Problem::new(
                        "idp.token_lifetime",
                        format!(
                            "must be whole seconds, at least 1s (expires_in is an integer), \
                             not {}",
                            human(lifetime)
                        ),
                    ));
                }
                if let Err(message) = idp.latency.validate() {
                    problems.push(Problem::new("idp.latency", message));
                }
                if !(0.0..=1.0).contains(&idp.error_rate) {
                    problems.push(Problem::new(
                        "idp.error_rate",
                        format!("must be within 0 and 1, not {}", idp.error_rate),
                    ));
                }
                if let Some(rps) = idp.throttle_rps {
                    if !(rps.is_finite() && rps > 0.0) {
                        problems.push(Problem::new(
                            "idp.throttle_rps",
                            format!("must be a number above 0, not {rps}"),
                        ));
                    }
                }
            }
            IdpSpec::External(_) => {
                if matches!(self.backend, BackendSpec::Embedded { .. }) {
                    problems.push(Problem::new(
                        "idp.token_url",
                        "an external identity provider needs an external backend ([backend] \
                         url): the embedded backend accepts only the embedded provider's tokens",
                    ));
                }
                if let SignerSpec::Secret(_) = self.signer {
                    problems.push(Problem::new(
                        "signer.client_secret",
                        "with an external identity provider, give its client_secret in [idp]",
                    ));
                }
                if !self.events.is_empty() {
                    problems.push(Problem::new(
                        "events",
                        "events act on the embedded identity provider; this one is external",
                    ));
                }
            }
        }
        if let BackendSpec::Embedded { latency } = &self.backend {
            if let Err(message) = latency.validate() {
                problems.push(Problem::new("backend.latency", message));
            }
        }
        for (i, event) in self.events.iter().enumerate() {
            if event.at >= duration {
                problems.push(Problem::new(
                    format!("events[{i}].at"),
                    format!(
                        "{} at {} is not before the end of the run ({})",
                        event.kind.name(),
                        human(event.at),
                        human(duration)
                    ),
                ));
            }
            match &event.kind {
                EventKind::IdpOutage { duration } | EventKind::IdpThrottle { duration, .. }
                    if duration.is_zero() =>
                {
                    problems.push(Problem::new(
                        format!("events[{i}].duration"),
                        "must be above 0",
                    ));
                }
                _ => {}
            }
            if let EventKind::IdpThrottle { rate, .. } = event.kind {
                if !(rate.is_finite() && rate > 0.0) {
                    problems.push(Problem::new(
                        format!("events[{i}].rate"),
                        format!("must be a number above 0, not {rate}"),
                    ));
                }
            }
        }
        if let Some(compare) = &self.compare {
            match compare.runs() {
                Ok(runs) => {
                    for (value, overrides) in runs {
                        // Each run must be valid too (e.g. every backend has the algorithm).
                        let mut run = self.clone();
                        run.compare = None;
                        if let Err(e) = run.with_overrides(&overrides) {
                            problems.push(Problem::new(
                                format!("compare.{}", compare.key),
                                format!("with {} = {value:?}: {e}", compare.key),
                            ));
                        }
                    }
                }
                Err(e) => problems.push(Problem::new(
                    format!("compare.{}", compare.key),
                    e.to_string(),
                )),
            }
        }
        problems
    }
}

fn not_found(name: &str) -> ScenarioError {
    ScenarioError::NotFound {
        name: name.to_owned(),
        available: builtin_names().collect::<Vec<_>>().join(", "),
    }
}

/// The default run length of a replay: just past its last entry at `speed`.
fn replay_duration(trace: &Trace, speed: f64) -> Duration {
    let secs = trace.last_offset().as_secs_f64() / speed;
    Duration::try_from_secs_f64(secs.floor() + 1.0).unwrap_or(Duration::MAX)
}

/// A duration as humantime writes it (`1m 30s`).
fn human(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

// ---------------------------------------------------------------------------------------------
// Parsing: TOML → raw structs (serde, spans from toml) → checked scenario.

/// Where a replayed trace is read from.
enum TraceSource<'a> {
    /// Files, relative to this folder.
    Dir(&'a Path),
    /// The shipped traces.
    Builtin,
}

/// A parsed document, to turn spans and keys into locations.
struct Doc<'a> {
    text: &'a str,
    origin: &'a str,
    table: DeTable<'a>,
}

/// The line and column of byte `offset` of `text`.
fn location(text: &str, origin: &str, offset: usize) -> Location {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        origin: origin.to_owned(),
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

impl Doc<'_> {
    fn location(&self, offset: usize) -> Location {
        location(self.text, self.origin, offset)
    }

    /// The location of a dotted key (or of its nearest ancestor present in the file).
    fn locate(&self, key: &str) -> Location {
        let mut offset = 0;
        let mut table = Some(&self.table);
        for segment in key.split('.') {
            let (name, indexes) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            let Some(found) = table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == name))
            else {
                break;
            };
            offset = found.0.span().start;
            let mut value = found.1;
            for index in indexes
                .split(['[', ']'])
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse::<usize>().ok())
            {
                match value.get_ref() {
                    DeValue::Array(array) if index < array.len() => {
                        offset = array[index].span().start;
                        value = &array[index];
                    }
                    _ => break,
                }
            }
            table = match value.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        self.location(offset)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        let key = key.into();
        ScenarioError::Invalid {
            at: self.locate(&key),
            key,
            message: message.into(),
        }
    }

    /// A deserialisation error: its span gives the line, the key found at that span.
    fn toml_error(&self, error: &toml::de::Error) -> ScenarioError {
        let span = error.span().unwrap_or(0..0);
        let mut key = String::new();
        if !span.is_empty() {
            search_table(&self.table, span.start, &mut key);
        }
        let message = error.message().trim().to_owned();
        // "missing field `x`": name the field itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(field);
        }
        ScenarioError::Invalid {
            at: self.location(span.start),
            key: if key.is_empty() {
                "(top level)".to_owned()
            } else {
                key
            },
            message,
        }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn contains(span: std::ops::Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// Appends to `path` the dotted key at `offset`, deepest first; false if none is there.
fn search_table(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if contains(key.span(), offset) || search_value(value, offset, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn search_value(value: &toml::Spanned<DeValue<'_>>, offset: usize, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(table) if search_table(table, offset, path) => return true,
        DeValue::Array(array) => {
            for (i, element) in array.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if search_value(element, offset, path) {
                    return true;
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
    contains(value.span(), offset)
}

fn parse(
    text: &str,
    origin: &str,
    default_name: &str,
    traces: &TraceSource<'_>,
) -> Result<Scenario, ScenarioError> {
    let table = DeTable::parse(text).map_err(|e| ScenarioError::Syntax {
        at: location(text, origin, e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let doc = Doc {
        text,
        origin,
        table: table.into_inner(),
    };
    let raw: RawScenario = toml::from_str(text).map_err(|e| doc.toml_error(&e))?;
    let scenario = convert(raw, &doc, default_name, traces)?;
    if let Some(problem) = scenario.problems().into_iter().next() {
        return Err(doc.invalid(problem.key, problem.message));
    }
    let mut scenario = scenario;
    scenario.events.sort_by_key(|event| event.at); // stable
    Ok(scenario)
}

/// Fails with the first key of `present` that `allowed` lacks.
fn only(
    doc: &Doc<'_>,
    section: &str,
    present: &[(&'static str, bool)],
    allowed: &[&str],
    why: &str,
) -> Result<(), ScenarioError> {
    match present
        .iter()
        .find(|(key, set)| *set && !allowed.contains(key))
    {
        Some((key, _)) => Err(doc.invalid(
            format!("{section}.{key}"),
            format!("`{key}` does not apply to {why}"),
        )),
        None => Ok(()),
    }
}

fn require<T>(doc: &Doc<'_>, key: &str, value: Option<T>, why: &str) -> Result<T, ScenarioError> {
    value.ok_or_else(|| doc.invalid(key, format!("missing: {why}")))
}

fn convert(
    raw: RawScenario,
    doc: &Doc<'_>,
    default_name: &str,
    traces: &TraceSource<'_>,
) -> Result<Scenario, ScenarioError> {
    let traffic = convert_traffic(raw.traffic, doc, traces)?;
    let (duration, duration_from_trace) = match (raw.duration, &traffic) {
        (Some(Human(duration)), _) => (duration, false),
        (None, Traffic::Replay { trace, speed }) if speed.is_finite() && *speed > 0.0 => {
            (replay_duration(trace, *speed), true)
        }
        (None, _) => (DEFAULT_DURATION, false),
    };
    let gateway = {
        let g = raw.gateway;
        let defaults = Gateway::default();
        Gateway {
            instances: g.instances.unwrap_or(defaults.instances),
            shared_cache: g.shared_cache.unwrap_or(defaults.shared_cache),
            policy: g.policy.map_or(defaults.policy, |p| p.0),
            cache_fraction: g.cache_fraction.unwrap_or(defaults.cache_fraction),
            max_in_flight: g.max_in_flight.unwrap_or(defaults.max_in_flight),
            retry_on_401: g.retry_on_401.unwrap_or(defaults.retry_on_401),
        }
    };
    let signer = {
        let s = raw.signer;
        match s.client_secret {
            Some(secret) => {
                only(
                    doc,
                    "signer",
                    &[
                        ("backend", s.backend.is_some()),
                        ("alg", s.alg.is_some()),
                        ("key_bits", s.key_bits.is_some()),
                    ],
                    &[],
                    "a client secret (it signs nothing)",
                )?;
                SignerSpec::Secret(ClientSecret::new(secret))
            }
            None => SignerSpec::Assertion {
                backend: s
                    .backend
                    .map_or_else(signer::backend::default_backend, |b| b.0),
                alg: s.alg.map(|a| a.0),
                key_bits: s.key_bits.unwrap_or(DEFAULT_KEY_BITS),
            },
        }
    };
    let idp = convert_idp(raw.idp, doc, traces)?;
    let backend = {
        let b = raw.backend;
        match b.url {
            Some(url) => {
                only(
                    doc,
                    "backend",
                    &[("latency", b.latency.is_some())],
                    &[],
                    "an external backend (only the embedded one has latency settings)",
                )?;
                check_url(doc, "backend.url", &url)?;
                BackendSpec::External { url }
            }
            None => BackendSpec::Embedded {
                latency: b.latency.map_or(Latency::None, |l| l.0),
            },
        }
    };
    let mut events = Vec::with_capacity(raw.events.len());
    for (i, event) in raw.events.into_iter().enumerate() {
        let present = [
            ("duration", event.duration.is_some()),
            ("rate", event.rate.is_some()),
        ];
        let key = |k: &str| format!("events[{i}].{k}");
        let kind = match event.kind {
            EventKindName::RevokeTokens | EventKindName::RotateIdpKeys => {
                let revoke = event.kind == EventKindName::RevokeTokens;
                let name = if revoke {
                    "revoke-tokens"
                } else {
                    "rotate-idp-keys"
                };
                only(doc, &format!("events[{i}]"), &present, &[], name)?;
                if revoke {
                    EventKind::RevokeTokens
                } else {
                    EventKind::RotateIdpKeys
                }
            }
            EventKindName::IdpOutage => {
                only(
                    doc,
                    &format!("events[{i}]"),
                    &present,
                    &["duration"],
                    "idp-outage",
                )?;
                EventKind::IdpOutage {
                    duration: require(
                        doc,
                        &key("duration"),
                        event.duration,
                        "how long the outage lasts",
                    )?
                    .0,
                }
            }
            EventKindName::IdpThrottle => EventKind::IdpThrottle {
                rate: require(
                    doc,
                    &key("rate"),
                    event.rate,
                    "token requests per second allowed",
                )?,
                duration: require(
                    doc,
                    &key("duration"),
                    event.duration,
                    "how long the throttling lasts",
                )?
                .0,
            },
        };
        events.push(Event {
            at: event.at.0,
            kind,
        });
    }
    let compare = match raw.compare {
        None => None,
        Some(c) => {
            let given: Vec<(&'static str, Vec<String>)> = [
                ("policy", c.policy),
                ("backend", c.backend),
                ("alg", c.alg),
                (
                    "instances",
                    c.instances.map(|v| v.iter().map(u32::to_string).collect()),
                ),
            ]
            .into_iter()
            .filter_map(|(key, values)| values.map(|v| (key, v)))
            .collect();
            match given.as_slice() {
                [(key, values)] => Some(
                    Comparison::new(key, values.clone())
                        .map_err(|m| doc.invalid(format!("compare.{key}"), m))?,
                ),
                [] => return Err(doc.invalid("compare", "name one setting to compare")),
                [..] => {
                    let keys: Vec<&str> = given.iter().map(|(key, _)| *key).collect();
                    return Err(doc.invalid(
                        "compare",
                        format!(
                            "a comparison varies one setting only, not {}",
                            keys.join(" and ")
                        ),
                    ));
                }
            }
        }
    };
    Ok(Scenario {
        name: raw.name.unwrap_or_else(|| default_name.to_owned()),
        origin: doc.origin.to_owned(),
        duration,
        seed: raw.seed.unwrap_or(DEFAULT_SEED),
        traffic,
        gateway,
        signer,
        idp,
        backend,
        events,
        compare,
        duration_from_trace,
    })
}

fn convert_traffic(
    t: RawTraffic,
    doc: &Doc<'_>,
    traces: &TraceSource<'_>,
) -> Result<Traffic, ScenarioError> {
    let present = [
        ("rate", t.rate.is_some()),
        ("from", t.from.is_some()),
        ("to", t.to.is_some()),
        ("steps", t.steps.is_some()),
        ("every", t.every.is_some()),
        ("size", t.size.is_some()),
        ("trace", t.trace.is_some()),
        ("speed", t.speed.is_some()),
    ];
    let (allowed, what): (&[&str], &str) = match t.kind {
        TrafficKind::Constant => (&["rate"], "constant traffic"),
        TrafficKind::Poisson => (&["rate"], "poisson traffic"),
        TrafficKind::Ramp => (&["from", "to"], "ramp traffic"),
        TrafficKind::Step => (&["steps"], "step traffic"),
        TrafficKind::Burst => (&["every", "size", "rate"], "burst traffic"),
        TrafficKind::Replay => (&["trace", "speed"], "replay traffic"),
    };
    only(doc, "traffic", &present, allowed, what)?;
    Ok(match t.kind {
        TrafficKind::Constant => Traffic::Constant {
            rate: require(doc, "traffic.rate", t.rate, "requests per second")?,
        },
        TrafficKind::Poisson => Traffic::Poisson {
            rate: require(doc, "traffic.rate", t.rate, "mean requests per second")?,
        },
        TrafficKind::Ramp => Traffic::Ramp {
            from: require(doc, "traffic.from", t.from, "the rate at the start")?,
            to: require(doc, "traffic.to", t.to, "the rate at the end")?,
        },
        TrafficKind::Step => Traffic::Step {
            steps: require(doc, "traffic.steps", t.steps, "a list of { at, rate }")?
                .into_iter()
                .map(|s| RateStep {
                    at: s.at.0,
                    rate: s.rate,
                })
                .collect(),
        },
        TrafficKind::Burst => Traffic::Burst {
            every: require(doc, "traffic.every", t.every, "the time between bursts")?.0,
            size: require(doc, "traffic.size", t.size, "the arrivals per burst")?,
            rate: t.rate.unwrap_or(0.0),
        },
        TrafficKind::Replay => {
            let name = require(doc, "traffic.trace", t.trace, "the trace file to replay")?;
            let loaded = match traces {
                TraceSource::Dir(dir) => Trace::load(dir.join(&name)),
                TraceSource::Builtin => match builtin_trace(&name) {
                    Some(text) => Trace::from_reader(
                        text.as_bytes(),
                        format!("builtin:{name}"),
                        crate::trace::TraceFormat::from_path(Path::new(&name)),
                    ),
                    None => {
                        return Err(
                            doc.invalid("traffic.trace", format!("no shipped trace {name:?}"))
                        )
                    }
                },
            };
            let trace = loaded.map_err(|error| ScenarioError::Trace {
                at: doc.locate("traffic.trace"),
                key: "traffic.trace".to_owned(),
                error,
            })?;
            Traffic::Replay {
                trace: Arc::new(trace),
                speed: t.speed.unwrap_or(1.0),
            }
        }
    })
}

fn convert_idp(
    i: RawIdp,
    doc: &Doc<'_>,
    traces: &TraceSource<'_>,
) -> Result<IdpSpec, ScenarioError> {
    let embedded_keys = [
        ("token_lifetime", i.token_lifetime.is_some()),
        ("latency", i.latency.is_some()),
        ("error_rate", i.error_rate.is_some()),
        ("throttle_rps", i.throttle_rps.is_some()),
    ];
    let external_keys = [
        ("client_id", i.client_id.is_some()),
        ("scope", i.scope.is_some()),
        ("audience", i.audience.is_some()),
        ("key", i.key.is_some()),
        ("cert", i.cert.is_some()),
        ("password", i.password.is_some()),
        ("client_secret", i.client_secret.is_some()),
    ];
    let Some(token_url) = i.token_url else {
        only(
            doc,
            "idp",
            &external_keys,
            &[],
            "the embedded identity provider (set token_url for an external one)",
        )?;
        let defaults = EmbeddedIdp::default();
        return Ok(IdpSpec::Embedded(EmbeddedIdp {
            token_lifetime: i.token_lifetime.map_or(defaults.token_lifetime, |d| d.0),
            latency: i.latency.map_or(defaults.latency, |l| l.0),
            error_rate: i.error_rate.unwrap_or(defaults.error_rate),
            throttle_rps: i.throttle_rps,
        }));
    };
    only(
        doc,
        "idp",
        &embedded_keys,
        &[],
        "an external identity provider (token_url is set)",
    )?;
    check_url(doc, "idp.token_url", &token_url)?;
    let dir = match traces {
        TraceSource::Dir(dir) => *dir,
        TraceSource::Builtin => Path::new(""),
    };
    let credentials = match (i.key, i.client_secret) {
        (Some(key), None) => ExternalCredentials::Certificate {
            key: dir.join(key),
            cert: i.cert.map(|cert| dir.join(cert)),
            password: i.password.map(|p| KeyPassword(Zeroizing::new(p))),
        },
        (None, Some(secret)) => {
            only(
                doc,
                "idp",
                &[
                    ("cert", i.cert.is_some()),
                    ("password", i.password.is_some()),
                ],
                &[],
                "a client secret",
            )?;
            ExternalCredentials::Secret(ClientSecret::new(secret))
        }
        (Some(_), Some(_)) => {
            return Err(doc.invalid(
                "idp.client_secret",
                "give either key (and cert) or client_secret, not both",
            ))
        }
        (None, None) => {
            return Err(doc.invalid(
                "idp.key",
                "missing: an external identity provider needs key (and cert) or client_secret",
            ))
        }
    };
    Ok(IdpSpec::External(ExternalIdp {
        token_url,
        client_id: require(doc, "idp.client_id", i.client_id, "the client id")?,
        scope: require(
            doc,
            "idp.scope",
            i.scope,
            "the scope, e.g. api://backend/.default",
        )?,
        audience: i.audience,
        credentials,
    }))
}

fn check_url(doc: &Doc<'_>, key: &str, url: &str) -> Result<(), ScenarioError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(doc.invalid(key, format!("{url:?} is not an http:// or https:// URL"))),
    }
}

// ---------------------------------------------------------------------------------------------
// The file's shape, as serde reads it.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    duration: Option<Human>,
    seed: Option<u64>,
    traffic: RawTraffic,
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    signer: RawSigner,
    #[serde(default)]
    idp: RawIdp,
    #[serde(default)]
    backend: RawBackend,
    #[serde(default)]
    events: Vec<RawEvent>,
    compare: Option<RawCompare>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum TrafficKind {
    Constant,
    Poisson,
    Ramp,
    Step,
    Burst,
    Replay,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraffic {
    kind: TrafficKind,
    rate: Option<f64>,
    from: Option<f64>,
    to: Option<f64>,
    steps: Option<Vec<RawStep>>,
    every: Option<Human>,
    size: Option<u32>,
    trace: Option<String>,
    speed: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: Human,
    rate: f64,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    instances: Option<u32>,
    shared_cache: Option<bool>,
    policy: Option<PolicyName>,
    cache_fraction: Option<f64>,
    max_in_flight: Option<u32>,
    retry_on_401: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigner {
    backend: Option<BackendName>,
    alg: Option<AlgName>,
    key_bits: Option<u32>,
    client_secret: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdp {
    token_lifetime: Option<Human>,
    latency: Option<LatencyValue>,
    error_rate: Option<f64>,
    throttle_rps: Option<f64>,
    token_url: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
    key: Option<String>,
    cert: Option<String>,
    password: Option<String>,
    client_secret: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    latency: Option<LatencyValue>,
    url: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum EventKindName {
    RevokeTokens,
    RotateIdpKeys,
    IdpOutage,
    IdpThrottle,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: Human,
    kind: EventKindName,
    duration: Option<Human>,
    rate: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompare {
    policy: Option<Vec<String>>,
    backend: Option<Vec<String>>,
    alg: Option<Vec<String>>,
    instances: Option<Vec<u32>>,
}

/// A human duration (`30s`, `2m`, `250ms`).
struct Human(Duration);

impl FromStr for Human {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Human)
            .map_err(|e| {
                format!("{text:?} is not a duration such as \"30s\", \"2m\" or \"250ms\": {e}")
            })
    }
}

/// A cache policy by name (case-insensitive).
struct PolicyName(CachePolicy);

impl FromStr for PolicyName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(PolicyName).map_err(|_| {
            format!("unknown cache policy {text:?}; expected apim, single-flight or refresh-ahead")
        })
    }
}

/// A compiled-in crypto backend by name.
struct BackendName(&'static dyn CryptoBackend);

impl FromStr for BackendName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        signer::backend::by_name(text.trim())
            .map(BackendName)
            .map_err(|e| e.to_string())
    }
}

/// A signature algorithm by JWS name.
struct AlgName(Algorithm);

impl FromStr for AlgName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map(AlgName)
            .map_err(|e: signer::Error| e.to_string())
    }
}

/// Deserialises a string through `FromStr`, with a readable "expected" for wrong types.
struct FromStrVisitor<T> {
    expecting: &'static str,
    target: PhantomData<T>,
}

impl<T: FromStr<Err = String>> de::Visitor<'_> for FromStrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

macro_rules! deserialize_from_str {
    ($($type:ty => $expecting:literal),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(FromStrVisitor {
                    expecting: $expecting,
                    target: PhantomData,
                })
            }
        }
    )*};
}

deserialize_from_str! {
    Human => "a duration such as \"30s\", \"2m\" or \"250ms\"",
    PolicyName => "a cache policy: \"apim\", \"single-flight\" or \"refresh-ahead\"",
    BackendName => "a crypto backend name such as \"aws-lc-rs\"",
    AlgName => "an algorithm: \"PS256\", \"RS256\", \"ES256\" or \"EdDSA\"",
}

/// A latency: a human duration (fixed), or a table as [`Latency`] reads it
/// (`{ kind = "uniform", min_ms = 5, max_ms = 50 }`).
struct LatencyValue(Latency);

impl<'de> Deserialize<'de> for LatencyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = LatencyValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"20ms\", or a table such as \
                     { kind = \"log-normal\", median_ms = 20, p99_ms = 200 }",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<LatencyValue, E> {
                let Human(duration) = text.parse().map_err(E::custom)?;
                Ok(LatencyValue(Latency::Fixed {
                    ms: duration.as_secs_f64() * 1000.0,
                }))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<LatencyValue, A::Error> {
                Latency::deserialize(de::value::MapAccessDeserializer::new(map)).map(LatencyValue)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}
