//! Regression checks between two benchmark documents: a run's `report.json`, a
//! `comparison.json`, or the output of `tokenbench sign-bench --json`.
//!
//! [`Document::read`] recognises the kind of a file and flattens it into named [`Metric`]s;
//! [`compare`] judges each metric of a current document against a baseline within a
//! [`Tolerance`] and gives a [`Verdict`] per metric.
//!
//! Metric names are stable paths:
//!
//! - a run: `SCENARIO/PATH`, e.g. `revocation/invalidation.redundant_fetches`;
//! - each run of a comparison: `SCENARIO/VALUE/PATH`, e.g.
//!   `stampede/single-flight/stampede.max_herd`;
//! - sign-bench: `sign/BACKEND/ALG-BITS/MEASURE`, e.g. `sign/aws-lc-rs/PS256-2048/signs_per_s`.
//!
//! Each metric has a direction (lower or higher is better) and a [`Class`] that sets its
//! default tolerance: counts that a seeded run reproduces are tight, ratios taken side by
//! side in one run are moderate, raw timings are wide.
//!
//! A tolerance `R%+A` lets a metric get worse by a factor of `1 + R` and then by `A` in its
//! unit: a lower-is-better metric passes while `new <= old × (1 + R) + A`, a
//! higher-is-better one while `new >= old / (1 + R) − A`. The same band the other way
//! marks a metric as better. The factor form gives the same verdict for a rate and for its
//! reciprocal cost (signatures per second and nanoseconds per signature).

mod compare;
mod document;
mod error;
mod export;
mod kind;
#[cfg(test)]
mod tests;
mod tolerance;

pub use compare::{compare, confirmed, Outcome, Row, Source, Verdict};
pub use document::{Document, Metric};
pub use error::RegressionError;
pub use export::{bmf, github};
pub use kind::Kind;
pub use metrics::catalog::{Class, Direction};
pub use tolerance::{
    Rule, Tolerance, Tolerances, COUNT_TOLERANCE, FRACTION, FRACTION_TOLERANCE, RATIO_TOLERANCE,
    TIMING_TOLERANCE,
};
