//! The summary of every shipped scenario's stored report and comparison (the CI baseline in
//! `reports/baseline/`): each figure it shows is the figure in the JSON, the pages show it
//! first, and what leads follows from what the runs measured.

use std::path::{Path, PathBuf};

use report::{ComparisonReport, Headline, Report};
use serde_json::Value;

fn baseline() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../reports/baseline");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The figure at `path` in a report's JSON, as the summary defines it.
fn figure(report: &Value, path: &str) -> Option<f64> {
    if path == "requests.per_second" {
        let sent = report["requests"]["sent"].as_f64()?;
        return Some(sent / report["duration_s"].as_f64()?);
    }
    path.split('.')
        .try_fold(report, |value, key| value.get(key))?
        .as_f64()
}

/// Checks `headlines` against `reports` (the JSON of each run, in order) and the pages.
fn check(name: &str, headlines: &[Headline], reports: &[&Value], md: &str, html: &str) {
    assert!(!headlines.is_empty(), "{name}: a summary");
    assert!(headlines.len() <= 8, "{name}: a handful");
    for headline in headlines {
        assert_eq!(headline.values.len(), reports.len());
        for (value, report) in headline.values.iter().zip(reports) {
            assert_eq!(
                *value,
                figure(report, headline.path),
                "{name}: {} ({})",
                headline.label,
                headline.path
            );
        }
        for i in 0..headline.texts.len() {
            let cell = headline.cell(i);
            assert!(md.contains(&cell), "{name}: {cell} in the markdown");
            assert!(
                html.contains(&headline.texts[i]),
                "{name}: {cell} in the page"
            );
            if let Some(ratio) = &headline.ratios[i] {
                assert!(
                    html.contains(&format!("({ratio})")),
                    "{name}: {ratio} in the page"
                );
            }
        }
    }
    // The summary leads: before the first table of figures.
    let summary_at = html.find("<h2>Summary</h2>").expect("a summary section");
    assert!(summary_at < html.find("<h2>Timeline").unwrap_or(usize::MAX));
    assert!(summary_at < html.find("<h2>Requests</h2>").unwrap());
    assert!(md.find("## Summary").unwrap() < md.find("## Requests").unwrap());
}

#[test]
fn every_shipped_scenario_leads_with_the_figures_that_answer_it() {
    let mut checked = Vec::new();
    for path in baseline() {
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if !json.is_object() {
            continue; // sign-bench's document: no report
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let headlines = if json.get("runs").is_some() {
            let comparison = ComparisonReport::read(&path).unwrap();
            let runs: Vec<&Value> = json["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|run| &run["report"])
                .collect();
            let headlines = comparison.summary();
            check(
                &name,
                &headlines,
                &runs,
                &comparison.markdown(),
                &comparison.html(),
            );
            // Every value after the first says how it compares with the first.
            let counted = headlines
                .iter()
                .find(|h| h.path == "idp.token_requests")
                .expect("the IdP's load");
            for (ratio, value) in counted.ratios.iter().zip(&counted.values).skip(1) {
                let first = counted.values[0].unwrap();
                if first > 0.0 && value.is_some_and(|v| v > 0.0) {
                    assert!(ratio.is_some(), "{name}: a ratio for {value:?}");
                }
            }
            headlines
        } else {
            let report = Report::read(&path).unwrap();
            let headlines = report.summary();
            check(
                &name,
                &headlines,
                &[&json],
                &report.markdown(),
                &report.html(),
            );
            headlines
        };
        // What leads follows from what the runs measured: refusals by the backend, users,
        // recovery after revocations, then the identity provider's refusals, then herds,
        // else its load.
        let runs: Vec<&Value> = match json.get("runs") {
            Some(runs) => runs
                .as_array()
                .unwrap()
                .iter()
                .map(|r| &r["report"])
                .collect(),
            None => vec![&json],
        };
        let any = |path: &str, above: f64| {
            runs.iter()
                .any(|r| figure(r, path).is_some_and(|v| v > above))
        };
        let lead = if any("requests.forbidden", 0.0) {
            "requests.forbidden"
        } else if runs.iter().any(|r| r.get("users").is_some()) {
            "users.distinct"
        } else if any("invalidation.revocations", 0.0) {
            "invalidation.latency_ms.p99"
        } else if any("idp.throttled", 0.0) {
            "idp.throttled"
        } else if any("idp.errors", 0.0) {
            "idp.errors"
        } else if any("stampede.max_herd", 1.0) {
            "stampede.max_herd"
        } else {
            "idp.token_requests"
        };
        assert_eq!(headlines[0].path, lead, "{name}");
        checked.push(name);
    }
    for shipped in scenario::builtin_names() {
        assert!(
            checked.iter().any(|name| name == shipped),
            "{shipped}: a stored report"
        );
    }
}
