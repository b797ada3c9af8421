//! Splitting a run over several load generators: which gateway instances a shard runs, and
//! the digest that tells shards of one run from shards of another.

use std::fmt::{self, Write as _};

use sha2::{Digest as _, Sha256};

use crate::{model::CacheScope, Scenario, ScenarioError};

/// Most shards a run may be split into.
pub const MAX_SHARDS: u32 = 1_000;

/// One shard of a run split over `count` load generators (`--shard index/count`, from 0).
///
/// A shard runs whole gateway instances, or whole groups of instances that share a token
/// cache (a region with `shared_cache = "region"`), dealt round-robin: together the shards
/// run every instance once. Each arrival of the unsharded schedule goes to the instance it
/// would go to unsharded, so a shard sends exactly the unsharded run's requests of its
/// instances.
///
/// ```
/// use scenario::{Scenario, Shard};
/// let mut scenario = Scenario::from_builtin("default")?;
/// scenario.gateway.instances = 5;
/// let shard: Shard = "1/2".parse()?;
/// assert_eq!(shard.instances(&scenario)?, vec![1, 3]);
/// # Ok::<(), scenario::ScenarioError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// How many shards the run has.
    pub count: u32,
}

impl Shard {
    /// Shard `index` of `count`: an error unless `index < count ≤ MAX_SHARDS`.
    pub fn new(index: u32, count: u32) -> Result<Self, ScenarioError> {
        let invalid = |message: String| ScenarioError::Override {
            key: "shard".to_owned(),
            value: format!("{index}/{count}"),
            message,
        };
        if count == 0 || count > MAX_SHARDS {
            return Err(invalid(format!(
                "the number of shards must be 1 to {MAX_SHARDS}"
            )));
        }
        if index >= count {
            return Err(invalid(format!(
                "shards are numbered from 0 to {} (one less than their number)",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// The gateway instances of `scenario` this shard runs, ascending. An error when the
    /// scenario has fewer cache groups than shards (one cache shared by the whole fleet
    /// cannot be split).
    pub fn instances(&self, scenario: &Scenario) -> Result<Vec<u32>, ScenarioError> {
        let gateway = &scenario.gateway;
        let (groups, group_of): (u32, Box<dyn Fn(u32) -> u32>) = match gateway.cache {
            CacheScope::Instance => (gateway.instances, Box::new(|i| i)),
            CacheScope::Region => (gateway.regions, Box::new(|i| gateway.region_of(i))),
            CacheScope::Fleet => (1, Box::new(|_| 0)),
        };
        if groups < self.count {
            let what = match gateway.cache {
                CacheScope::Instance => format!("{groups} gateway instances"),
                CacheScope::Region => format!(
                    "{groups} regions whose instances share a cache (shared_cache = \"region\")"
                ),
                CacheScope::Fleet => {
                    "one token cache for all instances (shared_cache = true)".to_owned()
                }
            };
            return Err(ScenarioError::Setting {
                scenario: scenario.name.clone(),
                origin: scenario.origin.clone(),
                key: "gateway.instances".to_owned(),
                message: format!(
                    "{self} needs at least {} groups of instances to deal out, and the scenario \
                     has {what}: a shard runs whole caches",
                    self.count
                ),
            });
        }
        Ok((0..gateway.instances)
            .filter(|&i| group_of(i) % self.count == self.index)
            .collect())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = ScenarioError;

    /// `I/N`, e.g. `0/3`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = || ScenarioError::Override {
            key: "shard".to_owned(),
            value: spec.to_owned(),
            message: "expected I/N, this shard's index from 0 and the number of shards, \
                      e.g. 0/3"
                .to_owned(),
        };
        let (index, count) = spec.split_once('/').ok_or_else(invalid)?;
        let number = |s: &str| s.trim().parse::<u32>().map_err(|_| invalid());
        Shard::new(number(index)?, number(count)?)
    }
}

impl Scenario {
    /// A digest of everything the scenario sets (after overrides), its origin aside: shards
    /// of one run share it, so merging can refuse a shard of another run. Hex, 32 digits.
    pub fn digest(&self) -> String {
        /// Feeds what is formatted into the hash, so a replayed trace is never held as text.
        struct Hasher(Sha256);
        impl fmt::Write for Hasher {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        let mut hasher = Hasher(Sha256::new());
        let unplaced = Scenario {
            origin: String::new(),
            ..self.clone()
        };
        // `Debug` writes every field, in declaration order; it cannot fail on a `Hasher`.
        let _ = write!(hasher, "{unplaced:?}");
        hasher.0.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
