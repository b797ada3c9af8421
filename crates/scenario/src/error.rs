//! What goes wrong reading or changing a scenario, and where in its file.

use std::fmt;

use crate::trace::TraceError;

/// Where in a scenario file something is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file (or `builtin:NAME.toml`).
    pub origin: String,
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// A scenario that cannot be read or used. File errors name the file, line, column and key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {origin}: {source}")]
    Read {
        /// The file.
        origin: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{at}: TOML syntax error: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the parser says.
        message: String,
    },
    /// A key of the file is unknown, has the wrong type or an impossible value, or is missing.
    #[error("{at}: `{key}`: {message}")]
    Invalid {
        /// Where (the key, or the value the error is about).
        at: Location,
        /// The key, dotted (`traffic.rate`, `events[1].at`; array indexes from 0).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The trace a replay names could not be loaded.
    #[error("{at}: `{key}`: {error}")]
    Trace {
        /// Where the trace is named.
        at: Location,
        /// The key (`traffic.trace`).
        key: String,
        /// Why the trace could not be loaded (names the trace and its line).
        error: TraceError,
    },
    /// An override (a command-line option, or a value of a comparison) cannot be parsed.
    #[error("cannot set `{key}` to {value:?}: {message}")]
    Override {
        /// The setting (`duration`, `rate`, `policy`, `backend`, `alg`, `instances`).
        key: String,
        /// The value given.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A scenario changed after loading (overrides, or its public fields) is inconsistent.
    #[error("scenario {scenario} ({origin}): `{key}`: {message}")]
    Setting {
        /// The scenario's name.
        scenario: String,
        /// Where it came from (its file, or `builtin:NAME.toml`).
        origin: String,
        /// The key at fault (`events[0].at`, `signer.alg`, …).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No scenario file and no shipped scenario of that name.
    #[error(
        "no scenario file {name:?} and no built-in scenario of that name (built-in: {available})"
    )]
    NotFound {
        /// The name or path asked for.
        name: String,
        /// The shipped scenarios, comma-separated.
        available: String,
    },
}
