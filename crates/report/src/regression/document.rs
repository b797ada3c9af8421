//! Benchmark documents read and flattened into named metrics.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use metrics::catalog::{Class, Direction, CATALOG};
use serde::Deserialize;
use serde_json::Value;
use signer::{bench::BenchResult, Algorithm};

use crate::{
    document::{Report, SCHEMA_VERSION},
    files::read_bounded_text,
    regression::{error::RegressionError, kind::Kind},
};

/// One named figure of a document.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Its stable name (see the module documentation).
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit (`requests`, `µs`, `signs/s`, `×`, …).
    pub unit: &'static str,
    /// Which way it improves.
    pub direction: Direction,
    /// Its class.
    pub class: Class,
}

/// A benchmark document, flattened.
#[derive(Clone, Debug)]
pub struct Document {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its kind.
    pub kind: Kind,
    /// The scenario (reports and comparisons) or `sign-bench`.
    pub subject: String,
    /// The compared setting of a comparison (`policy`, `backend`, …).
    pub key: Option<String>,
    /// The run settings that counts depend on (`policy`, `rate`, `seed`, …; prefixed with
    /// `VALUE: ` in a comparison), for the notes of [`compare`](super::compare()).
    pub settings: Vec<(String, String)>,
    /// Its metrics, in a stable order.
    pub metrics: Vec<Metric>,
}

/// `comparison.json` as `tokenbench run --compare` writes it.
#[derive(Deserialize)]
struct ComparisonDoc {
    key: String,
    runs: Vec<ComparisonRun>,
}

#[derive(Deserialize)]
struct ComparisonRun {
    value: String,
    report: Report,
}

impl Document {
    /// Reads a benchmark document and recognises its kind.
    pub fn read(path: &Path) -> Result<Document, RegressionError> {
        let text = read_bounded_text(path).map_err(|source| RegressionError::Read {
            path: path.to_owned(),
            source,
        })?;
        Document::parse(path, &text)
    }

    /// Parses the text of a benchmark document; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Document, RegressionError> {
        let json: Value = serde_json::from_str(text).map_err(|source| RegressionError::Json {
            path: path.to_owned(),
            source,
        })?;
        let kind = detect(path, &json)?;
        let invalid = |message: String| RegressionError::Invalid {
            path: path.to_owned(),
            kind,
            message,
        };
        match kind {
            Kind::Report => {
                check_schema(path, kind, &json)?;
                let report: Report =
                    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
                Ok(Document::from_report(path, &report))
            }
            Kind::Comparison => {
                check_schema(path, kind, &json)?;
                if let Some(runs) = json["runs"].as_array() {
                    for (i, run) in runs.iter().enumerate() {
                        check_schema(path, kind, &run["report"]).map_err(|_| {
                            invalid(format!(
                                "runs[{i}].report has schema_version {}; this tokenbench reads \
                                 version {SCHEMA_VERSION}",
                                run["report"]["schema_version"]
                            ))
                        })?;
                    }
                }
                let doc: ComparisonDoc =
                    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
                Document::from_comparison(path, &doc)
            }
            Kind::SignBench => {
                let entries: Vec<BenchResult> =
                    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
                Document::from_sign_bench(path, &entries)
            }
        }
    }

    fn from_report(path: &Path, report: &Report) -> Document {
        let mut metrics = Vec::new();
        report_metrics(&report.run.scenario, report, &mut metrics);
        Document {
            path: path.to_owned(),
            kind: Kind::Report,
            subject: report.run.scenario.clone(),
            key: None,
            settings: settings("", report),
            metrics,
        }
    }

    fn from_comparison(path: &Path, doc: &ComparisonDoc) -> Result<Document, RegressionError> {
        let invalid = |message: String| RegressionError::Invalid {
            path: path.to_owned(),
            kind: Kind::Comparison,
            message,
        };
        let first = doc
            .runs
            .first()
            .ok_or_else(|| invalid("it has no runs".to_owned()))?;
        let scenario = &first.report.run.scenario;
        let mut metrics = Vec::new();
        let mut settings_list = Vec::new();
        let mut seen = HashSet::new();
        for (i, run) in doc.runs.iter().enumerate() {
            if run.value.is_empty() || run.value.contains('/') {
                return Err(invalid(format!(
                    "runs[{i}].value {:?} is empty or has a '/'",
                    run.value
                )));
            }
            if !seen.insert(run.value.as_str()) {
                return Err(invalid(format!("the value {:?} is there twice", run.value)));
            }
            if &run.report.run.scenario != scenario {
                return Err(invalid(format!(
                    "runs[{i}] is a run of {:?}, runs[0] of {scenario:?}",
                    run.report.run.scenario
                )));
            }
            let prefix = format!("{scenario}/{}", run.value);
            report_metrics(&prefix, &run.report, &mut metrics);
            // Signing cost of each backend or algorithm over the first one's, in one process.
            if i > 0 && matches!(doc.key.as_str(), "backend" | "alg") {
                if let (Some(this), Some(reference)) = (
                    run.report.metrics.signing.p50_ns,
                    first.report.metrics.signing.p50_ns,
                ) {
                    if reference > 0 {
                        metrics.push(Metric {
                            name: format!("{prefix}/signing.p50_ns_vs_{}", first.value),
                            value: this as f64 / reference as f64,
                            unit: "×",
                            direction: Direction::Lower,
                            class: Class::Ratio,
                        });
                    }
                }
            }
            settings_list.extend(settings(&format!("{}: ", run.value), &run.report));
        }
        Ok(Document {
            path: path.to_owned(),
            kind: Kind::Comparison,
            subject: scenario.clone(),
            key: Some(doc.key.clone()),
            settings: settings_list,
            metrics,
        })
    }

    fn from_sign_bench(path: &Path, entries: &[BenchResult]) -> Result<Document, RegressionError> {
        let invalid = |message: String| RegressionError::Invalid {
            path: path.to_owned(),
            kind: Kind::SignBench,
            message,
        };
        let mut metrics = Vec::new();
        // The first backend listed for each algorithm, key size and thread count is the reference of the
        // ratios (`rsa` for PS256 and RS256 in sign-bench's order, `ring` for the others).
        let mut reference: HashMap<(Algorithm, usize, u32), &BenchResult> = HashMap::new();
        let mut seen = HashSet::new();
        for (i, e) in entries.iter().enumerate() {
            for (field, v) in [
                ("signs_per_sec", e.signs_per_sec),
                ("ns_per_sign", e.ns_per_sign),
                ("assertions_per_sec", e.assertions_per_sec),
                ("assertion_ns", e.assertion_ns),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    return Err(invalid(format!(
                        "[{i}].{field} must be a number above 0, not {v}"
                    )));
                }
            }
            for (field, v) in [("backend", &e.backend)] {
                if v.is_empty() || v.contains('/') {
                    return Err(invalid(format!(
                        "[{i}].{field} {v:?} is empty or has a '/'"
                    )));
                }
            }
            if e.threads == 0 {
                return Err(invalid(format!("[{i}].threads must be at least 1")));
            }
            if !seen.insert((e.backend.as_str(), e.alg, e.key_bits, e.threads)) {
                return Err(invalid(format!(
                    "{} {} {} bits on {} threads is there twice",
                    e.backend, e.alg, e.key_bits, e.threads
                )));
            }
            // One thread keeps the names of documents written before threads were measured.
            let threads = match e.threads {
                1 => String::new(),
                n => format!("-x{n}"),
            };
            let prefix = format!("sign/{}/{}-{}{threads}", e.backend, e.alg, e.key_bits);
            let timing = |measure: &str, value: f64, unit: &'static str| Metric {
                name: format!("{prefix}/{measure}"),
                value,
                unit,
                direction: Direction::Higher,
                class: Class::Timing,
            };
            metrics.push(timing("signs_per_s", e.signs_per_sec, "signs/s"));
            metrics.push(timing(
                "assertions_per_s",
                e.assertions_per_sec,
                "assertions/s",
            ));
            // Both figures come from the same interleaved rounds.
            metrics.push(Metric {
                name: format!("{prefix}/assertion_overhead"),
                value: e.assertion_ns / e.ns_per_sign,
                unit: "×",
                direction: Direction::Lower,
                class: Class::Ratio,
            });
            let base = *reference.entry((e.alg, e.key_bits, e.threads)).or_insert(e);
            if base.backend != e.backend {
                metrics.push(Metric {
                    name: format!("{prefix}/signs_per_s_vs_{}", base.backend),
                    value: e.signs_per_sec / base.signs_per_sec,
                    unit: "×",
                    direction: Direction::Higher,
                    class: Class::Ratio,
                });
            }
        }
        Ok(Document {
            path: path.to_owned(),
            kind: Kind::SignBench,
            subject: "sign-bench".to_owned(),
            key: None,
            settings: Vec::new(),
            metrics,
        })
    }
}

/// The kind of a parsed document, from its shape.
fn detect(path: &Path, json: &Value) -> Result<Kind, RegressionError> {
    let unknown = |found: String| RegressionError::UnknownKind {
        path: path.to_owned(),
        found,
    };
    match json {
        Value::Array(items) => {
            let all_entries = items
                .iter()
                .all(|item| item.get("backend").is_some() && item.get("alg").is_some());
            if all_entries {
                Ok(Kind::SignBench)
            } else {
                Err(unknown(
                    "an array whose elements are not sign-bench results (backend, alg, …)"
                        .to_owned(),
                ))
            }
        }
        Value::Object(map) => {
            if map.contains_key("runs") && map.contains_key("key") {
                Ok(Kind::Comparison)
            } else if map.contains_key("scenario") && map.contains_key("requests") {
                Ok(Kind::Report)
            } else {
                let mut keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
                if map.len() > keys.len() {
                    keys.push("…");
                }
                Err(unknown(if keys.is_empty() {
                    "an empty object".to_owned()
                } else {
                    format!("an object with keys {}", keys.join(", "))
                }))
            }
        }
        Value::Null => Err(unknown("null".to_owned())),
        Value::Bool(_) => Err(unknown("a boolean".to_owned())),
        Value::Number(_) => Err(unknown("a number".to_owned())),
        Value::String(_) => Err(unknown("a string".to_owned())),
    }
}

fn check_schema(path: &Path, kind: Kind, json: &Value) -> Result<(), RegressionError> {
    match &json["schema_version"] {
        Value::Number(n) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => Ok(()),
        Value::Null => Err(RegressionError::Schema {
            path: path.to_owned(),
            kind,
            found: "missing".to_owned(),
        }),
        other => Err(RegressionError::Schema {
            path: path.to_owned(),
            kind,
            found: other.to_string(),
        }),
    }
}

/// The settings of a run that its counts depend on.
fn settings(prefix: &str, r: &Report) -> Vec<(String, String)> {
    let mut list = vec![
        ("policy", r.run.policy.clone()),
        ("backend", r.run.backend.clone()),
        ("alg", r.run.alg.clone()),
        ("instances", r.metrics.instances.to_string()),
        (
            "duration",
            format!("{:.1} s", r.metrics.duration.as_secs_f64()),
        ),
        ("interrupted", r.run.interrupted.to_string()),
    ];
    if let Some(rate) = r.run.rate {
        list.push(("rate", format!("{rate} req/s")));
    }
    if let Some(seed) = r.run.seed {
        list.push(("seed", seed.to_string()));
    }
    list.into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
}

/// A run's metrics, named `PREFIX/PATH`: every judged figure of the catalog that has data.
fn report_metrics(prefix: &str, r: &Report, out: &mut Vec<Metric>) {
    for description in CATALOG {
        let Some(judgement) = description.judged else {
            continue;
        };
        if let Some(value) = (description.value)(&r.metrics).filter(|v| v.is_finite()) {
            out.push(Metric {
                name: format!("{prefix}/{}", description.path),
                value,
                unit: description.unit.name(),
                direction: judgement.direction,
                class: judgement.class,
            });
        }
    }
}
