//! Reports of a run and side-by-side comparisons of runs, and regression checks between
//! benchmark documents. Reading, comparing and rendering reports needs no driver: a report
//! is its `report.json`.
//!
//! A [`Report`] is built from a [`metrics::MetricsSnapshot`] and the run's [`RunInfo`], and
//! written by [`Report::write_all`] into a folder as `report.json` (machine-readable, with
//! `schema_version`), `report.md` (summary tables), `report.html` (self-contained: inline
//! CSS and SVG charts, no scripts or external assets) and `latency.hlog` (the HdrHistogram
//! interval log). A [`ComparisonReport`] of reports that differ in one setting writes
//! `comparison.json`, `comparison.md` and `comparison.html`. The tables come from the
//! metric catalog ([`metrics::catalog`]); `docs/metrics.md` defines every figure.
//!
//! Reports hold numbers and the names the driver gives (scenario, policy, backend,
//! algorithm): never a token, an assertion or key material.
//!
//! ```
//! use report::{regression::Document, Report, RunInfo};
//!
//! let metrics = metrics::Metrics::new(1, tokio::time::Instant::now())?;
//! let info = RunInfo { scenario: "demo".into(), ..RunInfo::default() };
//! let report = Report::new(info, metrics.snapshot(std::time::Duration::from_secs(1)));
//! let json = serde_json::to_string(&report)?;
//! let document = Document::parse("report.json".as_ref(), &json)?;
//! assert!(document.metrics.iter().any(|m| m.name == "demo/requests.sent"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod comparison;
mod document;
mod error;
mod files;
mod format;
mod html;
mod markdown;
pub mod regression;
mod shard;
mod summary;
mod svg;
mod tables;

pub use comparison::{ComparisonReport, COMPARISON_HTML, COMPARISON_JSON, COMPARISON_MD};
pub use document::{
    Report, RunInfo, RunMode, LATENCY_HLOG, REPORT_HTML, REPORT_JSON, REPORT_MD, SCHEMA_VERSION,
};
pub use error::ReportError;
pub use files::{read_text, MAX_DOCUMENT_BYTES};
pub use shard::{merge_dirs, write_tally, MergeError, MergeInfo, ShardHeader, TALLY_JSON};
pub use summary::Headline;
