//! The file's shape, as serde reads it.

use serde::Deserialize;

use crate::values::{AlgName, BackendName, Human, LatencyValue, LifetimeValue, PolicyName};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub(crate) name: Option<String>,
    pub(crate) duration: Option<Human>,
    pub(crate) seed: Option<u64>,
    pub(crate) traffic: RawTraffic,
    #[serde(default)]
    pub(crate) gateway: RawGateway,
    #[serde(default)]
    pub(crate) signer: RawSigner,
    #[serde(default)]
    pub(crate) idp: RawIdp,
    #[serde(default)]
    pub(crate) backend: RawBackend,
    #[serde(default)]
    pub(crate) apis: Vec<RawApi>,
    #[serde(default)]
    pub(crate) events: Vec<RawEvent>,
    pub(crate) compare: Option<RawCompare>,
    pub(crate) tls: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TrafficKind {
    Constant,
    Poisson,
    Ramp,
    Step,
    Burst,
    Daily,
    Replay,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTraffic {
    pub(crate) kind: TrafficKind,
    pub(crate) rate: Option<f64>,
    pub(crate) from: Option<f64>,
    pub(crate) to: Option<f64>,
    pub(crate) steps: Option<Vec<RawStep>>,
    pub(crate) every: Option<Human>,
    pub(crate) size: Option<u32>,
    pub(crate) trace: Option<String>,
    pub(crate) speed: Option<f64>,
    pub(crate) rates: Option<Vec<f64>>,
    pub(crate) poisson: Option<bool>,
    pub(crate) users: Option<RawUsers>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUsers {
    pub(crate) count: u32,
    pub(crate) distribution: Option<DistributionName>,
    pub(crate) exponent: Option<f64>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DistributionName {
    Uniform,
    Zipf,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FlowName {
    ClientCredentials,
    OnBehalfOf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub(crate) at: Human,
    pub(crate) rate: f64,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub(crate) instances: Option<u32>,
    pub(crate) regions: Option<u32>,
    pub(crate) shared_cache: Option<SharedCache>,
    pub(crate) policy: Option<PolicyName>,
    pub(crate) cache_fraction: Option<f64>,
    pub(crate) max_in_flight: Option<u32>,
    pub(crate) retry_on_401: Option<bool>,
    pub(crate) flow: Option<FlowName>,
    pub(crate) user_cache_entries: Option<u32>,
    pub(crate) lookup_latency: Option<LatencyValue>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSigner {
    pub(crate) backend: Option<BackendName>,
    pub(crate) alg: Option<AlgName>,
    pub(crate) key_bits: Option<u32>,
    pub(crate) signing_cost: Option<Human>,
    pub(crate) client_secret: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdp {
    pub(crate) token_lifetime: Option<LifetimeValue>,
    pub(crate) latency: Option<LatencyValue>,
    pub(crate) error_rate: Option<f64>,
    pub(crate) throttle_rps: Option<f64>,
    pub(crate) token_url: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) cert: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) client_secret: Option<String>,
    pub(crate) ca_file: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackend {
    pub(crate) latency: Option<LatencyValue>,
    pub(crate) clock_skew: Option<Human>,
    pub(crate) url: Option<String>,
    pub(crate) ca_file: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) require_azpacr: Option<String>,
}

/// `shared_cache`: `false`, `true` or `"region"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum SharedCache {
    All(bool),
    Scope(ScopeName),
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ScopeName {
    Region,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) name: String,
    pub(crate) weight: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum EventKindName {
    RevokeTokens,
    RotateIdpKeys,
    IdpOutage,
    IdpThrottle,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvent {
    pub(crate) at: Human,
    pub(crate) kind: EventKindName,
    pub(crate) duration: Option<Human>,
    pub(crate) rate: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompare {
    pub(crate) policy: Option<Vec<String>>,
    pub(crate) backend: Option<Vec<String>>,
    pub(crate) alg: Option<Vec<String>>,
    pub(crate) instances: Option<Vec<u32>>,
}
