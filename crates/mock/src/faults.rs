//! Injected faults: latency, error rate, per-client throttling, outages.

use std::{sync::Mutex, time::Duration};

use rand::{rngs::StdRng, Rng, SeedableRng as _};
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Added latency before an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Latency {
    /// None.
    #[default]
    None,
    /// Always `ms` milliseconds.
    Fixed {
        /// Milliseconds.
        ms: f64,
    },
    /// Uniform between `min_ms` and `max_ms`.
    Uniform {
        /// Lower bound, milliseconds.
        min_ms: f64,
        /// Upper bound, milliseconds.
        max_ms: f64,
    },
    /// Log-normal with this median and 99th percentile (both milliseconds): the long tail
    /// real identity providers show.
    LogNormal {
        /// Median, milliseconds.
        median_ms: f64,
        /// 99th percentile, milliseconds (≥ the median).
        p99_ms: f64,
    },
}

/// z-score of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874;

impl Latency {
    /// Checks the parameters; the error names the bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let finite = |field: &'static str, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(ConfigError::LatencyValue { field, value })
            }
        };
        match *self {
            Latency::None => Ok(()),
            Latency::Fixed { ms } => finite("ms", ms),
            Latency::Uniform { min_ms, max_ms } => {
                finite("min_ms", min_ms)?;
                finite("max_ms", max_ms)?;
                if min_ms > max_ms {
                    return Err(ConfigError::LatencyBounds { min_ms, max_ms });
                }
                Ok(())
            }
            Latency::LogNormal { median_ms, p99_ms } => {
                finite("median_ms", median_ms)?;
                finite("p99_ms", p99_ms)?;
                if median_ms <= 0.0 || p99_ms < median_ms {
                    return Err(ConfigError::LogNormal { median_ms, p99_ms });
                }
                Ok(())
            }
        }
    }

    /// Draws one delay.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        self.sampler().sample(rng)
    }

    /// The distribution prepared for many draws (its parameters computed once); each draw
    /// is what [`Latency::sample`] would draw from the same generator.
    pub fn sampler(&self) -> LatencySampler {
        LatencySampler(match *self {
            Latency::None => Prepared::Fixed(0.0),
            Latency::Fixed { ms } => Prepared::Fixed(ms),
            Latency::Uniform { min_ms, max_ms } if min_ms < max_ms => {
                Prepared::Uniform(min_ms, max_ms)
            }
            Latency::Uniform { min_ms, .. } => Prepared::Fixed(min_ms),
            Latency::LogNormal { median_ms, p99_ms } => {
                let sigma = (p99_ms / median_ms).ln() / Z_P99;
                LogNormal::new(median_ms.ln(), sigma)
                    .map_or(Prepared::Fixed(median_ms), Prepared::LogNormal)
            }
        })
    }
}

/// A [`Latency`] ready to draw from ([`Latency::sampler`]).
#[derive(Clone, Copy, Debug)]
pub struct LatencySampler(Prepared);

#[derive(Clone, Copy, Debug)]
enum Prepared {
    Fixed(f64),
    Uniform(f64, f64),
    LogNormal(LogNormal<f64>),
}

impl LatencySampler {
    /// Draws one delay.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let ms = match self.0 {
            Prepared::Fixed(ms) => ms,
            Prepared::Uniform(min_ms, max_ms) => rng.random_range(min_ms..max_ms),
            Prepared::LogNormal(distribution) => distribution.sample(rng),
        };
        // Cap at an hour: a sample from a long tail must not park a request for ever.
        Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 3600.0))
    }
}

/// The random draws of injected faults (latencies, injected errors), from one generator:
/// seeded, the same requests in the same order draw the same faults.
#[derive(Debug)]
pub(crate) struct Draws(Mutex<StdRng>);

impl Draws {
    /// Draws from `seed`, or from the operating system's entropy without one.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Draws(Mutex::new(
            seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
        ))
    }

    /// One delay of `latency` (no draw, and no lock, for [`Latency::None`]).
    pub(crate) fn latency(&self, latency: &Latency) -> Duration {
        if *latency == Latency::None {
            return Duration::ZERO;
        }
        latency.sample(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A whole number uniform in `low..=high` (no draw when they are equal).
    pub(crate) fn between(&self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(low..=high)
    }

    /// True with probability `p` (no draw for 0).
    pub(crate) fn chance(&self, p: f64) -> bool {
        p > 0.0
            && self
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .random_bool(p.min(1.0))
    }
}

/// How the token endpoint behaves during an outage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutageMode {
    /// Answer 503 `temporarily_unavailable`.
    #[default]
    ServiceUnavailable,
    /// Close the connection without an answer (the client sees a reset or an
    /// incomplete message, as when a load balancer has no healthy node).
    Reset,
}

/// Faults of the token endpoint, replaceable at run time (`PUT /admin/faults`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenFaults {
    /// Added latency.
    pub latency: Latency,
    /// Share of requests answered with an injected 500 or 503, 0.0 to 1.0.
    pub error_rate: f64,
    /// Per-client token bucket: sustained requests per second (none when absent).
    pub throttle_rps: Option<f64>,
    /// Token bucket size, at least 1 (default: one second's worth, at least 1).
    pub throttle_burst: Option<f64>,
    /// An outage lasting this many milliseconds from when these faults were set.
    pub outage_ms: Option<u64>,
    /// What an outage looks like.
    pub outage_mode: OutageMode,
}

impl TokenFaults {
    /// Checks every parameter; the error names the bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.latency.validate()?;
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(ConfigError::ErrorRate(self.error_rate));
        }
        if let Some(rps) = self.throttle_rps {
            if !(rps.is_finite() && rps > 0.0) {
                return Err(ConfigError::ThrottleRps(rps));
            }
        }
        if let Some(burst) = self.throttle_burst {
            if !(burst.is_finite() && burst >= 1.0) {
                return Err(ConfigError::ThrottleBurst(burst));
            }
        }
        Ok(())
    }

    /// The bucket size in force: `throttle_burst`, or one second's worth (at least 1).
    pub(crate) fn burst(&self, rps: f64) -> f64 {
        self.throttle_burst.unwrap_or(rps.max(1.0))
    }
}

/// One registered client's token bucket. Buckets exist only for registered clients (one
/// each, made with the registration), so invented client ids cost no memory.
#[derive(Debug, Default)]
pub(crate) struct TokenBucket(Mutex<Option<Bucket>>);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: u64,
}

impl TokenBucket {
    /// Takes one token (the bucket starts full); on refusal returns the whole seconds to wait.
    pub(crate) fn acquire(&self, rps: f64, burst: f64, now_ms: u64) -> Result<(), u64> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = state.get_or_insert(Bucket {
            tokens: burst,
            updated_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.updated_ms) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rps).min(burst);
        bucket.updated_ms = bucket.updated_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            // Retry-After is in whole seconds (RFC 9110); round up so a retry then succeeds.
            Err((((1.0 - bucket.tokens) / rps).ceil() as u64).max(1))
        }
    }

    /// Refills the bucket (it restarts full at its next use).
    pub(crate) fn reset(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
