//! The load side of tokenbench: scenario files ([`scenario`]), arrival schedules and recorded
//! traces ([`arrivals`], [`trace`]), the open-model driver that runs gateway instances against
//! the mock or real servers ([`driver`]), and the metrics and reports of a run ([`metrics`],
//! [`report`]; DESIGN §5–6), and regression checks between benchmark documents
//! ([`regression`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use load::{driver, scenario::Scenario};
//! let scenario = Scenario::from_builtin("stampede")?;
//! let outcome = driver::run(&scenario, std::future::pending(), |_| {}).await?;
//! outcome.report.write_all(std::path::Path::new("reports/stampede"))?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arrivals;
mod backend_client;
pub mod driver;
pub mod metrics;
pub mod regression;
pub mod report;
pub mod scenario;
pub mod trace;
