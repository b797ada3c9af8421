//! Histogram bounds and helpers shared by the recorder, the snapshot and the interval log.

use hdrhistogram::Histogram;

use crate::error::MetricsError;

/// Highest latency or service time recorded (1 hour, in µs); longer ones count as this.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Highest signing time recorded (60 s, in ns); longer ones count as this.
pub const MAX_SIGNING_NS: u64 = 60_000_000_000;
/// Largest herd size recorded; larger ones count as this.
pub const MAX_HERD: u64 = 1 << 32;
/// Significant digits of every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

pub(crate) fn new_histogram(high: u64, what: &'static str) -> Result<Histogram<u64>, MetricsError> {
    Histogram::new_with_bounds(1, high, SIGNIFICANT_DIGITS)
        .map_err(|source| MetricsError::Histogram { what, source })
}

/// Adds `from` into `into`; values `into` cannot hold count as its highest.
pub(crate) fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if from.is_empty() {
        return;
    }
    if into.add(from).is_err() {
        for value in from.iter_recorded() {
            into.saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }
}

pub(crate) fn p99(histogram: &Histogram<u64>) -> Option<u64> {
    (!histogram.is_empty()).then(|| histogram.value_at_quantile(0.99))
}
