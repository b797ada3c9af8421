//! `tokenbench ci` against its own fresh baseline: two passes in a row without a false alarm,
//! then a baseline edited to be better than the code, which must fail naming the metric.
//!
//! The suite's `stampede` (three cache policies) and `sign-bench` members only (`--only`),
//! to keep the test near half a minute; `.ci/run` runs the whole suite.

mod common;
use common::{stderr, stdout, tokenbench};

use serde_json::Value;

#[test]
fn ci_passes_twice_against_its_own_baseline_and_catches_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline");
    let baseline_arg = baseline.to_str().unwrap();
    let only = "stampede,sign-bench";

    let output = tokenbench(&[
        "ci",
        "--only",
        only,
        "--baseline",
        baseline_arg,
        "--update",
        "--out",
        dir.path().join("r0").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for file in ["stampede.json", "sign-bench.json"] {
        assert!(baseline.join(file).is_file(), "{file}");
    }

    for pass in ["r1", "r2"] {
        let out = dir.path().join(pass);
        let output = tokenbench(&[
            "ci",
            "--only",
            only,
            "--baseline",
            baseline_arg,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{pass}\nstdout: {}\nstderr: {}",
            stdout(&output),
            stderr(&output)
        );
        assert!(stdout(&output).contains("ci: no regression"));
        let verdicts: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("verdicts.json")).unwrap())
                .unwrap();
        assert_eq!(verdicts.as_array().unwrap().len(), 2);
        for file in ["bmf.json", "github-smaller.json", "github-bigger.json"] {
            let json: Value =
                serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
            assert!(json.is_object() || json.is_array(), "{file}");
        }
    }

    // A baseline in which single-flight needed no token request at all: the code now needs
    // its two (one per instance), a regression that must be named.
    let file = baseline.join("stampede.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let run = json["runs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|run| run["value"] == "single-flight")
        .unwrap();
    assert_eq!(run["report"]["idp"]["token_requests"], 2);
    run["report"]["idp"]["token_requests"] = 0.into();
    std::fs::write(&file, json.to_string()).unwrap();
    let output = tokenbench(&[
        "ci",
        "--only",
        "stampede",
        "--baseline",
        baseline_arg,
        "--out",
        dir.path().join("r3").to_str().unwrap(),
    ]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains("regression: stampede/single-flight/idp.token_requests: 0 -> 2"),
        "{error}"
    );

    // A member without a baseline file is bad input, found before anything runs.
    std::fs::remove_file(&file).unwrap();
    let output = tokenbench(&["ci", "--only", "stampede", "--baseline", baseline_arg]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(
        error.contains("no baseline") && error.contains("stampede.json"),
        "{error}"
    );
    let output = tokenbench(&["ci", "--only", "nonsense", "--baseline", baseline_arg]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no suite member \"nonsense\""));
}
