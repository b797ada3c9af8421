//! On-behalf-of runs: requests from users, a token per user in each instance's bounded
//! cache, exchanged at the embedded identity provider; simulated and over loopback.

mod common;

use std::future::pending;

use driver::{Mode, RunError};
use report::Report;
use scenario::Scenario;

/// An on-behalf-of scenario of `users` Zipf users, `limit` cached per instance, 2 instances.
fn on_behalf_of(users: u32, limit: u32, seconds: u32, rate: u32) -> Scenario {
    Scenario::from_toml_str(
        &format!(
            r#"
            name = "users"
            duration = "{seconds}s"
            seed = 4
            [traffic]
            kind = "poisson"
            rate = {rate}
            users = {{ count = {users}, distribution = "zipf", exponent = 1.1 }}
            [gateway]
            instances = 2
            policy = "single-flight"
            flow = "on-behalf-of"
            user_cache_entries = {limit}
            [idp]
            token_lifetime = "1h"
            latency = "5ms"
            "#
        ),
        "users.toml",
    )
    .unwrap()
}

fn users_of(report: &Report) -> metrics::UserStats {
    report
        .metrics
        .users
        .expect("an on-behalf-of run reports its users")
}

#[test]
fn a_full_cache_evicts_and_fetches_again_and_every_request_gets_a_users_token() {
    let report = common::simulate_with(&on_behalf_of(2000, 40, 20, 200), true).unwrap();
    let m = &report.metrics;
    // The backend requires the delegated scope: only users' tokens pass.
    assert_eq!(m.requests.ok, m.requests.sent, "{:?}", m.requests);
    assert!(m.requests.sent > 3000, "{:?}", m.requests);
    let users = users_of(&report);
    assert_eq!((users.population, users.entry_limit), (2000, 40));
    assert!(users.distinct > 80 && users.distinct <= 2000, "{users:?}");
    assert!(users.cache_entries <= 2 * 40, "{users:?}");
    assert!(users.evictions > 0, "{users:?}");
    // Every served user cost a token request at least once; evicted ones again.
    assert!(
        m.idp.token_requests >= users.distinct,
        "{users:?} {:?}",
        m.idp
    );
    assert!(
        m.idp.token_requests > users.distinct + users.evictions / 2,
        "{users:?} {:?}",
        m.idp
    );
    let per_user = users.token_requests_per_user.unwrap();
    assert!((per_user - m.idp.token_requests as f64 / users.distinct as f64).abs() < 1e-9);
    assert_eq!(m.cache.hits + m.cache.misses, m.requests.sent);

    // The same seed, the same users and counts.
    let again = common::simulate_with(&on_behalf_of(2000, 40, 20, 200), true).unwrap();
    assert_eq!(again.metrics.users, report.metrics.users);
    assert_eq!(again.metrics.idp.token_requests, m.idp.token_requests);
}

#[test]
fn a_cache_holding_every_user_never_evicts_and_fetches_once_per_user_and_instance() {
    let report = common::simulate_with(&on_behalf_of(300, 1000, 20, 200), true).unwrap();
    let users = users_of(&report);
    let m = &report.metrics;
    assert_eq!(users.evictions, 0, "{users:?}");
    assert_eq!(m.requests.ok, m.requests.sent);
    // Tokens outlive the run: one request per user on each instance that served them.
    assert!(m.idp.token_requests >= users.distinct, "{users:?}");
    assert!(m.idp.token_requests <= 2 * users.distinct, "{users:?}");
    assert_eq!(users.cache_entries, m.idp.token_requests, "{users:?}");
}

#[test]
fn an_on_behalf_of_run_over_loopback_serves_users_and_cannot_be_sharded() {
    let scenario = on_behalf_of(100, 50, 2, 50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(driver::run(&scenario, Mode::RealTime, pending(), |_| {}))
        .unwrap()
        .report;
    let m = &report.metrics;
    assert_eq!(m.requests.ok, m.requests.sent, "{:?}", m.requests);
    assert!(m.requests.sent > 0);
    let users = users_of(&report);
    assert!(users.distinct > 0 && users.distinct <= 100, "{users:?}");
    assert!(m.idp.token_requests >= users.distinct);

    let plan = driver::ShardPlan {
        shard: scenario::Shard { index: 0, count: 2 },
        start_at: None,
    };
    let refused = runtime
        .block_on(driver::run_shard(&scenario, plan, pending(), |_| {}))
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&refused, RunError::Setup(m) if m.contains("cannot be sharded")),
        "{refused}"
    );
}

#[test]
fn a_replayed_traces_users_are_the_runs_users() {
    let dir = tempfile::tempdir().unwrap();
    // 40 requests from 4 users, then 10 with no user (drawn among the same 4).
    let mut trace = String::from("offset,user\n");
    for i in 0..40 {
        trace.push_str(&format!("{}.{:02},user-{}\n", i / 10, (i % 10) * 10, i % 4));
    }
    for i in 0..10 {
        trace.push_str(&format!("4.{}0,\n", i));
    }
    std::fs::write(dir.path().join("t.csv"), trace).unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "duration = \"6s\"\n[traffic]\nkind = \"replay\"\ntrace = \"t.csv\"\n\
         [gateway]\ninstances = 1\npolicy = \"single-flight\"\nflow = \"on-behalf-of\"\n",
    )
    .unwrap();
    let scenario = Scenario::load(&path).unwrap();
    let report = common::simulate_with(&scenario, true).unwrap();
    let m = &report.metrics;
    assert_eq!((m.requests.sent, m.requests.ok), (50, 50));
    let users = users_of(&report);
    assert_eq!((users.population, users.distinct), (4, 4));
    // One instance, four users, tokens outliving the run: one on-behalf-of request each.
    assert_eq!(m.idp.token_requests, 4);
    assert_eq!(users.cache_entries, 4);
}
