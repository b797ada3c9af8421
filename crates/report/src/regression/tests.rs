//! Regression checks on real reports, sign-bench output and hand-made documents.

use std::{path::Path, time::Duration};

use metrics::{Metrics, RequestOutcome, RequestRecord, TokenAnswer};
use serde_json::Value;

use super::{compare::judge, *};
use crate::document::{Report, RunInfo};

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
    worse.metrics.stampede.max_herd = Some(9); // lower is better, count
    worse.metrics.requests.ok = 50; // higher is better, count
    worse.metrics.latency_us.p50 = base.metrics.latency_us.p50.map(|v| v * 3); // lower is better, timing
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
fn sign_bench_on_several_threads_is_named_apart_and_compared_with_its_own_kind() {
    let mut entries: Vec<serde_json::Value> = serde_json::from_str(&sign_bench(3500.0)).unwrap();
    let threaded: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["threads"] = 2.into();
            e["signs_per_sec"] = (e["signs_per_sec"].as_f64().unwrap() * 2.0).into();
            e
        })
        .collect();
    entries.extend(threaded);
    let doc = Document::parse(
        Path::new("threads.json"),
        &serde_json::to_string(&entries).unwrap(),
    )
    .unwrap();
    assert_eq!(value(&doc, "sign/rsa/PS256-2048/signs_per_s"), 700.0);
    assert_eq!(value(&doc, "sign/rsa/PS256-2048-x2/signs_per_s"), 1400.0);
    // The reference of the ratios is the first backend on as many threads.
    assert_eq!(
        value(&doc, "sign/aws-lc-rs/PS256-2048-x2/signs_per_s_vs_rsa"),
        5.0
    );
    entries[0]["threads"] = 0.into();
    let err = Document::parse(
        Path::new("zero.json"),
        &serde_json::to_string(&entries).unwrap(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("[0].threads must be at least 1"),
        "{err}"
    );
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
    single.run.policy = "single-flight".to_owned();
    single.metrics.stampede.max_herd = Some(1);
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
    broken.metrics.stampede.max_herd = Some(3);
    broken.run.rate = Some(200.0);
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

/// sign-bench output with rsa and aws-lc-rs PS256 at these rates.
fn bench_pair(name: &str, rsa: f64, aws: f64) -> Document {
    let entry = |backend: &str, rate: f64| {
        serde_json::json!({
            "backend": backend, "alg": "PS256", "key_bits": 2048,
            "signs_per_sec": rate, "ns_per_sign": 1e9 / rate,
            "assertions_per_sec": rate, "assertion_ns": 1e9 / rate,
        })
    };
    let text = serde_json::json!([entry("rsa", rsa), entry("aws-lc-rs", aws)]).to_string();
    Document::parse(Path::new(name), &text).unwrap()
}

fn regression_names(outcome: &Outcome) -> Vec<&str> {
    outcome.regressions().map(|r| r.name.as_str()).collect()
}

#[test]
fn only_regressions_both_runs_show_count() {
    let baseline = bench_pair("base.json", 700.0, 3500.0);
    let tolerances = Tolerances::default();
    // First run: rsa's rate halved (its raw rate regresses, the ratio improves).
    let first = compare(&baseline, &bench_pair("1.json", 300.0, 3500.0), &tolerances).unwrap();
    assert_eq!(
        regression_names(&first),
        [
            "sign/rsa/PS256-2048/signs_per_s",
            "sign/rsa/PS256-2048/assertions_per_s"
        ]
    );
    // Second run: rsa fine, aws-lc-rs at a third (raw rates and ratio regress).
    let second = compare(&baseline, &bench_pair("2.json", 700.0, 1000.0), &tolerances).unwrap();
    let (outcome, unconfirmed) = confirmed(&first, second);
    assert!(regression_names(&outcome).is_empty());
    assert_eq!(
        unconfirmed,
        [
            "sign/rsa/PS256-2048/signs_per_s",
            "sign/rsa/PS256-2048/assertions_per_s"
        ]
    );
    // Both runs with aws-lc-rs at a third: confirmed.
    let first = compare(&baseline, &bench_pair("1.json", 700.0, 1100.0), &tolerances).unwrap();
    let second = compare(&baseline, &bench_pair("2.json", 700.0, 1000.0), &tolerances).unwrap();
    let (outcome, unconfirmed) = confirmed(&first, second);
    assert_eq!(
        regression_names(&outcome),
        [
            "sign/aws-lc-rs/PS256-2048/signs_per_s",
            "sign/aws-lc-rs/PS256-2048/assertions_per_s",
            "sign/aws-lc-rs/PS256-2048/signs_per_s_vs_rsa"
        ]
    );
    assert!(unconfirmed.is_empty());
    // The confirmed figures are the second run's.
    let row = outcome
        .rows
        .iter()
        .find(|r| r.name == "sign/aws-lc-rs/PS256-2048/signs_per_s")
        .unwrap();
    assert_eq!(row.new, Some(1000.0));
}
