//! The run recorder from synthetic, deterministic sequences: every time is injected.

use std::time::Duration;

use metrics::{Metrics, RequestOutcome, RequestRecord, TokenAnswer};
use tokio::time::Instant;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn metrics(instances: usize) -> Metrics {
    Metrics::new(instances, Instant::now()).unwrap()
}

/// A request on `instance` that was due at `intended`, started at `sent` and finished at
/// `finished` (ms), with a token obtained at `token` (ms).
fn request(
    instance: usize,
    intended: u64,
    sent: u64,
    finished: u64,
    outcome: RequestOutcome,
    token: Option<u64>,
) -> RequestRecord {
    RequestRecord {
        instance,
        intended_start: ms(intended),
        sent_at: ms(sent),
        finished_at: ms(finished),
        outcome,
        token_obtained_at: token.map(ms),
    }
}

fn ok(instance: usize, finished: u64, token: u64) -> RequestRecord {
    request(
        instance,
        finished,
        finished,
        finished,
        RequestOutcome::Status(200),
        Some(token),
    )
}

fn status(instance: usize, finished: u64, code: u16, token: Option<u64>) -> RequestRecord {
    request(
        instance,
        finished,
        finished,
        finished,
        RequestOutcome::Status(code),
        token,
    )
}

/// `actual` is within HdrHistogram's 3-significant-digit resolution of `expected`.
fn close_to(actual: Option<u64>, expected: u64) -> bool {
    actual.is_some_and(|a| a.abs_diff(expected) as f64 <= expected as f64 * 1e-3)
}

#[test]
fn counts_and_percentiles_from_a_synthetic_sequence() {
    let m = metrics(1);
    // 100 requests due at 0; the i-th finishes at i ms, started 1 ms earlier (so its latency
    // from the intended start is i ms, its service time 1 ms).
    for i in 1..=100u64 {
        let outcome = match i {
            1..=90 => RequestOutcome::Status(204),
            91..=95 => RequestOutcome::Status(401),
            96..=97 => RequestOutcome::Status(403),
            98 => RequestOutcome::Status(500),
            99 => RequestOutcome::TokenError,
            _ => RequestOutcome::BackendError,
        };
        m.record_request(&request(0, 0, i - 1, i, outcome, Some(0)));
    }
    for _ in 0..3 {
        m.record_dropped(ms(50), 1);
    }
    let s = m.snapshot(ms(1000));
    let r = s.requests;
    assert_eq!(
        (
            r.sent,
            r.ok,
            r.unauthorized,
            r.forbidden,
            r.errors,
            r.dropped
        ),
        (100, 90, 5, 2, 3, 3)
    );
    assert_eq!(m.counts(), r);
    let l = s.latency_us;
    assert!(close_to(l.p50, 50_000), "{l:?}");
    assert!(close_to(l.p90, 90_000), "{l:?}");
    assert!(close_to(l.p99, 99_000), "{l:?}");
    assert!(close_to(l.p999, 100_000), "{l:?}");
    assert!(close_to(l.max, 100_000), "{l:?}");
    let st = s.service_time_us;
    for p in [st.p50, st.p90, st.p99, st.p999, st.max] {
        assert!(close_to(p, 1_000), "{st:?}");
    }
    // The spectrum starts at the minimum and ends at the maximum, at 1 - 1/count.
    let first = s.latency_spectrum.first().unwrap();
    let last = s.latency_spectrum.last().unwrap();
    assert_eq!(first.percentile, 0.0);
    assert!(close_to(Some(first.latency_us), 1_000));
    assert!((last.percentile - 99.0).abs() < 1e-9);
    assert!(close_to(Some(last.latency_us), 100_000));
    assert!(s
        .latency_spectrum
        .windows(2)
        .all(|w| w[0].percentile < w[1].percentile && w[0].latency_us <= w[1].latency_us));
}

#[test]
fn latency_counts_from_the_intended_start() {
    let m = metrics(1);
    // Due at 0, could only start at 900 ms (the driver lagged), answered at 1 000 ms.
    m.record_request(&request(
        0,
        0,
        900,
        1_000,
        RequestOutcome::Status(200),
        Some(0),
    ));
    let s = m.snapshot(ms(2_000));
    assert!(close_to(s.latency_us.max, 1_000_000));
    assert!(close_to(s.service_time_us.max, 100_000));
}

#[test]
fn an_empty_run_reports_no_figures_rather_than_zeros() {
    let m = metrics(2);
    let s = m.snapshot(Duration::from_millis(2_500));
    assert_eq!(s.requests.sent, 0);
    assert_eq!(s.latency_us.p50, None);
    assert_eq!(s.latency_us.max, None);
    assert!(s.latency_spectrum.is_empty());
    assert_eq!(s.cache.hit_rate, None);
    assert_eq!(s.cache.instances.len(), 2);
    assert_eq!(s.signing.mean_ns, None);
    assert_eq!(s.stampede.max_herd, None);
    assert_eq!(s.stampede.mean_herd, None);
    assert_eq!(s.invalidation.latency_ms.max, None);
    // One row (and one log interval) per started second, all empty.
    assert_eq!(s.timeline.len(), 3);
    assert!(s
        .timeline
        .iter()
        .all(|r| r.requests == 0 && r.p99_us.is_none()));
    assert_eq!(s.latency_log.len(), 3);
}

#[test]
fn hit_rate_per_instance_and_in_total() {
    let m = metrics(3);
    for _ in 0..9 {
        m.cache_hit(0);
    }
    m.cache_miss(0);
    m.cache_hit(1);
    m.cache_miss(1);
    m.cache_miss(1);
    m.cache_miss(1);
    // Instance 2 made no lookup; an instance out of range is ignored.
    m.cache_hit(7);
    let cache = m.snapshot(ms(1_000)).cache;
    assert_eq!((cache.hits, cache.misses), (10, 4));
    assert_eq!(cache.hit_rate, Some(10.0 / 14.0));
    let rates: Vec<_> = cache.instances.iter().map(|i| i.hit_rate).collect();
    assert_eq!(rates, vec![Some(0.9), Some(0.25), None]);
    assert_eq!(cache.instances[1].instance, 1);
}

#[test]
fn herd_sizes_from_episode_events() {
    let m = metrics(2);
    for herd in [1, 5, 3] {
        m.episode_started(0);
        m.episode_ended(0, herd);
    }
    m.episode_started(1);
    m.episode_ended(1, 2);
    // Still running at the snapshot: not in the herd figures.
    m.episode_started(1);
    let s = m.snapshot(ms(1_000));
    assert_eq!(s.stampede.episodes, 4);
    assert_eq!(s.stampede.max_herd, Some(5));
    assert_eq!(s.stampede.mean_herd, Some(11.0 / 4.0));
    assert_eq!(s.stampede.unfinished, 1);
    assert_eq!(s.cache.instances[0].episodes, 3);
    assert_eq!(s.cache.instances[0].max_herd, Some(5));
    assert_eq!(s.cache.instances[1].max_herd, Some(2));
}

#[test]
fn token_requests_answers_and_peak_concurrency() {
    let m = metrics(2);
    // Three fetches overlap; one is throttled once, then gets a token; one fails; one is
    // throttled to the end.
    m.fetch_started(0, ms(100));
    m.fetch_started(0, ms(110));
    m.fetch_started(1, ms(120));
    m.token_retry(0, ms(400), 429);
    m.fetch_finished(TokenAnswer::Ok);
    m.fetch_finished(TokenAnswer::Error);
    m.fetch_finished(TokenAnswer::Throttled);
    m.fetch_started(1, ms(1_500));
    m.fetch_finished(TokenAnswer::Ok);
    let idp = m.snapshot(ms(2_000)).idp;
    assert_eq!(idp.token_requests, 5);
    assert_eq!((idp.ok, idp.throttled, idp.errors), (2, 2, 1));
    assert_eq!(idp.peak_concurrent_fetches, 3);
    assert_eq!(idp.peak_concurrent, 3);
    // The identity provider's own figure wins once the driver sets it.
    m.set_idp_peak_concurrent(4);
    let s = m.snapshot(ms(2_000));
    assert_eq!(s.idp.peak_concurrent, 4);
    assert_eq!(s.idp.peak_concurrent_fetches, 3);
    let per_instance: Vec<u64> = s.cache.instances.iter().map(|i| i.token_requests).collect();
    assert_eq!(per_instance, vec![3, 2]);
    // A 503 before a retry is an error answer.
    m.fetch_started(0, ms(1_600));
    m.token_retry(0, ms(1_700), 503);
    m.fetch_finished(TokenAnswer::Ok);
    let idp = m.snapshot(ms(2_000)).idp;
    assert_eq!((idp.token_requests, idp.ok, idp.errors), (7, 3, 2));
}

#[test]
fn signing_cost_count_mean_and_percentiles() {
    let m = metrics(1);
    for _ in 0..99 {
        m.signed(Duration::from_micros(250));
    }
    m.signed(Duration::from_millis(10));
    let signing = m.snapshot(ms(1_000)).signing;
    assert_eq!(signing.count, 100);
    assert_eq!(
        signing.mean_ns,
        Some((99.0 * 250_000.0 + 10_000_000.0) / 100.0)
    );
    assert!(close_to(signing.p50_ns, 250_000));
    assert!(close_to(signing.p99_ns, 250_000));
}

#[test]
fn timeline_buckets_by_second() {
    let m = metrics(1);
    // Second 0: two 2xx, one 401, two token requests; second 1: nothing but a drop;
    // second 2: one 2xx; second 4: one 401 and a token request.
    m.record_request(&request(
        0,
        0,
        0,
        100,
        RequestOutcome::Status(200),
        Some(50),
    ));
    m.record_request(&request(
        0,
        100,
        100,
        300,
        RequestOutcome::Status(200),
        Some(50),
    ));
    m.record_request(&status(0, 999, 401, Some(50)));
    m.fetch_started(0, ms(10));
    m.token_retry(0, ms(900), 429);
    m.record_dropped(ms(1_500), 1);
    m.record_request(&request(
        0,
        2_000,
        2_000,
        2_040,
        RequestOutcome::Status(200),
        Some(50),
    ));
    m.record_request(&status(0, 4_200, 401, Some(50)));
    m.fetch_started(0, ms(4_100));
    let rows = m.snapshot(ms(4_500)).timeline;
    let counts: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.t,
                r.requests,
                r.ok,
                r.unauthorized,
                r.token_requests,
                r.dropped,
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            (0, 3, 2, 1, 2, 0),
            (1, 0, 0, 0, 0, 1),
            (2, 1, 1, 0, 0, 0),
            (3, 0, 0, 0, 0, 0),
            (4, 1, 0, 1, 1, 0),
        ]
    );
    // p99 per second: second 0's slowest took 200 ms; second 2's 40 ms; second 4's 0.
    assert!(close_to(rows[0].p99_us, 200_000), "{rows:?}");
    assert_eq!(rows[1].p99_us, None);
    assert!(close_to(rows[2].p99_us, 40_000));
    assert_eq!(rows[4].p99_us, Some(0));
}

#[test]
fn closed_seconds_keep_their_figures_and_snapshots_change_nothing() {
    let m = metrics(1);
    for second in 0..10u64 {
        // Second s: s + 1 requests, each taking (s + 1) ms.
        for _ in 0..=second {
            let finished = second * 1_000 + 500;
            m.record_request(&request(
                0,
                finished - (second + 1),
                finished - (second + 1),
                finished,
                RequestOutcome::Status(200),
                Some(0),
            ));
        }
        // A snapshot during the run must not disturb what follows.
        let mid = m.snapshot(ms(second * 1_000 + 600));
        assert_eq!(mid.timeline.len() as u64, second + 1);
    }
    // A record that arrives late (its second is still open) lands in its own second.
    m.record_request(&request(
        0,
        8_900,
        8_900,
        8_950,
        RequestOutcome::Status(401),
        Some(0),
    ));
    let s = m.snapshot(ms(10_000));
    assert_eq!(s.timeline.len(), 10);
    for (second, row) in s.timeline.iter().enumerate() {
        let expected_requests = second as u64 + 1 + u64::from(second == 8);
        assert_eq!(row.requests, expected_requests, "second {second}");
        if second != 8 {
            assert!(
                close_to(row.p99_us, (second as u64 + 1) * 1_000),
                "second {second}: {row:?}"
            );
        }
    }
    assert_eq!(s.timeline[8].unauthorized, 1);
    assert_eq!(s.requests.sent, 56);
    // The late record (50 ms) is the slowest.
    assert!(close_to(s.latency_us.max, 50_000));
    assert_eq!(s.latency_log.len(), 10);
    // The same snapshot again.
    let again = m.snapshot(ms(10_000));
    assert_eq!(again.timeline, s.timeline);
    assert_eq!(again.latency_us, s.latency_us);
}

#[test]
fn invalidation_latency_failures_and_redundant_fetches_on_two_instances() {
    let m = metrics(2);
    // Before the event: a 401 that is not part of any window.
    m.record_request(&status(0, 9_900, 401, Some(1_000)));
    m.revocation_event(ms(10_000));

    // Instance 0: a 401 with its old token, two token requests (one redundant), then a
    // 2xx with a token obtained after the event: recovered after 300 ms.
    m.record_request(&status(0, 10_100, 401, Some(1_000)));
    m.fetch_started(0, ms(10_100));
    m.fetch_started(0, ms(10_200));
    m.record_request(&ok(0, 10_300, 10_250));
    // After its recovery: neither failures nor fetches of the window.
    m.fetch_started(0, ms(10_500));
    m.record_request(&status(0, 10_600, 401, Some(10_250)));

    // Instance 1: a 2xx with its old token is no recovery (and no failure); two 401s and
    // a token error fail in the window; one token request; recovered after 1 000 ms.
    m.record_request(&ok(1, 10_050, 2_000));
    m.record_request(&status(1, 10_400, 401, Some(2_000)));
    m.record_request(&status(1, 10_450, 401, Some(2_000)));
    m.record_request(&request(
        1,
        10_460,
        10_460,
        10_470,
        RequestOutcome::TokenError,
        None,
    ));
    m.fetch_started(1, ms(10_400));
    // A token obtained at the event's very instant does not count as after it.
    m.record_request(&ok(1, 10_800, 10_000));
    m.record_request(&ok(1, 11_000, 10_600));

    let inv = m.snapshot(ms(12_000)).invalidation;
    assert_eq!(inv.revocations, 1);
    assert_eq!(inv.events, 2, "one recovery per instance");
    assert_eq!(inv.unrecovered, 0);
    assert_eq!(inv.latency_ms.p50, Some(300.0));
    assert_eq!(inv.latency_ms.p99, Some(1_000.0));
    assert_eq!(inv.latency_ms.max, Some(1_000.0));
    assert_eq!(inv.failed_requests, 1 + 3);
    assert_eq!(inv.redundant_fetches, 1);
}

#[test]
fn an_instance_that_does_not_recover_is_reported_as_such() {
    let m = metrics(2);
    m.revocation_event(ms(1_000));
    m.record_request(&ok(0, 1_200, 1_100));
    // Instance 1 fetches three times and keeps failing until the end.
    for at in [1_100, 1_300, 1_500] {
        m.fetch_started(1, ms(at));
        m.record_request(&status(1, at + 50, 401, Some(at)));
    }
    // A second event: instance 0 recovers from it too; instance 1 still does not.
    m.revocation_event(ms(2_000));
    m.fetch_started(0, ms(2_010));
    m.record_request(&ok(0, 2_100, 2_050));
    m.fetch_started(1, ms(2_010));

    let inv = m.snapshot(ms(3_000)).invalidation;
    assert_eq!(inv.revocations, 2);
    assert_eq!(inv.events, 2);
    assert_eq!(inv.unrecovered, 2);
    assert_eq!(inv.latency_ms.max, Some(200.0));
    assert_eq!(inv.latency_ms.p50, Some(100.0));
    assert_eq!(inv.failed_requests, 3);
    // Instance 1: 4 token requests in the first window (3 redundant), 1 in the second
    // (none); instance 0: none in the first, 1 in the second.
    assert_eq!(inv.redundant_fetches, 3);
}
