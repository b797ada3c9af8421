//! `tokenbench run` end to end: the default scenario's reports, a comparison, and a broken
//! scenario file.

mod common;
use common::tokenbench;

#[test]
fn the_default_scenario_writes_all_four_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = tokenbench(&[
        "run",
        "--duration",
        "2s",
        "--rate",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["report.json", "report.md", "report.html", "latency.hlog"] {
        assert!(out.join(file).metadata().unwrap().len() > 0, "{file}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["scenario"], "default");
    assert_eq!(report["requests"]["sent"], report["requests"]["ok"]);
    assert!(report["requests"]["sent"].as_u64().unwrap() >= 90);
}

#[test]
fn compare_runs_once_per_value_and_writes_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp");
    let output = tokenbench(&[
        "run",
        "--duration",
        "1s",
        "--rate",
        "20",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--compare",
        "policy=apim,single-flight",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in [
        "apim/report.json",
        "single-flight/report.json",
        "comparison.json",
        "comparison.md",
        "comparison.html",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    let comparison: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("comparison.json")).unwrap()).unwrap();
    assert_eq!(comparison["key"], "policy");
    assert_eq!(
        comparison["values"],
        serde_json::json!(["apim", "single-flight"])
    );
}

#[test]
fn a_broken_scenario_is_exit_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "name = \"x\"\n[traffic]\nkind = \"constant\"\nrate = 10\nbogus = 1\n",
    )
    .unwrap();
    let output = tokenbench(&["run", file.to_str().unwrap(), "--quiet"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.toml:5") && stderr.contains("bogus"),
        "{stderr}"
    );
    let output = tokenbench(&["run", "no-such-scenario", "--quiet"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn simulate_writes_simulated_reports_per_compared_value_and_refuses_a_real_backend() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    // Two minutes of the stampede scenario on a virtual clock: far longer than the test may
    // take in real time.
    let output = tokenbench(&[
        "simulate",
        "stampede",
        "--duration",
        "2m",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--compare",
        "policy=apim,single-flight",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for policy in ["apim", "single-flight"] {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(policy).join("report.json")).unwrap())
                .unwrap();
        assert_eq!(report["mode"], "simulated");
        assert_eq!(report["duration_s"], 120.0);
        assert_eq!(report["requests"]["sent"], 60_000);
        assert!(report["signing_cost_us"].as_u64().unwrap() > 0);
    }
    assert!(out.join("comparison.html").exists());

    let file = dir.path().join("external.toml");
    std::fs::write(
        &file,
        "[traffic]\nkind = \"constant\"\nrate = 1\n[backend]\nurl = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let output = tokenbench(&["simulate", file.to_str().unwrap(), "--quiet"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot simulate") && stderr.contains("[backend] url"),
        "{stderr}"
    );
}

#[test]
fn an_output_folder_that_cannot_be_written_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "").unwrap();
    let long = dir.path().join("x".repeat(300));
    for out in [&file, &long] {
        let started = std::time::Instant::now();
        // A 60 s run: refused at once, not after the run.
        let output = tokenbench(&[
            "run",
            "--duration",
            "60s",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        let text = common::stderr(&output);
        assert!(text.contains("output folder"), "{text}");
        // The cause is said once.
        let first_line = text.lines().next().unwrap_or_default();
        let cause = first_line.rsplit(": ").next().unwrap();
        assert_eq!(first_line.matches(cause).count(), 1, "{first_line}");
    }
}
