//! The largest rates and fleets a scenario may ask for.

/// Highest arrival rate any traffic may ask for, in requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most gateway instances a scenario may have.
pub const MAX_INSTANCES: u32 = 1000;

/// Checks a number of gateway instances.
pub(crate) fn check_instances(n: u32) -> Result<(), String> {
    if (1..=MAX_INSTANCES).contains(&n) {
        Ok(())
    } else {
        Err(format!("instances must be 1 to {MAX_INSTANCES}, not {n}"))
    }
}
