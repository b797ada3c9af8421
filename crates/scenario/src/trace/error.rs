//! What goes wrong loading a trace, and the limits that bound one.

use std::io;

/// Most entries a trace may have (a trace is held in memory during the run).
pub const MAX_TRACE_ENTRIES: usize = 10_000_000;

/// Longest line a trace may have, in bytes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Why a trace could not be loaded. Every message names the trace, and the line where there
/// is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("cannot read trace {origin}: {source}")]
    Read {
        /// The trace.
        origin: String,
        /// Why.
        source: io::Error,
    },
    /// A line of the trace is wrong.
    #[error("{origin}:{line}: {message}")]
    Invalid {
        /// The trace.
        origin: String,
        /// The line (1-based).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The trace has no entries.
    #[error("{origin}: the trace has no entries")]
    Empty {
        /// The trace.
        origin: String,
    },
    /// The trace has more than [`MAX_TRACE_ENTRIES`] entries.
    #[error(
        "{origin}:{line}: the trace has more than {max} entries; a trace is held in memory, \
         so sample it or split it",
        max = MAX_TRACE_ENTRIES
    )]
    TooLarge {
        /// The trace.
        origin: String,
        /// The line of the first entry beyond the limit.
        line: u64,
    },
}
