//! Changes to a loaded scenario as the command line makes them, and the parsers of their
//! values.

use std::time::Duration;

use client::CachePolicy;
use signer::{Algorithm, CryptoBackend};

use crate::{
    error::ScenarioError,
    limits::check_instances,
    traffic::check_rate,
    values::{AlgName, BackendName, Human, PolicyName},
};

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
            "duration" => self.duration = Some(parse_duration(value).map_err(fail)?),
            "rate" => self.rate = Some(parse_rate(value).map_err(fail)?),
            "policy" => self.policy = Some(parse_policy(value).map_err(fail)?),
            "backend" => self.backend = Some(parse_backend(value).map_err(fail)?),
            "alg" => self.alg = Some(parse_alg(value).map_err(fail)?),
            "instances" => self.instances = Some(parse_instances(value).map_err(fail)?),
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

/// A run length (`30s`, `2m`, `1m 30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<Human>().map(|human| human.0)
}

/// A mean arrival rate in requests per second, above 0 and at most [`MAX_RATE`](crate::MAX_RATE).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number of requests per second".to_owned())?;
    check_rate("rate", rate, false).map_err(|e| e.message)?;
    Ok(rate)
}

/// A cache policy: `apim`, `single-flight` or `refresh-ahead`.
pub fn parse_policy(text: &str) -> Result<CachePolicy, String> {
    text.parse::<PolicyName>().map(|name| name.0)
}

/// A crypto backend compiled into this build: `rsa`, `ring` or `aws-lc-rs`.
pub fn parse_backend(text: &str) -> Result<&'static dyn CryptoBackend, String> {
    text.parse::<BackendName>().map(|name| name.0)
}

/// A signature algorithm: `PS256`, `RS256`, `ES256` or `EdDSA`.
pub fn parse_alg(text: &str) -> Result<Algorithm, String> {
    text.parse::<AlgName>().map(|name| name.0)
}

/// A number of gateway instances, 1 to [`MAX_INSTANCES`](crate::MAX_INSTANCES).
pub fn parse_instances(text: &str) -> Result<u32, String> {
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| "expected a whole number".to_owned())?;
    check_instances(n)?;
    Ok(n)
}
