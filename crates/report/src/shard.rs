//! Shards of a run split over several load generators: the header a shard's report carries,
//! the tally it writes beside it, and merging the shards' folders into the whole run's report.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use metrics::{merge_shards, MetricsError, ShardMeasurements, Tally};
use serde::{Deserialize, Serialize};

use crate::{
    document::{Report, LATENCY_HLOG, REPORT_JSON},
    error::ReportError,
    files::{read_bounded, to_json, write_file},
    format::num,
};

/// A shard's measurements in mergeable form, beside its `report.json`.
pub const TALLY_JSON: &str = "tally.json";

/// Which shard of a run a report is (`shard` in `report.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    /// This shard, from 0.
    pub index: u32,
    /// The run's number of shards.
    pub count: u32,
    /// The digest of the scenario as run (`Scenario::digest` of the scenario crate): shards
    /// of one run share it.
    pub scenario_digest: String,
    /// The agreed start (`--start-at`), RFC 3339; `null` when the shard started at once.
    pub start_at: Option<String>,
    /// How long after the agreed start the shard was ready to start, ms (0 when on time).
    pub late_ms: u64,
}

/// What a merged report was merged from (`merged` in `report.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MergeInfo {
    /// The number of shards merged (all of the run's).
    pub shards: u32,
    /// The digest of the scenario the shards ran.
    pub scenario_digest: String,
    /// Shards stopped before the scenario's end (their figures cover what they ran).
    pub interrupted_shards: Vec<u32>,
    /// Shards that were ready only after the agreed start.
    pub late_shards: Vec<u32>,
    /// The latest shard's start after the earliest's, ms. Timelines are aligned on whole
    /// intervals of wall-clock time, so only a spread past half an interval moves a shard's
    /// rows.
    pub start_spread_ms: f64,
}

impl MergeInfo {
    /// One phrase for the report's subtitle.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!(
            "merged from {} shards started within {} ms",
            self.shards,
            num(self.start_spread_ms)
        );
        if !self.interrupted_shards.is_empty() {
            text.push_str(&format!(
                " (interrupted: {})",
                list(&self.interrupted_shards)
            ));
        }
        if !self.late_shards.is_empty() {
            text.push_str(&format!(" (late: {})", list(&self.late_shards)));
        }
        text
    }
}

fn list(shards: &[u32]) -> String {
    let names: Vec<String> = shards.iter().map(|i| format!("shard {i}")).collect();
    names.join(", ")
}

/// Why shards cannot be merged; each names the folder or shard at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Neither the folder nor any folder inside it holds a shard's report.
    #[error("{}: no shard's report.json here or in the folders inside", path.display())]
    NoShards {
        /// The folder.
        path: PathBuf,
    },
    /// A folder given holds a report that is not a shard's.
    #[error(
        "{}: not a shard's report (a shard is run with --shard I/N or --shards N)",
        path.display()
    )]
    NotAShard {
        /// The report.
        path: PathBuf,
    },
    /// A shard's files cannot be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A shard's `tally.json` or `latency.hlog` is missing or unreadable.
    #[error("{}: {reason}", path.display())]
    Measurements {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A shard of the run is not among those given.
    #[error("{}", missing_message(missing, *count, found))]
    Missing {
        /// The missing shards' indexes.
        missing: Vec<u32>,
        /// The run's number of shards.
        count: u32,
        /// The shards found.
        found: Vec<u32>,
    },
    /// Two folders hold the same shard.
    #[error("shard {index} appears twice: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The shard.
        index: u32,
        /// One folder.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A shard of another run (another scenario or settings, or another split).
    #[error("{} is a shard of another run: {what}", path.display())]
    Foreign {
        /// The shard's report.
        path: PathBuf,
        /// How it differs from the first shard's.
        what: String,
    },
    /// The shards' measurements disagree.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

fn missing_message(missing: &[u32], count: u32, found: &[u32]) -> String {
    format!(
        "{} of {count} missing (found: {})",
        list(missing),
        if found.is_empty() {
            "none".to_owned()
        } else {
            list(found)
        }
    )
}

/// Writes a shard's tally into `dir` as [`TALLY_JSON`]; returns its path.
pub fn write_tally(dir: &Path, tally: &Tally) -> Result<PathBuf, ReportError> {
    let path = dir.join(TALLY_JSON);
    write_file(&path, &to_json(tally, &path)?)?;
    Ok(path)
}

/// A shard's folder, read.
struct ShardFolder {
    dir: PathBuf,
    report: Report,
    header: ShardHeader,
}

/// Merges the shards of one run into the whole run's report (write it with
/// [`Report::write_all`]). Each of `dirs` is a shard's report folder, or a folder whose
/// folders are (other reports there, such as an earlier merge's, are passed over).
///
/// Refuses a shard of another run (another scenario digest or number of shards), a shard
/// given twice, and a run with a shard missing, naming it. The merged report is marked
/// interrupted when a shard was, and says which.
pub fn merge_dirs(dirs: &[PathBuf]) -> Result<Report, MergeError> {
    let mut shards = Vec::new();
    for dir in dirs {
        if dir.join(REPORT_JSON).is_file() {
            let report = Report::read(&dir.join(REPORT_JSON))?;
            let Some(header) = report.run.shard.clone() else {
                return Err(MergeError::NotAShard {
                    path: dir.join(REPORT_JSON),
                });
            };
            shards.push(ShardFolder {
                dir: dir.clone(),
                report,
                header,
            });
            continue;
        }
        let mut inside: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|source| ReportError::Read {
                path: dir.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.join(REPORT_JSON).is_file())
            .collect();
        inside.sort();
        let before = shards.len();
        for sub in inside {
            let report = Report::read(&sub.join(REPORT_JSON))?;
            if let Some(header) = report.run.shard.clone() {
                shards.push(ShardFolder {
                    dir: sub,
                    report,
                    header,
                });
            }
        }
        if shards.len() == before {
            return Err(MergeError::NoShards { path: dir.clone() });
        }
    }
    let Some(first) = shards.first() else {
        return Err(MergeError::Missing {
            missing: Vec::new(),
            count: 0,
            found: Vec::new(),
        });
    };
    let (digest, count, seed) = (
        first.header.scenario_digest.clone(),
        first.header.count,
        first.report.run.seed,
    );
    let mut by_index: BTreeMap<u32, ShardFolder> = BTreeMap::new();
    for shard in shards {
        let path = shard.dir.join(REPORT_JSON);
        let foreign = |what: String| MergeError::Foreign {
            path: path.clone(),
            what,
        };
        if shard.header.scenario_digest != digest {
            return Err(foreign(format!(
                "scenario digest {}, not {digest} (another scenario, or other settings)",
                shard.header.scenario_digest
            )));
        }
        if shard.header.count != count {
            return Err(foreign(format!(
                "split into {} shards, not {count}",
                shard.header.count
            )));
        }
        if shard.report.run.seed != seed {
            return Err(foreign(format!(
                "seed {:?}, not {seed:?}",
                shard.report.run.seed
            )));
        }
        if let Some(other) = by_index.get(&shard.header.index) {
            return Err(MergeError::Duplicate {
                index: shard.header.index,
                first: other.dir.clone(),
                second: shard.dir,
            });
        }
        by_index.insert(shard.header.index, shard);
    }
    let missing: Vec<u32> = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing,
            count,
            found: by_index.keys().copied().collect(),
        });
    }

    let mut measurements = Vec::with_capacity(by_index.len());
    for shard in by_index.values() {
        let read = |name: &str| {
            let path = shard.dir.join(name);
            read_bounded(&path).map_err(|e| MergeError::Measurements {
                path: path.clone(),
                reason: format!("cannot read it: {e}"),
            })
        };
        let tally_path = shard.dir.join(TALLY_JSON);
        let tally: Tally =
            serde_json::from_slice(&read(TALLY_JSON)?).map_err(|e| MergeError::Measurements {
                path: tally_path,
                reason: format!("not a shard's tally: {e}"),
            })?;
        measurements.push(ShardMeasurements {
            tally,
            hlog: read(LATENCY_HLOG)?,
        });
    }
    let merged = merge_shards(measurements)?;
    let shards: Vec<&ShardFolder> = by_index.values().collect();
    let which = |pick: fn(&ShardFolder) -> bool| -> Vec<u32> {
        shards
            .iter()
            .filter(|s| pick(s))
            .map(|s| s.header.index)
            .collect()
    };
    let interrupted_shards = which(|s| s.report.run.interrupted);
    let late_shards = which(|s| s.header.late_ms > 0);
    let mut run = shards[0].report.run.clone();
    run.interrupted = !interrupted_shards.is_empty();
    run.shard = None;
    run.merged = Some(MergeInfo {
        shards: count,
        scenario_digest: digest,
        interrupted_shards,
        late_shards,
        start_spread_ms: merged.start_spread.as_secs_f64() * 1e3,
    });
    Ok(Report::new(run, merged.snapshot))
}
