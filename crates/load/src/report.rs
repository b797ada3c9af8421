//! Reports of a run (DESIGN §6) and side-by-side comparisons of runs.
//!
//! A [`Report`] is built from a [`MetricsSnapshot`] and the run's [`RunInfo`], and written
//! by [`Report::write_all`] into a folder as `report.json` (machine-readable, with
//! `schema_version`), `report.md` (summary tables), `report.html` (self-contained: inline
//! CSS and SVG charts, no scripts or external assets) and `latency.hlog` (the HdrHistogram
//! interval log). A [`Comparison`] of reports that differ in one setting writes
//! `comparison.json`, `comparison.md` and `comparison.html`.
//!
//! Reports hold numbers and the names the driver gives (scenario, policy, backend,
//! algorithm): never a token, an assertion or key material.

use std::{
    fs,
    io::{self, BufWriter, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::metrics::{
    CacheStats, IdpStats, InvalidationStats, LatencyLog, MemoryStats, MetricsError,
    MetricsSnapshot, Percentiles, RequestCounts, SigningStats, SpectrumPoint, StampedeStats,
    TimelineRow,
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
/// The machine-readable comparison.
pub const COMPARISON_JSON: &str = "comparison.json";
/// The comparison's tables.
pub const COMPARISON_MD: &str = "comparison.md";
/// The comparison's page with charts.
pub const COMPARISON_HTML: &str = "comparison.html";

/// Errors writing or reading reports; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The output folder could not be created.
    #[error("cannot create the report folder {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A JSON document could not be encoded.
    #[error("cannot encode {}: {source}", path.display())]
    Encode {
        /// The file it was for.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The latency interval log could not be written.
    #[error("cannot write {}: {source}", path.display())]
    LatencyLog {
        /// The file.
        path: PathBuf,
        /// Why.
        source: MetricsError,
    },
    /// A report file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not a report this version reads (the message has the line and column).
    #[error("{} is not a tokenbench report: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A report of another schema version.
    #[error("{} has schema_version {found}; this tokenbench reads version {SCHEMA_VERSION}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
}

/// What the driver knows about a run that the metrics do not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
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
    pub rate: Option<f64>,
    /// The scenario's seed.
    pub seed: Option<u64>,
    /// Whether the run was stopped (Ctrl-C) before its scenario's end.
    pub interrupted: bool,
}

/// The report of one run: `report.json`'s document.
///
/// Figures without data (percentiles of an empty histogram, a hit rate without lookups)
/// are `null`. Keys beyond the list: `started_at`, `instances`, `rate`, `seed`,
/// `interrupted`, `latency_spectrum`, `cache.instances`, `idp.peak_concurrent_fetches`,
/// `stampede.unfinished`, `invalidation.revocations`, `invalidation.unrecovered`,
/// `timeline[].dropped`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The cache policy.
    pub policy: String,
    /// The signer backend.
    pub backend: String,
    /// The signing algorithm.
    pub alg: String,
    /// The run's length, seconds.
    pub duration_s: f64,
    /// When the run started (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: Option<String>,
    /// Gateway instances.
    #[serde(default)]
    pub instances: usize,
    /// The nominal arrival rate, requests per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// The scenario's seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Whether the run was stopped before its scenario's end: its figures cover
    /// `duration_s` only.
    #[serde(default)]
    pub interrupted: bool,
    /// Request counts.
    pub requests: RequestCounts,
    /// Latency from the intended start, µs.
    pub latency_us: Percentiles,
    /// Service time from the actual start, µs.
    pub service_time_us: Percentiles,
    /// The latency percentile spectrum.
    #[serde(default)]
    pub latency_spectrum: Vec<SpectrumPoint>,
    /// Token lookups.
    pub cache: CacheStats,
    /// Token requests.
    pub idp: IdpStats,
    /// Signing cost.
    pub signing: SigningStats,
    /// Miss episodes.
    pub stampede: StampedeStats,
    /// 401-invalidation.
    pub invalidation: InvalidationStats,
    /// Memory.
    pub memory: MemoryStats,
    /// One row per second.
    pub timeline: Vec<TimelineRow>,
    /// The per-second histograms for `latency.hlog` (not in the JSON: a report read back
    /// has an empty log).
    #[serde(skip)]
    pub latency_log: LatencyLog,
}

impl Report {
    /// The report of a run from what its metrics measured.
    pub fn new(info: RunInfo, snapshot: MetricsSnapshot) -> Self {
        let started_at = time::OffsetDateTime::from(snapshot.started_at)
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: info.scenario,
            policy: info.policy,
            backend: info.backend,
            alg: info.alg,
            duration_s: snapshot.duration.as_secs_f64(),
            started_at,
            instances: snapshot.instances,
            rate: info.rate.filter(|r| r.is_finite()),
            seed: info.seed,
            interrupted: info.interrupted,
            requests: snapshot.requests,
            latency_us: snapshot.latency_us,
            service_time_us: snapshot.service_time_us,
            latency_spectrum: snapshot.latency_spectrum,
            cache: snapshot.cache,
            idp: snapshot.idp,
            signing: snapshot.signing,
            stampede: snapshot.stampede,
            invalidation: snapshot.invalidation,
            memory: snapshot.memory,
            timeline: snapshot.timeline,
            latency_log: snapshot.latency_log,
        }
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_owned(),
            source,
        })?;
        let report: Report = serde_json::from_str(&text).map_err(|source| ReportError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if report.schema_version != SCHEMA_VERSION {
            return Err(ReportError::Schema {
                path: path.to_owned(),
                found: report.schema_version,
            });
        }
        Ok(report)
    }

    /// Writes `report.json`, `report.md`, `report.html` and `latency.hlog` into `dir`
    /// (created if missing); returns their paths.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        create_dir(dir)?;
        let json = dir.join(REPORT_JSON);
        write_file(&json, &to_json(self, &json)?)?;
        let md = dir.join(REPORT_MD);
        write_file(&md, &self.markdown())?;
        let html = dir.join(REPORT_HTML);
        write_file(&html, &self.html())?;
        let hlog = dir.join(LATENCY_HLOG);
        self.write_hlog(&hlog)?;
        Ok(vec![json, md, html, hlog])
    }

    /// The summary tables as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("# tokenbench report: {}\n\n", md_text(&self.scenario));
        out.push_str(&format!("{}\n\n", md_text(&self.subtitle())));
        for group in groups(&[self]) {
            out.push_str(&format!(
                "## {}\n\n| metric | value |\n|---|---:|\n",
                group.title
            ));
            for (label, cells) in &group.rows {
                out.push_str(&format!("| {label} | {} |\n", md_text(&cells.join(""))));
            }
            out.push('\n');
        }
        if !self.cache.instances.is_empty() {
            out.push_str("## Per instance\n\n");
            let (head, rows) = instance_table(self);
            out.push_str(&format!("| {} |\n", head.join(" | ")));
            out.push_str(&format!("|{}\n", "---:|".repeat(head.len())));
            for row in rows {
                out.push_str(&format!("| {} |\n", row.join(" | ")));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "The per-second timeline is in `{REPORT_JSON}` (`timeline`) and charted in \
             `{REPORT_HTML}`; the per-second latency histograms are in `{LATENCY_HLOG}`.\n"
        ));
        out
    }

    /// The self-contained HTML page: tables, the per-second timeline and the latency
    /// percentile spectrum as inline SVG.
    pub fn html(&self) -> String {
        let title = format!("tokenbench report: {}", self.scenario);
        let mut body = format!(
            "<h1>{}</h1>\n<p class=\"sub\">{}</p>\n",
            esc(&title),
            esc(&self.subtitle())
        );
        body.push_str("<h2>Timeline</h2>\n<figure>\n");
        let (x_max, y_max) = timeline_extent(&[self]);
        body.push_str(&timeline_svg(&self.timeline, x_max, y_max, 880.0, 300.0));
        body.push_str(
            "<figcaption>Per second: completed requests, backend 401s and token requests \
             (log scale).</figcaption>\n</figure>\n",
        );
        body.push_str("<h2>Latency percentile spectrum</h2>\n<figure>\n");
        body.push_str(&spectrum_svg(&[("latency", &self.latency_spectrum)]));
        body.push_str(
            "<figcaption>Latency from the intended start (corrected for coordinated \
             omission) by percentile.</figcaption>\n</figure>\n",
        );
        body.push_str("<div class=\"tables\">\n");
        for group in groups(&[self]) {
            body.push_str(&html_group(&group, &[]));
        }
        body.push_str("</div>\n");
        if !self.cache.instances.is_empty() {
            let (head, rows) = instance_table(self);
            body.push_str("<h2>Per instance</h2>\n<table>\n<thead><tr>");
            for cell in head {
                body.push_str(&format!("<th>{}</th>", esc(cell)));
            }
            body.push_str("</tr></thead>\n<tbody>\n");
            for row in rows {
                body.push_str("<tr>");
                for cell in row {
                    body.push_str(&format!("<td>{}</td>", esc(&cell)));
                }
                body.push_str("</tr>\n");
            }
            body.push_str("</tbody>\n</table>\n");
        }
        body.push_str(&format!(
            "<p class=\"note\">All figures and the per-second timeline are in \
             <code>{REPORT_JSON}</code>; the per-second latency histograms in \
             <code>{LATENCY_HLOG}</code>.</p>\n"
        ));
        page(&title, &body)
    }

    fn subtitle(&self) -> String {
        let mut parts = vec![
            format!("policy {}", self.policy),
            format!("backend {} {}", self.backend, self.alg),
            format!("{} instances", self.instances),
        ];
        if let Some(rate) = self.rate {
            parts.push(format!("{} req/s nominal", num(rate)));
        }
        parts.push(if self.interrupted {
            format!("interrupted after {} s", num(self.duration_s))
        } else {
            format!("{} s", num(self.duration_s))
        });
        if let Some(seed) = self.seed {
            parts.push(format!("seed {seed}"));
        }
        if let Some(started) = &self.started_at {
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
        self.latency_log
            .write_to(&mut out)
            .map_err(|source| ReportError::LatencyLog {
                path: path.to_owned(),
                source,
            })?;
        out.flush().map_err(write_error)
    }
}

/// Reports of runs that differ in one setting, side by side.
#[derive(Clone, Debug)]
pub struct Comparison {
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

impl Comparison {
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
        let md = dir.join(COMPARISON_MD);
        write_file(&md, &self.markdown())?;
        let html = dir.join(COMPARISON_HTML);
        write_file(&html, &self.html())?;
        Ok(vec![json, md, html])
    }

    /// The comparison's tables as Markdown: one table per metric group, one column per
    /// value.
    pub fn markdown(&self) -> String {
        let reports = self.reports();
        let mut out = format!(
            "# tokenbench comparison: {} by {}\n\n",
            md_text(&self.scenario()),
            md_text(&self.key)
        );
        for group in groups(&reports) {
            out.push_str(&format!("## {}\n\n| metric |", group.title));
            for (value, _) in &self.values {
                out.push_str(&format!(" {} |", md_text(value)));
            }
            out.push_str(&format!("\n|---|{}\n", "---:|".repeat(self.values.len())));
            for (label, cells) in &group.rows {
                out.push_str(&format!("| {label} |"));
                for cell in cells {
                    out.push_str(&format!(" {} |", md_text(cell)));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// The comparison's page: tables, the timelines side by side (same scales) and the
    /// latency spectra overlaid.
    pub fn html(&self) -> String {
        let reports = self.reports();
        let title = format!("tokenbench comparison: {} by {}", self.scenario(), self.key);
        let mut body = format!("<h1>{}</h1>\n", esc(&title));
        body.push_str("<h2>Latency percentile spectrum</h2>\n<figure>\n");
        let series: Vec<(&str, &[SpectrumPoint])> = self
            .values
            .iter()
            .map(|(value, report)| (value.as_str(), report.latency_spectrum.as_slice()))
            .collect();
        body.push_str(&spectrum_svg(&series));
        body.push_str(
            "<figcaption>Latency from the intended start by percentile, one line per \
             value.</figcaption>\n</figure>\n",
        );
        body.push_str("<h2>Timelines</h2>\n<div class=\"multiples\">\n");
        let (x_max, y_max) = timeline_extent(&reports);
        for (value, report) in &self.values {
            body.push_str(&format!(
                "<figure>\n<figcaption class=\"head\">{} = {}</figcaption>\n",
                esc(&self.key),
                esc(value)
            ));
            body.push_str(&timeline_svg(&report.timeline, x_max, y_max, 540.0, 260.0));
            body.push_str("</figure>\n");
        }
        body.push_str(
            "</div>\n<p class=\"note\">Per second: completed requests, backend 401s and \
             token requests (log scale, same axes for every value).</p>\n",
        );
        body.push_str("<div class=\"tables\">\n");
        let head: Vec<&str> = self.values.iter().map(|(v, _)| v.as_str()).collect();
        for group in groups(&reports) {
            body.push_str(&html_group(&group, &head));
        }
        body.push_str("</div>\n");
        page(&title, &body)
    }

    fn reports(&self) -> Vec<&Report> {
        self.values.iter().map(|(_, report)| report).collect()
    }

    /// The scenario names, deduplicated in order.
    fn scenario(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for (_, report) in &self.values {
            if !names.contains(&report.scenario.as_str()) {
                names.push(&report.scenario);
            }
        }
        names.join(", ")
    }
}

/// A table of figures: one row per metric, one cell per report.
struct Group {
    title: &'static str,
    rows: Vec<(&'static str, Vec<String>)>,
}

fn groups(reports: &[&Report]) -> Vec<Group> {
    let row = |label: &'static str, f: &dyn Fn(&Report) -> String| {
        (label, reports.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let percentiles = |title: &'static str, pick: fn(&Report) -> &Percentiles| Group {
        title,
        rows: vec![
            row("p50", &|r| opt(pick(r).p50, us)),
            row("p90", &|r| opt(pick(r).p90, us)),
            row("p99", &|r| opt(pick(r).p99, us)),
            row("p99.9", &|r| opt(pick(r).p999, us)),
            row("max", &|r| opt(pick(r).max, us)),
        ],
    };
    vec![
        Group {
            title: "Run",
            rows: vec![
                row("policy", &|r| r.policy.clone()),
                row("backend", &|r| r.backend.clone()),
                row("algorithm", &|r| r.alg.clone()),
                row("instances", &|r| int(r.instances as u64)),
                row("nominal rate", &|r| {
                    opt(r.rate, |v| format!("{}/s", num(v)))
                }),
                row("duration", &|r| format!("{} s", num(r.duration_s))),
            ],
        },
        Group {
            title: "Requests",
            rows: vec![
                row("sent", &|r| int(r.requests.sent)),
                row("ok (2xx)", &|r| int(r.requests.ok)),
                row("unauthorized (401)", &|r| int(r.requests.unauthorized)),
                row("forbidden (403)", &|r| int(r.requests.forbidden)),
                row("errors", &|r| int(r.requests.errors)),
                row("dropped (in-flight limit)", &|r| int(r.requests.dropped)),
                row("completed per second", &|r| {
                    if r.duration_s > 0.0 {
                        num(r.requests.sent as f64 / r.duration_s)
                    } else {
                        "–".to_owned()
                    }
                }),
            ],
        },
        percentiles("Latency from intended start", |r| &r.latency_us),
        percentiles("Service time from actual start", |r| &r.service_time_us),
        Group {
            title: "Token cache",
            rows: vec![
                row("hits", &|r| int(r.cache.hits)),
                row("misses", &|r| int(r.cache.misses)),
                row("hit rate", &|r| opt(r.cache.hit_rate, percent)),
            ],
        },
        Group {
            title: "Identity provider",
            rows: vec![
                row("token requests", &|r| int(r.idp.token_requests)),
                row("ok", &|r| int(r.idp.ok)),
                row("throttled (429)", &|r| int(r.idp.throttled)),
                row("errors", &|r| int(r.idp.errors)),
                row("peak concurrent", &|r| int(r.idp.peak_concurrent)),
                row("peak concurrent fetches (gateway)", &|r| {
                    int(r.idp.peak_concurrent_fetches)
                }),
            ],
        },
        Group {
            title: "Signing",
            rows: vec![
                row("signatures", &|r| int(r.signing.count)),
                row("mean", &|r| {
                    opt(r.signing.mean_ns, |v| ns(v.round() as u64))
                }),
                row("p50", &|r| opt(r.signing.p50_ns, ns)),
                row("p99", &|r| opt(r.signing.p99_ns, ns)),
            ],
        },
        Group {
            title: "Stampede",
            rows: vec![
                row("miss episodes", &|r| int(r.stampede.episodes)),
                row("max herd", &|r| opt(r.stampede.max_herd, int)),
                row("mean herd", &|r| {
                    opt(r.stampede.mean_herd, |v| format!("{v:.2}"))
                }),
                row("unfinished episodes", &|r| int(r.stampede.unfinished)),
            ],
        },
        Group {
            title: "401 invalidation",
            rows: vec![
                row("revocation events", &|r| int(r.invalidation.revocations)),
                row("recoveries (events × instances)", &|r| {
                    int(r.invalidation.events)
                }),
                row("not recovered", &|r| int(r.invalidation.unrecovered)),
                row("latency p50", &|r| opt(r.invalidation.latency_ms.p50, ms)),
                row("latency p99", &|r| opt(r.invalidation.latency_ms.p99, ms)),
                row("latency max", &|r| opt(r.invalidation.latency_ms.max, ms)),
                row("failed requests", &|r| int(r.invalidation.failed_requests)),
                row("redundant fetches", &|r| {
                    int(r.invalidation.redundant_fetches)
                }),
            ],
        },
        Group {
            title: "Memory",
            rows: vec![
                row("peak RSS", &|r| opt(r.memory.peak_rss_bytes, bytes)),
                row("RSS at start", &|r| opt(r.memory.start_rss_bytes, bytes)),
            ],
        },
    ]
}

fn instance_table(report: &Report) -> ([&'static str; 7], Vec<Vec<String>>) {
    let head = [
        "instance",
        "hits",
        "misses",
        "hit rate",
        "token requests",
        "episodes",
        "max herd",
    ];
    let rows = report
        .cache
        .instances
        .iter()
        .map(|i| {
            vec![
                i.instance.to_string(),
                int(i.hits),
                int(i.misses),
                opt(i.hit_rate, percent),
                int(i.token_requests),
                int(i.episodes),
                opt(i.max_herd, int),
            ]
        })
        .collect();
    (head, rows)
}

fn html_group(group: &Group, head: &[&str]) -> String {
    let mut out = format!("<section>\n<h2>{}</h2>\n<table>\n", esc(group.title));
    if !head.is_empty() {
        out.push_str("<thead><tr><th></th>");
        for cell in head {
            out.push_str(&format!("<th>{}</th>", esc(cell)));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for (label, cells) in &group.rows {
        out.push_str(&format!("<tr><th scope=\"row\">{}</th>", esc(label)));
        for cell in cells {
            out.push_str(&format!("<td>{}</td>", esc(cell)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}

const STYLE: &str = "\
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif;
  font-size: 16px; line-height: 1.5; color: #1f2937; background: #fff; margin: 0 auto;
  max-width: 1180px; padding: 2rem 1.5rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; }
section h2 { margin-top: 0; }
.sub, .note, figcaption { color: #4b5563; font-size: .92rem; }
figure { margin: 0 0 1rem; }
figcaption.head { color: #1f2937; font-weight: 600; font-size: 1rem; }
svg { max-width: 100%; height: auto; display: block; }
svg text { font-family: inherit; }
.tables { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr));
  gap: 1.5rem 2.5rem; margin-top: 2rem; }
.multiples { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 1rem 2rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e5e7eb; }
td { text-align: right; white-space: nowrap; }
th { text-align: left; font-weight: 500; }
thead th { font-weight: 600; text-align: right; border-bottom: 2px solid #d1d5db; }
thead th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #f9fafb; }
code { font-size: .9em; }
";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// Chart colours: requests, 401s, token requests; then the comparison palette.
const PALETTE: [&str; 8] = [
    "#2563eb", "#dc2626", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#4b5563",
];

/// A chart's plotting area inside its SVG.
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn new(width: f64, height: f64) -> Self {
        Frame {
            width,
            height,
            left: 64.0,
            right: 40.0,
            top: 36.0,
            bottom: 44.0,
        }
    }

    /// The x of `fraction` (0 to 1) of the plotting area.
    fn x(&self, fraction: f64) -> f64 {
        self.left + fraction.clamp(0.0, 1.0) * (self.width - self.left - self.right)
    }

    /// The y of `fraction` (0 bottom to 1 top) of the plotting area.
    fn y(&self, fraction: f64) -> f64 {
        self.height
            - self.bottom
            - fraction.clamp(0.0, 1.0) * (self.height - self.top - self.bottom)
    }

    fn open(&self, label: &str) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" \
             height=\"{h}\" role=\"img\" aria-label=\"{label}\">\n<title>{label}</title>\n\
             <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n",
            w = self.width,
            h = self.height,
            label = esc(label)
        )
    }

    /// Grid lines and labels: `x_ticks` and `y_ticks` as (fraction, label); axis titles.
    fn axes(
        &self,
        x_ticks: &[(f64, String)],
        y_ticks: &[(f64, String)],
        x_title: &str,
        y_title: &str,
    ) -> String {
        let mut out = String::new();
        for (f, label) in y_ticks {
            let y = self.y(*f);
            out.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#4b5563\" \
                 text-anchor=\"end\">{}</text>\n",
                self.x(0.0),
                self.x(1.0),
                self.x(0.0) - 6.0,
                y + 4.0,
                esc(label)
            ));
        }
        for (f, label) in x_ticks {
            let x = self.x(*f);
            out.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#f3f4f6\"/>\n\
                 <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#4b5563\" \
                 text-anchor=\"middle\">{}</text>\n",
                self.y(0.0),
                self.y(1.0),
                self.y(0.0) + 16.0,
                esc(label)
            ));
        }
        out.push_str(&format!(
            "<line x1=\"{l:.1}\" y1=\"{b:.1}\" x2=\"{r:.1}\" y2=\"{b:.1}\" stroke=\"#6b7280\"/>\n\
             <line x1=\"{l:.1}\" y1=\"{t:.1}\" x2=\"{l:.1}\" y2=\"{b:.1}\" stroke=\"#6b7280\"/>\n\
             <text x=\"{cx:.1}\" y=\"{xt:.1}\" font-size=\"12\" fill=\"#374151\" \
             text-anchor=\"middle\">{}</text>\n\
             <text x=\"14\" y=\"{cy:.1}\" font-size=\"12\" fill=\"#374151\" text-anchor=\"middle\" \
             transform=\"rotate(-90 14 {cy:.1})\">{}</text>\n",
            esc(x_title),
            esc(y_title),
            l = self.x(0.0),
            r = self.x(1.0),
            t = self.y(1.0),
            b = self.y(0.0),
            cx = (self.x(0.0) + self.x(1.0)) / 2.0,
            xt = self.height - 8.0,
            cy = (self.y(0.0) + self.y(1.0)) / 2.0,
        ));
        out
    }

    /// A legend along the top: (colour, label).
    fn legend(&self, entries: &[(&str, &str)]) -> String {
        let mut out = String::new();
        let mut x = self.left;
        for (colour, label) in entries {
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"12\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\n\
                 <text x=\"{:.1}\" y=\"18\" font-size=\"12\" fill=\"#374151\">{}</text>\n",
                x + 19.0,
                esc(label)
            ));
            x += 19.0 + 7.0 * label.chars().count() as f64 + 22.0;
        }
        out
    }

    /// A line through `points` (fractions), with dots when there are few.
    fn series(&self, points: &[(f64, f64)], colour: &str) -> String {
        let coords: Vec<String> = points
            .iter()
            .map(|(fx, fy)| format!("{:.1},{:.1}", self.x(*fx), self.y(*fy)))
            .collect();
        let mut out = format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" \
             stroke-linejoin=\"round\" points=\"{}\"/>\n",
            coords.join(" ")
        );
        if points.len() <= 60 {
            for (fx, fy) in points {
                out.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\" fill=\"{colour}\"/>\n",
                    self.x(*fx),
                    self.y(*fy)
                ));
            }
        }
        out
    }

    fn no_data(&self) -> String {
        format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#6b7280\" \
             text-anchor=\"middle\">no data</text>\n",
            (self.x(0.0) + self.x(1.0)) / 2.0,
            (self.y(0.0) + self.y(1.0)) / 2.0
        )
    }
}

/// The seconds and the largest per-second count over `reports`' timelines.
fn timeline_extent(reports: &[&Report]) -> (u64, u64) {
    let rows = || reports.iter().flat_map(|r| &r.timeline);
    let seconds = reports.iter().map(|r| r.timeline.len() as u64).max();
    let peak = rows()
        .map(|row| row.requests.max(row.unauthorized).max(row.token_requests))
        .max();
    (seconds.unwrap_or(0), peak.unwrap_or(0))
}

/// A per-second count of the timeline.
type RowValue = fn(&TimelineRow) -> u64;

/// The timeline's series, in [`PALETTE`] order.
const TIMELINE_SERIES: [(&str, RowValue); 3] = [
    ("requests", |r| r.requests),
    ("401s", |r| r.unauthorized),
    ("token requests", |r| r.token_requests),
];

/// The timeline chart: requests, 401s and token requests per second on a log(1 + y) scale,
/// over `seconds` seconds with counts up to `peak`.
fn timeline_svg(rows: &[TimelineRow], seconds: u64, peak: u64, width: f64, height: f64) -> String {
    let frame = Frame::new(width, height);
    let mut out = frame.open("Per-second timeline: requests, 401s and token requests");
    // Points sit at the middle of their second.
    let x_span = seconds.max(1) as f64;
    let decades = decades(peak);
    let y_top = (1.0 + 10f64.powi(decades)).log10();
    let fy = |v: u64| (1.0 + v as f64).log10() / y_top;
    let x_ticks: Vec<(f64, String)> = ticks(x_span, 1.0)
        .into_iter()
        .map(|t| (t / x_span, num(t)))
        .collect();
    let mut y_ticks = vec![(0.0, "0".to_owned())];
    y_ticks.extend(
        (0..=decades)
            .filter_map(|d| 10u64.checked_pow(d as u32))
            .map(|v| (fy(v), int(v))),
    );
    out.push_str(&frame.axes(
        &x_ticks,
        &y_ticks,
        "seconds since start",
        "per second (log scale)",
    ));
    if rows.is_empty() {
        out.push_str(&frame.no_data());
    } else {
        for (i, (_, pick)) in TIMELINE_SERIES.iter().enumerate() {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .map(|row| ((row.t as f64 + 0.5) / x_span, fy(pick(row))))
                .collect();
            out.push_str(&frame.series(&points, PALETTE[i]));
        }
    }
    let legend: Vec<(&str, &str)> = TIMELINE_SERIES
        .iter()
        .enumerate()
        .map(|(i, (label, _))| (PALETTE[i], *label))
        .collect();
    out.push_str(&frame.legend(&legend));
    out.push_str("</svg>\n");
    out
}

/// The latency percentile spectrum: latency against percentile on a `log10(1 / (1 - p))`
/// axis (0 %, 90 %, 99 %, 99.9 %, …), one line per series.
fn spectrum_svg(series: &[(&str, &[SpectrumPoint])]) -> String {
    let frame = Frame::new(880.0, 320.0);
    let mut out = frame.open("Latency percentile spectrum");
    let x_of = |p: f64| {
        let tail = (100.0 - p) / 100.0;
        if tail > 0.0 {
            (1.0 / tail).log10()
        } else {
            f64::INFINITY
        }
    };
    let points = || series.iter().flat_map(|(_, points)| points.iter());
    let x_max = points()
        .map(|p| x_of(p.percentile))
        .filter(|x| x.is_finite())
        .fold(1.0f64, f64::max)
        .ceil();
    let y_peak = points().map(|p| p.latency_us).max().unwrap_or(0);
    let (unit, divisor) = match y_peak {
        0..=999 => ("µs", 1.0),
        1_000..=999_999 => ("ms", 1_000.0),
        _ => ("s", 1_000_000.0),
    };
    let y_max = nice_ceiling(y_peak as f64 / divisor);
    let x_ticks: Vec<(f64, String)> = (0..=x_max as u32)
        .map(|k| (f64::from(k) / x_max, percentile_label(k)))
        .collect();
    let y_ticks: Vec<(f64, String)> = ticks(y_max, 0.0)
        .into_iter()
        .map(|v| (v / y_max, num(v)))
        .collect();
    out.push_str(&frame.axes(
        &x_ticks,
        &y_ticks,
        "percentile",
        &format!("latency ({unit})"),
    ));
    if points().next().is_none() {
        out.push_str(&frame.no_data());
    }
    let mut legend = Vec::new();
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|p| {
                let x = x_of(p.percentile);
                let fx = if x.is_finite() { x / x_max } else { 1.0 };
                (fx, p.latency_us as f64 / divisor / y_max)
            })
            .collect();
        if !line.is_empty() {
            out.push_str(&frame.series(&line, colour));
        }
        legend.push((colour, *name));
    }
    out.push_str(&frame.legend(&legend));
    out.push_str("</svg>\n");
    out
}

/// `0%`, `90%`, `99%`, `99.9%`, … for `k` = 0, 1, 2, 3, ….
fn percentile_label(k: u32) -> String {
    match k {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        _ => format!("99.{}%", "9".repeat(k as usize - 2)).replace(".%", "%"),
    }
}

/// Powers of ten needed to reach `peak` (at least 1).
fn decades(peak: u64) -> i32 {
    let mut d = 1;
    while 10u64.checked_pow(d as u32).is_some_and(|v| v < peak) {
        d += 1;
    }
    d
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * base)
}

/// Tick values from 0 to `max` at a 1, 2 or 5 × 10ⁿ step of at least `min_step`, at most
/// about 8.
fn ticks(max: f64, min_step: f64) -> Vec<f64> {
    if max.is_nan() || max <= 0.0 {
        return vec![0.0];
    }
    let step = nice_ceiling(max / 8.0).max(min_step);
    let count = (max / step + 1e-9).floor() as u32;
    (0..=count).map(|i| f64::from(i) * step).collect()
}

fn to_json<T: Serialize>(value: &T, path: &Path) -> Result<String, ReportError> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|source| ReportError::Encode {
            path: path.to_owned(),
            source,
        })
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    fs::write(path, contents).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Makes text safe inside a Markdown table cell.
fn md_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn opt<T>(value: Option<T>, format: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "–".to_owned(), format)
}

/// `1,234,567`.
fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with up to 2 decimals and no trailing zeros.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return int_signed(v as i64);
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn int_signed(v: i64) -> String {
    if v < 0 {
        format!("-{}", int(v.unsigned_abs()))
    } else {
        int(v.unsigned_abs())
    }
}

/// µs as µs, ms or s.
fn us(v: u64) -> String {
    match v {
        0..=999 => format!("{v} µs"),
        1_000..=999_999 => format!("{:.2} ms", v as f64 / 1e3),
        _ => format!("{:.2} s", v as f64 / 1e6),
    }
}

/// ns as ns, µs or ms.
fn ns(v: u64) -> String {
    match v {
        0..=999 => format!("{v} ns"),
        1_000..=999_999 => format!("{:.1} µs", v as f64 / 1e3),
        _ => format!("{:.2} ms", v as f64 / 1e6),
    }
}

/// ms as ms or s.
fn ms(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", v / 1e3)
    }
}

/// A rate as a percentage with 2 decimals; just under 1 never shows as 100.00 %.
fn percent(rate: f64) -> String {
    let shown = format!("{:.2} %", rate * 100.0);
    if rate < 1.0 && shown == "100.00 %" {
        "> 99.99 %".to_owned()
    } else {
        shown
    }
}

fn bytes(v: u64) -> String {
    format!("{:.1} MiB", v as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(int(0), "0");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(1500.0), "1,500");
        assert_eq!(us(850), "850 µs");
        assert_eq!(us(12_345), "12.35 ms");
        assert_eq!(ns(271_124), "271.1 µs");
        assert_eq!(percent(0.99999), "> 99.99 %");
        assert_eq!(percent(1.0), "100.00 %");
        assert_eq!(percentile_label(0), "0%");
        assert_eq!(percentile_label(2), "99%");
        assert_eq!(percentile_label(4), "99.99%");
        assert_eq!(md_text("a|b"), "a\\|b");
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(ticks(10.0, 0.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(3.0, 1.0), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(decades(0), 1);
        assert_eq!(decades(10), 1);
        assert_eq!(decades(11), 2);
    }
}
