//! The real-time driver: a scenario's arrivals, on gateway instances that each ask their
//! token client and call the protected backend, against the embedded mock servers (or real
//! ones), measured into a [`report::Report`].
//!
//! Each arrival starts at its scheduled time whatever earlier requests are doing (open
//! model); its latency counts from that intended start, so a slow system cannot hide its
//! queueing (no coordinated omission). An arrival that finds its instance at the in-flight
//! limit is dropped and counted. Timed events (revocations, key rotations, outages,
//! throttling) act on the embedded identity provider and backend.
//!
//! [`run`] runs a scenario once and returns its report; [`run_and_report`] runs it once or
//! once per compared value and writes every report.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use scenario::Scenario;
//! let scenario = Scenario::from_builtin("stampede")?;
//! let outcome = driver::run(&scenario, driver::Mode::RealTime, std::future::pending(), |_| {}).await?;
//! outcome.report.write_all(std::path::Path::new("reports/stampede"))?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api_picker;
mod backend_client;
mod credentials;
mod dispatch;
mod error;
mod events;
mod fast_hits;
mod gateway;
mod in_process;
mod mode;
mod provider_keys;
mod run;
mod runner;
mod simulate;
mod target;
mod users;

pub use error::RunError;
pub use mode::Mode;
pub use run::{run, run_shard, Progress, RunOutcome, ShardPlan};
pub use runner::{folder_name, run_and_report, run_shard_and_report, RunListener};
pub use simulate::simulate_and_report;
