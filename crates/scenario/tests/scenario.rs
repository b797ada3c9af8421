//! Scenario files: the shipped ones parse; every kind of error names file, line and key;
//! defaults; overrides and comparisons.

use std::{path::Path, time::Duration};

use client::CachePolicy;
use mock::Latency;
use scenario::{
    builtin, builtin_names, Api, BackendSpec, CacheScope, Comparison, EventKind,
    ExternalCredentials, IdpSpec, Overrides, ProviderTrust, Scenario, ScenarioError, SignerSpec,
    Traffic, DEFAULT_SCENARIO,
};
use signer::{Algorithm, KeySpec};

fn scenarios_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

const SHIPPED: [&str; 11] = [
    "default",
    "stampede",
    "revocation",
    "throttled-idp",
    "key-rotation",
    "replay",
    "backends",
    "fleet-day",
    "require-certificate",
    "obo-users",
    "credential-manager",
];

/// The shipped scenarios meant for `tokenbench simulate`: a day does not run in a minute.
const FOR_SIMULATION: [&str; 1] = ["fleet-day"];

#[test]
fn every_shipped_scenario_is_built_in_and_parses_from_file_and_binary() {
    assert_eq!(builtin_names().collect::<Vec<_>>(), SHIPPED);
    let mut files: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut names: Vec<String> = SHIPPED.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(files, names, "every scenarios/*.toml is built in");

    for name in SHIPPED {
        let path = scenarios_dir().join(format!("{name}.toml"));
        let from_file = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let built_in = Scenario::from_builtin(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_file.name, name);
        assert_eq!(built_in.name, name);
        assert_eq!(built_in.origin, format!("builtin:{name}.toml"));
        assert_eq!(from_file.duration, built_in.duration);
        assert_eq!(from_file.gateway, built_in.gateway);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            builtin(name).unwrap()
        );
        if FOR_SIMULATION.contains(&name) {
            continue;
        }
        // Under a minute on a small machine, at rates it sustains.
        let runs = built_in.compare.as_ref().map_or(1, |c| c.values.len()) as u32;
        assert!(built_in.duration * runs < Duration::from_secs(60), "{name}");
        let rate = built_in.traffic.mean_rate(built_in.duration);
        assert!((5.0..=1000.0).contains(&rate), "{name}: {rate}");
        let arrivals = built_in.arrivals().unwrap().count();
        assert!(arrivals > 0, "{name}");
    }
    assert_eq!(builtin("default"), Some(DEFAULT_SCENARIO));
    assert_eq!(builtin("stampede.toml"), builtin("stampede"));
    assert_eq!(builtin("nope"), None);
}

#[test]
fn shipped_scenarios_say_what_the_issue_asks() {
    let default = Scenario::from_builtin("default").unwrap();
    assert_eq!(default.gateway.policy, CachePolicy::RefreshAhead);
    assert!(default.gateway.instances >= 2);
    assert!(default.events.is_empty());

    let stampede = Scenario::from_builtin("stampede").unwrap();
    assert_eq!(stampede.gateway.policy, CachePolicy::Apim);
    let IdpSpec::Embedded(idp) = &stampede.idp else {
        panic!("embedded")
    };
    assert!(idp.token_lifetime <= Duration::from_secs(10));
    assert_eq!(idp.latency, Latency::Fixed { ms: 200.0 });
    assert!(matches!(stampede.traffic, Traffic::Constant { rate } if rate >= 300.0));

    let revocation = Scenario::from_builtin("revocation").unwrap();
    assert!(revocation
        .events
        .iter()
        .all(|e| e.kind == EventKind::RevokeTokens && e.at < revocation.duration));
    assert!(!revocation.events.is_empty());

    let throttled = Scenario::from_builtin("throttled-idp").unwrap();
    let IdpSpec::Embedded(idp) = &throttled.idp else {
        panic!("embedded")
    };
    assert!(idp.throttle_rps.is_some());
    assert!(matches!(
        throttled.events[0].kind,
        EventKind::IdpThrottle { rate, duration } if rate == 2.0 && duration == Duration::from_secs(5)
    ));

    let rotation = Scenario::from_builtin("key-rotation").unwrap();
    assert!(rotation
        .events
        .iter()
        .all(|e| e.kind == EventKind::RotateIdpKeys));

    let replay = Scenario::from_builtin("replay").unwrap();
    let Traffic::Replay { trace, speed } = &replay.traffic else {
        panic!("replay")
    };
    assert_eq!((trace.len(), *speed), (300, 1.0));
    // No duration in the file: just past the trace's last entry.
    assert_eq!(replay.duration, Duration::from_secs(30));
    assert_eq!(replay.arrivals().unwrap().count(), 300);

    let backends = Scenario::from_builtin("backends").unwrap();
    let compare = backends.compare.as_ref().unwrap();
    assert_eq!(compare.key, "backend");
    assert_eq!(compare.values, ["rsa", "ring", "aws-lc-rs"]);
    let runs = compare.runs().unwrap();
    let names: Vec<_> = runs
        .iter()
        .map(|(_, o)| {
            backends
                .clone()
                .with_overrides(o)
                .unwrap()
                .signer
                .backend_name()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["rsa", "ring", "aws-lc-rs"]);
}

#[test]
fn find_takes_a_path_or_a_shipped_name_from_any_folder() {
    let by_name = Scenario::find("stampede").unwrap();
    assert_eq!(by_name.origin, "builtin:stampede.toml");
    let path = scenarios_dir().join("stampede.toml");
    let by_path = Scenario::find(path.to_str().unwrap()).unwrap();
    assert_eq!(by_path.origin, path.display().to_string());
    let err = Scenario::find("no-such-scenario").unwrap_err();
    assert!(matches!(err, ScenarioError::NotFound { .. }));
    let message = err.to_string();
    assert!(message.contains("no-such-scenario") && message.contains("stampede"));
    assert!(matches!(
        Scenario::load("/nonexistent/x.toml"),
        Err(ScenarioError::Read { .. })
    ));
}

#[test]
fn a_file_too_large_to_be_a_scenario_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let comment = format!("# {}\n", "x".repeat(1021));
    std::fs::write(&path, comment.repeat(1025)).unwrap();
    match Scenario::load(&path) {
        Err(ScenarioError::Read { origin, source }) => {
            assert_eq!(origin, path.display().to_string());
            assert!(
                source.to_string().contains("not a scenario file"),
                "{source}"
            );
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn defaults_fill_a_minimal_file() {
    let s = Scenario::from_toml_str(
        "[traffic]\nkind = \"constant\"\nrate = 10\n",
        "dir/minimal.toml",
    )
    .unwrap();
    assert_eq!(s.name, "minimal");
    assert_eq!(s.duration, Duration::from_secs(30));
    assert_eq!(s.seed, 1);
    assert_eq!(s.gateway.instances, 1);
    assert_eq!(s.gateway.cache, CacheScope::Instance);
    assert_eq!(s.gateway.regions, 1);
    assert_eq!(s.apis, vec![Api::default()]);
    assert_eq!(s.gateway.policy, CachePolicy::Apim);
    assert_eq!(s.gateway.cache_fraction, 0.95);
    assert!(!s.gateway.retry_on_401);
    assert!(s.gateway.max_in_flight >= 1);
    let SignerSpec::Assertion {
        backend,
        alg,
        key_bits,
        signing_cost,
    } = &s.signer
    else {
        panic!("assertion")
    };
    assert_eq!(backend.name(), signer::backend::default_backend().name());
    assert_eq!((*alg, *key_bits, *signing_cost), (None, 2048, None));
    assert_eq!(s.signer.key_spec(), Some(KeySpec::Rsa2048));
    let IdpSpec::Embedded(idp) = &s.idp else {
        panic!("embedded")
    };
    assert_eq!(idp.token_lifetime, Duration::from_secs(3599));
    assert_eq!(idp.latency, Latency::None);
    assert_eq!(
        s.backend,
        BackendSpec::Embedded {
            latency: Latency::None,
            clock_skew: Duration::ZERO,
            trust: None,
            require_azpacr: None,
        }
    );
    assert!(s.events.is_empty() && s.compare.is_none());
}

#[test]
fn every_section_parses() {
    let text = r#"
name = "full"
duration = "1m 30s"
seed = 99

[traffic]
kind = "step"
steps = [{ at = "0s", rate = 10 }, { at = "30s", rate = 50.5 }]

[gateway]
instances = 4
shared_cache = true
policy = "Single-Flight"
cache_fraction = 0.8
max_in_flight = 16
retry_on_401 = true

[signer]
backend = "ring"
alg = "es256"
key_bits = 3072

[idp]
token_lifetime = "5s"
latency = { kind = "uniform", min_ms = 5, max_ms = 50 }
error_rate = 0.1
throttle_rps = 20

[backend]
latency = { kind = "log-normal", median_ms = 2, p99_ms = 20 }

[[events]]
at = "40s"
kind = "idp-outage"
duration = "3s"

[[events]]
at = "20s"
kind = "rotate-idp-keys"

[[events]]
at = "50s"
kind = "idp-throttle"
rate = 2.5
duration = "10s"

[[events]]
at = "20s"
kind = "revoke-tokens"
"#;
    let s = Scenario::from_toml_str(text, "full.toml").unwrap();
    assert_eq!(s.name, "full");
    assert_eq!(s.duration, Duration::from_secs(90));
    assert_eq!(s.seed, 99);
    let Traffic::Step { steps } = &s.traffic else {
        panic!("step")
    };
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[1].at, steps[1].rate),
        (Duration::from_secs(30), 50.5)
    );
    assert_eq!(s.gateway.instances, 4);
    assert!(s.gateway.cache == CacheScope::Fleet && s.gateway.retry_on_401);
    assert_eq!(s.gateway.policy, CachePolicy::SingleFlight);
    assert_eq!(
        (s.gateway.cache_fraction, s.gateway.max_in_flight),
        (0.8, 16)
    );
    assert_eq!(s.signer.backend_name(), Some("ring"));
    assert_eq!(s.signer.key_spec(), Some(KeySpec::P256));
    let IdpSpec::Embedded(idp) = &s.idp else {
        panic!("embedded")
    };
    assert_eq!(idp.token_lifetime, Duration::from_secs(5));
    assert_eq!(idp.token_lifetime_max, None);
    let entra = Scenario::from_toml_str(
        &format!("{TRAFFIC}[idp]\ntoken_lifetime = {{ min = \"60m\", max = \"90m\" }}\n"),
        "entra.toml",
    )
    .unwrap();
    let IdpSpec::Embedded(entra) = &entra.idp else {
        panic!("embedded")
    };
    assert_eq!(
        (entra.token_lifetime, entra.token_lifetime_max),
        (Duration::from_secs(3600), Some(Duration::from_secs(5400)))
    );
    assert_eq!(
        idp.latency,
        Latency::Uniform {
            min_ms: 5.0,
            max_ms: 50.0
        }
    );
    assert_eq!((idp.error_rate, idp.throttle_rps), (0.1, Some(20.0)));
    assert_eq!(
        s.backend,
        BackendSpec::Embedded {
            clock_skew: Duration::ZERO,
            latency: Latency::LogNormal {
                median_ms: 2.0,
                p99_ms: 20.0
            },
            trust: None,
            require_azpacr: None,
        }
    );
    // Sorted by time; equal times keep file order.
    let kinds: Vec<_> = s
        .events
        .iter()
        .map(|e| (e.at.as_secs(), e.kind.name()))
        .collect();
    assert_eq!(
        kinds,
        [
            (20, "rotate-idp-keys"),
            (20, "revoke-tokens"),
            (40, "idp-outage"),
            (50, "idp-throttle")
        ]
    );
    assert_eq!(
        s.events[3].kind,
        EventKind::IdpThrottle {
            rate: 2.5,
            duration: Duration::from_secs(10)
        }
    );
}

#[test]
fn other_traffic_kinds_and_latency_shorthand_parse() {
    let parse = |traffic: &str| {
        Scenario::from_toml_str(
            &format!("duration = \"10s\"\n[traffic]\n{traffic}\n"),
            "t.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .traffic
    };
    assert!(matches!(
        parse("kind = \"poisson\"\nrate = 5"),
        Traffic::Poisson { rate } if rate == 5.0
    ));
    assert!(matches!(
        parse("kind = \"ramp\"\nfrom = 0\nto = 100"),
        Traffic::Ramp { from, to } if from == 0.0 && to == 100.0
    ));
    assert!(matches!(
        parse("kind = \"burst\"\nevery = \"2s\"\nsize = 50"),
        Traffic::Burst { every, size: 50, rate } if every == Duration::from_secs(2) && rate == 0.0
    ));
    assert!(matches!(
        parse("kind = \"burst\"\nevery = \"2s\"\nsize = 50\nrate = 10"),
        Traffic::Burst { rate, .. } if rate == 10.0
    ));

    let s = Scenario::from_toml_str(
        "[traffic]\nkind = \"constant\"\nrate = 1\n[idp]\nlatency = \"250ms\"\n[backend]\nlatency = { kind = \"fixed\", ms = 3 }\n",
        "t.toml",
    )
    .unwrap();
    let IdpSpec::Embedded(idp) = &s.idp else {
        panic!("embedded")
    };
    assert_eq!(idp.latency, Latency::Fixed { ms: 250.0 });
    assert_eq!(
        s.backend,
        BackendSpec::Embedded {
            latency: Latency::Fixed { ms: 3.0 },
            clock_skew: Duration::ZERO,
            trust: None,
            require_azpacr: None,
        }
    );
}

#[test]
fn external_identity_provider_and_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("external.toml");
    let text = r#"
[traffic]
kind = "constant"
rate = 5

[signer]
backend = "aws-lc-rs"
alg = "PS256"

[idp]
token_url = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
client_id = "6731de76-14a6-49ae-97bc-6eba6914391e"
scope = "api://backend/.default"
key = "creds/app.pfx"
password = "hunter2"
ca_file = "creds/staging-ca.pem"

[backend]
url = "https://backend.contoso.com"
ca_file = "/etc/backend-ca.pem"
"#;
    std::fs::write(&path, text).unwrap();
    let s = Scenario::load(&path).unwrap();
    let IdpSpec::External(idp) = &s.idp else {
        panic!("external")
    };
    assert_eq!(idp.client_id, "6731de76-14a6-49ae-97bc-6eba6914391e");
    assert_eq!(idp.scope, "api://backend/.default");
    assert_eq!(idp.ca_file, Some(dir.path().join("creds/staging-ca.pem")));
    assert!(!s.tls);
    let ExternalCredentials::Certificate {
        key,
        cert,
        password,
    } = &idp.credentials
    else {
        panic!("certificate")
    };
    assert_eq!(key, &dir.path().join("creds/app.pfx"));
    assert!(cert.is_none());
    assert_eq!(password.as_ref().unwrap().expose(), "hunter2");
    // Secrets stay out of Debug output.
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(
        s.backend,
        BackendSpec::External {
            url: "https://backend.contoso.com".into(),
            ca_file: Some("/etc/backend-ca.pem".into()),
        }
    );

    let secret = text.replace(
        "key = \"creds/app.pfx\"\npassword = \"hunter2\"",
        "client_secret = \"s3cret\"",
    );
    let s = Scenario::from_toml_str(&secret, &path).unwrap();
    let IdpSpec::External(idp) = &s.idp else {
        panic!("external")
    };
    assert!(
        matches!(&idp.credentials, ExternalCredentials::Secret(secret) if secret.expose() == "s3cret")
    );
    assert!(!format!("{s:?}").contains("s3cret"));
}

/// Parses `text` as `conf/bad.toml`, expecting an error at `line` naming `key`.
#[track_caller]
fn fails_at(text: &str, line: usize, key: &str) -> String {
    let err = Scenario::from_toml_str(text, "conf/bad.toml").expect_err("must fail");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("conf/bad.toml:{line}:")),
        "expected line {line}: {message}"
    );
    assert!(
        message.contains(&format!("`{key}`")),
        "expected key {key}: {message}"
    );
    match &err {
        ScenarioError::Invalid { at, key: k, .. } => {
            assert_eq!((at.line, k.as_str()), (line, key));
        }
        ScenarioError::Trace { at, key: k, .. } => {
            assert_eq!((at.line, k.as_str()), (line, key));
        }
        other => panic!("unexpected {other:?}"),
    }
    message
}

const TRAFFIC: &str = "[traffic]\nkind = \"constant\"\nrate = 10\n";

#[test]
fn unknown_keys_name_file_line_and_key() {
    let m = fails_at(
        "name = \"x\"\nduraton = \"5s\"\n[traffic]\nkind = \"constant\"\nrate = 1\n",
        2,
        "duraton",
    );
    assert!(m.contains("unknown field"), "{m}");
    fails_at(
        "[traffic]\nkind = \"constant\"\nrate = 1\nrat = 2\n",
        4,
        "traffic.rat",
    );
    fails_at(
        &format!("{TRAFFIC}[gateway]\ninstances = 2\npolicyy = \"apim\"\n"),
        6,
        "gateway.policyy",
    );
    let text = format!(
        "{TRAFFIC}\n[[events]]\nat = \"1s\"\nkind = \"revoke-tokens\"\n\n[[events]]\nat = \"2s\"\nkind = \"revoke-tokens\"\nwhen = 3\n"
    );
    fails_at(&text, 12, "events[1].when");
    fails_at(
        "[traffic]\nkind = \"step\"\nsteps = [\n  { at = \"0s\", rate = 1 },\n  { at = \"1s\", rat = 2 },\n]\n",
        5,
        "traffic.steps[1].rat",
    );
    fails_at(&format!("{TRAFFIC}[mystery]\nx = 1\n"), 4, "mystery");
    fails_at(
        &format!("{TRAFFIC}[idp]\nlatency = {{ kind = \"fixed\", ms = 5, jitter = 1 }}\n"),
        5,
        "idp.latency",
    );
}

#[test]
fn wrong_types_name_file_line_and_key() {
    let m = fails_at(
        "[traffic]\nkind = \"constant\"\nrate = \"fast\"\n",
        3,
        "traffic.rate",
    );
    assert!(m.contains("invalid type"), "{m}");
    let m = fails_at(&format!("duration = 30\n{TRAFFIC}"), 1, "duration");
    assert!(m.contains("a duration such as"), "{m}");
    let m = fails_at(
        &format!("duration = \"30 parsecs\"\n{TRAFFIC}"),
        1,
        "duration",
    );
    assert!(m.contains("not a duration"), "{m}");
    fails_at(
        &format!("{TRAFFIC}[gateway]\nshared_cache = \"yes\"\n"),
        5,
        "gateway.shared_cache",
    );
    fails_at(&format!("seed = -1\n{TRAFFIC}"), 1, "seed");
    fails_at(
        &format!("{TRAFFIC}[gateway]\ninstances = 2.5\n"),
        5,
        "gateway.instances",
    );
    fails_at(&format!("gateway = 3\n{TRAFFIC}"), 1, "gateway");
    fails_at(&format!("{TRAFFIC}gateway = 3\n"), 4, "traffic.gateway");
    fails_at(&format!("{TRAFFIC}[idp]\nlatency = 20\n"), 5, "idp.latency");
}

#[test]
fn missing_and_misplaced_keys() {
    let m = fails_at("name = \"x\"\n", 1, "traffic");
    assert!(m.contains("missing field"), "{m}");
    fails_at(
        "name = \"x\"\n[traffic]\nkind = \"constant\"\n",
        2,
        "traffic.rate",
    );
    fails_at("[traffic]\nrate = 1\n", 1, "traffic.kind");
    fails_at("[traffic]\nkind = \"ramp\"\nfrom = 1\n", 1, "traffic.to");
    let m = fails_at(
        "[traffic]\nkind = \"constant\"\nrate = 1\nfrom = 2\n",
        4,
        "traffic.from",
    );
    assert!(m.contains("does not apply to constant traffic"), "{m}");
    let m = fails_at(
        "[traffic]\nkind = \"sawtooth\"\nrate = 1\n",
        2,
        "traffic.kind",
    );
    assert!(
        m.contains("unknown variant") && m.contains("poisson"),
        "{m}"
    );
    fails_at(
        &format!("{TRAFFIC}[[events]]\nat = \"1s\"\nkind = \"idp-outage\"\n"),
        4,
        "events[0].duration",
    );
    fails_at(
        &format!("{TRAFFIC}[[events]]\nat = \"1s\"\nkind = \"revoke-tokens\"\nduration = \"1s\"\n"),
        7,
        "events[0].duration",
    );
    fails_at(
        &format!("{TRAFFIC}[[events]]\nkind = \"revoke-tokens\"\n"),
        4,
        "events[0].at",
    );
    fails_at(
        &format!("{TRAFFIC}[signer]\nclient_secret = \"s\"\nbackend = \"ring\"\n"),
        6,
        "signer.backend",
    );
    fails_at(
        &format!("{TRAFFIC}[backend]\nurl = \"https://b\"\nlatency = \"1ms\"\n"),
        6,
        "backend.latency",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\ntoken_url = \"https://idp/token\"\nclient_id = \"c\"\nscope = \"s\"\nclient_secret = \"x\"\nlatency = \"1ms\"\n[backend]\nurl = \"https://b\"\n"),
        9,
        "idp.latency",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\nclient_id = \"c\"\n"),
        5,
        "idp.client_id",
    );
}

#[test]
fn impossible_values_name_file_line_and_key() {
    let m = fails_at(
        "[traffic]\nkind = \"constant\"\nrate = -5\n",
        3,
        "traffic.rate",
    );
    assert!(m.contains("-5"), "{m}");
    fails_at(
        "[traffic]\nkind = \"poisson\"\nrate = 0\n",
        3,
        "traffic.rate",
    );
    fails_at(
        "[traffic]\nkind = \"constant\"\nrate = nan\n",
        3,
        "traffic.rate",
    );
    fails_at(
        "[traffic]\nkind = \"constant\"\nrate = 1e9\n",
        3,
        "traffic.rate",
    );
    fails_at(
        "[traffic]\nkind = \"ramp\"\nfrom = 0\nto = 0\n",
        4,
        "traffic.to",
    );
    fails_at(
        "[traffic]\nkind = \"burst\"\nevery = \"0s\"\nsize = 3\n",
        3,
        "traffic.every",
    );
    fails_at(
        "[traffic]\nkind = \"burst\"\nevery = \"1s\"\nsize = 0\n",
        4,
        "traffic.size",
    );
    fails_at(
        "duration = \"10s\"\n[traffic]\nkind = \"step\"\nsteps = [\n  { at = \"0s\", rate = 1 },\n  { at = \"5s\", rate = 2 },\n  { at = \"4s\", rate = 3 },\n]\n",
        7,
        "traffic.steps[2].at",
    );
    fails_at(
        "duration = \"10s\"\n[traffic]\nkind = \"step\"\nsteps = [{ at = \"10s\", rate = 1 }]\n",
        4,
        "traffic.steps[0].at",
    );
    fails_at(&format!("duration = \"0s\"\n{TRAFFIC}"), 1, "duration");
    let m = fails_at(
        &format!("{TRAFFIC}[gateway]\ninstances = 0\n"),
        5,
        "gateway.instances",
    );
    assert!(m.contains("1 to"), "{m}");
    fails_at(
        &format!("{TRAFFIC}[gateway]\ncache_fraction = 1.5\n"),
        5,
        "gateway.cache_fraction",
    );
    fails_at(
        &format!("{TRAFFIC}[gateway]\ncache_fraction = 0\n"),
        5,
        "gateway.cache_fraction",
    );
    fails_at(
        &format!("{TRAFFIC}[gateway]\nmax_in_flight = 0\n"),
        5,
        "gateway.max_in_flight",
    );
    fails_at(
        &format!("{TRAFFIC}[signer]\nkey_bits = 1024\n"),
        5,
        "signer.key_bits",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\ntoken_lifetime = \"1500ms\"\n"),
        5,
        "idp.token_lifetime",
    );
    // Checked against the mock's limit here, not first at the start of the run.
    fails_at(
        &format!("{TRAFFIC}[idp]\ntoken_lifetime = \"1000000h\"\n"),
        5,
        "idp.token_lifetime",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\ntoken_lifetime = {{ min = \"90m\", max = \"60m\" }}\n"),
        5,
        "idp.token_lifetime.max",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\ntoken_lifetime = {{ min = \"60m\", max = \"2d\" }}\n"),
        5,
        "idp.token_lifetime",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\nerror_rate = 2\n"),
        5,
        "idp.error_rate",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\nthrottle_rps = -1\n"),
        5,
        "idp.throttle_rps",
    );
    fails_at(
        &format!("{TRAFFIC}[idp]\nlatency = {{ kind = \"fixed\", ms = -1 }}\n"),
        5,
        "idp.latency",
    );
    fails_at(
        &format!("{TRAFFIC}[backend]\nurl = \"ftp://b\"\n"),
        5,
        "backend.url",
    );
    fails_at(
        &format!("{TRAFFIC}[backend]\nclock_skew = \"2h\"\n"),
        5,
        "backend.clock_skew",
    );
    fails_at(
        &format!("{TRAFFIC}[backend]\nurl = \"https://b\"\nclock_skew = \"5s\"\n"),
        6,
        "backend.clock_skew",
    );
    let skewed = Scenario::from_toml_str(
        &format!("{TRAFFIC}[backend]\nclock_skew = \"5m\"\n"),
        "conf/ok.toml",
    )
    .unwrap();
    assert_eq!(
        skewed.backend,
        BackendSpec::Embedded {
            latency: Latency::None,
            clock_skew: Duration::from_secs(300),
            trust: None,
            require_azpacr: None,
        }
    );
    // A URL the HTTP client would refuse mid-run, refused here.
    for url in ["http://[::1", "http://", "https://exa mple/", "http:///api"] {
        let message = fails_at(
            &format!("{TRAFFIC}[backend]\nurl = \"{url}\"\n"),
            5,
            "backend.url",
        );
        assert!(message.contains(url), "{message}");
    }
    fails_at(
        &format!(
            "{TRAFFIC}[idp]\ntoken_url = \"https://[::1/token\"\nclient_id = \"c\"\n\
             scope = \"s\"\nclient_secret = \"x\"\n"
        ),
        5,
        "idp.token_url",
    );
}

#[test]
fn an_event_after_the_end_names_its_line() {
    let text = format!(
        "duration = \"30s\"\n{TRAFFIC}\n[[events]]\nat = \"10s\"\nkind = \"revoke-tokens\"\n\n[[events]]\nat = \"45s\"\nkind = \"rotate-idp-keys\"\n"
    );
    let m = fails_at(&text, 11, "events[1].at");
    assert!(m.contains("not before the end of the run (30s)"), "{m}");
    fails_at(
        &format!("{TRAFFIC}[[events]]\nat = \"1s\"\nkind = \"idp-throttle\"\nrate = 0\nduration = \"1s\"\n"),
        7,
        "events[0].rate",
    );
    fails_at(
        &format!("{TRAFFIC}[[events]]\nat = \"1s\"\nkind = \"idp-outage\"\nduration = \"0s\"\n"),
        7,
        "events[0].duration",
    );
    let m = fails_at(
        &format!("{TRAFFIC}[[events]]\nat = \"1s\"\nkind = \"melt-down\"\n"),
        6,
        "events[0].kind",
    );
    assert!(m.contains("revoke-tokens"), "{m}");
}

#[test]
fn unknown_names_name_file_line_and_key() {
    let m = fails_at(
        &format!("{TRAFFIC}[gateway]\npolicy = \"lru\"\n"),
        5,
        "gateway.policy",
    );
    assert!(m.contains("single-flight"), "{m}");
    let m = fails_at(
        &format!("{TRAFFIC}[signer]\nbackend = \"openssl\"\n"),
        5,
        "signer.backend",
    );
    assert!(m.contains("aws-lc-rs"), "{m}");
    let m = fails_at(
        &format!("{TRAFFIC}[signer]\nalg = \"HS256\"\n"),
        5,
        "signer.alg",
    );
    assert!(m.contains("PS256"), "{m}");
    let m = fails_at(
        &format!("{TRAFFIC}[signer]\nbackend = \"rsa\"\nalg = \"ES256\"\n"),
        6,
        "signer.alg",
    );
    assert!(m.contains("rsa backend does not implement ES256"), "{m}");
    let m = fails_at(
        &format!("{TRAFFIC}[compare]\nalg = [\"PS256\", \"HS512\"]\n"),
        5,
        "compare.alg",
    );
    assert!(m.contains("HS512"), "{m}");
    fails_at(
        &format!("{TRAFFIC}[signer]\nbackend = \"rsa\"\n[compare]\nalg = [\"PS256\", \"EdDSA\"]\n"),
        7,
        "compare.alg",
    );
    fails_at(
        &format!("{TRAFFIC}[compare]\nalg = [\"PS256\"]\npolicy = [\"apim\"]\n"),
        4,
        "compare",
    );
}

#[test]
fn the_embedded_backend_validates_an_external_providers_tokens_with_issuer_and_audience() {
    let external = "[idp]\ntoken_url = \"https://idp.test/t/oauth2/v2.0/token\"\nclient_id = \"c\"\nscope = \"api://orders/.default\"\nclient_secret = \"x\"\n";
    let trust = "[backend]\nissuer = \"https://idp.test/t/v2.0\"\naudience = \"api://orders\"\n";
    let s = Scenario::from_toml_str(
        &format!("{TRAFFIC}{external}{trust}role = \"Orders.Read\"\njwks_url = \"https://idp.test/keys\"\nlatency = \"1ms\"\n"),
        "conf/ok.toml",
    )
    .unwrap();
    assert_eq!(
        s.backend,
        BackendSpec::Embedded {
            latency: Latency::Fixed { ms: 1.0 },
            clock_skew: Duration::ZERO,
            trust: Some(ProviderTrust {
                issuer: "https://idp.test/t/v2.0".to_owned(),
                jwks_url: Some("https://idp.test/keys".to_owned()),
                audience: "api://orders".to_owned(),
                role: Some("Orders.Read".to_owned()),
            }),
            require_azpacr: None,
        }
    );
    // Discovery when jwks_url is absent; no role required when role is.
    let s =
        Scenario::from_toml_str(&format!("{TRAFFIC}{external}{trust}"), "conf/ok.toml").unwrap();
    assert!(matches!(
        s.backend,
        BackendSpec::Embedded {
            trust: Some(ProviderTrust {
                jwks_url: None,
                role: None,
                ..
            }),
            ..
        }
    ));

    let m = fails_at(
        &format!("{TRAFFIC}{external}[backend]\nissuer = \"https://idp.test/t/v2.0\"\n"),
        9,
        "backend.audience",
    );
    assert!(m.contains("missing"), "{m}");
    fails_at(
        &format!("{TRAFFIC}{external}[backend]\njwks_url = \"https://idp.test/keys\"\n"),
        10,
        "backend.jwks_url",
    );
    fails_at(
        &format!("{TRAFFIC}{external}{trust}url = \"https://orders.test\"\n"),
        10,
        "backend.issuer",
    );
    fails_at(
        &format!("{TRAFFIC}{external}[backend]\nissuer = \"login.test\"\naudience = \"a\"\n"),
        10,
        "backend.issuer",
    );
    fails_at(
        &format!("{TRAFFIC}{external}{trust}role = \"\"\n"),
        12,
        "backend.role",
    );
    // The embedded provider's tokens need no issuer: one given is an error, not ignored.
    let m = fails_at(&format!("{TRAFFIC}{trust}"), 5, "backend.issuer");
    assert!(m.contains("external identity provider"), "{m}");
}

#[test]
fn the_embedded_backend_may_require_a_client_authenticated_by_certificate() {
    let s = Scenario::from_toml_str(
        &format!("{TRAFFIC}[backend]\nrequire_azpacr = \"2\"\n"),
        "conf/ok.toml",
    )
    .unwrap();
    assert!(matches!(
        s.backend,
        BackendSpec::Embedded { require_azpacr: Some(ref v), .. } if v == "2"
    ));
    let m = fails_at(
        &format!("{TRAFFIC}[backend]\nrequire_azpacr = \"certificate\"\n"),
        5,
        "backend.require_azpacr",
    );
    assert!(m.contains("\"2\" (certificate)"), "{m}");
    fails_at(
        &format!("{TRAFFIC}[backend]\nurl = \"https://b.test\"\nrequire_azpacr = \"2\"\n"),
        6,
        "backend.require_azpacr",
    );
}

#[test]
fn inconsistent_sections_name_file_line_and_key() {
    let external = "[idp]\ntoken_url = \"https://idp/token\"\nclient_id = \"c\"\nscope = \"s\"\nclient_secret = \"x\"\n";
    let m = fails_at(&format!("{TRAFFIC}{external}"), 5, "idp.token_url");
    assert!(m.contains("external backend"), "{m}");
    assert!(m.contains("[backend] issuer"), "{m}");
    let backend = "[backend]\nurl = \"https://b\"\n";
    fails_at(
        &format!("{TRAFFIC}{external}{backend}[[events]]\nat = \"1s\"\nkind = \"revoke-tokens\"\n"),
        11,
        "events",
    );
    fails_at(
        &format!("{TRAFFIC}{external}{backend}[signer]\nclient_secret = \"y\"\n"),
        12,
        "signer.client_secret",
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    let err = Scenario::from_toml_str(
        "name = \"x\"\n[traffic]\nkind = \"constant\"\nrate = = 1\n",
        "conf/bad.toml",
    )
    .unwrap_err();
    assert!(
        matches!(&err, ScenarioError::Syntax { at, .. } if at.line == 4),
        "{err}"
    );
    assert!(err.to_string().starts_with("conf/bad.toml:4:"), "{err}");
    let err = Scenario::from_toml_str(
        "[traffic]\nkind = \"constant\"\nrate = 1\n[traffic]\nrate = 2\n",
        "conf/bad.toml",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("conf/bad.toml:4:"), "{err}");
}

#[test]
fn trace_problems_name_the_scenario_line_and_the_trace_line() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("replay.toml");
    let text = "duration = \"5s\"\n[traffic]\nkind = \"replay\"\ntrace = \"t.csv\"\n";
    std::fs::write(&scenario, text).unwrap();

    let err = Scenario::load(&scenario).unwrap_err();
    let m = err.to_string();
    assert!(matches!(err, ScenarioError::Trace { .. }), "{m}");
    assert!(m.starts_with(&format!("{}:4:", scenario.display())), "{m}");
    assert!(m.contains("`traffic.trace`") && m.contains("t.csv"), "{m}");

    std::fs::write(
        dir.path().join("t.csv"),
        "offset,path\n0,/a\n1,/b\nsoon,/c\n",
    )
    .unwrap();
    let m = Scenario::load(&scenario).unwrap_err().to_string();
    assert!(
        m.contains(&format!("{}:4:", dir.path().join("t.csv").display())),
        "{m}"
    );

    std::fs::write(
        dir.path().join("t.csv"),
        "offset,path\n0,/a\n1,/b\n2.5,/c\n",
    )
    .unwrap();
    let s = Scenario::load(&scenario).unwrap();
    let paths: Vec<_> = s
        .arrivals()
        .unwrap()
        .map(|a| (a.at.as_millis(), a.path.unwrap().to_string()))
        .collect();
    assert_eq!(
        paths,
        [(0, "/a".into()), (1000, "/b".into()), (2500, "/c".into())]
    );
    // Without a duration, a replay lasts just past its last entry.
    std::fs::write(&scenario, &text["duration = \"5s\"\n".len()..]).unwrap();
    assert_eq!(
        Scenario::load(&scenario).unwrap().duration,
        Duration::from_secs(3)
    );
    // speed must be above 0
    std::fs::write(&scenario, format!("{text}speed = 0\n")).unwrap();
    let m = Scenario::load(&scenario).unwrap_err().to_string();
    assert!(m.contains(":5:") && m.contains("`traffic.speed`"), "{m}");
}

#[test]
fn overrides_change_the_scenario_and_are_checked() {
    let base = Scenario::from_builtin("revocation").unwrap();
    let mut overrides = Overrides::default();
    overrides.set("duration", "40s").unwrap();
    overrides.set("rate", "600").unwrap();
    overrides.set("policy", "single-flight").unwrap();
    overrides.set("backend", "ring").unwrap();
    overrides.set("alg", "ES256").unwrap();
    overrides.set("instances", "5").unwrap();
    let s = base.clone().with_overrides(&overrides).unwrap();
    assert_eq!(s.duration, Duration::from_secs(40));
    assert!(matches!(s.traffic, Traffic::Constant { rate } if rate == 600.0));
    assert_eq!(s.gateway.policy, CachePolicy::SingleFlight);
    assert_eq!(s.gateway.instances, 5);
    assert_eq!(s.signer.backend_name(), Some("ring"));
    assert!(matches!(
        s.signer,
        SignerSpec::Assertion {
            alg: Some(Algorithm::Es256),
            ..
        }
    ));
    assert_eq!(s.signer.key_spec(), Some(KeySpec::P256));

    // A shorter run than the events: the event is named.
    let short = Overrides {
        duration: Some(Duration::from_secs(15)),
        ..Overrides::default()
    };
    let err = base.clone().with_overrides(&short).unwrap_err();
    assert!(
        matches!(&err, ScenarioError::Setting { key, .. } if key == "events[1].at"),
        "{err}"
    );
    assert!(err.to_string().contains("revocation"), "{err}");
    assert!(
        err.to_string().contains(&base.origin),
        "names the file: {err}"
    );

    // An algorithm the backend lacks.
    let rsa_es = Overrides {
        backend: Some(signer::backend::by_name("rsa").unwrap()),
        alg: Some(Algorithm::Es256),
        ..Overrides::default()
    };
    let err = base.clone().with_overrides(&rsa_es).unwrap_err();
    assert!(err.to_string().contains("signer.alg"), "{err}");

    // Parse errors name the setting and value.
    let mut o = Overrides::default();
    for (key, value) in [
        ("instances", "0"),
        ("instances", "many"),
        ("rate", "-3"),
        ("rate", "inf"),
        ("duration", "soon"),
        ("policy", "lru"),
        ("backend", "openssl"),
        ("alg", "none"),
        ("color", "blue"),
    ] {
        let err = o.set(key, value).unwrap_err();
        assert!(
            matches!(&err, ScenarioError::Override { key: k, value: v, .. } if k == key && v == value),
            "{err}"
        );
        assert!(err.to_string().contains(value), "{err}");
    }
}

#[test]
fn rate_overrides_scale_every_kind_to_the_mean() {
    let d = Duration::from_secs(10);
    let step =
        "duration = \"10s\"\n[traffic]\nkind = \"step\"\nsteps = [{ at = \"0s\", rate = 100 }, { at = \"5s\", rate = 300 }]\n";
    let s = Scenario::from_toml_str(step, "s.toml").unwrap();
    assert_eq!(s.traffic.mean_rate(d), 200.0);
    let o = Overrides {
        rate: Some(50.0),
        ..Overrides::default()
    };
    let scaled = s.with_overrides(&o).unwrap();
    let Traffic::Step { steps } = &scaled.traffic else {
        panic!("step")
    };
    assert_eq!((steps[0].rate, steps[1].rate), (25.0, 75.0));
    assert_eq!(scaled.arrivals().unwrap().count(), 500);

    let ramp = Scenario::from_toml_str(
        "duration = \"10s\"\n[traffic]\nkind = \"ramp\"\nfrom = 0\nto = 200\n",
        "r.toml",
    )
    .unwrap()
    .with_overrides(&o)
    .unwrap();
    assert!(matches!(ramp.traffic, Traffic::Ramp { from, to } if from == 0.0 && to == 100.0));

    // A replay plays faster; its trace-derived duration follows.
    let replay = Scenario::from_builtin("replay").unwrap();
    let mean = replay.traffic.mean_rate(replay.duration);
    assert_eq!(mean, 10.0); // 300 entries in 30 s
    let faster = replay
        .with_overrides(&Overrides {
            rate: Some(20.0),
            ..Overrides::default()
        })
        .unwrap();
    assert!(matches!(faster.traffic, Traffic::Replay { speed, .. } if speed == 2.0));
    assert_eq!(faster.duration, Duration::from_secs(15));
    assert_eq!(faster.arrivals().unwrap().count(), 300);
}

#[test]
fn comparisons_parse_and_check_their_values() {
    let c = Comparison::parse("policy=apim, single-flight,refresh-ahead").unwrap();
    assert_eq!(c.key, "policy");
    assert_eq!(c.values, ["apim", "single-flight", "refresh-ahead"]);
    let runs = c.runs().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2].0, "refresh-ahead");
    assert_eq!(runs[2].1.policy, Some(CachePolicy::RefreshAhead));
    let c = Comparison::parse("instances=1,2,4").unwrap();
    assert_eq!(c.runs().unwrap()[2].1.instances, Some(4));
    for bad in [
        "policy",
        "policy=",
        "colour=red,blue",
        "policy=apim,lru",
        "alg=PS256,PS256",
    ] {
        let err = Comparison::parse(bad).unwrap_err();
        assert!(
            matches!(err, ScenarioError::Override { .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn validate_checks_changed_fields() {
    let mut s = Scenario::from_builtin("default").unwrap();
    s.validate().unwrap();
    s.gateway.cache_fraction = 0.0;
    let err = s.validate().unwrap_err();
    assert!(err.to_string().contains("gateway.cache_fraction"), "{err}");
    s.gateway.cache_fraction = 0.95;
    s.traffic = Traffic::Constant { rate: f64::NAN };
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("traffic.rate"));
}

#[test]
fn a_fleet_of_regions_and_apis_parses_and_is_checked() {
    let fleet = Scenario::from_toml_str(
        &format!(
            "{TRAFFIC}[gateway]\ninstances = 10\nregions = 4\nshared_cache = \"region\"\n\
             [[apis]]\nname = \"orders\"\nweight = 3\n[[apis]]\nname = \"stock\"\n"
        ),
        "fleet.toml",
    )
    .unwrap();
    assert_eq!(fleet.gateway.cache, CacheScope::Region);
    assert_eq!(
        fleet.apis,
        vec![
            Api {
                name: "orders".into(),
                weight: 3.0
            },
            Api {
                name: "stock".into(),
                weight: 1.0
            }
        ]
    );
    // Contiguous blocks, as even as the division allows.
    let regions: Vec<u32> = (0..10).map(|i| fleet.gateway.region_of(i)).collect();
    assert_eq!(regions, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]);

    let gateway = "[gateway]\ninstances = 2\n";
    fails_at(
        &format!("{TRAFFIC}{gateway}regions = 3\n"),
        6,
        "gateway.regions",
    );
    fails_at(
        &format!("{TRAFFIC}[[apis]]\nname = \"a\"\n[[apis]]\nname = \"a\"\n"),
        7,
        "apis[1].name",
    );
    fails_at(
        &format!("{TRAFFIC}[[apis]]\nname = \"a b\"\n"),
        5,
        "apis[0].name",
    );
    fails_at(
        &format!("{TRAFFIC}[[apis]]\nname = \"a\"\nweight = 0\n"),
        6,
        "apis[0].weight",
    );
}

/// A day of a fleet: 1,000 instances in 4 regions sharing a cache per region, 10 APIs,
/// 60–90-minute tokens, a diurnal profile averaging 5,000 req/s, a 5-minute outage at 14:00.
#[test]
fn fleet_day_is_a_day_of_a_fleet() {
    let day = Scenario::from_builtin("fleet-day").unwrap();
    assert_eq!(day.duration, Duration::from_secs(24 * 3600));
    assert_eq!(
        (
            day.gateway.instances,
            day.gateway.regions,
            day.gateway.cache
        ),
        (1000, 4, CacheScope::Region)
    );
    assert_eq!(day.apis.len(), 10);
    let IdpSpec::Embedded(idp) = &day.idp else {
        panic!("embedded")
    };
    assert_eq!(
        (idp.token_lifetime, idp.token_lifetime_max),
        (Duration::from_secs(3600), Some(Duration::from_secs(5400)))
    );
    assert!(matches!(day.traffic, Traffic::Daily { poisson: true, .. }));
    assert!((day.traffic.mean_rate(day.duration) - 5000.0).abs() < 1e-6);
    assert_eq!(day.events.len(), 1);
    assert_eq!(day.events[0].at, Duration::from_secs(14 * 3600));
    assert_eq!(
        day.events[0].kind,
        EventKind::IdpOutage {
            duration: Duration::from_secs(300)
        }
    );
}

#[test]
fn tls_is_for_the_embedded_servers_and_ca_files_for_external_ones() {
    let base = "[traffic]\nkind = \"constant\"\nrate = 5\n";
    let s = Scenario::from_toml_str(&format!("tls = true\n{base}"), "tls.toml").unwrap();
    assert!(s.tls);
    let external_idp = "[idp]\ntoken_url = \"https://idp.test/token\"\nclient_id = \"c\"\n\
                        scope = \"api://b/.default\"\nclient_secret = \"s\"\n";
    let external_backend = "[backend]\nurl = \"https://backend.test\"\n";
    // The embedded identity provider in front of an external backend still takes tls = true.
    let half = format!("tls = true\n{base}{external_backend}");
    assert!(Scenario::from_toml_str(&half, "half.toml").unwrap().tls);
    for (text, key, says) in [
        (
            format!("tls = true\n{base}{external_idp}{external_backend}"),
            "tls",
            "neither",
        ),
        (
            format!("{base}[backend]\nca_file = \"ca.pem\"\n"),
            "ca_file",
            "embedded backend",
        ),
        (
            format!("{base}[idp]\nca_file = \"ca.pem\"\n"),
            "ca_file",
            "embedded identity provider",
        ),
    ] {
        let err = Scenario::from_toml_str(&text, "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.toml") && err.contains(key) && err.contains(says),
            "{err}"
        );
    }
}
