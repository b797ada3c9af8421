//! The largest rates, fleets and costs a scenario may ask for.

use std::time::Duration;

/// Highest arrival rate any traffic may ask for, in requests per second: a whole run's, which
/// sharded over many load generators may be far beyond what one drives (schedules are drawn
/// lazily, so the rate costs no memory).
pub const MAX_RATE: f64 = 10_000_000.0;
/// Most gateway instances a scenario may have.
pub const MAX_INSTANCES: u32 = 10_000;
/// Most APIs a scenario may have (`[[apis]]`).
pub const MAX_APIS: usize = 50;
/// Most token clients (instances × APIs) a scenario may have: each holds its own state.
pub const MAX_CLIENTS: u64 = 100_000;

/// Most users a scenario's traffic may come from (`[traffic] users`): the run keeps one bit
/// per user (served or not), and the own tokens of at most `user_cache_entries` of them.
pub const MAX_USERS: u32 = 10_000_000;
/// Largest exponent of a Zipf user distribution: beyond, one user makes nearly every request.
pub const MAX_ZIPF_EXPONENT: f64 = 10.0;

/// Largest clock skew the embedded backend may be told to tolerate (APIM's `validate-jwt`
/// defaults to none; Entra tolerates 5 minutes on assertions).
pub const MAX_BACKEND_CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Largest signing cost a simulation may be told to charge (an RSA-4096 signature on the
/// slowest backend takes about 10 ms).
pub const MAX_SIGNING_COST: Duration = Duration::from_secs(1);

/// Checks a number of gateway instances.
pub(crate) fn check_instances(n: u32) -> Result<(), String> {
    if (1..=MAX_INSTANCES).contains(&n) {
        Ok(())
    } else {
        Err(format!("instances must be 1 to {MAX_INSTANCES}, not {n}"))
    }
}

/// The largest scenario file read: the shipped ones are a few KiB.
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;
