//! What can fail in the recorder and its interval log.

/// Errors creating the recorder, writing or reading its interval log, or merging shards.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A histogram could not be created.
    #[error("cannot create the {what} histogram: {source}")]
    Histogram {
        /// Which histogram.
        what: &'static str,
        /// Why.
        source: hdrhistogram::CreationError,
    },
    /// The interval log could not be written.
    #[error("cannot write the latency interval log: {0}")]
    LogWrite(#[source] std::io::Error),
    /// A stored interval could not be decoded or encoded again.
    #[error("cannot encode the latency interval of second {second}: {reason}")]
    LogEncode {
        /// The interval's second.
        second: u64,
        /// What failed.
        reason: String,
    },
    /// An interval log could not be read.
    #[error("cannot read the latency interval log: {0}")]
    LogRead(String),
    /// Shards' measurements that cannot be merged.
    #[error("the shards cannot be merged: {0}")]
    Mismatch(String),
}
