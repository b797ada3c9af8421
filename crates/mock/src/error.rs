//! Configuration errors, shared by the configuration and the faults it holds.

use std::time::Duration;

/// An impossible setting; the message names it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `tenants` is empty.
    #[error("tenants: at least one tenant is required")]
    NoTenant,
    /// `token_lifetime` is below 1 s or above [`MAX_TOKEN_LIFETIME`](crate::MAX_TOKEN_LIFETIME).
    #[error("token_lifetime must be within 1s and 1 day (86400s), not {lifetime:?}")]
    TokenLifetime {
        /// The lifetime given.
        lifetime: Duration,
    },
    /// `token_lifetime_max` is below `token_lifetime` or above
    /// [`MAX_TOKEN_LIFETIME`](crate::MAX_TOKEN_LIFETIME).
    #[error(
        "token_lifetime_max must be within token_lifetime ({min:?}) and 1 day (86400s), not {max:?}"
    )]
    TokenLifetimeMax {
        /// `token_lifetime`.
        min: Duration,
        /// The maximum given.
        max: Duration,
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
