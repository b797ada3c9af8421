//! The `credential-manager` policy in a simulated fleet: one managed store for every
//! instance, refreshing its token itself, each lookup paying the store's latency.

mod common;

use scenario::Scenario;

fn fleet(policy: &str) -> Scenario {
    Scenario::from_toml_str(
        &format!(
            r#"
            name = "managed"
            duration = "60s"
            seed = 8
            [traffic]
            kind = "poisson"
            rate = 100
            [gateway]
            instances = 10
            policy = "{policy}"
            lookup_latency = "5ms"
            [idp]
            token_lifetime = "10s"
            latency = "20ms"
            "#
        ),
        "managed.toml",
    )
    .unwrap()
}

#[test]
fn one_store_for_the_fleet_fetches_once_per_lifetime_and_each_lookup_pays_its_latency() {
    let managed = common::simulate_with(&fleet("credential-manager"), true).unwrap();
    let own = common::simulate_with(&fleet("refresh-ahead"), true).unwrap();
    let (m, o) = (&managed.metrics, &own.metrics);
    assert_eq!(m.requests.ok, m.requests.sent);
    assert_eq!(o.requests.ok, o.requests.sent);
    // 60 s of 10 s tokens: the first fetch and about one refresh per lifetime, for the
    // whole fleet; each instance its own under refresh-ahead.
    assert!(
        (6..=8).contains(&m.idp.token_requests),
        "managed: {:?}",
        m.idp
    );
    assert!(o.idp.token_requests >= 10 * 6, "own caches: {:?}", o.idp);
    // Every request waits for its lookup (5 ms of virtual time) before the backend.
    assert!(m.latency_us.p50.unwrap() >= 5_000, "{:?}", m.latency_us);
    assert!(o.latency_us.p50.unwrap() < 5_000, "{:?}", o.latency_us);
    assert_eq!(managed.run.policy, "credential-manager");
}
