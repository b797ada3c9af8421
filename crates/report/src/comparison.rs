//! Reports of runs that differ in one setting, side by side (`comparison.*`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    document::{Report, SCHEMA_VERSION},
    error::ReportError,
    files::{create_dir, parse_document, read_document, to_json, write_file},
    summary::{summary, Headline},
};

/// The machine-readable comparison.
pub const COMPARISON_JSON: &str = "comparison.json";
/// The comparison's tables.
pub const COMPARISON_MD: &str = "comparison.md";
/// The comparison's page with charts.
pub const COMPARISON_HTML: &str = "comparison.html";

/// Reports of runs that differ in one setting, side by side.
#[derive(Clone, Debug)]
pub struct ComparisonReport {
    /// The setting compared (`policy`, `backend`, `alg`, `instances`).
    pub key: String,
    /// Each value with its run's report, in order.
    pub values: Vec<(String, Report)>,
}

#[derive(Serialize)]
struct ComparisonJson<'a> {
    schema_version: u32,
    key: &'a str,
    values: Vec<&'a str>,
    runs: Vec<RunJson<'a>>,
}

#[derive(Serialize)]
struct RunJson<'a> {
    value: &'a str,
    report: &'a Report,
}

/// `comparison.json` read back.
#[derive(Deserialize)]
struct ComparisonDocument {
    schema_version: u32,
    key: String,
    runs: Vec<RunDocument>,
}

impl ComparisonDocument {
    fn version(&self) -> u32 {
        self.schema_version
    }
}

#[derive(Deserialize)]
struct RunDocument {
    value: String,
    report: Report,
}

impl ComparisonReport {
    /// Writes `comparison.json`, `comparison.md` and `comparison.html` into `dir` (created
    /// if missing); returns their paths. `comparison.json` is
    /// `{schema_version, key, values: [value…], runs: [{value, report}…]}`.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        create_dir(dir)?;
        let json = dir.join(COMPARISON_JSON);
        let document = ComparisonJson {
            schema_version: SCHEMA_VERSION,
            key: &self.key,
            values: self.values.iter().map(|(v, _)| v.as_str()).collect(),
            runs: self
                .values
                .iter()
                .map(|(value, report)| RunJson { value, report })
                .collect(),
        };
        write_file(&json, &to_json(&document, &json)?)?;
        let mut files = vec![json];
        files.extend(self.write_pages(dir)?);
        Ok(files)
    }

    /// Reads a `comparison.json`.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        Ok(Self::from_document(read_document(
            path,
            ComparisonDocument::version,
        )?))
    }

    /// Parses the text of a `comparison.json`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ReportError> {
        Ok(Self::from_document(parse_document(
            path,
            text,
            ComparisonDocument::version,
        )?))
    }

    fn from_document(document: ComparisonDocument) -> Self {
        ComparisonReport {
            key: document.key,
            values: document
                .runs
                .into_iter()
                .map(|run| (run.value, run.report))
                .collect(),
        }
    }

    /// Writes `comparison.md` and `comparison.html` into `dir` (created if missing), from
    /// the comparison as it stands (read from a `comparison.json`, say); returns their paths.
    pub fn write_pages(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        create_dir(dir)?;
        let md = dir.join(COMPARISON_MD);
        write_file(&md, &self.markdown())?;
        let html = dir.join(COMPARISON_HTML);
        write_file(&html, &self.html())?;
        Ok(vec![md, html])
    }

    /// The figures that answer the comparison's question, each value against the first.
    pub fn summary(&self) -> Vec<Headline> {
        summary(&self.reports())
    }

    /// The reports, in order.
    pub(crate) fn reports(&self) -> Vec<&Report> {
        self.values.iter().map(|(_, report)| report).collect()
    }

    /// The scenario names, deduplicated in order.
    pub(crate) fn scenario(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for (_, report) in &self.values {
            if !names.contains(&report.run.scenario.as_str()) {
                names.push(&report.run.scenario);
            }
        }
        names.join(", ")
    }
}
