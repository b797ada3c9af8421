//! Short runs of the driver against the embedded mock servers, asserting counts (never
//! timings): herd sizes per policy, revocation, dropped arrivals, an interrupted run.

use std::{future::pending, time::Duration};

use driver::RunOutcome;
use scenario::Scenario;

fn scenario(toml: &str) -> Scenario {
    Scenario::from_toml_str(toml, "test.toml").unwrap()
}

async fn run(scenario: &Scenario) -> RunOutcome {
    driver::run(scenario, driver::Mode::RealTime, pending(), |_| {})
        .await
        .unwrap()
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
        apim.metrics.stampede.max_herd.unwrap() > 1,
        "apim herd {:?}",
        apim.metrics.stampede
    );
    assert_eq!(
        single_flight.metrics.stampede.max_herd,
        Some(1),
        "{:?}",
        single_flight.metrics.stampede
    );
    assert_eq!(
        refresh_ahead.metrics.stampede.max_herd,
        Some(1),
        "{:?}",
        refresh_ahead.metrics.stampede
    );
    assert!(apim.metrics.idp.token_requests > single_flight.metrics.idp.token_requests);
    assert!(
        apim.metrics.idp.peak_concurrent > 1,
        "{:?}",
        apim.metrics.idp
    );
    assert_eq!(
        single_flight.metrics.idp.peak_concurrent, 1,
        "{:?}",
        single_flight.metrics.idp
    );
    for report in [&apim, &single_flight, &refresh_ahead] {
        assert_eq!(report.metrics.requests.sent, 1000, "{}", report.run.policy);
        assert_eq!(report.metrics.requests.ok, 1000, "{}", report.run.policy);
        assert!(report.metrics.signing.count > 0);
        // Plain HTTP: connections, reused, and no handshake.
        let connections = report.metrics.connections;
        for c in [connections.idp, connections.backend] {
            assert!(c.opened >= 1 && c.opened < 1000, "{connections:?}");
            assert_eq!((c.tls_handshakes, c.failed), (0, 0), "{connections:?}");
        }
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
    assert!(
        report.metrics.requests.unauthorized > 0,
        "{:?}",
        report.metrics.requests
    );
    assert_eq!(
        report.metrics.invalidation.events, 2,
        "{:?}",
        report.metrics.invalidation
    );
    assert!(report.metrics.invalidation.latency_ms.max.is_some());
    assert_eq!(
        report.metrics.invalidation.redundant_fetches, 0,
        "single-flight: one refetch per instance"
    );
    assert!(report
        .metrics
        .timeline
        .iter()
        .any(|second| second.unauthorized > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_401_hides_a_revocation_from_callers_and_the_reference_policy_does_not() {
    let revocation = |retry: bool| {
        scenario(&format!(
            r#"
            name = "retry-{retry}"
            duration = "3s"
            [traffic]
            kind = "constant"
            rate = 50
            [gateway]
            instances = 1
            policy = "apim"
            retry_on_401 = {retry}
            [[events]]
            at = "1500ms"
            kind = "revoke-tokens"
            "#
        ))
    };
    let without = run(&revocation(false)).await.report;
    let with = run(&revocation(true)).await.report;
    assert!(
        without.metrics.requests.unauthorized > 0,
        "{:?}",
        without.metrics.requests
    );
    assert_eq!(
        with.metrics.requests.unauthorized, 0,
        "{:?}",
        with.metrics.requests
    );
    assert_eq!(
        with.metrics.requests.ok, with.metrics.requests.sent,
        "{:?}",
        with.metrics.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_then_a_throttle_end_when_they_should() {
    let scenario = scenario(
        r#"
        name = "faults"
        duration = "4s"
        [traffic]
        kind = "constant"
        rate = 50
        [gateway]
        instances = 1
        policy = "single-flight"
        [idp]
        token_lifetime = "1s"
        [[events]]
        at = "500ms"
        kind = "idp-outage"
        duration = "1s"
        [[events]]
        at = "2s"
        kind = "idp-throttle"
        rate = 1
        duration = "1s"
        "#,
    );
    let report = run(&scenario).await.report;
    // Tokens live 1 s: the outage makes token requests fail, and after both windows tokens
    // flow again (the last second is all successes).
    assert!(report.metrics.idp.errors > 0, "{:?}", report.metrics.idp);
    let last = report
        .metrics
        .timeline
        .iter()
        .rev()
        .find(|second| second.requests > 0)
        .unwrap();
    assert_eq!(last.ok, last.requests, "{:?}", report.metrics.timeline);
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
    assert!(
        report.metrics.requests.dropped > 100,
        "{:?}",
        report.metrics.requests
    );
    // Permits come back: 2 s at 200 ms per request is about 10 requests, not 1.
    assert!(
        report.metrics.requests.sent >= 5,
        "{:?}",
        report.metrics.requests
    );
    assert_eq!(
        report.metrics.requests.sent + report.metrics.requests.dropped,
        200,
        "{:?}",
        report.metrics.requests
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
        driver::Mode::RealTime,
        tokio::time::sleep(Duration::from_secs(1)),
        |_| {},
    )
    .await
    .unwrap();
    assert!(outcome.interrupted);
    let report = outcome.report;
    assert!(
        report.run.interrupted,
        "report.json must say the run was cut short"
    );
    assert!(report.markdown().contains("interrupted after"));
    assert!(
        report.metrics.requests.sent > 0 && report.metrics.requests.sent < 3000,
        "{:?}",
        report.metrics.requests
    );
    assert!(report.metrics.duration.as_secs_f64() < 30.0);
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

/// The counts of a seeded run are those the tokenbench of before the crate split measured
/// for the same run (`crates/report/tests/data/report-v1.json`: `tokenbench run default
/// --duration 2s --rate 50`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_run_counts_what_it_counted_before_the_split() {
    let before: serde_json::Value =
        serde_json::from_str(include_str!("../../report/tests/data/report-v1.json")).unwrap();
    let overrides = scenario::Overrides {
        duration: Some(Duration::from_secs(2)),
        rate: Some(50.0),
        ..scenario::Overrides::default()
    };
    let default = Scenario::from_builtin("default")
        .unwrap()
        .with_overrides(&overrides)
        .unwrap();
    let now = serde_json::to_value(run(&default).await.report).unwrap();
    for path in [
        "/requests/sent",
        "/requests/ok",
        "/requests/unauthorized",
        "/requests/forbidden",
        "/requests/errors",
        "/requests/dropped",
        "/idp/token_requests",
        "/idp/ok",
        "/signing/count",
        "/stampede/episodes",
        "/instances",
        "/seed",
        "/rate",
    ] {
        assert_eq!(now.pointer(path), before.pointer(path), "{path}");
    }
}

/// `tls = true`: the embedded servers over HTTPS, with tokens expiring every second so that
/// each instance fetches several over TLS.
fn over_tls(policy: &str) -> Scenario {
    scenario(&format!(
        r#"
        name = "tls-{policy}"
        duration = "2s"
        seed = 5
        tls = true
        [traffic]
        kind = "constant"
        rate = 100
        [gateway]
        instances = 2
        policy = "{policy}"
        [idp]
        token_lifetime = "1s"
        "#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_runs_over_tls() {
    for policy in ["apim", "single-flight", "refresh-ahead"] {
        let outcome = run(&over_tls(policy)).await;
        let metrics = &outcome.report.metrics;
        assert_eq!(metrics.requests.sent, 200, "{policy}");
        assert_eq!(metrics.requests.ok, 200, "{policy}: {:?}", metrics.requests);
        assert!(
            metrics.idp.token_requests >= 4,
            "{policy}: {:?}",
            metrics.idp
        );
        // Every new connection began with a handshake; each instance opened its own.
        for (server, c) in [
            ("idp", metrics.connections.idp),
            ("backend", metrics.connections.backend),
        ] {
            assert!(c.opened >= 2, "{policy} {server}: {c:?}");
            assert_eq!(c.tls_handshakes, c.opened, "{policy} {server}: {c:?}");
            assert_eq!(c.failed, 0, "{policy} {server}: {c:?}");
            assert!(c.open_us.p50.is_some(), "{policy} {server}: {c:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_backend_is_reached_only_through_the_ca_file_it_needs() {
    let backend = mock::server::MockServer::start(
        mock::MockConfig {
            tls: true,
            ..mock::MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("backend-ca.pem");
    std::fs::write(&ca_file, backend.ca_pem().unwrap()).unwrap();
    let url = &backend.urls().backend_url;
    let with = |ca: &str| {
        scenario(&format!(
            r#"
            duration = "1s"
            [traffic]
            kind = "constant"
            rate = 20
            [backend]
            url = "{url}"
            {ca}
            "#
        ))
    };
    let refused = match driver::run(&with(""), driver::Mode::RealTime, pending(), |_| {}).await {
        Ok(_) => panic!("an untrusted certificate must stop the run"),
        Err(error) => error.to_string(),
    };
    assert!(
        refused.contains(url.as_str())
            && refused.contains("TLS handshake failed")
            && refused.contains("ca_file"),
        "{refused}"
    );
    // Nothing listening is another error than a certificate the run does not trust.
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("https://{}", unused.local_addr().unwrap());
    drop(unused);
    let toml = format!("duration = \"1s\"\n[traffic]\nkind = \"constant\"\nrate = 5\n[backend]\nurl = \"{closed}\"\n");
    let unreachable =
        match driver::run(&scenario(&toml), driver::Mode::RealTime, pending(), |_| {}).await {
            Ok(_) => panic!("a backend nobody listens on must stop the run"),
            Err(error) => error.to_string(),
        };
    assert!(unreachable.contains("cannot connect"), "{unreachable}");
    // Trusted, the run reaches it (the other mock's backend refuses this run's tokens).
    let ca = format!("ca_file = {:?}", ca_file.display().to_string());
    let report = run(&with(&ca)).await.report;
    assert_eq!(report.metrics.requests.sent, 20);
    assert_eq!(
        report.metrics.requests.unauthorized, 20,
        "{:?}",
        report.metrics.requests
    );
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_requiring_a_certificate_refuses_a_gateway_with_a_secret() {
    let toml = |signer: &str| {
        format!(
            r#"
            duration = "1s"
            [traffic]
            kind = "constant"
            rate = 20
            [gateway]
            instances = 2
            {signer}
            [backend]
            require_azpacr = "2"
            "#
        )
    };
    let with_secret = run(&scenario(&toml("[signer]\nclient_secret = \"s3cret\""))).await;
    let requests = with_secret.report.metrics.requests;
    assert_eq!(
        (requests.sent, requests.forbidden),
        (20, 20),
        "{requests:?}"
    );
    let with_certificate = run(&scenario(&toml(""))).await;
    let requests = with_certificate.report.metrics.requests;
    assert_eq!((requests.sent, requests.ok), (20, 20), "{requests:?}");
}
