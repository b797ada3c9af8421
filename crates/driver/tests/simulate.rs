//! Simulated runs: deterministic for a seed, hours of virtual time at no wall-clock cost,
//! and a clear refusal of what cannot be simulated.

mod common;

use driver::RunError;
use report::Report;
use scenario::Scenario;

fn scenario(toml: &str) -> Scenario {
    Scenario::from_toml_str(toml, "test.toml").unwrap()
}

fn simulate(scenario: &Scenario) -> Result<Report, RunError> {
    common::simulate_with(scenario, true)
}

/// The report as JSON without what depends on the machine and the moment.
fn comparable(report: &Report) -> serde_json::Value {
    let mut json = serde_json::to_value(report).unwrap();
    let object = json.as_object_mut().unwrap();
    object.remove("started_at");
    object.remove("memory");
    json
}

/// Every random draw of a run: Poisson arrivals, uniform token and log-normal backend
/// latencies, injected errors, refresh-ahead jitter; and a revocation.
fn random_everywhere(seed: u64) -> Scenario {
    scenario(&format!(
        r#"
        name = "random"
        duration = "30s"
        seed = {seed}
        [traffic]
        kind = "poisson"
        rate = 200
        [gateway]
        instances = 3
        policy = "refresh-ahead"
        cache_fraction = 0.5
        [signer]
        signing_cost = "400us"
        [idp]
        token_lifetime = "6s"
        latency = {{ kind = "uniform", min_ms = 20, max_ms = 300 }}
        error_rate = 0.2
        [backend]
        latency = {{ kind = "log-normal", median_ms = 2, p99_ms = 40 }}
        [[events]]
        at = "17s"
        kind = "revoke-tokens"
        "#
    ))
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_another() {
    let first = simulate(&random_everywhere(3)).unwrap();
    let second = simulate(&random_everywhere(3)).unwrap();
    assert_eq!(comparable(&first), comparable(&second));
    assert_eq!(first.run.signing_cost_us, Some(400));
    assert_eq!(first.metrics.signing.p50_ns.map(|ns| ns / 1000), Some(400));
    assert!(first.metrics.idp.errors > 0, "the error rate drew no error");
    let other = simulate(&random_everywhere(4)).unwrap();
    assert_ne!(comparable(&first), comparable(&other));
}

/// Six hours at 2 requests per second with one-hour tokens: done in the time it takes to
/// compute 43,200 requests, and counted exactly. `apim` caches a token for 0.95 × 3600 s =
/// 57 min, so the six hours need 7 tokens.
#[test]
fn hours_of_virtual_time_are_simulated_and_counted_exactly() {
    let report = simulate(&scenario(
        r#"
        name = "six-hours"
        duration = "6h"
        [traffic]
        kind = "constant"
        rate = 2
        [idp]
        token_lifetime = "1h"
        latency = "100ms"
        [backend]
        latency = "5ms"
        "#,
    ))
    .unwrap();
    let m = &report.metrics;
    assert_eq!(m.requests.sent, 43_200);
    assert_eq!(m.requests.ok, 43_200);
    assert_eq!(m.idp.token_requests, 7);
    assert_eq!(m.stampede.episodes, 7);
    assert_eq!(m.duration.as_secs(), 6 * 3600);
    // A hit takes the backend's 5 ms, exactly (to the histogram's 4 µs buckets): virtual
    // time has no scheduler noise. Only the 7 requests that waited for a token took longer.
    for latency in [m.latency_us.p50, m.latency_us.p999] {
        assert!(
            latency.is_some_and(|us| (5_000..5_004).contains(&us)),
            "{latency:?}"
        );
    }
}

#[test]
fn a_real_identity_provider_or_backend_cannot_be_simulated() {
    let external_idp = scenario(
        r#"
        [traffic]
        kind = "constant"
        rate = 1
        [idp]
        token_url = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
        client_id = "c"
        scope = "api://b/.default"
        client_secret = "s"
        [backend]
        url = "http://127.0.0.1:9/"
        "#,
    );
    let error = simulate(&external_idp).unwrap_err().to_string();
    assert!(error.contains("cannot simulate"), "{error}");
    assert!(error.contains("[idp] token_url"), "{error}");
}

/// A fleet: 8 instances in 2 regions, each region one shared cache, 3 APIs weighted 2:1:1,
/// 10-minute tokens for an hour. Each region fetches each API's token every 0.95 × 600 s =
/// 570 s: 7 times in the hour, so 2 × 3 × 7 = 42 token requests; the per-region and per-API
/// figures add up to the totals, and the traffic splits by weight.
#[test]
fn a_fleet_shares_a_cache_per_region_and_fetches_per_api() {
    let report = simulate(&scenario(
        r#"
        name = "fleet"
        duration = "1h"
        [traffic]
        kind = "poisson"
        rate = 40
        [gateway]
        instances = 8
        regions = 2
        shared_cache = "region"
        policy = "single-flight"
        [idp]
        token_lifetime = "10m"
        latency = "80ms"
        [backend]
        latency = "3ms"
        [[apis]]
        name = "orders"
        weight = 2
        [[apis]]
        name = "stock"
        [[apis]]
        name = "prices"
        "#,
    ))
    .unwrap();
    let m = &report.metrics;
    assert_eq!(m.requests.sent, m.requests.ok);
    assert_eq!(m.idp.token_requests, 42);
    assert_eq!(m.stampede.max_herd, Some(1));
    let names =
        |groups: &[metrics::GroupStats]| groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&m.regions), ["region-0", "region-1"]);
    assert_eq!(names(&m.apis), ["orders", "stock", "prices"]);
    for groups in [&m.regions, &m.apis] {
        let sum = |f: fn(&metrics::GroupStats) -> u64| groups.iter().map(f).sum::<u64>();
        assert_eq!(sum(|g| g.token_requests), m.idp.token_requests);
        assert_eq!(sum(|g| g.hits), m.cache.hits);
        assert_eq!(sum(|g| g.misses), m.cache.misses);
    }
    for region in &m.regions {
        assert_eq!((region.instances, region.token_requests), (4, 21));
    }
    for api in &m.apis {
        assert_eq!(api.token_requests, 14, "{}", api.name);
    }
    // 144,000 arrivals: orders takes half (σ ≈ 190), stock and prices a quarter each.
    let lookups = |g: &metrics::GroupStats| (g.hits + g.misses) as f64;
    let total: f64 = m.apis.iter().map(lookups).sum();
    assert!((lookups(&m.apis[0]) / total - 0.5).abs() < 0.01);
    assert!((lookups(&m.apis[1]) / total - 0.25).abs() < 0.01);
}

/// Every count a report has, flattened: what the fast path must not change.
fn counts(report: &Report) -> serde_json::Value {
    let m = serde_json::to_value(&report.metrics).unwrap();
    serde_json::json!({
        "requests": m["requests"],
        "cache": [m["cache"]["hits"], m["cache"]["misses"], m["cache"]["instances"]],
        "idp": [m["idp"]["token_requests"], m["idp"]["ok"], m["idp"]["errors"]],
        "stampede": m["stampede"],
        "invalidation": [
            m["invalidation"]["events"],
            m["invalidation"]["failed_requests"],
            m["invalidation"]["redundant_fetches"],
        ],
        "regions": m["regions"],
        "apis": m["apis"],
        "timeline": m["timeline"].as_array().unwrap().iter()
            .map(|row| [row["requests"].clone(), row["ok"].clone(), row["token_requests"].clone()])
            .collect::<Vec<_>>(),
    })
}

fn simulate_every_request(scenario: &Scenario) -> Report {
    common::simulate_with(scenario, false).unwrap()
}

/// The fast path records plain hits without running them; with fixed backend latencies it
/// counts exactly what running every request counts (stampedes under each policy,
/// revocations, key rotations, and under each policy a fleet of regions sharing caches, two
/// APIs, lifetimes drawn from a range, a revocation and an outage), and times hits alike.
#[test]
fn the_fast_path_counts_what_every_request_counts() {
    let shipped = |name: &str, policy: &str| {
        Scenario::from_builtin(name)
            .unwrap()
            .with_overrides(&scenario::Overrides {
                policy: Some(policy.parse().unwrap()),
                ..scenario::Overrides::default()
            })
            .unwrap()
    };
    let fleet = scenario(
        r#"
        name = "fleet"
        duration = "20m"
        [traffic]
        kind = "poisson"
        rate = 30
        [gateway]
        instances = 6
        regions = 3
        shared_cache = "region"
        [idp]
        token_lifetime = { min = "4m", max = "6m" }
        latency = "120ms"
        [backend]
        latency = "4ms"
        [[apis]]
        name = "a"
        weight = 3
        [[apis]]
        name = "b"
        [[events]]
        at = "7m"
        kind = "revoke-tokens"
        [[events]]
        at = "12m"
        kind = "idp-outage"
        duration = "2m"
        "#,
    );
    let fleet_under = |policy: &str| {
        fleet
            .clone()
            .with_overrides(&scenario::Overrides {
                policy: Some(policy.parse().unwrap()),
                ..scenario::Overrides::default()
            })
            .unwrap()
    };
    for scenario in [
        shipped("stampede", "apim"),
        shipped("stampede", "single-flight"),
        shipped("stampede", "refresh-ahead"),
        shipped("revocation", "apim"),
        shipped("key-rotation", "single-flight"),
        fleet_under("apim"),
        fleet_under("single-flight"),
        fleet_under("refresh-ahead"),
    ] {
        let fast = simulate(&scenario).unwrap();
        let every = simulate_every_request(&scenario);
        let name = format!("{} ({})", scenario.name, scenario.gateway.policy);
        assert_eq!(counts(&fast), counts(&every), "{name}");
        assert_eq!(
            fast.metrics.latency_us.p50, every.metrics.latency_us.p50,
            "{name}"
        );
    }
}

/// The shipped stampede under `apim`: every miss of an expiry waits for a token fetch of
/// its own (200 ms at the identity provider plus the charged signature), 51 of them per
/// expiry and instance.
#[test]
fn requests_that_waited_for_a_token_and_herd_sizes_are_reported() {
    let report = simulate(&Scenario::from_builtin("stampede").unwrap()).unwrap();
    let m = &report.metrics;
    assert_eq!(m.requests.waited_for_token, Some(m.cache.misses));
    assert_eq!(
        (
            m.stampede.p50_herd,
            m.stampede.p99_herd,
            m.stampede.max_herd
        ),
        (Some(51), Some(51), Some(51))
    );
    let wait = m.token_wait_us.p50.unwrap();
    assert!((200_000..210_000).contains(&wait), "{wait}");
}

/// A replayed trace's API column sends each request to the API of that name; a name the
/// scenario lacks is refused when the scenario is read, naming it.
#[test]
fn a_trace_names_the_api_of_each_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut trace = String::from("offset,ApiId\n");
    for i in 0..300 {
        let api = if i % 3 == 0 { "stock" } else { "orders" };
        trace.push_str(&format!("{}.{:03},{api}\n", i / 10, (i % 10) * 100));
    }
    std::fs::write(dir.path().join("trace.csv"), trace).unwrap();
    let scenario_with = |apis: &str| {
        let file = dir.path().join("replay.toml");
        std::fs::write(
            &file,
            format!(
                "[traffic]\nkind = \"replay\"\ntrace = \"trace.csv\"\n[gateway]\ninstances = 2\n\
                 [idp]\nlatency = \"30ms\"\n{apis}"
            ),
        )
        .unwrap();
        Scenario::load(&file)
    };
    let replay =
        scenario_with("[[apis]]\nname = \"orders\"\n[[apis]]\nname = \"stock\"\nweight = 100\n")
            .unwrap();
    let report = simulate(&replay).unwrap();
    let lookups: Vec<u64> = report
        .metrics
        .apis
        .iter()
        .map(|api| api.hits + api.misses)
        .collect();
    // By the trace, not by the weights.
    assert_eq!(lookups, [200, 100]);

    let error = scenario_with("[[apis]]\nname = \"orders\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("traffic.trace") && error.contains("\"stock\""),
        "{error}"
    );
}
