//! Which API each arrival calls: the one its trace names, or one drawn by weight.

use std::{collections::HashMap, sync::Arc};

use rand::{
    distr::{weighted::WeightedIndex, Distribution as _},
    rngs::SmallRng,
    SeedableRng as _,
};
use scenario::{Scenario, DEFAULT_API};

use crate::error::RunError;

/// Mixed into the seed of the API draws, apart from the arrivals' own.
const API_DRAWS: u64 = 0x5851_f42d_4c95_7f2d;

/// Picks each arrival's API (an index of the scenario's `apis`).
pub(crate) struct ApiPicker {
    /// The scenario's APIs by name, when it has its own (`[[apis]]`): a trace's names.
    by_name: HashMap<Arc<str>, usize>,
    draws: Draws,
}

enum Draws {
    /// One API: no draw, so that runs of one API draw what they drew before APIs existed.
    One,
    /// By weight, from the scenario's seed.
    Weighted(Box<(SmallRng, WeightedIndex<f64>)>),
}

impl ApiPicker {
    pub(crate) fn new(scenario: &Scenario) -> Result<Self, RunError> {
        let apis = &scenario.apis;
        let own_apis = !(apis.len() == 1 && apis[0].name == DEFAULT_API);
        let by_name = apis
            .iter()
            .enumerate()
            .filter(|_| own_apis)
            .map(|(i, api)| (Arc::from(api.name.as_str()), i))
            .collect();
        let draws = if apis.len() < 2 {
            Draws::One
        } else {
            let weights = WeightedIndex::new(apis.iter().map(|api| api.weight))
                .map_err(|e| RunError::Setup(format!("API weights: {e}")))?;
            Draws::Weighted(Box::new((
                SmallRng::seed_from_u64(scenario.seed ^ API_DRAWS),
                weights,
            )))
        };
        Ok(ApiPicker { by_name, draws })
    }

    /// The API of an arrival whose trace entry names `named`: that one if the scenario has
    /// it (the scenario's check makes sure), else one drawn by weight.
    pub(crate) fn pick(&mut self, named: Option<&str>) -> usize {
        if let Some(&api) = named.and_then(|name| self.by_name.get(name)) {
            return api;
        }
        match &mut self.draws {
            Draws::One => 0,
            Draws::Weighted(draws) => {
                let (rng, weights) = &mut **draws;
                weights.sample(rng)
            }
        }
    }
}
