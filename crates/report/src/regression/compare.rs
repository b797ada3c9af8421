//! Judging a current document against a baseline, metric by metric.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    path::PathBuf,
};

use metrics::catalog::{Class, Direction};
use serde::Serialize;

use crate::regression::{
    document::{Document, Metric},
    error::RegressionError,
    kind::Kind,
    tolerance::{Tolerance, Tolerances},
};

/// The verdict on one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Within its tolerance.
    Ok,
    /// Better than its tolerance band.
    Better,
    /// Worse than its tolerance allows.
    Regression,
    /// Only in the current document.
    New,
    /// Only in the baseline.
    Missing,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Better => "better",
            Verdict::Regression => "REGRESSION",
            Verdict::New => "new",
            Verdict::Missing => "missing",
        })
    }
}

/// One metric of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The metric's name.
    pub name: String,
    /// Its unit.
    pub unit: &'static str,
    /// Which way it improves.
    pub direction: Direction,
    /// Its class.
    pub class: Class,
    /// The baseline's value.
    pub old: Option<f64>,
    /// The current value.
    pub new: Option<f64>,
    /// `(new − old) / old` in per cent; `None` without both values or when `old` is 0.
    pub change_pct: Option<f64>,
    /// The tolerance it was judged with.
    pub tolerance: Tolerance,
    /// The verdict.
    pub verdict: Verdict,
}

/// Judges `new` against `old`.
pub(crate) fn judge(old: f64, new: f64, direction: Direction, tolerance: Tolerance) -> Verdict {
    let (low, high) = tolerance.band(old);
    // Room for the last bit of a float that went through decimal text and back.
    let slack = 1e-9 * old.abs().max(1.0);
    let (worse, better) = match direction {
        Direction::Lower => (new > high + slack, new < low - slack),
        Direction::Higher => (new < low - slack, new > high + slack),
    };
    if worse {
        Verdict::Regression
    } else if better {
        Verdict::Better
    } else {
        Verdict::Ok
    }
}

/// Where the two sides of an [`Outcome`] came from.
#[derive(Clone, Debug, Serialize)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Its kind.
    pub kind: Kind,
    /// Its scenario, or `sign-bench`.
    pub subject: String,
}

impl From<&Document> for Source {
    fn from(doc: &Document) -> Self {
        Source {
            path: doc.path.clone(),
            kind: doc.kind,
            subject: doc.subject.clone(),
        }
    }
}

/// The comparison of two documents.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The baseline.
    pub baseline: Source,
    /// The current document.
    pub current: Source,
    /// One row per metric: the baseline's in order, then those only in the current one.
    pub rows: Vec<Row>,
    /// Run settings that differ between the two (counts may then differ for that reason).
    pub notes: Vec<String>,
}

impl Outcome {
    /// The rows with [`Verdict::Regression`].
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|row| row.verdict == Verdict::Regression)
    }

    /// How many rows have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows
            .iter()
            .filter(|row| row.verdict == verdict)
            .count()
    }
}

/// Regressions confirmed by a second run: the second run's outcome, in which a metric is a
/// regression only if the first run's was too; and the first run's regressions that the
/// second did not confirm (noise rarely hits the same metric twice).
pub fn confirmed(first: &Outcome, mut second: Outcome) -> (Outcome, Vec<String>) {
    let regressed_first: HashSet<&str> = first.regressions().map(|r| r.name.as_str()).collect();
    for row in &mut second.rows {
        if row.verdict == Verdict::Regression && !regressed_first.contains(row.name.as_str()) {
            if let Some(earlier) = first.rows.iter().find(|r| r.name == row.name) {
                *row = earlier.clone();
            }
        }
    }
    let regressed_second: HashSet<&str> = second.regressions().map(|r| r.name.as_str()).collect();
    let unconfirmed = first
        .regressions()
        .filter(|r| !regressed_second.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect();
    (second, unconfirmed)
}

/// Compares `current` with `baseline`, each metric within its tolerance.
///
/// Documents of different kinds, of different scenarios, comparisons of different settings
/// and documents without a metric in common are errors.
pub fn compare(
    baseline: &Document,
    current: &Document,
    tolerances: &Tolerances,
) -> Result<Outcome, RegressionError> {
    if baseline.kind != current.kind {
        return Err(RegressionError::KindMismatch {
            baseline: baseline.path.clone(),
            baseline_kind: baseline.kind,
            current: current.path.clone(),
            current_kind: current.kind,
        });
    }
    let mismatch = |what, b: &str, c: &str| RegressionError::Mismatch {
        baseline: baseline.path.clone(),
        current: current.path.clone(),
        what,
        baseline_value: b.to_owned(),
        current_value: c.to_owned(),
    };
    if baseline.subject != current.subject {
        return Err(mismatch(
            "the scenarios",
            &baseline.subject,
            &current.subject,
        ));
    }
    if baseline.key != current.key {
        return Err(mismatch(
            "the compared settings",
            baseline.key.as_deref().unwrap_or("none"),
            current.key.as_deref().unwrap_or("none"),
        ));
    }
    let current_by_name: HashMap<&str, &Metric> = current
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let baseline_names: HashSet<&str> = baseline.metrics.iter().map(|m| m.name.as_str()).collect();
    let mut rows = Vec::new();
    for old in &baseline.metrics {
        let tolerance = tolerances.for_metric(old);
        let row = match current_by_name.get(old.name.as_str()) {
            Some(new) => Row {
                name: old.name.clone(),
                unit: new.unit,
                direction: new.direction,
                class: new.class,
                old: Some(old.value),
                new: Some(new.value),
                change_pct: (old.value != 0.0)
                    .then(|| (new.value - old.value) / old.value.abs() * 100.0),
                tolerance,
                verdict: judge(old.value, new.value, new.direction, tolerance),
            },
            None => Row {
                name: old.name.clone(),
                unit: old.unit,
                direction: old.direction,
                class: old.class,
                old: Some(old.value),
                new: None,
                change_pct: None,
                tolerance,
                verdict: Verdict::Missing,
            },
        };
        rows.push(row);
    }
    if !baseline.metrics.is_empty() && rows.iter().all(|row| row.verdict == Verdict::Missing) {
        return Err(RegressionError::NothingInCommon {
            baseline: baseline.path.clone(),
            current: current.path.clone(),
        });
    }
    for new in &current.metrics {
        if !baseline_names.contains(new.name.as_str()) {
            rows.push(Row {
                name: new.name.clone(),
                unit: new.unit,
                direction: new.direction,
                class: new.class,
                old: None,
                new: Some(new.value),
                change_pct: None,
                tolerance: tolerances.for_metric(new),
                verdict: Verdict::New,
            });
        }
    }
    let current_settings: HashMap<&str, &str> = current
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let notes = baseline
        .settings
        .iter()
        .filter_map(|(key, old)| {
            let new = current_settings.get(key.as_str())?;
            (old != new).then(|| format!("{key} differs: {old} in the baseline, {new} now"))
        })
        .collect();
    Ok(Outcome {
        baseline: baseline.into(),
        current: current.into(),
        rows,
        notes,
    })
}
