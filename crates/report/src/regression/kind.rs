//! The kinds of benchmark document.

use std::fmt;

use serde::Serialize;

/// The kinds of benchmark document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A run's `report.json`.
    Report,
    /// A `comparison.json`.
    Comparison,
    /// The output of `tokenbench sign-bench --json`.
    SignBench,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Report => "run report",
            Kind::Comparison => "comparison",
            Kind::SignBench => "sign-bench output",
        })
    }
}
