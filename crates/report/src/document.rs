//! The report of one run: `report.json`'s document, read and written with its companions.

use std::{
    fs,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
};

use metrics::MetricsSnapshot;
use serde::{Deserialize, Serialize};

use crate::{
    error::ReportError,
    files::{create_dir, parse_document, read_document, to_json, write_file},
    format::num,
    shard::{MergeInfo, ShardHeader},
    summary::{summary, Headline},
};

/// The `schema_version` of `report.json` and `comparison.json`.
pub const SCHEMA_VERSION: u32 = 1;
/// The machine-readable report.
pub const REPORT_JSON: &str = "report.json";
/// The summary tables.
pub const REPORT_MD: &str = "report.md";
/// The self-contained page with charts.
pub const REPORT_HTML: &str = "report.html";
/// The HdrHistogram interval log.
pub const LATENCY_HLOG: &str = "latency.hlog";

/// How a run's time passed (`mode` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// In real time, over sockets (`tokenbench run`); what reports without `mode` were.
    #[default]
    RealTime,
    /// On a virtual clock, in-process (`tokenbench simulate`).
    Simulated,
}

impl RunMode {
    /// `real-time` or `simulated`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::RealTime => "real-time",
            RunMode::Simulated => "simulated",
        }
    }
}

/// What the driver knows about a run that the metrics do not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Real time or simulated.
    #[serde(default)]
    pub mode: RunMode,
    /// The scenario's name.
    pub scenario: String,
    /// The cache policy (`apim`, `single-flight`, `refresh-ahead`).
    pub policy: String,
    /// The signer backend (`rsa`, `ring`, `aws-lc-rs`; or what the driver calls a
    /// client-secret run).
    pub backend: String,
    /// The signing algorithm.
    pub alg: String,
    /// The scenario's nominal arrival rate (requests per second), if it has one.
    #[serde(default)]
    pub rate: Option<f64>,
    /// The scenario's seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Whether the run was stopped (Ctrl-C) before its scenario's end: its figures cover
    /// its `duration_s` only.
    #[serde(default)]
    pub interrupted: bool,
    /// The virtual time charged per signature in a simulated run, µs (`null` otherwise).
    #[serde(default)]
    pub signing_cost_us: Option<u64>,
    /// Which shard of a sharded run this report is (absent for a whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardHeader>,
    /// The shards this report was merged from (absent unless written by `tokenbench merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeInfo>,
}

/// The report of one run: `report.json`'s document, the run's settings and its figures side
/// by side at the top level (`{"schema_version", "scenario", …, "requests": {…}, …}`).
///
/// Figures without data (percentiles of an empty histogram, a hit rate without lookups)
/// are `null`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run's settings.
    #[serde(flatten)]
    pub run: RunInfo,
    /// What was measured.
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
}

impl Report {
    /// The report of a run from what its metrics measured.
    pub fn new(mut run: RunInfo, metrics: MetricsSnapshot) -> Self {
        run.rate = run.rate.filter(|r| r.is_finite());
        Report {
            schema_version: SCHEMA_VERSION,
            run,
            metrics,
        }
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        read_document(path, Report::version)
    }

    /// Parses the text of a `report.json`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ReportError> {
        parse_document(path, text, Report::version)
    }

    fn version(&self) -> u32 {
        self.schema_version
    }

    /// Writes `report.json`, `report.md`, `report.html` and `latency.hlog` into `dir`
    /// (created if missing); returns their paths.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        create_dir(dir)?;
        let json = dir.join(REPORT_JSON);
        write_file(&json, &to_json(self, &json)?)?;
        let mut files = vec![json];
        files.extend(self.write_pages(dir)?);
        let hlog = dir.join(LATENCY_HLOG);
        self.write_hlog(&hlog)?;
        files.push(hlog);
        Ok(files)
    }

    /// Writes `report.md` and `report.html` into `dir` (created if missing), from the report
    /// as it stands: a report read back from `report.json` renders the same pages (its
    /// `latency.hlog` is left as it is); returns their paths.
    pub fn write_pages(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        create_dir(dir)?;
        let md = dir.join(REPORT_MD);
        write_file(&md, &self.markdown())?;
        let html = dir.join(REPORT_HTML);
        write_file(&html, &self.html())?;
        Ok(vec![md, html])
    }

    /// The figures that answer the run's question, in the order the report leads with them
    /// (see the summary in `docs/metrics.md`).
    pub fn summary(&self) -> Vec<Headline> {
        summary(&[self])
    }

    /// One line of the run's settings: mode, policy, backend, instances, signing cost charged,
    /// rate, length, seed, start.
    pub(crate) fn subtitle(&self) -> String {
        let run = &self.run;
        let duration_s = self.metrics.duration.as_secs_f64();
        let mut parts = vec![
            run.mode.as_str().to_owned(),
            format!("policy {}", run.policy),
            format!("backend {} {}", run.backend, run.alg),
            format!("{} instances", self.metrics.instances),
        ];
        if let Some(cost) = run.signing_cost_us {
            parts.push(format!("{cost} µs per signature charged"));
        }
        if let Some(rate) = run.rate {
            parts.push(format!("{} req/s nominal", num(rate)));
        }
        parts.push(if run.interrupted {
            format!("interrupted after {} s", num(duration_s))
        } else {
            format!("{} s", num(duration_s))
        });
        if let Some(shard) = &run.shard {
            parts.push(format!("shard {}/{}", shard.index, shard.count));
        }
        if let Some(merged) = &run.merged {
            parts.push(merged.describe());
        }
        if let Some(seed) = run.seed {
            parts.push(format!("seed {seed}"));
        }
        if let Some(started) = self.metrics.started_at_rfc3339() {
            parts.push(format!("started {started}"));
        }
        parts.join(" · ")
    }

    fn write_hlog(&self, path: &Path) -> Result<(), ReportError> {
        let write_error = |source| ReportError::Write {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::create(path).map_err(write_error)?;
        let mut out = BufWriter::new(file);
        self.metrics
            .latency_log
            .write_to(&mut out)
            .map_err(|source| ReportError::LatencyLog {
                path: path.to_owned(),
                source,
            })?;
        out.flush().map_err(write_error)
    }
}
