//! `tokenbench report`: pages rendered again from a stored report.json or comparison.json.

mod common;
use std::path::Path;

use common::{stderr, stdout, tokenbench};

fn baseline(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../reports/baseline")
            .join(name),
    )
    .unwrap()
}

#[test]
fn pages_are_rendered_again_from_the_json_alone() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("report.json"), baseline("default.json")).unwrap();
    std::fs::write(run.join("latency.hlog"), "kept").unwrap();

    let output = tokenbench(&["report", run.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("report.html"));
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.starts_with("# tokenbench report: default"));
    assert!(md.contains("## Summary"));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<h2>Summary</h2>"));
    assert_eq!(
        std::fs::read_to_string(run.join("latency.hlog")).unwrap(),
        "kept"
    );

    // One format, elsewhere.
    let out = dir.path().join("pages");
    let output = tokenbench(&[
        "report",
        run.join("report.json").to_str().unwrap(),
        "--format",
        "md",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.join("report.md").is_file());
    assert!(!out.join("report.html").exists());

    // A comparison's folder.
    let comparison = dir.path().join("cmp");
    std::fs::create_dir(&comparison).unwrap();
    std::fs::write(
        comparison.join("comparison.json"),
        baseline("stampede.json"),
    )
    .unwrap();
    let output = tokenbench(&["report", comparison.to_str().unwrap(), "--format", "html"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let html = std::fs::read_to_string(comparison.join("comparison.html")).unwrap();
    assert!(html.contains("fewer)"), "each value against the first");
}

#[test]
fn what_is_not_a_report_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokenbench(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no comparison.json or report.json"));
    let garbled = dir.path().join("report.json");
    std::fs::write(&garbled, "{\"schema_version\": 1, \"scenario\": 7}").unwrap();
    let output = tokenbench(&["report", garbled.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("report.json"),
        "{}",
        stderr(&output)
    );
}
