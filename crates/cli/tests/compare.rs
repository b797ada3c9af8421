//! `tokenbench compare` end to end, on documents the binary itself produced (a run report, a
//! comparison and sign-bench output), and on copies with one figure changed.

mod common;
use common::{stderr, stdout, tokenbench};

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::OnceLock,
};

use serde_json::Value;

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// Real documents, made once per test binary: a 1 s run of `default`, a 1 s comparison of two
/// policies on `stampede`, and a short sign-bench.
struct Fixtures {
    dir: PathBuf,
    report: PathBuf,
    comparison: PathBuf,
    sign_bench: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let run = dir.join("run");
        assert_ok(&tokenbench(&[
            "run",
            "--duration",
            "1s",
            "--rate",
            "40",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ]));
        let cmp = dir.join("cmp");
        assert_ok(&tokenbench(&[
            "run",
            "stampede",
            "--duration",
            "1s",
            "--rate",
            "40",
            "--quiet",
            "--compare",
            "policy=apim,single-flight",
            "--out",
            cmp.to_str().unwrap(),
        ]));
        let bench = tokenbench(&[
            "sign-bench",
            "--backend",
            "rsa,aws-lc-rs",
            "--alg",
            "PS256",
            "--seconds",
            "0.05",
            "--json",
        ]);
        assert_ok(&bench);
        let sign_bench = dir.join("sign-bench.json");
        std::fs::write(&sign_bench, &bench.stdout).unwrap();
        Fixtures {
            report: run.join("report.json"),
            comparison: cmp.join("comparison.json"),
            sign_bench,
            dir,
        }
    })
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A copy of `path` with `change` applied, in a fresh file.
fn changed(path: &Path, change: impl FnOnce(&mut Value)) -> PathBuf {
    let mut json = read(path);
    change(&mut json);
    let file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile_in(&fixtures().dir)
        .unwrap()
        .into_temp_path()
        .keep()
        .unwrap();
    std::fs::write(&file, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    file
}

fn compare(baseline: &Path, current: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "compare",
        baseline.to_str().unwrap(),
        current.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tokenbench(&args)
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"))
}

/// Exit 3, and each of `names` named as a regression on stderr, and nothing else.
fn assert_regressions(output: &Output, names: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(3), "stderr: {err}");
    let named: Vec<&str> = err
        .lines()
        .filter_map(|line| line.strip_prefix("regression: "))
        .map(|rest| rest.split(": ").next().unwrap())
        .collect();
    assert_eq!(named, names, "stderr: {err}");
}

fn assert_bad_input(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
}

#[test]
fn identical_documents_pass() {
    let f = fixtures();
    for path in [&f.report, &f.comparison, &f.sign_bench] {
        let output = compare(path, path, &[]);
        assert_ok(&output);
        let out = stdout(&output);
        let summary = out.lines().last().unwrap();
        let (count, rest) = summary.split_once(" metrics: ").unwrap();
        assert_eq!(rest, format!("{count} ok"), "{out}");
        assert!(count.parse::<usize>().unwrap() >= 7, "{out}");
    }
}

#[test]
fn a_worse_count_is_exit_3_naming_it_and_a_better_one_passes() {
    let f = fixtures();
    // Lower is better: single-flight's herd of 1 becoming 5.
    let worse = changed(&f.comparison, |json| {
        assert_eq!(json["runs"][1]["value"], "single-flight");
        assert_eq!(json["runs"][1]["report"]["stampede"]["max_herd"], 1);
        json["runs"][1]["report"]["stampede"]["max_herd"] = 5.into();
    });
    let output = compare(&f.comparison, &worse, &[]);
    assert_regressions(&output, &["stampede/single-flight/stampede.max_herd"]);
    assert!(stdout(&output).contains("REGRESSION"));
    // The other way it is an improvement.
    let output = compare(&worse, &f.comparison, &[]);
    assert_ok(&output);
    assert!(stdout(&output).contains(" better"), "{}", stdout(&output));

    // Higher is better: fewer ok requests.
    let fewer_ok = changed(&f.report, |json| {
        let ok = number(&json["requests"]["ok"]);
        json["requests"]["ok"] = ((ok * 0.8).round() as u64).into();
    });
    assert_regressions(
        &compare(&f.report, &fewer_ok, &[]),
        &["default/requests.ok"],
    );
    assert_ok(&compare(&fewer_ok, &f.report, &[]));
}

#[test]
fn a_worse_timing_is_exit_3_in_its_direction() {
    let f = fixtures();
    // Lower is better: the median latency three times longer (default tolerance 50 %).
    let slower = changed(&f.report, |json| {
        let p50 = number(&json["latency_us"]["p50"]);
        json["latency_us"]["p50"] = ((p50 * 3.0) as u64).into();
    });
    assert_regressions(
        &compare(&f.report, &slower, &[]),
        &["default/latency_us.p50"],
    );
    assert_ok(&compare(&slower, &f.report, &[]));

    // Higher is better: aws-lc-rs signing at a third of its rate. The raw rates (timing,
    // 50 %) and the ratio over rsa (ratio, 15 %) regress; the assertion overhead does not move.
    let slow_backend = changed(&f.sign_bench, |json| {
        let entry = json
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["backend"] == "aws-lc-rs")
            .unwrap();
        for (rate, time) in [
            ("signs_per_sec", "ns_per_sign"),
            ("assertions_per_sec", "assertion_ns"),
        ] {
            entry[rate] = (number(&entry[rate]) / 3.0).into();
            entry[time] = (number(&entry[time]) * 3.0).into();
        }
    });
    let output = compare(&f.sign_bench, &slow_backend, &[]);
    assert_regressions(
        &output,
        &[
            "sign/aws-lc-rs/PS256-2048/signs_per_s",
            "sign/aws-lc-rs/PS256-2048/assertions_per_s",
            "sign/aws-lc-rs/PS256-2048/signs_per_s_vs_rsa",
        ],
    );
    // Faster is better, not a regression.
    assert_ok(&compare(&slow_backend, &f.sign_bench, &[]));
}

#[test]
fn tolerances_come_from_max_regression_and_metric_rules() {
    let f = fixtures();
    // Latency 1.3× longer: within the timing default (50 %), beyond --max-regression 10%,
    // within again when --metric gives it back its class default.
    let slower = changed(&f.report, |json| {
        let p50 = number(&json["latency_us"]["p50"]);
        json["latency_us"]["p50"] = ((p50 * 1.3).round() as u64).into();
    });
    assert_ok(&compare(&f.report, &slower, &[]));
    assert_regressions(
        &compare(&f.report, &slower, &["--max-regression", "10%"]),
        &["default/latency_us.p50"],
    );
    assert_ok(&compare(
        &f.report,
        &slower,
        &["--max-regression", "10%", "--metric", "latency_us.p50"],
    ));
    // A token request more: within the count default (2%+1), not with `--metric
    // token_requests:0`.
    let more = changed(&f.report, |json| {
        let n = number(&json["idp"]["token_requests"]);
        json["idp"]["token_requests"] = ((n as u64) + 1).into();
    });
    assert_ok(&compare(&f.report, &more, &[]));
    assert_regressions(
        &compare(&f.report, &more, &["--metric", "token_requests:0"]),
        &["default/idp.token_requests"],
    );
    // A rule that names nothing is a usage error, not a silent no-op.
    assert_bad_input(
        &compare(&f.report, &more, &["--metric", "max_hred:0"]),
        &["--metric max_hred matches no metric"],
    );
    assert_bad_input(
        &compare(&f.report, &more, &["--metric", "max_herd:lots"]),
        &["invalid tolerance \"lots\""],
    );
}

#[test]
fn bad_input_is_exit_2_naming_the_file_and_the_problem() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"schema_version\": 1, \"scenario\": ").unwrap();
    assert_bad_input(
        &compare(&f.report, &broken, &[]),
        &["broken.json is not valid JSON", "line 1"],
    );
    let missing = dir.path().join("missing.json");
    assert_bad_input(
        &compare(&missing, &f.report, &[]),
        &["cannot read", "missing.json"],
    );
    let future = changed(&f.report, |json| json["schema_version"] = 2.into());
    assert_bad_input(
        &compare(&f.report, &future, &[]),
        &[
            future.file_name().unwrap().to_str().unwrap(),
            "run report with schema_version 2",
            "reads version 1",
        ],
    );
    assert_bad_input(
        &compare(&f.sign_bench, &f.report, &[]),
        &[
            "sign-bench.json (sign-bench output)",
            "report.json (run report)",
            "different kinds",
        ],
    );
    assert_bad_input(
        &compare(&f.report, &f.comparison, &[]),
        &["different kinds"],
    );
    let other = changed(&f.report, |json| json["scenario"] = "stampede".into());
    assert_bad_input(
        &compare(&f.report, &other, &[]),
        &["the scenarios differ (default against stampede)"],
    );
    let unrelated = dir.path().join("unrelated.json");
    std::fs::write(&unrelated, "{\"name\": \"x\"}").unwrap();
    assert_bad_input(
        &compare(&unrelated, &f.report, &[]),
        &["unrelated.json is not a benchmark document", "keys name"],
    );
}

#[test]
fn json_bmf_and_github_outputs_have_their_shapes() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let smaller_file = dir.path().join("smaller.json");
    let bigger_file = dir.path().join("bigger.json");
    let worse = changed(&f.comparison, |json| {
        json["runs"][1]["report"]["idp"]["token_requests"] = 50.into();
    });
    let output = compare(
        &f.comparison,
        &worse,
        &[
            "--format",
            "json",
            "--output",
            &format!("github-smaller={}", smaller_file.display()),
            "--output",
            &format!("github-bigger={}", bigger_file.display()),
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["summary"]["regression"], 1);
    let rows = json["rows"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["name"] == "stampede/single-flight/idp.token_requests")
        .unwrap();
    assert_eq!(row["verdict"], "regression");
    assert_eq!(row["direction"], "lower");
    assert_eq!(row["class"], "count");
    assert_eq!(row["new"], 50.0);
    assert_eq!(row["tolerance"]["text"], "2%+1");
    let direction = |name: &str| {
        rows.iter().find(|r| r["name"] == name).unwrap()["direction"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // github-action-benchmark: [{name, unit, value}], one file per direction.
    for (file, expected) in [(&smaller_file, "lower"), (&bigger_file, "higher")] {
        let entries = read(file);
        let entries = entries.as_array().unwrap();
        assert!(!entries.is_empty());
        for entry in entries {
            let object = entry.as_object().unwrap();
            assert_eq!(object.keys().collect::<Vec<_>>(), ["name", "unit", "value"]);
            assert!(entry["unit"].is_string());
            number(&entry["value"]);
            assert_eq!(direction(entry["name"].as_str().unwrap()), expected);
        }
    }
    let smaller = read(&smaller_file);
    let token_requests = smaller
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "stampede/single-flight/idp.token_requests")
        .unwrap();
    assert_eq!(token_requests["value"], 50.0);

    // Bencher Metric Format on stdout: {benchmark: {measure: {value, lower_value, upper_value}}}.
    let output = compare(&f.comparison, &worse, &["--format", "bmf"]);
    assert_eq!(output.status.code(), Some(3));
    let bmf: Value = serde_json::from_slice(&output.stdout).unwrap();
    let benchmarks = bmf.as_object().unwrap();
    assert!(benchmarks.contains_key("stampede/apim"));
    for measures in benchmarks.values() {
        for metric in measures.as_object().unwrap().values() {
            let value = number(&metric["value"]);
            let (low, high) = (
                number(&metric["lower_value"]),
                number(&metric["upper_value"]),
            );
            assert!(low <= value && value <= high, "{metric}");
        }
    }
    let herd = &bmf["stampede/single-flight"]["idp.token_requests"];
    assert_eq!(herd["value"], 50.0);
    assert!(number(&herd["upper_value"]) > 50.0);

    // Sign-bench in BMF: one benchmark per backend and algorithm.
    let output = compare(&f.sign_bench, &f.sign_bench, &["--format", "bmf"]);
    assert_ok(&output);
    let bmf: Value = serde_json::from_slice(&output.stdout).unwrap();
    number(&bmf["sign/aws-lc-rs/PS256-2048"]["signs_per_s"]["value"]);
    number(&bmf["sign/aws-lc-rs/PS256-2048"]["signs_per_s_vs_rsa"]["value"]);
}

#[cfg(unix)]
#[test]
fn an_endless_input_is_refused_after_a_bounded_read() {
    let zero = Path::new("/dev/zero");
    let output = compare(zero, zero, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("/dev/zero") && text.contains("larger than 256 MiB"),
        "{text}"
    );
}
