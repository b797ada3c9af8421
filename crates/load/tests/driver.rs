//! Short runs of the driver against the embedded mock servers, asserting counts (never
//! timings): herd sizes per policy, revocation, dropped arrivals, an interrupted run.

use std::{future::pending, time::Duration};

use load::{
    driver::{self, RunOutcome},
    scenario::Scenario,
};

fn scenario(toml: &str) -> Scenario {
    Scenario::from_toml_str(toml, "test.toml").unwrap()
}

async fn run(scenario: &Scenario) -> RunOutcome {
    driver::run(scenario, pending(), |_| {}).await.unwrap()
}

/// Tokens expire every 2 s, the token endpoint takes 300 ms: at each expiry ~60 requests
/// arrive while a token is being fetched.
fn stampede(policy: &str) -> Scenario {
    scenario(&format!(
        r#"
        name = "stampede-{policy}"
        duration = "5s"
        seed = 7
        [traffic]
        kind = "constant"
        rate = 200
        [gateway]
        instances = 1
        policy = "{policy}"
        [idp]
        token_lifetime = "2s"
        latency = "300ms"
        "#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinated_policies_fetch_once_per_episode_where_apim_stampedes() {
    let apim = run(&stampede("apim")).await.report;
    let single_flight = run(&stampede("single-flight")).await.report;
    let refresh_ahead = run(&stampede("refresh-ahead")).await.report;
    assert!(
        apim.stampede.max_herd.unwrap() > 1,
        "apim herd {:?}",
        apim.stampede
    );
    assert_eq!(
        single_flight.stampede.max_herd,
        Some(1),
        "{:?}",
        single_flight.stampede
    );
    assert_eq!(
        refresh_ahead.stampede.max_herd,
        Some(1),
        "{:?}",
        refresh_ahead.stampede
    );
    assert!(apim.idp.token_requests > single_flight.idp.token_requests);
    for report in [&apim, &single_flight, &refresh_ahead] {
        assert_eq!(report.requests.sent, 1000, "{}", report.policy);
        assert_eq!(report.requests.ok, 1000, "{}", report.policy);
        assert!(report.signing.count > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_produces_401s_and_an_invalidation_per_instance() {
    let scenario = scenario(
        r#"
        name = "revocation"
        duration = "4s"
        [traffic]
        kind = "constant"
        rate = 100
        [gateway]
        instances = 2
        policy = "single-flight"
        [[events]]
        at = "2s"
        kind = "revoke-tokens"
        "#,
    );
    let report = run(&scenario).await.report;
    assert!(report.requests.unauthorized > 0, "{:?}", report.requests);
    assert_eq!(report.invalidation.events, 2, "{:?}", report.invalidation);
    assert!(report.invalidation.latency_ms.max.is_some());
    assert_eq!(
        report.invalidation.redundant_fetches, 0,
        "single-flight: one refetch per instance"
    );
    assert!(report.timeline.iter().any(|second| second.unauthorized > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_beyond_the_in_flight_limit_are_dropped() {
    let scenario = scenario(
        r#"
        name = "tiny-limit"
        duration = "2s"
        [traffic]
        kind = "constant"
        rate = 100
        [gateway]
        instances = 1
        max_in_flight = 1
        [backend]
        latency = "200ms"
        "#,
    );
    let report = run(&scenario).await.report;
    assert!(report.requests.dropped > 100, "{:?}", report.requests);
    assert_eq!(
        report.requests.sent + report.requests.dropped,
        200,
        "{:?}",
        report.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_reports_what_it_measured() {
    let scenario = scenario(
        r#"
        name = "interrupted"
        duration = "60s"
        [traffic]
        kind = "constant"
        rate = 50
        "#,
    );
    let outcome = driver::run(
        &scenario,
        tokio::time::sleep(Duration::from_secs(1)),
        |_| {},
    )
    .await
    .unwrap();
    assert!(outcome.interrupted);
    let report = outcome.report;
    assert!(
        report.requests.sent > 0 && report.requests.sent < 3000,
        "{:?}",
        report.requests
    );
    assert!(report.duration_s < 30.0);
    let dir = tempfile::tempdir().unwrap();
    let written = report.write_all(dir.path()).unwrap();
    assert_eq!(written.len(), 4);
    for path in written {
        assert!(
            std::fs::metadata(&path).unwrap().len() > 0,
            "{}",
            path.display()
        );
    }
}
