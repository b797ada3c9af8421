//! Fuzz targets for every parser of untrusted input in tokenbench.
//!
//! Each [`Target`] takes arbitrary bytes, feeds them to one parser through its public entry
//! point, and panics only when the code under test breaks a promise: a panic inside it, a
//! 5xx from the mock identity provider, a token the provider issued that its own backend
//! refuses, a secret in `Debug` output, a backend that judges one token two ways. Errors are
//! the expected answer to most inputs and count as [`Outcome::Refused`].
//!
//! Two harnesses run the same targets:
//! - `cargo test -p tokenbench-fuzz` (and so `.ci/run`): every seed of the committed corpus
//!   (`crates/fuzz/corpus/TARGET/`) and every crash kept as a regression
//!   (`crates/fuzz/regressions/TARGET/`) and the target's other seeds ([`Target::seeds`]),
//!   then a fixed number of seeded mutations of the
//!   seeds ([`mutate::Mutator`]): deterministic, seconds per target.
//! - `scripts/fuzz.sh TARGET SECONDS`: coverage-guided AFL++ through cargo-afl on stable
//!   Rust, the binary `tokenbench-afl` (feature `afl`), starting from the same seeds.
//!
//! ```
//! let target = fuzz::target("trace").unwrap();
//! let outcome = (target.run)(b"time,api\n0,orders\n");
//! assert_eq!(outcome, fuzz::Outcome::Accepted);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod mutate;
mod runtime;
mod targets;

use std::path::{Path, PathBuf};

/// What a target made of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The input was taken as valid.
    Accepted,
    /// The input was refused with an error, as most inputs are.
    Refused,
}

impl Outcome {
    fn of<T, E>(result: &Result<T, E>) -> Self {
        if result.is_ok() {
            Outcome::Accepted
        } else {
            Outcome::Refused
        }
    }
}

/// One fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name: the folder of its corpus and the argument of `scripts/fuzz.sh`.
    pub name: &'static str,
    /// What it feeds its input to.
    pub about: &'static str,
    /// Runs one input. Panics only on a broken promise of the code under test.
    pub run: fn(&[u8]) -> Outcome,
    /// Valid inputs besides the committed corpus, named: those the repository already holds
    /// (shipped scenarios and traces, baseline reports) and those that must not be committed
    /// (private keys, generated at run time).
    pub seeds: fn() -> Vec<(String, Vec<u8>)>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    targets::token_endpoint::TARGET,
    targets::backend_bearer::TARGET,
    targets::token_response::TARGET,
    targets::scenario_toml::TARGET,
    targets::trace::TARGET,
    targets::documents::TARGET,
    targets::keys::TARGET,
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The folder of the committed seed corpus of `target`.
pub fn corpus_dir(target: &str) -> PathBuf {
    crate_dir().join("corpus").join(target)
}

/// The folder of the crash inputs of `target` kept as regression tests.
pub fn regressions_dir(target: &str) -> PathBuf {
    crate_dir().join("regressions").join(target)
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
