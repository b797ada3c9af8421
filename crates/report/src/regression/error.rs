//! What goes wrong reading, comparing or configuring regression checks.

use std::{io, path::PathBuf};

use crate::{document::SCHEMA_VERSION, regression::kind::Kind};

/// Errors reading documents, comparing them, or parsing tolerances. File errors name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegressionError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not JSON.
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        source: serde_json::Error,
    },
    /// The file is JSON, but no kind of document tokenbench reads.
    #[error(
        "{} is not a benchmark document tokenbench reads (a run's report.json, a \
         comparison.json, or the output of `tokenbench sign-bench --json`): it is {found}",
        path.display()
    )]
    UnknownKind {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        found: String,
    },
    /// A report or comparison of another schema version.
    #[error(
        "{} is a {kind} with schema_version {found}; this tokenbench reads version {SCHEMA_VERSION}",
        path.display()
    )]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its kind.
        kind: Kind,
        /// The version found (as written in the file).
        found: String,
    },
    /// The file has the kind's shape but a field is missing, mistyped or impossible.
    #[error("{} is not a valid {kind}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Its kind.
        kind: Kind,
        /// What is wrong.
        message: String,
    },
    /// The two documents are of different kinds.
    #[error(
        "cannot compare {} ({baseline_kind}) with {} ({current_kind}): they are different kinds \
         of document",
        baseline.display(),
        current.display()
    )]
    KindMismatch {
        /// The baseline file.
        baseline: PathBuf,
        /// Its kind.
        baseline_kind: Kind,
        /// The current file.
        current: PathBuf,
        /// Its kind.
        current_kind: Kind,
    },
    /// The two documents measure different things (scenarios, or compared settings).
    #[error(
        "cannot compare {} with {}: {what} differ ({baseline_value} against {current_value})",
        baseline.display(),
        current.display()
    )]
    Mismatch {
        /// The baseline file.
        baseline: PathBuf,
        /// The current file.
        current: PathBuf,
        /// What differs (`the scenarios`, `the compared settings`).
        what: &'static str,
        /// The baseline's.
        baseline_value: String,
        /// The current one's.
        current_value: String,
    },
    /// No metric of the baseline is in the current document.
    #[error("{} and {} have no metric in common", baseline.display(), current.display())]
    NothingInCommon {
        /// The baseline file.
        baseline: PathBuf,
        /// The current file.
        current: PathBuf,
    },
    /// A tolerance that does not parse.
    #[error("invalid tolerance {text:?}: {message}")]
    Tolerance {
        /// The text.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// A metric rule (`NAME[:TOLERANCE]`) that does not parse.
    #[error("invalid metric rule {text:?}: {message}")]
    Rule {
        /// The text.
        text: String,
        /// What is wrong.
        message: String,
    },
}
