//! `report.json` keeps `schema_version` 1 and every key and value it had before the report
//! embedded the metrics snapshot; keys added since are listed in [`ADDED`], with the value a
//! report without them reads as. `data/report-v1.json` was written by the tokenbench of
//! before that change (`tokenbench run default --duration 2s --rate 50`).

use std::{collections::BTreeSet, time::Duration};

use metrics::{catalog::CATALOG, Metrics, RequestOutcome, RequestRecord, TokenAnswer};
use report::{Report, RunInfo, SCHEMA_VERSION};
use serde_json::Value;
use tokio::time::Instant;

const BEFORE: &str = include_str!("data/report-v1.json");

/// Keys added to schema 1 since `report-v1.json` (their paths, as JSON pointers), and the
/// value an older report reads as.
const ADDED: [(&str, &str); 12] = [
    ("/mode", r#""real-time""#),
    ("/signing_cost_us", "null"),
    ("/timeline_interval_s", "1"),
    ("/idp/peak_second", "null"),
    ("/idp/peak_minute", "null"),
    ("/regions", "[]"),
    ("/apis", "[]"),
    ("/requests/waited_for_token", "null"),
    ("/stampede/p50_herd", "null"),
    ("/stampede/p99_herd", "null"),
    (
        "/token_wait_us",
        r#"{"p50": null, "p90": null, "p99": null, "p999": null, "max": null}"#,
    ),
    (
        "/connections",
        r#"{
            "idp": {"opened": 0, "failed": 0, "tls_handshakes": 0, "open_us":
                {"p50": null, "p90": null, "p99": null, "p999": null, "max": null}},
            "backend": {"opened": 0, "failed": 0, "tls_handshakes": 0, "open_us":
                {"p50": null, "p90": null, "p99": null, "p999": null, "max": null}}
        }"#,
    ),
];

/// The keys of the elements of the arrays added since (empty in an older report).
const ADDED_IN_ARRAYS: [&str; 2] = ["regions[]", "apis[]"];
const GROUP_KEYS: [&str; 9] = [
    "name",
    "instances",
    "hits",
    "misses",
    "hit_rate",
    "token_requests",
    "episodes",
    "max_herd",
    "mean_herd",
];

/// `before` with the keys added since, at the values an older report reads as.
fn with_added(mut before: Value) -> Value {
    for (pointer, value) in ADDED {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        before.pointer_mut(parent).unwrap()[key] = serde_json::from_str(value).unwrap();
    }
    before
}

/// Every key path of `value`: `cache.hits`, `timeline[].t`, …
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}{key}");
                key_paths(child, &format!("{path}."), out);
                out.insert(path);
            }
        }
        Value::Array(items) => {
            let element = format!("{}[].", prefix.trim_end_matches('.'));
            for item in items {
                key_paths(item, &element, out);
            }
        }
        _ => {}
    }
}

fn keys(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    key_paths(value, "", &mut out);
    out
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A run with something in every section: two instances, fetches, a revocation and the
/// recoveries from it, a drop.
fn report_now() -> Report {
    let m = Metrics::new(2, Instant::now()).unwrap();
    for instance in 0..2 {
        m.cache_miss(instance);
        m.episode_started(instance);
        m.fetch_started(instance, ms(1));
        m.signed(Duration::from_micros(300));
        m.fetch_finished(TokenAnswer::Ok);
        m.episode_ended(instance, 1);
    }
    m.revocation_event(ms(500));
    for i in 0..100u64 {
        let instance = (i % 2) as usize;
        m.record_request(&RequestRecord {
            instance,
            intended_start: ms(i * 10),
            sent_at: ms(i * 10 + 1),
            finished_at: ms(i * 10 + 3),
            outcome: RequestOutcome::Status(if i == 50 { 401 } else { 200 }),
            token_obtained_at: Some(ms(if i < 52 { 1 } else { 510 })),
        });
        m.cache_hit(instance);
    }
    m.record_dropped(ms(700), 1);
    let info = RunInfo {
        scenario: "default".to_owned(),
        policy: "refresh-ahead".to_owned(),
        backend: "aws-lc-rs".to_owned(),
        alg: "PS256".to_owned(),
        rate: Some(50.0),
        seed: Some(1),
        interrupted: false,
        ..RunInfo::default()
    };
    Report::new(info, m.snapshot(ms(1_000)))
}

#[test]
fn a_report_written_now_has_every_key_of_one_written_before_and_the_added_ones() {
    let before: Value = serde_json::from_str(BEFORE).unwrap();
    let now = serde_json::to_value(report_now()).unwrap();
    assert_eq!(now["schema_version"], SCHEMA_VERSION);
    let mut expected = keys(&with_added(before));
    for array in ADDED_IN_ARRAYS {
        expected.extend(GROUP_KEYS.map(|key| format!("{array}.{key}")));
    }
    assert_eq!(keys(&now), expected);
}

#[test]
fn a_report_written_before_reads_and_writes_back_unchanged_but_for_the_added_keys() {
    let before: Value = serde_json::from_str(BEFORE).unwrap();
    let report: Report = serde_json::from_str(BEFORE).unwrap();
    assert_eq!(report.metrics.requests.sent, 96);
    assert_eq!(report.metrics.idp.token_requests, 3);
    assert_eq!(serde_json::to_value(&report).unwrap(), with_added(before));
}

/// `users`: only in reports of on-behalf-of runs, so absent from `report_now`'s.
fn report_with_users() -> Report {
    let m = Metrics::new(1, Instant::now()).unwrap();
    m.user_evicted();
    m.set_users(1000, 10, 5, 5);
    let report = Report::new(RunInfo::default(), m.snapshot(ms(1_000)));
    let users = report.metrics.users.unwrap();
    assert_eq!((users.distinct, users.evictions), (10, 1));
    assert_eq!(users.token_requests_per_user, Some(0.0));
    report
}

#[test]
fn users_are_added_only_to_the_reports_of_runs_that_have_users() {
    let now = serde_json::to_value(report_now()).unwrap();
    assert!(now.get("users").is_none());
    let with_users = serde_json::to_value(report_with_users()).unwrap();
    let mut added = keys(&with_users);
    added.retain(|key| key.starts_with("users"));
    assert_eq!(
        added.into_iter().collect::<Vec<_>>(),
        [
            "users",
            "users.cache_entries",
            "users.distinct",
            "users.entry_limit",
            "users.evictions",
            "users.population",
            "users.token_requests_per_user",
        ]
    );
    let read: Report = serde_json::from_value(with_users).unwrap();
    assert_eq!(read.metrics.users, report_with_users().metrics.users);
}

#[test]
fn every_catalog_figure_is_a_key_of_the_report_or_derived_from_them() {
    let before: Value = serde_json::from_str(BEFORE).unwrap();
    let mut keys = keys(&with_added(before));
    keys.extend(self::keys(
        &serde_json::to_value(report_with_users()).unwrap(),
    ));
    let derived = ["requests.per_second"];
    for description in CATALOG {
        assert!(
            keys.contains(description.path) || derived.contains(&description.path),
            "{} is neither in report.json nor a known derived figure",
            description.path
        );
    }
}
