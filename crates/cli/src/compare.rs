//! `tokenbench compare`: two benchmark documents, metric by metric, with verdicts.

use std::{fs, path::PathBuf, str::FromStr};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use report::regression::{
    self, Direction, Document, Outcome, Row, Rule, Tolerance, Tolerances, Verdict,
};
use serde_json::Value;

use crate::{usage, Regressed};

/// The tolerance options `compare` and `ci` share.
#[derive(Args, Clone, Debug, Default)]
pub struct ToleranceArgs {
    /// Tolerance of every metric, replacing the class defaults (counts 2%+1, hit rate 1%,
    /// ratios 15%, timings 50%): N% (a factor), N (in the metric's unit), N%+N, or 0.
    #[arg(long, value_name = "TOLERANCE")]
    max_regression: Option<Tolerance>,
    /// NAME[:TOLERANCE]: the tolerance of the metrics NAME matches (a full name, a tail after
    /// '/' or '.', or a glob with * and ?; the last match wins); without TOLERANCE, the class
    /// default. Repeatable.
    #[arg(long = "metric", value_name = "NAME[:TOLERANCE]")]
    metrics: Vec<Rule>,
}

impl ToleranceArgs {
    /// The tolerances: `suite` rules first, then the user's `--metric` rules.
    pub fn tolerances(&self, suite: &[Rule]) -> Tolerances {
        Tolerances {
            default: self.max_regression,
            rules: suite.iter().chain(&self.metrics).cloned().collect(),
        }
    }

    /// Refuses a `--metric` rule that matches none of `names` (a typo would check nothing).
    pub fn check_rules_match<'a>(
        &self,
        names: impl Iterator<Item = &'a str> + Clone,
        what: &str,
    ) -> anyhow::Result<()> {
        for rule in &self.metrics {
            if !names.clone().any(|name| rule.matches(name)) {
                return Err(usage(format!(
                    "--metric {} matches no metric of {what}",
                    rule.pattern
                )));
            }
        }
        Ok(())
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// Every metric with old, new, change, tolerance and verdict.
    Json,
    /// Bencher Metric Format of the current figures (`bencher run --adapter json`).
    Bmf,
    /// github-action-benchmark `customSmallerIsBetter`: the lower-is-better metrics.
    GithubSmaller,
    /// github-action-benchmark `customBiggerIsBetter`: the higher-is-better metrics.
    GithubBigger,
}

/// `FORMAT=FILE` of `--output`.
#[derive(Clone, Debug)]
pub struct OutputFile {
    format: Format,
    path: PathBuf,
}

impl FromStr for OutputFile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (format, path) = text
            .split_once('=')
            .ok_or_else(|| "expected FORMAT=FILE, e.g. bmf=bmf.json".to_owned())?;
        let format = Format::from_str(format.trim(), true).map_err(|_| {
            format!(
                "unknown format {format:?}; expected text, json, bmf, github-smaller or github-bigger"
            )
        })?;
        if path.is_empty() {
            return Err("expected FORMAT=FILE, e.g. bmf=bmf.json".to_owned());
        }
        Ok(OutputFile {
            format,
            path: PathBuf::from(path),
        })
    }
}

#[derive(Args)]
pub struct CompareArgs {
    /// The baseline: a report.json, a comparison.json or `sign-bench --json` output.
    baseline: PathBuf,
    /// The current document, of the same kind.
    current: PathBuf,
    #[command(flatten)]
    tolerance: ToleranceArgs,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// FORMAT=FILE: also write FORMAT into FILE (e.g. bmf=bmf.json,
    /// github-smaller=smaller.json, github-bigger=bigger.json). Repeatable.
    #[arg(long, value_name = "FORMAT=FILE")]
    output: Vec<OutputFile>,
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let baseline = Document::read(&args.baseline)?;
    let current = Document::read(&args.current)?;
    args.tolerance.check_rules_match(
        baseline
            .metrics
            .iter()
            .chain(&current.metrics)
            .map(|m| m.name.as_str()),
        &format!("{} or {}", args.baseline.display(), args.current.display()),
    )?;
    let outcome = regression::compare(&baseline, &current, &args.tolerance.tolerances(&[]))?;
    for output in &args.output {
        let text = render(output.format, std::slice::from_ref(&outcome));
        fs::write(&output.path, text)
            .with_context(|| format!("cannot write {}", output.path.display()))?;
    }
    print!("{}", render(args.format, std::slice::from_ref(&outcome)));
    report_to_stderr(&outcome);
    match outcome.count(Verdict::Regression) {
        0 => Ok(()),
        n => Err(Regressed(n).into()),
    }
}

/// `outcomes` in `format`, ending with a newline.
pub fn render(format: Format, outcomes: &[Outcome]) -> String {
    let rows = || outcomes.iter().flat_map(|o| &o.rows);
    let json = |value: Value| {
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    };
    match format {
        Format::Text => outcomes
            .iter()
            .map(|o| {
                let mut text = heading(o);
                text.push_str(&table(o.rows.iter()));
                text.push_str(&summary(o));
                text
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => json(match outcomes {
            [one] => outcome_json(one),
            many => Value::Array(many.iter().map(outcome_json).collect()),
        }),
        Format::Bmf => json(regression::bmf(rows())),
        Format::GithubSmaller => json(regression::github(rows(), Direction::Lower)),
        Format::GithubBigger => json(regression::github(rows(), Direction::Higher)),
    }
}

/// One outcome as JSON: sources, rows (with the tolerance also as text), notes, a summary.
pub fn outcome_json(outcome: &Outcome) -> Value {
    let mut value = serde_json::to_value(outcome).unwrap_or(Value::Null);
    if let Some(rows) = value.get_mut("rows").and_then(Value::as_array_mut) {
        for (row, source) in rows.iter_mut().zip(&outcome.rows) {
            row["tolerance"]["text"] = source.tolerance.to_string().into();
        }
    }
    value["summary"] = serde_json::json!({
        "ok": outcome.count(Verdict::Ok),
        "better": outcome.count(Verdict::Better),
        "regression": outcome.count(Verdict::Regression),
        "new": outcome.count(Verdict::New),
        "missing": outcome.count(Verdict::Missing),
    });
    value
}

fn heading(outcome: &Outcome) -> String {
    format!(
        "{} ({})\n  baseline {}\n  current  {}\n",
        outcome.current.subject,
        outcome.current.kind,
        outcome.baseline.path.display(),
        outcome.current.path.display()
    )
}

/// `N metrics: X ok, …`.
pub fn summary(outcome: &Outcome) -> String {
    let mut parts = vec![format!("{} ok", outcome.count(Verdict::Ok))];
    for (verdict, name) in [
        (Verdict::Better, "better"),
        (Verdict::Regression, "regressed"),
        (Verdict::New, "new"),
        (Verdict::Missing, "missing"),
    ] {
        let n = outcome.count(verdict);
        if n > 0 {
            parts.push(format!("{n} {name}"));
        }
    }
    format!("{} metrics: {}\n", outcome.rows.len(), parts.join(", "))
}

/// The rows as an aligned table.
pub fn table<'a>(rows: impl Iterator<Item = &'a Row>) -> String {
    let head = [
        "metric",
        "unit",
        "old",
        "new",
        "change",
        "tolerance",
        "verdict",
    ];
    let mut lines: Vec<[String; 7]> = vec![head.map(str::to_owned)];
    for row in rows {
        lines.push([
            row.name.clone(),
            row.unit.to_owned(),
            row.old.map_or_else(|| "-".to_owned(), number),
            row.new.map_or_else(|| "-".to_owned(), number),
            change(row),
            row.tolerance.to_string(),
            row.verdict.to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            // Names and units to the left, figures to the right.
            if i < 2 || i == 6 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
            text.push_str("  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// Names each regression on stderr, and the notes and missing metrics of `outcome`.
pub fn report_to_stderr(outcome: &Outcome) {
    for note in &outcome.notes {
        eprintln!("note: {}: {note}", outcome.current.subject);
    }
    let missing: Vec<&str> = outcome
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Missing)
        .map(|r| r.name.as_str())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "note: {} metric(s) of {} are not in {}: {}",
            missing.len(),
            outcome.baseline.path.display(),
            outcome.current.path.display(),
            missing.join(", ")
        );
    }
    for row in outcome.regressions() {
        eprintln!(
            "regression: {}: {} -> {} {} ({}; tolerance {}, {})",
            row.name,
            row.old.map_or_else(|| "-".to_owned(), number),
            row.new.map_or_else(|| "-".to_owned(), number),
            row.unit,
            change(row),
            row.tolerance,
            row.direction
        );
    }
}

fn change(row: &Row) -> String {
    match (row.change_pct, row.old, row.new) {
        (Some(pct), _, _) => format!("{pct:+.1}%"),
        (None, Some(old), Some(new)) if new > old => format!("+{}", number(new - old)),
        (None, Some(old), Some(new)) if new < old => format!("-{}", number(old - new)),
        (None, Some(_), Some(_)) => "0".to_owned(),
        _ => String::new(),
    }
}

/// A figure for people: whole numbers and thousands as integers, smaller figures with two to
/// four decimals.
pub fn number(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}
