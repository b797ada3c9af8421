//! The Kubernetes deployment's scenario (deploy/kubernetes/10-scenario-configmap.yaml) read by
//! the real scenario parser and split by the real sharding rule for the shard Job's N: what
//! `validate.sh` cannot check without tokenbench (it checks the manifests' schemas).

use std::path::Path;

use scenario::{BackendSpec, IdpSpec, Scenario, Shard};

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/kubernetes")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The block scalar under `key: |` in `yaml`, unindented.
fn block(yaml: &str, key: &str) -> String {
    let mut lines = yaml
        .lines()
        .skip_while(|line| line.trim() != format!("{key}: |"));
    let header = lines.next().expect("the key");
    let outer = header.len() - header.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|line| line.trim().is_empty() || line.len() - line.trim_start().len() > outer)
        .collect();
    let indent = body
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|line| line.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of the first `key: value` line.
fn value(yaml: &str, key: &str) -> String {
    yaml.lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
        .expect("the key")
        .trim()
        .trim_matches('"')
        .to_owned()
}

#[test]
fn the_configmap_scenario_parses_and_splits_into_the_jobs_shards() {
    let text = block(&deploy_file("10-scenario-configmap.yaml"), "scenario.toml");
    let scenario = Scenario::from_toml_str(&text, "/etc/tokenbench/scenario/scenario.toml")
        .unwrap_or_else(|e| panic!("the ConfigMap's scenario: {e}"));
    assert!(
        matches!(scenario.idp, IdpSpec::External(_)),
        "an external identity provider"
    );
    assert!(
        matches!(scenario.backend, BackendSpec::External { .. }),
        "an external backend"
    );

    let job = deploy_file("30-shard-job.yaml");
    let count: u32 = value(&job, "completions").parse().unwrap();
    assert_eq!(value(&job, "parallelism"), count.to_string());
    let args: Vec<&str> = job
        .lines()
        .map(|l| l.trim().trim_start_matches("- "))
        .collect();
    let shards = args
        .iter()
        .position(|a| *a == "--shards")
        .expect("--shards");
    assert_eq!(args[shards + 1].trim_matches('"'), count.to_string());

    let mut served = Vec::new();
    for index in 0..count {
        let mine = Shard::new(index, count)
            .unwrap()
            .instances(&scenario)
            .unwrap_or_else(|e| panic!("shard {index}/{count}: {e}"));
        assert!(!mine.is_empty(), "shard {index} has instances");
        served.extend(mine);
    }
    served.sort_unstable();
    assert_eq!(
        served,
        (0..scenario.gateway.instances).collect::<Vec<_>>(),
        "every instance in exactly one shard"
    );
}
