//! The gateway fleet a run measures: instances in regions, calling APIs; the token-client
//! counters kept per instance and per API, and the per-region and per-API figures made from
//! them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::snapshot::InstanceStats;

/// The shape of the gateway fleet: the region of each instance, and the APIs' names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// The region of each instance (regions numbered from 0).
    pub region_of: Vec<usize>,
    /// The APIs, by name (at least one).
    pub apis: Vec<String>,
}

impl Fleet {
    /// `instances` instances in one region, calling one API named `default`.
    pub fn single(instances: usize) -> Self {
        Fleet {
            region_of: vec![0; instances],
            apis: vec!["default".to_owned()],
        }
    }

    /// The number of regions.
    pub fn regions(&self) -> usize {
        self.region_of.iter().max().map_or(1, |last| last + 1)
    }
}

/// One token client of the fleet: an instance's client for one API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The gateway instance (from 0).
    pub instance: usize,
    /// The API (an index of [`Fleet::apis`]).
    pub api: usize,
}

impl From<usize> for Slot {
    /// The first API's client of `instance`.
    fn from(instance: usize) -> Self {
        Slot { instance, api: 0 }
    }
}

/// Token-client counters of an instance or an API, on their own cache lines.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct ClientCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) episodes_started: AtomicU64,
    pub(crate) episodes: AtomicU64,
    pub(crate) herd_sum: AtomicU64,
    pub(crate) max_herd: AtomicU64,
}

impl ClientCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn episode_ended(&self, herd_size: u32) {
        Self::add(&self.episodes, 1);
        Self::add(&self.herd_sum, u64::from(herd_size));
        self.max_herd
            .fetch_max(u64::from(herd_size), Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> Totals {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Totals {
            hits: load(&self.hits),
            misses: load(&self.misses),
            token_requests: load(&self.token_requests),
            episodes_started: load(&self.episodes_started),
            episodes: load(&self.episodes),
            herd_sum: load(&self.herd_sum),
            max_herd: load(&self.max_herd),
        }
    }
}

/// Counters read at one moment, summable (and so mergeable across shards).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) token_requests: u64,
    pub(crate) episodes_started: u64,
    pub(crate) episodes: u64,
    pub(crate) herd_sum: u64,
    pub(crate) max_herd: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, other: &Totals) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.token_requests += other.token_requests;
        self.episodes_started += other.episodes_started;
        self.episodes += other.episodes;
        self.herd_sum += other.herd_sum;
        self.max_herd = self.max_herd.max(other.max_herd);
    }

    pub(crate) fn sum<'a>(totals: impl IntoIterator<Item = &'a Totals>) -> Totals {
        let mut sum = Totals::default();
        for totals in totals {
            sum.add(totals);
        }
        sum
    }

    pub(crate) fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }

    fn max_herd(&self) -> Option<u64> {
        (self.episodes > 0).then_some(self.max_herd)
    }

    pub(crate) fn mean_herd(&self) -> Option<f64> {
        (self.episodes > 0).then(|| self.herd_sum as f64 / self.episodes as f64)
    }

    pub(crate) fn instance_stats(&self, instance: usize) -> InstanceStats {
        InstanceStats {
            instance,
            hits: self.hits,
            misses: self.misses,
            hit_rate: self.hit_rate(),
            token_requests: self.token_requests,
            episodes: self.episodes,
            max_herd: self.max_herd(),
        }
    }

    fn group_stats(&self, name: String, instances: usize) -> GroupStats {
        GroupStats {
            name,
            instances,
            hits: self.hits,
            misses: self.misses,
            hit_rate: self.hit_rate(),
            token_requests: self.token_requests,
            episodes: self.episodes,
            max_herd: self.max_herd(),
            mean_herd: self.mean_herd(),
        }
    }
}

/// A region's or an API's token lookups and fetches (`regions[]`, `apis[]` in the report).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// The region (`region-0`, …) or the API's name.
    pub name: String,
    /// Gateway instances in it (a region), or calling it (an API: all).
    pub instances: usize,
    /// Lookups that found a usable token.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// `hits / (hits + misses)`; `null` without lookups.
    pub hit_rate: Option<f64>,
    /// Token requests its clients issued.
    pub token_requests: u64,
    /// Miss episodes that ended.
    pub episodes: u64,
    /// Its largest herd; `null` without episodes.
    pub max_herd: Option<u64>,
    /// Its mean herd; `null` without episodes.
    pub mean_herd: Option<f64>,
}

/// Per-region figures, from the per-instance counters of the instances `measured`.
pub(crate) fn region_stats(
    fleet: &Fleet,
    instances: &[Totals],
    measured: &[usize],
) -> Vec<GroupStats> {
    (0..fleet.regions())
        .map(|region| {
            let members = || {
                measured
                    .iter()
                    .filter(move |&&i| fleet.region_of.get(i) == Some(&region))
                    .filter_map(|&i| instances.get(i))
            };
            Totals::sum(members()).group_stats(format!("region-{region}"), members().count())
        })
        .collect()
}

/// Per-API figures, of `measured` instances calling each.
pub(crate) fn api_stats(fleet: &Fleet, apis: &[Totals], measured: usize) -> Vec<GroupStats> {
    fleet
        .apis
        .iter()
        .zip(apis)
        .map(|(name, totals)| totals.group_stats(name.clone(), measured))
        .collect()
}
