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

use std::{
    collections::{HashMap, HashSet},
    fmt, fs, io,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::{Report, SCHEMA_VERSION};

/// Default tolerance of counts: 2 % and one unit (a herd of 11 against 12 passes; 1 against
/// 2 fails only under a tighter rule).
pub const COUNT_TOLERANCE: Tolerance = Tolerance {
    relative: 0.02,
    absolute: 1.0,
};
/// Default tolerance of fractions of counts (the cache hit rate): 1 %.
pub const FRACTION_TOLERANCE: Tolerance = Tolerance {
    relative: 0.01,
    absolute: 0.0,
};
/// Default tolerance of ratios taken side by side in one run: 15 %.
pub const RATIO_TOLERANCE: Tolerance = Tolerance {
    relative: 0.15,
    absolute: 0.0,
};
/// Default tolerance of raw timings: 50 % (1.5 times slower).
pub const TIMING_TOLERANCE: Tolerance = Tolerance {
    relative: 0.50,
    absolute: 0.0,
};

/// The unit of fractions (the hit rate); their default tolerance is [`FRACTION_TOLERANCE`].
pub const FRACTION: &str = "fraction";

/// Errors reading documents, comparing them, or parsing tolerances. File errors name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegressionError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not JSON.
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        source: serde_json::Error,
    },
    /// The file is JSON, but no kind of document tokenbench reads.
    #[error(
        "{} is not a benchmark document tokenbench reads (a run's report.json, a \
         comparison.json, or the output of `tokenbench sign-bench --json`): it is {found}",
        path.display()
    )]
    UnknownKind {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        found: String,
    },
    /// A report or comparison of another schema version.
    #[error(
        "{} is a {kind} with schema_version {found}; this tokenbench reads version {SCHEMA_VERSION}",
        path.display()
    )]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its kind.
        kind: Kind,
        /// The version found (as written in the file).
        found: String,
    },
    /// The file has the kind's shape but a field is missing, mistyped or impossible.
    #[error("{} is not a valid {kind}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Its kind.
        kind: Kind,
        /// What is wrong.
        message: String,
    },
    /// The two documents are of different kinds.
    #[error(
        "cannot compare {} ({baseline_kind}) with {} ({current_kind}): they are different kinds \
         of document",
        baseline.display(),
        current.display()
    )]
    KindMismatch {
        /// The baseline file.
        baseline: PathBuf,
        /// Its kind.
        baseline_kind: Kind,
        /// The current file.
        current: PathBuf,
        /// Its kind.
        current_kind: Kind,
    },
    /// The two documents measure different things (scenarios, or compared settings).
    #[error(
        "cannot compare {} with {}: {what} differ ({baseline_value} against {current_value})",
        baseline.display(),
        current.display()
    )]
    Mismatch {
        /// The baseline file.
        baseline: PathBuf,
        /// The current file.
        current: PathBuf,
        /// What differs (`the scenarios`, `the compared settings`).
        what: &'static str,
        /// The baseline's.
        baseline_value: String,
        /// The current one's.
        current_value: String,
    },
    /// No metric of the baseline is in the current document.
    #[error("{} and {} have no metric in common", baseline.display(), current.display())]
    NothingInCommon {
        /// The baseline file.
        baseline: PathBuf,
        /// The current file.
        current: PathBuf,
    },
    /// A tolerance that does not parse.
    #[error("invalid tolerance {text:?}: {message}")]
    Tolerance {
        /// The text.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// A metric rule (`NAME[:TOLERANCE]`) that does not parse.
    #[error("invalid metric rule {text:?}: {message}")]
    Rule {
        /// The text.
        text: String,
        /// What is wrong.
        message: String,
    },
}

/// The kinds of benchmark document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A run's `report.json`.
    Report,
    /// A `comparison.json`.
    Comparison,
    /// The output of `tokenbench sign-bench --json`.
    SignBench,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Report => "run report",
            Kind::Comparison => "comparison",
            Kind::SignBench => "sign-bench output",
        })
    }
}

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Lower is better (latencies, herd sizes, token requests).
    Lower,
    /// Higher is better (signatures per second, hit rate, ok requests).
    Higher,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Lower => "lower is better",
            Direction::Higher => "higher is better",
        })
    }
}

/// What a metric is, which sets its default tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Reproduced by a seeded run: request, token-request and herd counts, the hit rate.
    Count,
    /// Taken side by side within one document: one backend's rate over another's.
    Ratio,
    /// A raw time, rate or size: latencies, signatures per second, peak RSS.
    Timing,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Count => "count",
            Class::Ratio => "ratio",
            Class::Timing => "timing",
        })
    }
}

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

impl Metric {
    /// The tolerance of its class: [`COUNT_TOLERANCE`] ([`FRACTION_TOLERANCE`] for a
    /// fraction), [`RATIO_TOLERANCE`] or [`TIMING_TOLERANCE`].
    pub fn default_tolerance(&self) -> Tolerance {
        match self.class {
            Class::Count if self.unit == FRACTION => FRACTION_TOLERANCE,
            Class::Count => COUNT_TOLERANCE,
            Class::Ratio => RATIO_TOLERANCE,
            Class::Timing => TIMING_TOLERANCE,
        }
    }
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
    /// `VALUE: ` in a comparison), for the notes of [`compare`].
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

/// One element of `sign-bench --json` (`signer::bench::BenchResult`).
#[derive(Deserialize)]
struct SignBenchEntry {
    backend: String,
    alg: String,
    key_bits: u64,
    signs_per_sec: f64,
    ns_per_sign: f64,
    assertions_per_sec: f64,
    assertion_ns: f64,
}

impl Document {
    /// Reads a benchmark document and recognises its kind.
    pub fn read(path: &Path) -> Result<Document, RegressionError> {
        let text = fs::read_to_string(path).map_err(|source| RegressionError::Read {
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
                let entries: Vec<SignBenchEntry> =
                    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
                Document::from_sign_bench(path, &entries)
            }
        }
    }

    fn from_report(path: &Path, report: &Report) -> Document {
        let mut metrics = Vec::new();
        report_metrics(&report.scenario, report, &mut metrics);
        Document {
            path: path.to_owned(),
            kind: Kind::Report,
            subject: report.scenario.clone(),
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
        let scenario = &first.report.scenario;
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
            if &run.report.scenario != scenario {
                return Err(invalid(format!(
                    "runs[{i}] is a run of {:?}, runs[0] of {scenario:?}",
                    run.report.scenario
                )));
            }
            let prefix = format!("{scenario}/{}", run.value);
            report_metrics(&prefix, &run.report, &mut metrics);
            // Signing cost of each backend or algorithm over the first one's, in one process.
            if i > 0 && matches!(doc.key.as_str(), "backend" | "alg") {
                if let (Some(this), Some(reference)) =
                    (run.report.signing.p50_ns, first.report.signing.p50_ns)
                {
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

    fn from_sign_bench(
        path: &Path,
        entries: &[SignBenchEntry],
    ) -> Result<Document, RegressionError> {
        let invalid = |message: String| RegressionError::Invalid {
            path: path.to_owned(),
            kind: Kind::SignBench,
            message,
        };
        let mut metrics = Vec::new();
        // The first backend listed for each algorithm and key size is the reference of the
        // ratios (`rsa` for PS256 and RS256 in sign-bench's order, `ring` for the others).
        let mut reference: HashMap<(String, u64), &SignBenchEntry> = HashMap::new();
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
            for (field, v) in [("backend", &e.backend), ("alg", &e.alg)] {
                if v.is_empty() || v.contains('/') {
                    return Err(invalid(format!(
                        "[{i}].{field} {v:?} is empty or has a '/'"
                    )));
                }
            }
            if !seen.insert((e.backend.as_str(), e.alg.as_str(), e.key_bits)) {
                return Err(invalid(format!(
                    "{} {} {} bits is there twice",
                    e.backend, e.alg, e.key_bits
                )));
            }
            let prefix = format!("sign/{}/{}-{}", e.backend, e.alg, e.key_bits);
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
            let base = *reference.entry((e.alg.clone(), e.key_bits)).or_insert(e);
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
        ("policy", r.policy.clone()),
        ("backend", r.backend.clone()),
        ("alg", r.alg.clone()),
        ("instances", r.instances.to_string()),
        ("duration", format!("{:.1} s", r.duration_s)),
        ("interrupted", r.interrupted.to_string()),
    ];
    if let Some(rate) = r.rate {
        list.push(("rate", format!("{rate} req/s")));
    }
    if let Some(seed) = r.seed {
        list.push(("seed", seed.to_string()));
    }
    list.into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
}

/// A run's metrics, named `PREFIX/PATH`.
fn report_metrics(prefix: &str, r: &Report, out: &mut Vec<Metric>) {
    use Class::{Count, Timing};
    use Direction::{Higher, Lower};
    let mut push = |path: &str, value: Option<f64>, unit, direction, class| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            out.push(Metric {
                name: format!("{prefix}/{path}"),
                value,
                unit,
                direction,
                class,
            });
        }
    };
    let n = |v: u64| Some(v as f64);
    let o = |v: Option<u64>| v.map(|v| v as f64);

    let q = &r.requests;
    push("requests.sent", n(q.sent), "requests", Higher, Count);
    push("requests.ok", n(q.ok), "requests", Higher, Count);
    push(
        "requests.unauthorized",
        n(q.unauthorized),
        "requests",
        Lower,
        Count,
    );
    push(
        "requests.forbidden",
        n(q.forbidden),
        "requests",
        Lower,
        Count,
    );
    push("requests.errors", n(q.errors), "requests", Lower, Count);
    push("requests.dropped", n(q.dropped), "requests", Lower, Count);
    for (group, p) in [
        ("latency_us", &r.latency_us),
        ("service_time_us", &r.service_time_us),
    ] {
        for (k, v) in [
            ("p50", p.p50),
            ("p90", p.p90),
            ("p99", p.p99),
            ("p999", p.p999),
            ("max", p.max),
        ] {
            push(&format!("{group}.{k}"), o(v), "µs", Lower, Timing);
        }
    }
    let c = &r.cache;
    push("cache.hits", n(c.hits), "lookups", Higher, Count);
    push("cache.misses", n(c.misses), "lookups", Lower, Count);
    push("cache.hit_rate", c.hit_rate, FRACTION, Higher, Count);
    let i = &r.idp;
    push(
        "idp.token_requests",
        n(i.token_requests),
        "requests",
        Lower,
        Count,
    );
    push("idp.throttled", n(i.throttled), "requests", Lower, Count);
    push("idp.errors", n(i.errors), "requests", Lower, Count);
    push(
        "idp.peak_concurrent",
        n(i.peak_concurrent),
        "requests",
        Lower,
        Count,
    );
    push(
        "idp.peak_concurrent_fetches",
        n(i.peak_concurrent_fetches),
        "fetches",
        Lower,
        Count,
    );
    let s = &r.signing;
    push("signing.count", n(s.count), "signatures", Lower, Count);
    push("signing.mean_ns", s.mean_ns, "ns", Lower, Timing);
    push("signing.p50_ns", o(s.p50_ns), "ns", Lower, Timing);
    push("signing.p99_ns", o(s.p99_ns), "ns", Lower, Timing);
    let st = &r.stampede;
    push(
        "stampede.episodes",
        n(st.episodes),
        "episodes",
        Lower,
        Count,
    );
    push(
        "stampede.max_herd",
        o(st.max_herd),
        "requests",
        Lower,
        Count,
    );
    push("stampede.mean_herd", st.mean_herd, "requests", Lower, Count);
    push(
        "stampede.unfinished",
        n(st.unfinished),
        "episodes",
        Lower,
        Count,
    );
    let inv = &r.invalidation;
    push(
        "invalidation.unrecovered",
        n(inv.unrecovered),
        "instances",
        Lower,
        Count,
    );
    push(
        "invalidation.failed_requests",
        n(inv.failed_requests),
        "requests",
        Lower,
        Count,
    );
    push(
        "invalidation.redundant_fetches",
        n(inv.redundant_fetches),
        "requests",
        Lower,
        Count,
    );
    let l = &inv.latency_ms;
    for (k, v) in [("p50", l.p50), ("p99", l.p99), ("max", l.max)] {
        push(
            &format!("invalidation.latency_ms.{k}"),
            v,
            "ms",
            Lower,
            Timing,
        );
    }
    push(
        "memory.peak_rss_bytes",
        o(r.memory.peak_rss_bytes),
        "bytes",
        Lower,
        Timing,
    );
}

/// How much worse a metric may get: by a factor of `1 + relative`, then by `absolute` in its
/// unit. Written `10%`, `3`, `10%+3`, `0` (exact) or `off` (shown, never judged).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tolerance {
    /// The factor part: 0.1 for 10 %.
    pub relative: f64,
    /// The absolute part, in the metric's unit.
    pub absolute: f64,
}

impl Tolerance {
    /// No change allowed.
    pub const EXACT: Tolerance = Tolerance {
        relative: 0.0,
        absolute: 0.0,
    };

    /// Any change: the metric is shown but never judged.
    pub const OFF: Tolerance = Tolerance {
        relative: f64::INFINITY,
        absolute: 0.0,
    };

    /// Whether this is [`Tolerance::OFF`].
    pub fn is_off(&self) -> bool {
        self.relative.is_infinite()
    }

    /// The band around `value` within which another value counts as unchanged:
    /// `(value / (1 + relative) − absolute, value × (1 + relative) + absolute)`.
    pub fn band(&self, value: f64) -> (f64, f64) {
        let factor = 1.0 + self.relative;
        (
            value / factor - self.absolute,
            value * factor + self.absolute,
        )
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let relative = (self.relative != 0.0).then(|| format!("{}%", trim(self.relative * 100.0)));
        let absolute = (self.absolute != 0.0).then(|| trim(self.absolute));
        match (relative, absolute) {
            (Some(r), Some(a)) => write!(f, "{r}+{a}"),
            (Some(r), None) => f.write_str(&r),
            (None, Some(a)) => f.write_str(&a),
            (None, None) => f.write_str("0"),
        }
    }
}

/// A number without trailing zeros (at most six decimals).
fn trim(v: f64) -> String {
    let text = format!("{v:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl FromStr for Tolerance {
    type Err = RegressionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |message: &str| RegressionError::Tolerance {
            text: text.to_owned(),
            message: message.to_owned(),
        };
        let mut tolerance = Tolerance::EXACT;
        let (mut relative_seen, mut absolute_seen) = (false, false);
        let terms = text.trim();
        if terms.eq_ignore_ascii_case("off") {
            return Ok(Tolerance::OFF);
        }
        if terms.is_empty() {
            return Err(fail("expected N%, N or N%+N (e.g. 10%, 2, 5%+1, 0)"));
        }
        for term in terms.split('+').map(str::trim) {
            let (number, relative) = match term.strip_suffix('%') {
                Some(number) => (number.trim(), true),
                None => (term, false),
            };
            let value: f64 = number
                .parse()
                .map_err(|_| fail("expected N%, N or N%+N (e.g. 10%, 2, 5%+1, 0)"))?;
            if !(value.is_finite() && value >= 0.0) {
                return Err(fail("must be a number of at least 0"));
            }
            let seen = if relative {
                &mut relative_seen
            } else {
                &mut absolute_seen
            };
            if std::mem::replace(seen, true) {
                return Err(fail("has two relative or two absolute parts"));
            }
            if relative {
                tolerance.relative = value / 100.0;
            } else {
                tolerance.absolute = value;
            }
        }
        Ok(tolerance)
    }
}

/// `PATTERN[:TOLERANCE]`: the tolerance of the metrics that `PATTERN` names.
///
/// A pattern matches a metric name if it matches the whole name or a tail of it that starts
/// after a `/` or a `.`; `*` stands for any characters and `?` for one. So `max_herd`,
/// `stampede.max_herd` and `apim/*` all match `stampede/apim/stampede.max_herd`. Without a
/// tolerance the metrics keep their class's default.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The pattern.
    pub pattern: String,
    /// The tolerance; `None`: the class default.
    pub tolerance: Option<Tolerance>,
}

impl Rule {
    /// Whether the rule names the metric `name`.
    pub fn matches(&self, name: &str) -> bool {
        let pattern: Vec<char> = self.pattern.chars().collect();
        let chars: Vec<char> = name.chars().collect();
        (0..chars.len()).any(|start| {
            (start == 0 || matches!(chars[start - 1], '/' | '.')) && glob(&pattern, &chars[start..])
        })
    }
}

/// Whether `pattern` (`*` any run of characters, `?` one) matches all of `text`.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl FromStr for Rule {
    type Err = RegressionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |message: String| RegressionError::Rule {
            text: text.to_owned(),
            message,
        };
        let (pattern, tolerance) = match text.rsplit_once(':') {
            Some((pattern, tolerance)) => (
                pattern,
                Some(
                    tolerance
                        .parse::<Tolerance>()
                        .map_err(|e| fail(e.to_string()))?,
                ),
            ),
            None => (text, None),
        };
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(fail("expected NAME or NAME:TOLERANCE".to_owned()));
        }
        Ok(Rule {
            pattern: pattern.to_owned(),
            tolerance,
        })
    }
}

/// The tolerance of each metric: its class default, or `default` for every metric if set,
/// then the last of `rules` that matches it.
#[derive(Clone, Debug, Default)]
pub struct Tolerances {
    /// Replaces every class default (`--max-regression`).
    pub default: Option<Tolerance>,
    /// Per-metric rules, the last match winning (`--metric`).
    pub rules: Vec<Rule>,
}

impl Tolerances {
    /// The tolerance `metric` is judged with.
    pub fn for_metric(&self, metric: &Metric) -> Tolerance {
        let mut tolerance = self.default.unwrap_or_else(|| metric.default_tolerance());
        for rule in &self.rules {
            if rule.matches(&metric.name) {
                tolerance = rule.tolerance.unwrap_or_else(|| metric.default_tolerance());
            }
        }
        tolerance
    }
}

/// The verdict on one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Within its tolerance.
    Ok,
    /// Better than its tolerance band.
    Better,
    /// Worse than its tolerance allows.
    Regression,
    /// Only in the current document.
    New,
    /// Only in the baseline.
    Missing,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Better => "better",
            Verdict::Regression => "REGRESSION",
            Verdict::New => "new",
            Verdict::Missing => "missing",
        })
    }
}

/// One metric of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The metric's name.
    pub name: String,
    /// Its unit.
    pub unit: &'static str,
    /// Which way it improves.
    pub direction: Direction,
    /// Its class.
    pub class: Class,
    /// The baseline's value.
    pub old: Option<f64>,
    /// The current value.
    pub new: Option<f64>,
    /// `(new − old) / old` in per cent; `None` without both values or when `old` is 0.
    pub change_pct: Option<f64>,
    /// The tolerance it was judged with.
    pub tolerance: Tolerance,
    /// The verdict.
    pub verdict: Verdict,
}

/// Judges `new` against `old`.
fn judge(old: f64, new: f64, direction: Direction, tolerance: Tolerance) -> Verdict {
    let (low, high) = tolerance.band(old);
    // Room for the last bit of a float that went through decimal text and back.
    let slack = 1e-9 * old.abs().max(1.0);
    let (worse, better) = match direction {
        Direction::Lower => (new > high + slack, new < low - slack),
        Direction::Higher => (new < low - slack, new > high + slack),
    };
    if worse {
        Verdict::Regression
    } else if better {
        Verdict::Better
    } else {
        Verdict::Ok
    }
}

/// Where the two sides of an [`Outcome`] came from.
#[derive(Clone, Debug, Serialize)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Its kind.
    pub kind: Kind,
    /// Its scenario, or `sign-bench`.
    pub subject: String,
}

impl From<&Document> for Source {
    fn from(doc: &Document) -> Self {
        Source {
            path: doc.path.clone(),
            kind: doc.kind,
            subject: doc.subject.clone(),
        }
    }
}

/// The comparison of two documents.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The baseline.
    pub baseline: Source,
    /// The current document.
    pub current: Source,
    /// One row per metric: the baseline's in order, then those only in the current one.
    pub rows: Vec<Row>,
    /// Run settings that differ between the two (counts may then differ for that reason).
    pub notes: Vec<String>,
}

impl Outcome {
    /// The rows with [`Verdict::Regression`].
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|row| row.verdict == Verdict::Regression)
    }

    /// How many rows have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows
            .iter()
            .filter(|row| row.verdict == verdict)
            .count()
    }
}

/// Compares `current` with `baseline`, each metric within its tolerance.
///
/// Documents of different kinds, of different scenarios, comparisons of different settings
/// and documents without a metric in common are errors.
pub fn compare(
    baseline: &Document,
    current: &Document,
    tolerances: &Tolerances,
) -> Result<Outcome, RegressionError> {
    if baseline.kind != current.kind {
        return Err(RegressionError::KindMismatch {
            baseline: baseline.path.clone(),
            baseline_kind: baseline.kind,
            current: current.path.clone(),
            current_kind: current.kind,
        });
    }
    let mismatch = |what, b: &str, c: &str| RegressionError::Mismatch {
        baseline: baseline.path.clone(),
        current: current.path.clone(),
        what,
        baseline_value: b.to_owned(),
        current_value: c.to_owned(),
    };
    if baseline.subject != current.subject {
        return Err(mismatch(
            "the scenarios",
            &baseline.subject,
            &current.subject,
        ));
    }
    if baseline.key != current.key {
        return Err(mismatch(
            "the compared settings",
            baseline.key.as_deref().unwrap_or("none"),
            current.key.as_deref().unwrap_or("none"),
        ));
    }
    let current_by_name: HashMap<&str, &Metric> = current
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let baseline_names: HashSet<&str> = baseline.metrics.iter().map(|m| m.name.as_str()).collect();
    let mut rows = Vec::new();
    for old in &baseline.metrics {
        let tolerance = tolerances.for_metric(old);
        let row = match current_by_name.get(old.name.as_str()) {
            Some(new) => Row {
                name: old.name.clone(),
                unit: new.unit,
                direction: new.direction,
                class: new.class,
                old: Some(old.value),
                new: Some(new.value),
                change_pct: (old.value != 0.0)
                    .then(|| (new.value - old.value) / old.value.abs() * 100.0),
                tolerance,
                verdict: judge(old.value, new.value, new.direction, tolerance),
            },
            None => Row {
                name: old.name.clone(),
                unit: old.unit,
                direction: old.direction,
                class: old.class,
                old: Some(old.value),
                new: None,
                change_pct: None,
                tolerance,
                verdict: Verdict::Missing,
            },
        };
        rows.push(row);
    }
    if !baseline.metrics.is_empty() && rows.iter().all(|row| row.verdict == Verdict::Missing) {
        return Err(RegressionError::NothingInCommon {
            baseline: baseline.path.clone(),
            current: current.path.clone(),
        });
    }
    for new in &current.metrics {
        if !baseline_names.contains(new.name.as_str()) {
            rows.push(Row {
                name: new.name.clone(),
                unit: new.unit,
                direction: new.direction,
                class: new.class,
                old: None,
                new: Some(new.value),
                change_pct: None,
                tolerance: tolerances.for_metric(new),
                verdict: Verdict::New,
            });
        }
    }
    let current_settings: HashMap<&str, &str> = current
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let notes = baseline
        .settings
        .iter()
        .filter_map(|(key, old)| {
            let new = current_settings.get(key.as_str())?;
            (old != new).then(|| format!("{key} differs: {old} in the baseline, {new} now"))
        })
        .collect();
    Ok(Outcome {
        baseline: baseline.into(),
        current: current.into(),
        rows,
        notes,
    })
}

/// Bencher Metric Format of the current figures of `rows`:
/// `{"BENCHMARK": {"MEASURE": {"value", "lower_value", "upper_value"}}}`, where the benchmark is
/// the metric name up to its last `/`, the measure what follows, and the lower and upper values
/// the tolerance band around the value (not below 0; left out for an `off` tolerance).
pub fn bmf<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Value {
    let mut out = serde_json::Map::new();
    for row in rows {
        let Some(value) = row.new else { continue };
        let (benchmark, measure) = row
            .name
            .rsplit_once('/')
            .unwrap_or(("tokenbench", &row.name));
        let figures = if row.tolerance.is_off() {
            serde_json::json!({ "value": value })
        } else {
            let (low, high) = row.tolerance.band(value);
            serde_json::json!({
                "value": value,
                "lower_value": low.max(0.0),
                "upper_value": high,
            })
        };
        let entry = out
            .entry(benchmark.to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(measures) = entry {
            measures.insert(measure.to_owned(), figures);
        }
    }
    Value::Object(out)
}

/// github-action-benchmark's `customSmallerIsBetter` (`Direction::Lower`) or
/// `customBiggerIsBetter` (`Direction::Higher`) array of the current figures of `rows` in
/// that direction: `[{"name", "unit", "value"}]`.
pub fn github<'a>(rows: impl IntoIterator<Item = &'a Row>, direction: Direction) -> Value {
    Value::Array(
        rows.into_iter()
            .filter(|row| row.direction == direction)
            .filter_map(|row| {
                row.new.map(
                    |value| serde_json::json!({"name": row.name, "unit": row.unit, "value": value}),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        metrics::{Metrics, RequestOutcome, RequestRecord, TokenAnswer},
        report::RunInfo,
    };

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// A report from real metrics: 100 requests on one instance, one fetch with a herd of 3.
    fn report(scenario: &str) -> Report {
        let m = Metrics::new(1, tokio::time::Instant::now()).unwrap();
        m.cache_miss(0);
        m.episode_started(0);
        for _ in 0..3 {
            m.fetch_started(0, ms(1));
            m.signed(Duration::from_micros(300));
            m.fetch_finished(TokenAnswer::Ok);
        }
        m.episode_ended(0, 3);
        for i in 0..100u64 {
            m.record_request(&RequestRecord {
                instance: 0,
                intended_start: ms(i * 10),
                sent_at: ms(i * 10 + 1),
                finished_at: ms(i * 10 + 2 + i % 3),
                outcome: RequestOutcome::Status(200),
                token_obtained_at: Some(ms(1)),
            });
            m.cache_hit(0);
        }
        let info = RunInfo {
            scenario: scenario.to_owned(),
            policy: "apim".to_owned(),
            backend: "aws-lc-rs".to_owned(),
            alg: "PS256".to_owned(),
            rate: Some(100.0),
            seed: Some(7),
            ..RunInfo::default()
        };
        Report::new(info, m.snapshot(ms(1_000)))
    }

    fn doc(name: &str, report: &Report) -> Document {
        Document::parse(Path::new(name), &serde_json::to_string(report).unwrap()).unwrap()
    }

    fn value(doc: &Document, suffix: &str) -> f64 {
        doc.metrics
            .iter()
            .find(|m| m.name.ends_with(suffix))
            .unwrap_or_else(|| panic!("no metric {suffix}"))
            .value
    }

    fn row<'a>(outcome: &'a Outcome, name: &str) -> &'a Row {
        outcome.rows.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn a_report_flattens_into_named_metrics() {
        let d = doc("a.json", &report("stampede"));
        assert_eq!(d.kind, Kind::Report);
        assert_eq!(d.subject, "stampede");
        assert_eq!(value(&d, "stampede/stampede.max_herd"), 3.0);
        assert_eq!(value(&d, "stampede/idp.token_requests"), 3.0);
        assert_eq!(value(&d, "stampede/requests.ok"), 100.0);
        let herd = d
            .metrics
            .iter()
            .find(|m| m.name.ends_with("max_herd"))
            .unwrap();
        assert_eq!(
            (herd.direction, herd.class),
            (Direction::Lower, Class::Count)
        );
        let p99 = d
            .metrics
            .iter()
            .find(|m| m.name == "stampede/latency_us.p99")
            .unwrap();
        assert_eq!(
            (p99.direction, p99.class),
            (Direction::Lower, Class::Timing)
        );
    }

    #[test]
    fn identical_documents_are_all_ok() {
        let d = doc("a.json", &report("stampede"));
        let outcome = compare(&d, &d, &Tolerances::default()).unwrap();
        assert!(outcome.rows.iter().all(|r| r.verdict == Verdict::Ok));
        assert_eq!(outcome.rows.len(), d.metrics.len());
        assert!(outcome.notes.is_empty());
    }

    #[test]
    fn direction_decides_regression_and_better_for_counts_and_timings() {
        let base = report("stampede");
        let mut worse = base.clone();
        worse.stampede.max_herd = Some(9); // lower is better, count
        worse.requests.ok = 50; // higher is better, count
        worse.latency_us.p50 = base.latency_us.p50.map(|v| v * 3); // lower is better, timing
        let outcome = compare(
            &doc("old.json", &base),
            &doc("new.json", &worse),
            &Tolerances::default(),
        )
        .unwrap();
        let names: Vec<&str> = outcome.regressions().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "stampede/requests.ok",
                "stampede/latency_us.p50",
                "stampede/stampede.max_herd"
            ]
        );
        // The same changes the other way are improvements.
        let outcome = compare(
            &doc("new.json", &worse),
            &doc("old.json", &base),
            &Tolerances::default(),
        )
        .unwrap();
        assert_eq!(outcome.count(Verdict::Regression), 0);
        assert_eq!(outcome.count(Verdict::Better), 3);
    }

    fn sign_bench(aws_signs: f64) -> String {
        let entry = |backend: &str, signs: f64| {
            serde_json::json!({
                "backend": backend, "alg": "PS256", "key_bits": 2048,
                "signs_per_sec": signs, "ns_per_sign": 1e9 / signs,
                "assertions_per_sec": signs * 0.99, "assertion_ns": 1e9 / (signs * 0.99),
            })
        };
        serde_json::to_string(&[entry("rsa", 700.0), entry("aws-lc-rs", aws_signs)]).unwrap()
    }

    #[test]
    fn sign_bench_has_rates_ratios_and_the_higher_direction() {
        let old = Document::parse(Path::new("old.json"), &sign_bench(3500.0)).unwrap();
        assert_eq!(old.kind, Kind::SignBench);
        assert_eq!(
            value(&old, "sign/aws-lc-rs/PS256-2048/signs_per_s_vs_rsa"),
            5.0
        );
        assert!((value(&old, "sign/rsa/PS256-2048/assertion_overhead") - 1.0 / 0.99).abs() < 1e-9);
        // 20 % fewer signatures per second: the ratio (15 %) regresses, the raw rate (50 %)
        // does not.
        let new = Document::parse(Path::new("new.json"), &sign_bench(2800.0)).unwrap();
        let outcome = compare(&old, &new, &Tolerances::default()).unwrap();
        let names: Vec<&str> = outcome.regressions().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["sign/aws-lc-rs/PS256-2048/signs_per_s_vs_rsa"]);
        let faster = Document::parse(Path::new("new.json"), &sign_bench(4200.0)).unwrap();
        let outcome = compare(&old, &faster, &Tolerances::default()).unwrap();
        assert_eq!(outcome.count(Verdict::Regression), 0);
        assert_eq!(
            row(&outcome, "sign/aws-lc-rs/PS256-2048/signs_per_s_vs_rsa").verdict,
            Verdict::Better
        );
        // --max-regression 10% catches the raw rate too.
        let tight = Tolerances {
            default: Some("10%".parse().unwrap()),
            rules: Vec::new(),
        };
        let outcome = compare(&old, &new, &tight).unwrap();
        assert_eq!(outcome.count(Verdict::Regression), 3);
    }

    #[test]
    fn tolerances_parse_and_bound_both_ways() {
        let t: Tolerance = "10%+2".parse().unwrap();
        assert_eq!((t.relative, t.absolute), (0.1, 2.0));
        assert_eq!(t.to_string(), "10%+2");
        assert_eq!("2+10%".parse::<Tolerance>().unwrap(), t);
        assert_eq!("0".parse::<Tolerance>().unwrap(), Tolerance::EXACT);
        assert_eq!(Tolerance::EXACT.to_string(), "0");
        assert_eq!("off".parse::<Tolerance>().unwrap().to_string(), "off");
        assert_eq!(
            judge(1.0, 1e12, Direction::Lower, Tolerance::OFF),
            Verdict::Ok
        );
        assert_eq!(
            judge(1e12, 1.0, Direction::Higher, Tolerance::OFF),
            Verdict::Ok
        );
        for bad in ["", "x", "-1", "10%+5%", "1+2", "inf", "NaN%"] {
            assert!(bad.parse::<Tolerance>().is_err(), "{bad}");
        }
        let (low, high) = t.band(100.0);
        assert!((low - (100.0 / 1.1 - 2.0)).abs() < 1e-9 && (high - 112.0).abs() < 1e-9);
        assert_eq!(judge(100.0, 112.0, Direction::Lower, t), Verdict::Ok);
        assert_eq!(
            judge(100.0, 112.5, Direction::Lower, t),
            Verdict::Regression
        );
        assert_eq!(
            judge(100.0, 80.0, Direction::Higher, t),
            Verdict::Regression
        );
        assert_eq!(judge(100.0, 89.0, Direction::Higher, t), Verdict::Ok);
        assert_eq!(judge(100.0, 113.0, Direction::Higher, t), Verdict::Better);
        assert_eq!(
            judge(0.0, 1.0, Direction::Lower, Tolerance::EXACT),
            Verdict::Regression
        );
    }

    #[test]
    fn rules_match_names_tails_and_globs_and_the_last_wins() {
        let name = "stampede/apim/stampede.max_herd";
        for pattern in [
            name,
            "max_herd",
            "stampede.max_herd",
            "apim/*",
            "*herd",
            "st?mpede/*",
        ] {
            let rule: Rule = format!("{pattern}:0").parse().unwrap();
            assert!(rule.matches(name), "{pattern}");
        }
        for pattern in ["herd", "ax_herd", "single-flight/*", "max_herd/x"] {
            let rule: Rule = pattern.parse().unwrap();
            assert!(!rule.matches(name), "{pattern}");
        }
        assert!("max_herd:abc".parse::<Rule>().is_err());
        assert!(":5%".parse::<Rule>().is_err());
        let metric = Metric {
            name: name.to_owned(),
            value: 1.0,
            unit: "requests",
            direction: Direction::Lower,
            class: Class::Count,
        };
        let tolerances = Tolerances {
            default: Some("10%".parse().unwrap()),
            rules: vec!["apim/*:30%".parse().unwrap(), "max_herd:0".parse().unwrap()],
        };
        assert_eq!(tolerances.for_metric(&metric), Tolerance::EXACT);
        let tolerances = Tolerances {
            default: Some("10%".parse().unwrap()),
            rules: vec!["max_herd".parse().unwrap()],
        };
        assert_eq!(tolerances.for_metric(&metric), COUNT_TOLERANCE);
    }

    #[test]
    fn bad_documents_are_named_errors() {
        let path = Path::new("x.json");
        let error = |text: &str| Document::parse(path, text).unwrap_err().to_string();
        assert!(
            error("{").contains("x.json is not valid JSON"),
            "{}",
            error("{")
        );
        assert!(error("{\"a\":1}").contains("not a benchmark document"));
        assert!(error("[1, 2]").contains("not a benchmark document"));
        let mut json = serde_json::to_value(report("stampede")).unwrap();
        json["schema_version"] = 2.into();
        let message = error(&json.to_string());
        assert!(
            message.contains("x.json is a run report with schema_version 2"),
            "{message}"
        );
        json["schema_version"] = 1.into();
        json["requests"] = "many".into();
        assert!(error(&json.to_string()).contains("x.json is not a valid run report"));
        let bad_bench = sign_bench(3500.0).replace("700.0", "-1.0");
        assert!(error(&bad_bench).contains("signs_per_sec must be a number above 0"));
        let doubled = format!(
            "[{0},{0}]",
            &sign_bench(3500.0)[1..sign_bench(3500.0).find("},").unwrap() + 1]
        );
        assert!(
            error(&doubled).contains("there twice"),
            "{}",
            error(&doubled)
        );
    }

    #[test]
    fn mismatched_documents_cannot_be_compared() {
        let run = doc("run.json", &report("stampede"));
        let other = doc("other.json", &report("revocation"));
        let bench = Document::parse(Path::new("bench.json"), &sign_bench(3500.0)).unwrap();
        let message = compare(&bench, &run, &Tolerances::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("bench.json (sign-bench output)")
                && message.contains("run.json (run report)"),
            "{message}"
        );
        let message = compare(&run, &other, &Tolerances::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("the scenarios differ (stampede against revocation)"));
        let mut bits = sign_bench(3500.0);
        bits = bits.replace("2048", "3072");
        let bits = Document::parse(Path::new("bits.json"), &bits).unwrap();
        assert!(matches!(
            compare(&bench, &bits, &Tolerances::default()),
            Err(RegressionError::NothingInCommon { .. })
        ));
    }

    #[test]
    fn comparisons_name_each_value_and_note_setting_changes() {
        let apim = report("stampede");
        let mut single = report("stampede");
        single.policy = "single-flight".to_owned();
        single.stampede.max_herd = Some(1);
        let comparison = |runs: &[(&str, &Report)]| {
            serde_json::json!({
                "schema_version": 1, "key": "policy",
                "values": runs.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
                "runs": runs.iter().map(|(v, r)| serde_json::json!({"value": v, "report": r}))
                    .collect::<Vec<_>>(),
            })
            .to_string()
        };
        let text = comparison(&[("apim", &apim), ("single-flight", &single)]);
        let old = Document::parse(Path::new("c.json"), &text).unwrap();
        assert_eq!(old.kind, Kind::Comparison);
        assert_eq!(value(&old, "stampede/single-flight/stampede.max_herd"), 1.0);
        assert_eq!(value(&old, "stampede/apim/stampede.max_herd"), 3.0);
        // single-flight behaving like apim: its herd regresses, named with its value.
        let mut broken = single.clone();
        broken.stampede.max_herd = Some(3);
        broken.rate = Some(200.0);
        let new = Document::parse(
            Path::new("d.json"),
            &comparison(&[("apim", &apim), ("single-flight", &broken)]),
        )
        .unwrap();
        let outcome = compare(&old, &new, &Tolerances::default()).unwrap();
        let names: Vec<&str> = outcome.regressions().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["stampede/single-flight/stampede.max_herd"]);
        assert_eq!(
            outcome.notes,
            ["single-flight: rate differs: 100 req/s in the baseline, 200 req/s now"]
        );
        // A run missing from the current comparison: its metrics are missing, not regressed.
        let fewer = Document::parse(Path::new("e.json"), &comparison(&[("apim", &apim)])).unwrap();
        let outcome = compare(&old, &fewer, &Tolerances::default()).unwrap();
        assert_eq!(outcome.count(Verdict::Regression), 0);
        assert!(outcome.count(Verdict::Missing) > 0);
        let mut nested = serde_json::from_str::<Value>(&text).unwrap();
        nested["runs"][1]["report"]["schema_version"] = 3.into();
        let message = Document::parse(Path::new("c.json"), &nested.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("runs[1].report has schema_version 3"),
            "{message}"
        );
    }

    #[test]
    fn bmf_and_github_have_their_shapes() {
        let d = doc("a.json", &report("stampede"));
        let outcome = compare(&d, &d, &Tolerances::default()).unwrap();
        let bmf = bmf(&outcome.rows);
        let herd = &bmf["stampede"]["stampede.max_herd"];
        assert_eq!(herd["value"], 3.0);
        // 2 %+1 around 3.
        assert!((herd["lower_value"].as_f64().unwrap() - (3.0 / 1.02 - 1.0)).abs() < 1e-9);
        assert!((herd["upper_value"].as_f64().unwrap() - 4.06).abs() < 1e-9);
        let off = Tolerances {
            default: None,
            rules: vec!["max_herd:off".parse().unwrap()],
        };
        let outcome_off = compare(&d, &d, &off).unwrap();
        let herd = &super::bmf(&outcome_off.rows)["stampede"]["stampede.max_herd"];
        assert_eq!(herd, &serde_json::json!({"value": 3.0}));
        let smaller = github(&outcome.rows, Direction::Lower);
        let bigger = github(&outcome.rows, Direction::Higher);
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert!(names(&smaller).contains(&"stampede/stampede.max_herd".to_owned()));
        assert!(names(&bigger).contains(&"stampede/requests.ok".to_owned()));
        assert!(!names(&bigger).contains(&"stampede/stampede.max_herd".to_owned()));
        for entry in smaller
            .as_array()
            .unwrap()
            .iter()
            .chain(bigger.as_array().unwrap())
        {
            let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["name", "unit", "value"]);
        }
    }
}
