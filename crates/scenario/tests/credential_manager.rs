//! `policy = "credential-manager"` and its `lookup_latency`; the shipped scenarios of the
//! seeds' other flows say what they are for.

use client::CachePolicy;
use mock::Latency;
use scenario::{Flow, Scenario, UserDistribution};

const TRAFFIC: &str = "[traffic]\nkind = \"constant\"\nrate = 10\n";

#[test]
fn a_managed_store_parses_with_its_lookup_latency() {
    let s = Scenario::from_toml_str(
        &format!("{TRAFFIC}[gateway]\npolicy = \"credential-manager\"\nlookup_latency = \"3ms\"\n"),
        "a.toml",
    )
    .unwrap();
    assert_eq!(s.gateway.policy, CachePolicy::CredentialManager);
    assert_eq!(s.gateway.lookup_latency, Latency::Fixed { ms: 3.0 });
    // Ignored under other policies, so that one scenario compares them.
    let s = Scenario::from_toml_str(
        &format!("{TRAFFIC}[gateway]\npolicy = \"apim\"\nlookup_latency = \"3ms\"\n"),
        "a.toml",
    )
    .unwrap();
    assert_eq!(s.gateway.policy, CachePolicy::Apim);
    let err = Scenario::from_toml_str(
        &format!("{TRAFFIC}[gateway]\npolicy = \"credential-store\"\n"),
        "a.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("credential-manager"), "{err}");
    let err = Scenario::from_toml_str(
        &format!(
            "{TRAFFIC}[gateway]\nlookup_latency = {{ kind = \"uniform\", min_ms = 5, max_ms = 1 }}\n"
        ),
        "a.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("gateway.lookup_latency"), "{err}");
}

#[test]
fn users_tokens_in_a_managed_store_are_refused_for_now() {
    let text = "[traffic]\nkind = \"constant\"\nrate = 10\nusers = { count = 10 }\n[gateway]\nflow = \"on-behalf-of\"\npolicy = \"credential-manager\"\n";
    let err = Scenario::from_toml_str(text, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gateway.policy") && err.contains("not supported"),
        "{err}"
    );
}

#[test]
fn the_shipped_scenarios_of_the_other_flows_say_what_they_are_for() {
    let obo = Scenario::from_builtin("obo-users").unwrap();
    assert_eq!(obo.gateway.flow, Flow::OnBehalfOf);
    let users = obo.users.unwrap();
    assert_eq!(users.count, 10_000);
    assert_eq!(users.distribution, UserDistribution::Zipf { exponent: 1.1 });
    assert!(obo.gateway.user_cache_entries < users.count);

    let managed = Scenario::from_builtin("credential-manager").unwrap();
    let compare = managed.compare.as_ref().unwrap();
    assert_eq!(compare.key, "policy");
    assert_eq!(compare.values, ["refresh-ahead", "credential-manager"]);
    assert!(managed.gateway.instances >= 10);
    assert_ne!(managed.gateway.lookup_latency, Latency::None);

    let certificate = Scenario::from_builtin("require-certificate").unwrap();
    assert!(matches!(
        certificate.signer,
        scenario::SignerSpec::Secret(_)
    ));
}
