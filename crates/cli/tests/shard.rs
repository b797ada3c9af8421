//! Sharded runs end to end: three shard processes started together and merged send exactly
//! the unsharded run's requests and token requests; `merge` refuses a missing, duplicated or
//! foreign shard with exit 2; a shard stopped with Ctrl-C is reported interrupted, and so is
//! the merge.

mod common;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime},
};

use common::{stderr, tokenbench};
use serde_json::Value;

/// Six instances with a cache each and one fetch per miss (single-flight), tokens that outlive
/// the run: each instance fetches exactly once, however the requests interleave, so counts
/// are exact in real time.
const SCENARIO: &str = r#"
name = "sharded"
duration = "3s"
seed = 11

[traffic]
kind = "poisson"
rate = 200

[gateway]
instances = 6
policy = "single-flight"

[signer]
backend = "aws-lc-rs"
alg = "ES256"

[idp]
latency = "5ms"

[backend]
latency = "1ms"
"#;

fn write_scenario(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sharded.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts shard `index` of 3 into `out/shard-<index>`, starting at `start_at`.
fn spawn_shard(scenario: &Path, index: u32, start_at: &str, out: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args(["run", scenario.to_str().unwrap(), "--quiet", "--out"])
        .arg(out.join(format!("shard-{index}")))
        .args(["--shard", &format!("{index}/3"), "--start-at", start_at])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Far enough ahead for three processes to set up on a busy two-core machine (a shard that
/// is late starts at once and says so; the counts do not depend on it).
fn start_in(seconds: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(seconds)).to_string()
}

fn finish(child: Child) {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn merge(args: &[&Path], out: &Path) -> std::process::Output {
    let mut all: Vec<&str> = vec!["merge", "--quiet", "--out", out.to_str().unwrap()];
    all.extend(args.iter().map(|p| p.to_str().unwrap()));
    tokenbench(&all)
}

#[test]
fn three_shards_merged_send_what_the_unsharded_run_sends() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), SCENARIO);
    let whole = dir.path().join("whole");
    let output = tokenbench(&[
        "run",
        scenario.to_str().unwrap(),
        "--quiet",
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = read(&whole.join("report.json"));

    let shards = dir.path().join("shards");
    let start_at = start_in(4);
    let children: Vec<Child> = (0..3)
        .map(|i| spawn_shard(&scenario, i, &start_at, &shards, &[]))
        .collect();
    children.into_iter().for_each(finish);
    let shard0 = read(&shards.join("shard-0/report.json"));
    assert_eq!(shard0["shard"]["index"], 0);
    assert_eq!(shard0["shard"]["count"], 3);
    assert_eq!(shard0["instances"], 2, "instances 0 and 3");
    assert!(shards.join("shard-0/tally.json").is_file());

    // The folder holding the shards, as a Kubernetes Job's results volume.
    let merged_dir = dir.path().join("merged");
    let output = merge(&[&shards], &merged_dir);
    assert!(output.status.success(), "{}", stderr(&output));
    let merged = read(&merged_dir.join("report.json"));
    for file in ["report.md", "report.html", "latency.hlog"] {
        assert!(merged_dir.join(file).is_file(), "{file}");
    }

    assert_eq!(merged["merged"]["shards"], 3);
    assert_eq!(merged["interrupted"], false);
    assert_eq!(merged["shard"], Value::Null);
    assert_eq!(merged["instances"], 6);
    let sent = expected["requests"]["sent"].as_u64().unwrap();
    assert!(sent > 400, "a 3 s run at 200 req/s");
    assert_eq!(merged["requests"]["sent"], expected["requests"]["sent"]);
    assert_eq!(merged["requests"]["ok"], expected["requests"]["ok"]);
    assert_eq!(merged["requests"]["dropped"], 0);
    assert_eq!(merged["idp"]["token_requests"], 6);
    assert_eq!(expected["idp"]["token_requests"], 6);
    // Each instance got the same arrivals, so the same lookups.
    let lookups = |report: &Value| -> Vec<(u64, u64)> {
        report["cache"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["instance"].as_u64().unwrap(),
                    i["hits"].as_u64().unwrap() + i["misses"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(lookups(&merged), lookups(&expected));
    let timeline_requests = |report: &Value| -> u64 {
        report["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["requests"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(timeline_requests(&merged), sent);

    // A missing shard, a shard given twice, a shard of another run: exit 2, named.
    let (s0, s1, s2) = (
        shards.join("shard-0"),
        shards.join("shard-1"),
        shards.join("shard-2"),
    );
    let nowhere = dir.path().join("refused");
    let output = merge(&[&s0, &s2], &nowhere);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("shard 1 of 3 missing"),
        "{}",
        stderr(&output)
    );
    let output = merge(&[&s0, &s1, &s2, &s1], &nowhere);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("shard 1 appears twice"),
        "{}",
        stderr(&output)
    );
    let other = dir.path().join("other");
    let foreign = spawn_shard(&scenario, 1, &start_in(0), &other, &["--rate", "100"]);
    finish(foreign);
    let output = merge(&[&s0, &other.join("shard-1"), &s2], &nowhere);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("shard-1") && text.contains("another run"),
        "{text}"
    );
    assert!(!nowhere.exists(), "nothing written on a refusal");
}

#[cfg(unix)]
#[test]
fn a_shard_stopped_with_ctrl_c_is_reported_and_so_is_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), &SCENARIO.replace("\"3s\"", "\"8s\""));
    let shards = dir.path().join("shards");
    let start_at = start_in(3);
    let mut children: Vec<Child> = (0..3)
        .map(|i| spawn_shard(&scenario, i, &start_at, &shards, &[]))
        .collect();
    // Well into shard 1's run: its start, and then some.
    std::thread::sleep(Duration::from_secs(7));
    let status = Command::new("kill")
        .args(["-INT", &children[1].id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = children.remove(1).wait_with_output().unwrap();
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert!(
        stderr(&stopped).contains("interrupted"),
        "{}",
        stderr(&stopped)
    );
    children.into_iter().for_each(finish);
    let shard1 = read(&shards.join("shard-1/report.json"));
    assert_eq!(shard1["interrupted"], true);
    assert!(shard1["requests"]["sent"].as_u64().unwrap() > 0);

    let merged_dir = dir.path().join("merged");
    let output = merge(&[&shards], &merged_dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("interrupted"),
        "{}",
        stderr(&output)
    );
    let merged = read(&merged_dir.join("report.json"));
    assert_eq!(merged["interrupted"], true);
    assert_eq!(
        merged["merged"]["interrupted_shards"],
        serde_json::json!([1])
    );
    let md = std::fs::read_to_string(merged_dir.join("report.md")).unwrap();
    assert!(md.contains("interrupted: shard 1"), "the page says so");
}

#[test]
fn the_shard_index_comes_from_the_indexed_job_and_bad_shards_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), &SCENARIO.replace("\"3s\"", "\"1s\""));
    let out = dir.path().join("indexed");
    let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--quiet",
            "--shards",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .env("JOB_COMPLETION_INDEX", "2")
        .env_remove("TOKENBENCH_START_AT")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = read(&out.join("report.json"));
    assert_eq!(report["shard"]["index"], 2);
    assert_eq!(report["shard"]["start_at"], Value::Null);
    let instances: Vec<u64> = report["cache"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_u64().unwrap())
        .collect();
    assert_eq!(instances, [2, 5]);

    let path = scenario.to_str().unwrap();
    for (args, says) in [
        (vec!["--shards", "3"], "JOB_COMPLETION_INDEX"),
        (vec!["--shard", "3/3"], "numbered from 0 to 2"),
        (vec!["--shard", "0/7"], "has 6 gateway instances"),
        (vec!["--shard", "one/3"], "expected I/N"),
        (vec!["--start-at", "2026-11-29T23:00:00Z"], "--start-at"),
        (vec!["--shard", "0/3", "--start-at", "tomorrow"], "RFC 3339"),
        (
            vec!["--shard", "0/3", "--compare", "policy=apim,single-flight"],
            "comparison",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
            .args(["run", path, "--quiet"])
            .args(&args)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("TOKENBENCH_START_AT")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(says),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}
