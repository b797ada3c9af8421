//! The load side of tokenbench: scenario files, arrival schedules and recorded traces, and
//! the metrics and reports of a run (DESIGN §5–6).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arrivals;
pub mod driver;
pub mod metrics;
pub mod report;
pub mod scenario;
pub mod trace;
