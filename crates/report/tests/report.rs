//! Reports and comparisons from a synthetic run: the files, their keys, the charts, the
//! interval log.

use std::{fs, path::Path, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine as _};

use hdrhistogram::serialization::{
    interval_log::{IntervalLogIterator, LogEntry},
    Deserializer,
};
use metrics::{Metrics, RequestOutcome, RequestRecord, TokenAnswer, SERVICE_TIME_TAG};
use report::{ComparisonReport, Report, ReportError, RunInfo, SCHEMA_VERSION};
use serde_json::Value;
use tokio::time::Instant;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Three and a half seconds on two instances: traffic, fetches, a revocation and its
/// recovery, a drop. `slow` stretches some requests (by up to 3 × `slow` ms).
fn sample(policy: &str, slow: u64) -> Report {
    let m = Metrics::new(2, Instant::now()).unwrap();
    for instance in 0..2 {
        m.cache_miss(instance);
        m.episode_started(instance);
        m.fetch_started(instance, ms(1));
        m.signed(Duration::from_micros(270));
        m.fetch_finished(TokenAnswer::Ok);
        m.episode_ended(instance, 1);
    }
    for i in 0..300u64 {
        // Ten milliseconds apart; each second's requests finish within it.
        let at = i * 10 + 2;
        if i == 150 {
            m.revocation_event(ms(1_500));
        }
        if i == 155 {
            for instance in 0..2 {
                m.cache_miss(instance);
                m.fetch_started(instance, ms(1_550));
                m.signed(Duration::from_micros(280));
                m.fetch_finished(TokenAnswer::Ok);
            }
        }
        let instance = (i % 2) as usize;
        let outcome = match i {
            150..=153 => RequestOutcome::Status(401),
            _ => RequestOutcome::Status(200),
        };
        let token = if i < 156 { 0 } else { 1_555 };
        m.record_request(&RequestRecord {
            instance,
            intended_start: ms(at),
            sent_at: ms(at + 1),
            finished_at: ms(at + 1 + (i % 4) * slow),
            outcome,
            token_obtained_at: Some(ms(token)),
        });
        m.cache_hit(instance);
    }
    m.record_dropped(ms(2_500), 1);
    m.set_idp_peak_concurrent(2);
    let info = RunInfo {
        scenario: "stampede".to_owned(),
        policy: policy.to_owned(),
        backend: "aws-lc-rs".to_owned(),
        alg: "PS256".to_owned(),
        rate: Some(100.0),
        seed: Some(7),
        interrupted: false,
        ..RunInfo::default()
    };
    Report::new(info, m.snapshot(ms(3_500)))
}

fn pointer<'a>(json: &'a Value, path: &str) -> &'a Value {
    json.pointer(path)
        .unwrap_or_else(|| panic!("report.json has no {path}"))
}

#[test]
fn report_json_has_every_required_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = sample("apim", 1).write_all(dir.path()).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["report.json", "report.md", "report.html", "latency.hlog"]
    );
    let json: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    for path in [
        "/schema_version",
        "/scenario",
        "/policy",
        "/backend",
        "/alg",
        "/duration_s",
        "/requests/sent",
        "/requests/ok",
        "/requests/unauthorized",
        "/requests/forbidden",
        "/requests/errors",
        "/requests/dropped",
        "/latency_us/p50",
        "/latency_us/p90",
        "/latency_us/p99",
        "/latency_us/p999",
        "/latency_us/max",
        "/service_time_us/p50",
        "/service_time_us/p90",
        "/service_time_us/p99",
        "/service_time_us/p999",
        "/service_time_us/max",
        "/cache/hits",
        "/cache/misses",
        "/cache/hit_rate",
        "/idp/token_requests",
        "/idp/ok",
        "/idp/throttled",
        "/idp/errors",
        "/idp/peak_concurrent",
        "/signing/count",
        "/signing/mean_ns",
        "/signing/p50_ns",
        "/signing/p99_ns",
        "/stampede/episodes",
        "/stampede/max_herd",
        "/stampede/mean_herd",
        "/invalidation/events",
        "/invalidation/latency_ms/p50",
        "/invalidation/latency_ms/p99",
        "/invalidation/latency_ms/max",
        "/invalidation/failed_requests",
        "/invalidation/redundant_fetches",
        "/memory/peak_rss_bytes",
    ] {
        let value = pointer(&json, path);
        assert!(
            value.is_number() || value.is_string(),
            "{path} is {value} in this run, where it has data"
        );
    }
    assert_eq!(json["schema_version"], SCHEMA_VERSION);
    assert_eq!(json["scenario"], "stampede");
    assert_eq!(json["duration_s"], 3.5);
    assert_eq!(json["requests"]["sent"], 300);
    assert_eq!(json["requests"]["unauthorized"], 4);
    assert_eq!(json["requests"]["dropped"], 1);
    assert_eq!(json["idp"]["token_requests"], 4);
    assert_eq!(json["invalidation"]["events"], 2);
    assert_eq!(json["invalidation"]["failed_requests"], 4);
    assert_eq!(json["invalidation"]["redundant_fetches"], 0);
    let timeline = json["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 4);
    for row in timeline {
        for key in [
            "t",
            "requests",
            "ok",
            "unauthorized",
            "token_requests",
            "p99_us",
        ] {
            assert!(row.get(key).is_some(), "timeline row without {key}: {row}");
        }
    }
    assert_eq!(timeline[1]["unauthorized"], 4);
    assert_eq!(timeline[1]["token_requests"], 2);
    assert!(pointer(&json, "/cache/instances/1/hit_rate").is_number());
    assert!(!pointer(&json, "/latency_spectrum")
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn markdown_and_html_are_written_with_two_svg_charts() {
    let dir = tempfile::tempdir().unwrap();
    sample("apim", 1).write_all(dir.path()).unwrap();
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.starts_with("# tokenbench report: stampede"));
    for heading in [
        "## Requests",
        "## Latency from intended start",
        "## Token cache",
        "## Identity provider",
        "## Signing",
        "## Stampede",
        "## 401 invalidation",
        "## Memory",
        "## Per instance",
    ] {
        assert!(md.contains(heading), "report.md lacks {heading}");
    }
    assert!(md.contains("| unauthorized (401) | 4 |"), "{md}");

    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    assert_eq!(html.matches("</svg>").count(), 2);
    // The timeline's three series and the spectrum's line.
    assert_eq!(html.matches("<polyline").count(), 4);
    for label in ["requests", "401s", "token requests", "percentile", "99%"] {
        assert!(html.contains(&format!(">{label}<")), "no {label} label");
    }
    // Self-contained: no scripts, no external assets.
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert!(!html.contains("src="));
    let external = html.replace("http://www.w3.org/2000/svg", "");
    assert!(!external.contains("http://") && !external.contains("https://"));
}

#[test]
fn the_interval_log_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let report = sample("apim", 1);
    report.write_all(dir.path()).unwrap();
    let log = fs::read(dir.path().join("latency.hlog")).unwrap();
    let (mut start_time, mut base_time) = (None, None);
    let mut latency = Vec::new();
    let mut service = Vec::new();
    for entry in IntervalLogIterator::new(&log) {
        match entry.unwrap() {
            LogEntry::StartTime(t) => start_time = Some(t),
            LogEntry::BaseTime(t) => base_time = Some(t),
            LogEntry::Interval(interval) => {
                let bytes = STANDARD.decode(interval.encoded_histogram()).unwrap();
                let histogram = Deserializer::new()
                    .deserialize::<u64, _>(&mut bytes.as_slice())
                    .unwrap();
                let entry = (
                    interval.start_timestamp(),
                    interval.duration(),
                    histogram.len(),
                );
                match interval.tag() {
                    None => latency.push(entry),
                    Some(tag) => {
                        assert_eq!(tag.as_str(), SERVICE_TIME_TAG);
                        service.push(entry)
                    }
                }
            }
        }
    }
    assert!(start_time.is_some());
    assert_eq!(start_time, base_time);
    // One interval per second, the last one half a second long.
    let seconds: Vec<_> = latency
        .iter()
        .map(|(start, _, _)| start.as_secs())
        .collect();
    assert_eq!(seconds, [0, 1, 2, 3]);
    assert_eq!(latency[3].1, ms(500));
    assert_eq!(latency[0].1, ms(1_000));
    let counts: Vec<_> = latency.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(counts, [100, 100, 100, 0]);
    assert_eq!(service.len(), 4);
    assert_eq!(service.iter().map(|(_, _, n)| n).sum::<u64>(), 300);
}

#[test]
fn a_report_reads_back_from_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let report = sample("single-flight", 2);
    report.write_all(dir.path()).unwrap();
    let back = Report::read(&dir.path().join("report.json")).unwrap();
    assert_eq!(back.run.policy, "single-flight");
    assert_eq!(back.metrics.requests, report.metrics.requests);
    assert_eq!(back.metrics.latency_us, report.metrics.latency_us);
    assert_eq!(back.metrics.timeline, report.metrics.timeline);
    assert_eq!(back.metrics.invalidation, report.metrics.invalidation);
    assert_eq!(back.metrics.cache, report.metrics.cache);
    assert!(
        back.metrics.latency_log.is_empty(),
        "the histograms are not in the JSON"
    );
    assert_eq!(report.metrics.latency_log.len(), 4);
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A folder where a file is in the way.
    let blocked = dir.path().join("blocked");
    fs::write(&blocked, "").unwrap();
    let error = sample("apim", 1).write_all(&blocked).unwrap_err();
    assert!(matches!(error, ReportError::CreateDir { .. }), "{error:?}");
    assert!(error.to_string().contains("blocked"), "{error}");

    let not_json = dir.path().join("notes.json");
    fs::write(&not_json, "{\"schema_version\": 1,\n \"scenario\": 3}").unwrap();
    let error = Report::read(&not_json).unwrap_err();
    assert!(matches!(error, ReportError::Parse { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("notes.json") && message.contains("line 2"),
        "{message}"
    );

    let newer = dir.path().join("newer");
    sample("apim", 1).write_all(&newer).unwrap();
    let path = newer.join("report.json");
    let mut json: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    json["schema_version"] = Value::from(2);
    fs::write(&path, json.to_string()).unwrap();
    let error = Report::read(&path).unwrap_err();
    assert!(
        matches!(error, ReportError::Schema { found: 2, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("report.json"));

    let missing = Report::read(&dir.path().join("absent.json")).unwrap_err();
    assert!(matches!(missing, ReportError::Read { .. }));
    assert!(missing.to_string().contains("absent.json"));
}

#[test]
fn a_comparison_writes_its_three_files_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let comparison = ComparisonReport {
        key: "policy".to_owned(),
        values: vec![
            ("apim".to_owned(), sample("apim", 3)),
            ("single-flight".to_owned(), sample("single-flight", 1)),
            ("refresh-ahead".to_owned(), sample("refresh-ahead", 0)),
        ],
    };
    let files = comparison.write_all(dir.path()).unwrap();
    assert_eq!(files.len(), 3);
    for file in &files {
        assert!(file.exists(), "{} missing", file.display());
    }
    let json: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("comparison.json")).unwrap())
            .unwrap();
    assert_eq!(json["schema_version"], SCHEMA_VERSION);
    assert_eq!(json["key"], "policy");
    assert_eq!(
        json["values"],
        serde_json::json!(["apim", "single-flight", "refresh-ahead"])
    );
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[1]["value"], "single-flight");
    assert_eq!(runs[1]["report"]["policy"], "single-flight");
    assert!(runs[2]["report"]["latency_us"]["p99"].is_number());

    let md = fs::read_to_string(dir.path().join("comparison.md")).unwrap();
    assert!(
        md.contains("| metric | apim | single-flight | refresh-ahead |"),
        "{md}"
    );
    assert!(md.contains("## Stampede"));

    let html = fs::read_to_string(dir.path().join("comparison.html")).unwrap();
    // One overlaid spectrum (three lines) and one timeline per value.
    assert_eq!(html.matches("<svg").count(), 4);
    assert_eq!(html.matches("<polyline").count(), 3 + 3 * 3);
    assert!(html.contains("policy = refresh-ahead"));
    assert!(!html.contains("<script"));
    read_dir_names(dir.path());
}

/// The comparison writes nothing but its three files.
fn read_dir_names(dir: &Path) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["comparison.html", "comparison.json", "comparison.md"]
    );
}
