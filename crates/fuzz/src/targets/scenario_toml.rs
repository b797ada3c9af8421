//! Scenario files: TOML syntax, every key and its range, events, comparisons, replayed
//! traces (found in the repository's `scenarios/` folder, as the shipped ones are).
//!
//! Input: the scenario file. Seeds: the shipped scenarios.

use scenario::Scenario;

use crate::{targets::repository, Outcome, Target};

pub(crate) const TARGET: Target = Target {
    name: "scenario_toml",
    about: "scenario files (TOML, keys, ranges, events, traces)",
    run,
    seeds,
};

fn run(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::Refused;
    };
    let origin = repository().join("scenarios").join("fuzz.toml");
    let result = Scenario::from_toml_str(text, origin);
    if let Ok(scenario) = &result {
        // The digest covers the whole scenario as run: every value must format.
        let _ = scenario.digest();
    }
    Outcome::of(&result)
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    scenario::builtin_names()
        .filter_map(|name| {
            let text = scenario::builtin(name)?;
            Some((format!("{name}.toml"), text.as_bytes().to_vec()))
        })
        .collect()
}
