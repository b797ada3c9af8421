//! What can fail writing or reading reports; each error names the file.

use std::{io, path::PathBuf};

use metrics::MetricsError;

/// Errors writing or reading reports; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The output folder could not be created.
    #[error("cannot create the report folder {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A JSON document could not be encoded.
    #[error("cannot encode {}: {source}", path.display())]
    Encode {
        /// The file it was for.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The latency interval log could not be written.
    #[error("cannot write {}: {source}", path.display())]
    LatencyLog {
        /// The file.
        path: PathBuf,
        /// Why.
        source: MetricsError,
    },
    /// A report file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not a report this version reads (the message has the line and column).
    #[error("{} is not a tokenbench report: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A report of another schema version.
    #[error("{} has schema_version {found}; this tokenbench reads version {expected}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The version this tokenbench reads.
        expected: u32,
    },
}
