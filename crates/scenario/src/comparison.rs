//! Comparisons: the same scenario run once per value of one setting.

use crate::{error::ScenarioError, overrides::Overrides};

/// A comparison: the same scenario run once per value of one setting (same seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// The setting: `policy`, `backend`, `alg` or `instances`.
    pub key: &'static str,
    /// Its values, as written (each one parses; see [`Comparison::runs`]).
    pub values: Vec<String>,
}

/// The settings a comparison may vary.
const COMPARABLE: [&str; 4] = ["policy", "backend", "alg", "instances"];

impl Comparison {
    /// Parses `KEY=V1,V2,…` (the `--compare` option), e.g. `policy=apim,single-flight`.
    pub fn parse(spec: &str) -> Result<Comparison, ScenarioError> {
        let fail = |key: &str, message: String| ScenarioError::Override {
            key: key.to_owned(),
            value: spec.to_owned(),
            message,
        };
        let (key, values) = spec
            .split_once('=')
            .ok_or_else(|| fail("compare", "expected KEY=V1,V2,…".to_owned()))?;
        let key = key.trim();
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        Comparison::new(key, values).map_err(|message| fail("compare", message))
    }

    pub(crate) fn new(key: &str, values: Vec<String>) -> Result<Comparison, String> {
        let key = COMPARABLE.into_iter().find(|k| *k == key).ok_or_else(|| {
            format!(
                "cannot compare {key:?}; expected one of {}",
                COMPARABLE.join(", ")
            )
        })?;
        if values.is_empty() {
            return Err("no values to compare".to_owned());
        }
        for (i, value) in values.iter().enumerate() {
            if values[..i].contains(value) {
                return Err(format!("{value:?} is listed twice"));
            }
            Overrides::default()
                .set(key, value)
                .map_err(|e| e.to_string())?;
        }
        Ok(Comparison { key, values })
    }

    /// One set of overrides per value, with the value as written.
    pub fn runs(&self) -> Result<Vec<(String, Overrides)>, ScenarioError> {
        self.values
            .iter()
            .map(|value| {
                let mut overrides = Overrides::default();
                overrides.set(self.key, value)?;
                Ok((value.clone(), overrides))
            })
            .collect()
    }
}
