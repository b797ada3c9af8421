//! The documents `tokenbench compare`, `ci` and `report` read: `report.json`,
//! `comparison.json` and `sign-bench` output, flattened into metrics, compared, exported, and
//! rendered (summary, Markdown, HTML).
//!
//! Input: one document, or two separated by a NUL byte (the baseline, then the current one;
//! one alone is compared with itself). Seeds: the committed baseline (`reports/baseline/`,
//! but for the day-long fleet report, too big to mutate usefully).

use std::path::Path;

use report::{
    regression::{self, Document, Tolerances},
    ComparisonReport, Report,
};

use crate::{targets::repository, Outcome, Target};

pub(crate) const TARGET: Target = Target {
    name: "documents",
    about: "report.json, comparison.json and sign-bench documents (compare, ci, report)",
    run,
    seeds,
};

/// Seeds larger than this are left out: mutations of a 600 KB report mostly hit its tables.
const MAX_SEED_BYTES: u64 = 64 * 1024;

fn run(data: &[u8]) -> Outcome {
    let (baseline, current) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(baseline) = std::str::from_utf8(baseline) else {
        return Outcome::Refused;
    };
    render(baseline);
    let current = match current.map(std::str::from_utf8) {
        Some(Ok(text)) => {
            render(text);
            Some(text)
        }
        Some(Err(_)) => return Outcome::Refused,
        None => None,
    };
    let Ok(old) = Document::parse(Path::new("baseline.json"), baseline) else {
        return Outcome::Refused;
    };
    let new = match current {
        Some(text) => match Document::parse(Path::new("current.json"), text) {
            Ok(document) => document,
            Err(_) => return Outcome::Refused,
        },
        None => old.clone(),
    };
    let outcome = regression::compare(&old, &new, &Tolerances::default());
    if let Ok(outcome) = &outcome {
        regression::bmf(&outcome.rows);
        regression::github(&outcome.rows, regression::Direction::Lower);
        regression::github(&outcome.rows, regression::Direction::Higher);
    }
    Outcome::of(&outcome)
}

/// What `tokenbench report` makes of the document, if it is a report or a comparison.
fn render(text: &str) {
    if let Ok(report) = Report::parse(Path::new("report.json"), text) {
        report.summary();
        report.markdown();
        report.html();
    }
    if let Ok(comparison) = ComparisonReport::parse(Path::new("comparison.json"), text) {
        comparison.summary();
        comparison.markdown();
        comparison.html();
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(repository().join("reports/baseline")) else {
        return Vec::new();
    };
    let mut seeds: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .filter(|entry| entry.metadata().is_ok_and(|m| m.len() <= MAX_SEED_BYTES))
        .filter_map(|entry| {
            let bytes = std::fs::read(entry.path()).ok()?;
            Some((entry.file_name().to_string_lossy().into_owned(), bytes))
        })
        .collect();
    seeds.sort();
    seeds
}
