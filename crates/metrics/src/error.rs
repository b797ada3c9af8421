//! What can fail in the recorder and its interval log.

/// Errors creating the recorder or writing its interval log.
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
}
