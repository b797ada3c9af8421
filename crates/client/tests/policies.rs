//! Cache policies, invalidation, retries and timeouts on tokio's paused clock, against an
//! in-process token endpoint (so that virtual time is exact and nothing waits for real).

mod common;

use std::{sync::Arc, time::Duration};

use client::{
    observer::{
        EpisodeEnded, FetchFinished, FetchOutcome, FetchReason, FetchStarted, Rejected, Retrying,
    },
    CachePolicy, ClientAuth, Error, RetryPolicy, TokenCache, TokenClient, TokenClientConfig,
};
use common::{failing_credential, poll_once, secret, until, Fake, Recorder, Reply};
use http::StatusCode;
use tokio::{sync::Semaphore, time::Instant};

const URL: &str = "https://idp.test/tenant/oauth2/v2.0/token";

fn settings(policy: CachePolicy) -> TokenClientConfig {
    let mut config = TokenClientConfig::new(URL, "client-1", "api://backend/.default");
    config.policy = policy;
    config
}

fn build(config: TokenClientConfig, fake: &Arc<Fake>, recorder: &Arc<Recorder>) -> TokenClient {
    TokenClient::builder(config, secret())
        .transport(fake.clone())
        .observer(recorder.clone())
        .build()
        .unwrap()
}

fn client(policy: CachePolicy, fake: &Arc<Fake>, recorder: &Arc<Recorder>) -> TokenClient {
    build(settings(policy), fake, recorder)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test(start_paused = true)]
async fn token_is_replaced_after_cache_fraction_of_expires_in_not_before() {
    for (policy, fraction) in [
        (CachePolicy::Apim, 0.95),
        (CachePolicy::SingleFlight, 0.95),
        (CachePolicy::Apim, 0.5),
        (CachePolicy::SingleFlight, 1.0),
    ] {
        let fake = Fake::tokens(100);
        let recorder = Recorder::new();
        let mut config = settings(policy);
        config.cache_fraction = fraction;
        let client = build(config, &fake, &recorder);
        let start = Instant::now();
        let first = client.get_token().await.unwrap();
        assert_eq!(first.fresh_until() - start, secs(100.0 * fraction));
        assert_eq!(first.expires_at() - start, secs(100.0));

        tokio::time::advance(secs(100.0 * fraction - 0.001)).await;
        let same = client.get_token().await.unwrap();
        assert_eq!(same.generation(), first.generation(), "{policy} {fraction}");
        assert_eq!(fake.calls(), 1, "{policy} {fraction}: refetched too early");

        tokio::time::advance(secs(0.001)).await;
        let next = client.get_token().await.unwrap();
        assert_ne!(next.generation(), first.generation(), "{policy} {fraction}");
        assert_eq!(fake.calls(), 2, "{policy} {fraction}");
        assert_eq!(next.access_token(), "token-2");
        assert_eq!((recorder.hits(), recorder.misses()), (1, 2));
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_serves_until_real_expiry_and_refreshes_in_the_window() {
    // Default window: opens at cache_fraction × expires_in (95 s); jitter up to 2 s.
    let fake = Fake::tokens(100);
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::RefreshAhead);
    config.refresh_jitter = secs(2.0);
    let client = build(config, &fake, &recorder);
    let start = Instant::now();
    let first = client.get_token().await.unwrap();
    let refresh_at = first.refresh_at() - start;
    assert!(
        refresh_at >= secs(95.0) && refresh_at <= secs(97.0),
        "{refresh_at:?}"
    );
    tokio::time::advance(secs(94.999)).await;
    assert_eq!(
        client.get_token().await.unwrap().generation(),
        first.generation()
    );
    tokio::task::yield_now().await;
    assert_eq!(fake.calls(), 1, "refresh before its window");

    tokio::time::advance(secs(97.001 - 94.999)).await;
    let during = client.get_token().await.unwrap();
    assert_eq!(during.generation(), first.generation());
    until("the refresh", || recorder.all::<FetchFinished>().len() == 2).await;
    let refreshed = client.get_token().await.unwrap();
    assert_ne!(refreshed.generation(), first.generation());
    assert_eq!(fake.calls(), 2);
    assert_eq!(recorder.misses(), 1, "only the very first lookup missed");
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_hits_return_at_once_with_the_old_token_during_a_refresh() {
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::new(
        vec![
            Reply::Token { expires_in: 100 },
            Reply::Gated {
                gate: gate.clone(),
                expires_in: 100,
            },
        ],
        Reply::Token { expires_in: 100 },
    );
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::RefreshAhead);
    config.refresh_window = Some(secs(10.0));
    config.refresh_jitter = Duration::ZERO;
    let client = build(config, &fake, &recorder);
    let old = client.get_token().await.unwrap();

    tokio::time::advance(secs(91.0)).await;
    // Starts the refresh, which then waits at the gate.
    let first = poll_once(client.get_token()).expect("a hit must not wait");
    assert_eq!(first.unwrap().generation(), old.generation());
    until("the refresh request", || fake.calls() == 2).await;
    for _ in 0..100 {
        let token = poll_once(client.get_token())
            .expect("a hit during the refresh must not wait")
            .unwrap();
        assert_eq!(token.generation(), old.generation());
    }
    assert_eq!(fake.calls(), 2, "one refresh, however many hits");

    gate.add_permits(1);
    until("the refresh to end", || {
        recorder.all::<FetchFinished>().len() == 2
    })
    .await;
    let new = poll_once(client.get_token()).unwrap().unwrap();
    assert_ne!(new.generation(), old.generation());
    assert_eq!(recorder.misses(), 1);
    assert_eq!(recorder.hits(), 102);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_runs_exactly_one_refresh_per_window() {
    let fake = Fake::tokens(100);
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::RefreshAhead);
    config.refresh_window = Some(secs(10.0));
    config.refresh_jitter = Duration::ZERO;
    let client = build(config, &fake, &recorder);
    client.get_token().await.unwrap();

    // First window opens at 90 s; hits every 50 ms from 90 s to 99.95 s.
    tokio::time::advance(secs(90.0)).await;
    for _ in 0..200 {
        client.get_token().await.unwrap();
        tokio::time::advance(secs(0.05)).await;
    }
    assert_eq!(fake.calls(), 2, "one refresh in the first window");
    // The refreshed token (obtained at 90 s) has its window at 180 s.
    tokio::time::advance(secs(179.9 - 100.0)).await;
    for _ in 0..10 {
        client.get_token().await.unwrap();
    }
    tokio::task::yield_now().await;
    assert_eq!(fake.calls(), 2, "no refresh before the next window");
    tokio::time::advance(secs(0.2)).await;
    for _ in 0..100 {
        client.get_token().await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.calls(), 3, "one refresh in the second window");
    let refreshes = recorder
        .all::<FetchStarted>()
        .iter()
        .filter(|f| f.reason == FetchReason::Refresh)
        .count();
    assert_eq!(refreshes, 2);
    assert_eq!(recorder.misses(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_keeps_serving_the_old_token_when_the_refresh_fails() {
    let fake = Fake::new(
        vec![Reply::Token { expires_in: 100 }],
        Reply::status(500, r#"{"error":"server_error"}"#),
    );
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::RefreshAhead);
    config.refresh_window = Some(secs(10.0));
    config.refresh_jitter = Duration::ZERO;
    let client = build(config, &fake, &recorder);
    let old = client.get_token().await.unwrap();

    tokio::time::advance(secs(90.5)).await;
    client.get_token().await.unwrap();
    until("the failed refresh", || {
        recorder.failed(FetchReason::Refresh) == 1
    })
    .await;
    // Hits every 100 ms up to just before the real expiry keep getting the old token.
    for _ in 0..94 {
        let token = client.get_token().await.unwrap();
        assert_eq!(token.generation(), old.generation());
        tokio::time::advance(secs(0.1)).await;
    }
    assert!(Instant::now() < old.expires_at());
    let failures = recorder.failed(FetchReason::Refresh);
    assert!(failures >= 2, "the refresh is tried again: {failures}");
    // Each attempt waits for half the remaining lifetime (at least 1 s): not a hammering.
    assert!(failures <= 6, "{failures} refresh attempts");
    assert_eq!(recorder.misses(), 1);

    // At the real expiry the token is gone: a miss, which fails like the endpoint does.
    tokio::time::advance(old.expires_at() - Instant::now()).await;
    let error = client.get_token().await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(recorder.misses(), 2);
    // No background refresh after the expiry.
    let calls = fake.calls();
    tokio::time::advance(secs(30.0)).await;
    tokio::task::yield_now().await;
    assert_eq!(fake.calls(), calls);
}

#[tokio::test(start_paused = true)]
async fn apim_every_rejection_removes_the_key_even_a_fresh_token() {
    let fake = Fake::tokens(3600);
    let recorder = Recorder::new();
    let client = client(CachePolicy::Apim, &fake, &recorder);
    let a = client.get_token().await.unwrap();
    assert!(client.report_rejected(&a, StatusCode::UNAUTHORIZED));
    let b = client.get_token().await.unwrap();
    assert_ne!(a.generation(), b.generation());
    // A late 401 for the old token races the fresh one, and removes it.
    assert!(client.report_rejected(&a, StatusCode::UNAUTHORIZED));
    let c = client.get_token().await.unwrap();
    assert_ne!(c.generation(), b.generation());
    assert_eq!(fake.calls(), 3);
    assert!(client.report_rejected(&a, StatusCode::FORBIDDEN));
    // Other statuses are not rejections.
    assert!(!client.report_rejected(&a, StatusCode::INTERNAL_SERVER_ERROR));
    let removed: Vec<_> = recorder
        .all::<Rejected>()
        .iter()
        .map(|r| r.removed)
        .collect();
    assert_eq!(
        removed,
        [
            Some(a.generation()),
            Some(b.generation()),
            Some(c.generation())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn coordinated_policies_ignore_rejections_of_a_replaced_token() {
    for policy in [CachePolicy::SingleFlight, CachePolicy::RefreshAhead] {
        let fake = Fake::tokens(3600);
        let recorder = Recorder::new();
        let client = client(policy, &fake, &recorder);
        let a = client.get_token().await.unwrap();
        assert!(
            client.report_rejected(&a, StatusCode::UNAUTHORIZED),
            "{policy}"
        );
        let b = client.get_token().await.unwrap();
        assert!(
            !client.report_rejected(&a, StatusCode::UNAUTHORIZED),
            "{policy}"
        );
        assert!(
            !client.report_rejected(&a, StatusCode::FORBIDDEN),
            "{policy}"
        );
        assert_eq!(
            client.get_token().await.unwrap().generation(),
            b.generation()
        );
        assert_eq!(fake.calls(), 2, "{policy}");
        assert!(
            client.report_rejected(&b, StatusCode::FORBIDDEN),
            "{policy}"
        );
        client.get_token().await.unwrap();
        assert_eq!(fake.calls(), 3, "{policy}");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let fake = Fake::new(
        vec![Reply::Status {
            status: 429,
            retry_after: Some("2"),
            body: r#"{"error":"temporarily_unavailable"}"#,
        }],
        Reply::Token { expires_in: 3600 },
    );
    let recorder = Recorder::new();
    let client = client(CachePolicy::SingleFlight, &fake, &recorder);
    client.get_token().await.unwrap();
    let times = fake.call_times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= secs(2.0),
        "retried after {:?}",
        times[1] - times[0]
    );
    let retries = recorder.all::<Retrying>();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].status, 429);
    assert_eq!(retries[0].retry_after, Some(secs(2.0)));
    let finished = recorder.all::<FetchFinished>();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].requests, 2);
    // Both requests belong to the miss episode.
    assert_eq!(recorder.all::<EpisodeEnded>()[0].herd_size, 2);
}

#[tokio::test(start_paused = true)]
async fn the_retry_cap_holds() {
    let fake = Fake::new(
        Vec::new(),
        Reply::Status {
            status: 429,
            retry_after: Some("1"),
            body: r#"{"error":"too_many_requests","error_description":"slow down"}"#,
        },
    );
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::Apim);
    config.retry = Some(RetryPolicy {
        max_retries: 3,
        ..RetryPolicy::default()
    });
    let client = build(config, &fake, &recorder);
    let error = client.get_token().await.unwrap_err();
    assert!(
        matches!(&error, Error::Endpoint { status: 429, retry_after: Some(d), .. } if *d == secs(1.0)),
        "{error:?}"
    );
    assert!(error.to_string().contains("slow down"), "{error}");
    assert_eq!(fake.calls(), 4, "1 request + 3 retries");
    assert_eq!(recorder.all::<Retrying>().len(), 3);

    // No retries at all.
    let fake = Fake::new(Vec::new(), Reply::status(503, ""));
    let mut config = settings(CachePolicy::SingleFlight);
    config.retry = Some(RetryPolicy::none());
    let client = build(config, &fake, &recorder);
    assert_eq!(client.get_token().await.unwrap_err().status(), Some(503));
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_and_backoff_is_bounded() {
    // Retry-After above the cap waits the cap.
    let fake = Fake::new(
        vec![Reply::Status {
            status: 503,
            retry_after: Some("3600"),
            body: "",
        }],
        Reply::Token { expires_in: 3600 },
    );
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::SingleFlight);
    config.retry = Some(RetryPolicy {
        max_retry_after: secs(5.0),
        ..RetryPolicy::default()
    });
    let client = build(config, &fake, &recorder);
    client.get_token().await.unwrap();
    let times = fake.call_times();
    let waited = times[1] - times[0];
    // The cap, plus a jitter of at most half the first backoff (200 ms), plus the timer's
    // millisecond rounding.
    assert!(waited >= secs(5.0) && waited <= secs(5.101), "{waited:?}");

    // Without Retry-After: jittered exponential backoff within [b/2, b].
    let fake = Fake::new(Vec::new(), Reply::status(503, ""));
    let mut config = settings(CachePolicy::SingleFlight);
    config.retry = Some(RetryPolicy {
        max_retries: 4,
        initial_backoff: secs(1.0),
        max_backoff: secs(4.0),
        max_retry_after: secs(30.0),
    });
    let client = build(config, &fake, &recorder);
    client.get_token().await.unwrap_err();
    let times = fake.call_times();
    assert_eq!(times.len(), 5);
    for (i, ceiling) in [1.0, 2.0, 4.0, 4.0].into_iter().enumerate() {
        let gap = times[i + 1] - times[i];
        assert!(
            gap >= secs(ceiling / 2.0) && gap < secs(ceiling + 0.01),
            "retry {}: {gap:?}",
            i + 1
        );
    }

    // Other statuses are not retried.
    let fake = Fake::new(Vec::new(), Reply::status(500, ""));
    let client = build(settings(CachePolicy::SingleFlight), &fake, &recorder);
    client.get_token().await.unwrap_err();
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_endpoint_times_out() {
    let fake = Fake::new(Vec::new(), Reply::Hang);
    let recorder = Recorder::new();
    let client = client(CachePolicy::SingleFlight, &fake, &recorder);
    let start = Instant::now();
    let error = client.get_token().await.unwrap_err();
    assert!(
        matches!(error, Error::Timeout { timeout, .. } if timeout == secs(20.0)),
        "{error:?}"
    );
    assert_eq!(Instant::now() - start, secs(20.0));
    assert_eq!(fake.calls(), 1, "timeouts are not retried");
    assert!(error.to_string().contains(URL), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_does_not_cancel_the_shared_fetch() {
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::new(
        vec![Reply::Gated {
            gate: gate.clone(),
            expires_in: 3600,
        }],
        Reply::Token { expires_in: 3600 },
    );
    let recorder = Recorder::new();
    let client = client(CachePolicy::SingleFlight, &fake, &recorder);
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.get_token().await }
    });
    until("the first request", || fake.calls() == 1).await;
    let others: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_token().await })
        })
        .collect();
    until("every miss", || recorder.misses() == 11).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    gate.add_permits(1);
    let generations: Vec<u64> = futures_join(others)
        .await
        .into_iter()
        .map(|r| r.unwrap().generation())
        .collect();
    assert!(generations.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_single_flight_failure_reaches_every_waiter_and_the_next_miss_refetches() {
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::new(vec![], Reply::status(401, r#"{"error":"invalid_client"}"#));
    let gated = Arc::new(common::Gate {
        inner: Arc::clone(&fake),
        permits: gate.clone(),
    });
    let recorder = Recorder::new();
    let client = TokenClient::builder(settings(CachePolicy::SingleFlight), secret())
        .transport(gated)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_token().await })
        })
        .collect();
    until("every miss", || recorder.misses() == 50).await;
    gate.add_permits(1);
    for result in futures_join(waiters).await {
        assert_eq!(result.unwrap_err().oauth_error(), Some("invalid_client"));
    }
    assert_eq!(fake.calls(), 1);
    let episodes = recorder.all::<EpisodeEnded>();
    assert_eq!(episodes.len(), 1);
    assert!(!episodes[0].stored);
    assert_eq!(episodes[0].herd_size, 1);
    // The failure is not cached: the next miss fetches again.
    gate.add_permits(1);
    client.get_token().await.unwrap_err();
    assert_eq!(fake.calls(), 2);
    assert!(matches!(
        recorder.all::<FetchFinished>()[1].outcome,
        FetchOutcome::Failed(Error::Endpoint { status: 401, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn clients_on_one_cache_share_tokens_per_key() {
    let fake = Fake::tokens(3600);
    let recorder = Recorder::new();
    let cache = TokenCache::new();
    let on_cache = |config: TokenClientConfig| {
        TokenClient::builder(config, secret())
            .transport(fake.clone())
            .observer(recorder.clone())
            .cache(&cache)
            .build()
    };
    let one = on_cache(settings(CachePolicy::SingleFlight)).unwrap();
    let two = on_cache(settings(CachePolicy::SingleFlight)).unwrap();
    let a = one.get_token().await.unwrap();
    assert_eq!(two.get_token().await.unwrap().generation(), a.generation());
    assert_eq!(fake.calls(), 1);
    // A rejection through one client is seen by the other.
    assert!(two.report_rejected(&a, StatusCode::UNAUTHORIZED));
    let b = one.get_token().await.unwrap();
    assert_ne!(b.generation(), a.generation());
    assert_eq!(fake.calls(), 2);

    // Another scope is another key.
    let mut other_scope = settings(CachePolicy::SingleFlight);
    other_scope.scope = "api://other/.default".to_owned();
    let three = on_cache(other_scope).unwrap();
    assert_ne!(
        three.get_token().await.unwrap().generation(),
        b.generation()
    );
    assert_eq!(fake.calls(), 3);
    assert_eq!(cache.len(), 2);

    // A key keeps one policy, cache fraction and refresh window and jitter.
    let refresh_ahead = || {
        let mut config = settings(CachePolicy::RefreshAhead);
        config.scope = "api://refreshed/.default".to_owned();
        config.refresh_window = Some(secs(60.0));
        config
    };
    on_cache(refresh_ahead()).unwrap();
    on_cache(refresh_ahead()).unwrap();
    let mut fraction = settings(CachePolicy::SingleFlight);
    fraction.cache_fraction = 0.5;
    let mut window = refresh_ahead();
    window.refresh_window = None;
    let mut jitter = refresh_ahead();
    jitter.refresh_jitter = secs(1.0);
    for (config, field) in [
        (settings(CachePolicy::Apim), "policy"),
        (fraction, "cache_fraction"),
        (window, "refresh_window"),
        (jitter, "refresh_jitter"),
    ] {
        let error = on_cache(config).unwrap_err();
        assert!(
            matches!(error, Error::Config { field: f, .. } if f == field),
            "{field}: {error:?}"
        );
        assert!(error.to_string().contains("already serves"), "{error}");
    }
    // Settings a policy does not use are not compared; per-client settings differ freely.
    let mut unused = settings(CachePolicy::SingleFlight);
    unused.refresh_window = Some(secs(5.0));
    unused.refresh_jitter = secs(1.0);
    unused.timeout = secs(3.0);
    unused.retry = Some(RetryPolicy::none());
    on_cache(unused).unwrap();
    let certificate = TokenClient::builder(
        settings(CachePolicy::SingleFlight),
        ClientAuth::Certificate(failing_credential().0),
    )
    .transport(fake.clone())
    .cache(&cache)
    .build()
    .unwrap();
    // Whatever its credential, a client of the key gets the key's token.
    assert_eq!(
        certificate.get_token().await.unwrap().generation(),
        b.generation()
    );

    // Private caches share nothing.
    let own = client(CachePolicy::SingleFlight, &fake, &recorder);
    own.get_token().await.unwrap();
    assert_eq!(fake.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn apim_herd_counts_every_concurrent_fetch() {
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::tokens(3600);
    let gated = Arc::new(common::Gate {
        inner: Arc::clone(&fake),
        permits: gate.clone(),
    });
    let recorder = Recorder::new();
    let client = TokenClient::builder(settings(CachePolicy::Apim), secret())
        .transport(gated)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_token().await })
        })
        .collect();
    until("20 fetches", || recorder.all::<FetchStarted>().len() == 20).await;
    let herd: Vec<u32> = recorder
        .all::<FetchStarted>()
        .iter()
        .map(|f| f.herd_size)
        .collect();
    assert_eq!(herd, (1..=20).collect::<Vec<_>>());
    gate.add_permits(20);
    for result in futures_join(callers).await {
        result.unwrap();
    }
    assert_eq!(fake.calls(), 20);
    let episodes = recorder.all::<EpisodeEnded>();
    assert_eq!(episodes.len(), 1, "one episode: every miss found no token");
    assert_eq!(episodes[0].herd_size, 20);
    assert!(episodes[0].stored);
    // Every fetch reports the episode's herd.
    assert!(recorder
        .all::<FetchFinished>()
        .iter()
        .all(|f| f.herd_size == 20 && f.episode == Some(episodes[0].episode)));
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_with_a_window_longer_than_the_lifetime_refreshes_at_half_life() {
    // expires_in 100 s, window 300 s: the refresh point is clamped to 50 s after the token
    // arrived, not to "now" (which would refresh on every hit).
    for jitter in [Duration::ZERO, client::config::DEFAULT_REFRESH_JITTER] {
        let fake = Fake::tokens(100);
        let recorder = Recorder::new();
        let mut config = settings(CachePolicy::RefreshAhead);
        config.refresh_window = Some(secs(300.0));
        config.refresh_jitter = jitter;
        let client = build(config, &fake, &recorder);
        let start = Instant::now();
        let first = client.get_token().await.unwrap();
        let refresh_at = first.refresh_at() - start;
        // Half-life, plus a jitter of at most half the remaining 50 s.
        assert!(
            refresh_at >= secs(50.0) && refresh_at <= secs(75.0),
            "{jitter:?}: {refresh_at:?}"
        );
        // One hit per second for 60 s.
        for _ in 0..60 {
            client.get_token().await.unwrap();
            tokio::time::advance(secs(1.0)).await;
        }
        tokio::task::yield_now().await;
        let calls = fake.calls();
        assert!(
            (1..=2).contains(&calls),
            "{jitter:?}: {calls} token requests in 60 s"
        );
        if jitter.is_zero() {
            assert_eq!(calls, 2, "the refresh at 50 s");
        }
        assert_eq!(recorder.misses(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn apim_does_not_retry_by_default_and_the_other_policies_do() {
    let throttled = || {
        Fake::new(
            vec![Reply::Status {
                status: 429,
                retry_after: Some("1"),
                body: r#"{"error":"throttled"}"#,
            }],
            Reply::Token { expires_in: 3600 },
        )
    };
    assert_eq!(settings(CachePolicy::Apim).retry, None);
    assert_eq!(
        settings(CachePolicy::Apim).retry_policy(),
        RetryPolicy::none()
    );
    let fake = throttled();
    let recorder = Recorder::new();
    let apim = client(CachePolicy::Apim, &fake, &recorder);
    assert_eq!(apim.get_token().await.unwrap_err().status(), Some(429));
    assert_eq!(fake.calls(), 1, "apim: the first answer is final");
    assert!(recorder.all::<Retrying>().is_empty());

    for policy in [CachePolicy::SingleFlight, CachePolicy::RefreshAhead] {
        assert_eq!(settings(policy).retry_policy(), RetryPolicy::default());
        let fake = throttled();
        client(policy, &fake, &recorder).get_token().await.unwrap();
        assert_eq!(fake.calls(), 2, "{policy}: retried");
    }

    // An explicit policy applies to apim too.
    let fake = throttled();
    let mut config = settings(CachePolicy::Apim);
    config.retry = Some(RetryPolicy::default());
    build(config, &fake, &recorder).get_token().await.unwrap();
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn throttled_apim_misses_do_not_retry_in_lockstep() {
    // 10 concurrent misses, each answered 429 with Retry-After: 2, then a token.
    let script = (0..10)
        .map(|_| Reply::Status {
            status: 429,
            retry_after: Some("2"),
            body: r#"{"error":"throttled"}"#,
        })
        .collect();
    let fake = Fake::new(script, Reply::Token { expires_in: 3600 });
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::Apim);
    config.retry = Some(RetryPolicy {
        max_retries: 1,
        initial_backoff: secs(1.0),
        max_backoff: secs(5.0),
        max_retry_after: secs(30.0),
    });
    let client = build(config, &fake, &recorder);
    let start = Instant::now();
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_token().await })
        })
        .collect();
    for result in futures_join(callers).await {
        result.unwrap();
    }
    let times = fake.call_times();
    assert_eq!(times.len(), 20);
    assert!(
        times[..10].iter().all(|t| *t == start),
        "the first attempts"
    );
    let mut retried: Vec<Duration> = times[10..].iter().map(|t| *t - start).collect();
    // Never before Retry-After; at most half the first backoff (1 s) after it, plus the
    // timer's millisecond rounding.
    for at in &retried {
        assert!(*at >= secs(2.0) && *at <= secs(2.501), "{at:?}");
    }
    // Each delay is 2 s plus a jitter uniform over 500 ms, which the paused clock resolves
    // to the millisecond: about 501 distinct instants. That all 10 retries land on one has
    // a probability of 501^-9 (about 5e-25): a failure here is lockstep, not bad luck.
    retried.sort();
    retried.dedup();
    assert!(
        retried.len() >= 2,
        "all 10 retries at one instant: {retried:?}"
    );
    let delays: Vec<Duration> = recorder.all::<Retrying>().iter().map(|r| r.delay).collect();
    assert_eq!(delays.len(), 10);
    assert!(delays.iter().all(|d| *d >= secs(2.0) && *d <= secs(2.5)));
}

#[tokio::test(start_paused = true)]
async fn a_failing_refresh_stops_once_every_client_is_dropped() {
    // A refresh answered 500: retried later, at half the remaining lifetime.
    let fake = Fake::new(
        vec![Reply::Token { expires_in: 100 }],
        Reply::status(500, r#"{"error":"server_error"}"#),
    );
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::RefreshAhead);
    config.refresh_window = Some(secs(20.0));
    config.refresh_jitter = Duration::ZERO;
    let client = build(config.clone(), &fake, &recorder);
    let other = client.clone();
    client.get_token().await.unwrap();
    tokio::time::advance(secs(80.5)).await;
    client.get_token().await.unwrap();
    until("the failed refresh", || {
        recorder.failed(FetchReason::Refresh) == 1
    })
    .await;
    assert_eq!(fake.calls(), 2);
    // The refresh now waits about 9.75 s before trying again; drop every handle.
    drop(client);
    drop(other);
    for _ in 0..40 {
        tokio::time::advance(secs(0.5)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.calls(), 2, "a request after every client was dropped");

    // A refresh answered 503 with Retry-After, in its retry delay when the client goes.
    let fake = Fake::new(
        vec![Reply::Token { expires_in: 100 }],
        Reply::Status {
            status: 503,
            retry_after: Some("5"),
            body: "",
        },
    );
    config.retry = Some(RetryPolicy {
        max_retries: 5,
        ..RetryPolicy::default()
    });
    let client = build(config, &fake, &recorder);
    client.get_token().await.unwrap();
    tokio::time::advance(secs(80.5)).await;
    client.get_token().await.unwrap();
    until("the throttled refresh", || fake.calls() == 2).await;
    drop(client);
    for _ in 0..120 {
        tokio::time::advance(secs(0.5)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.calls(), 2, "a retry after every client was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_client_lets_another_client_of_the_cache_take_over_its_refresh() {
    let fake = Fake::new(
        vec![
            Reply::Token { expires_in: 100 },
            Reply::status(500, r#"{"error":"server_error"}"#),
        ],
        Reply::Token { expires_in: 100 },
    );
    let recorder = Recorder::new();
    let cache = TokenCache::new();
    let mut config = settings(CachePolicy::RefreshAhead);
    config.refresh_window = Some(secs(20.0));
    config.refresh_jitter = Duration::ZERO;
    let on_cache = || {
        TokenClient::builder(config.clone(), secret())
            .transport(fake.clone())
            .observer(recorder.clone())
            .cache(&cache)
            .build()
            .unwrap()
    };
    let (one, two) = (on_cache(), on_cache());
    let old = one.get_token().await.unwrap();
    tokio::time::advance(secs(80.5)).await;
    one.get_token().await.unwrap();
    until("the failed refresh", || {
        recorder.failed(FetchReason::Refresh) == 1
    })
    .await;
    drop(one);
    // The orphaned refresh notices at its next attempt and gives the refresh back.
    tokio::time::advance(secs(10.0)).await;
    tokio::task::yield_now().await;
    assert_eq!(fake.calls(), 2);
    // The next hit through the other client refreshes, without waiting.
    let hit = poll_once(two.get_token()).expect("a hit").unwrap();
    assert_eq!(hit.generation(), old.generation());
    until("the refresh", || fake.calls() == 3).await;
    until("the new token", || {
        recorder.all::<FetchFinished>().len() == 3
    })
    .await;
    assert_ne!(
        two.get_token().await.unwrap().generation(),
        old.generation()
    );
    assert_eq!(recorder.misses(), 1);
}

#[tokio::test(start_paused = true)]
async fn herd_counts_only_requests_issued_during_the_episode() {
    // apim. Episode 1: fetches A and B. A stores (episode 1 ends); a 401 removes the token;
    // miss C starts episode 2 while B (of episode 1) is still in flight; C stores (episode 2
    // ends); B ends last.
    let gates: Vec<Arc<Semaphore>> = (0..3).map(|_| Arc::new(Semaphore::new(0))).collect();
    let fake = Fake::new(
        gates
            .iter()
            .map(|gate| Reply::Gated {
                gate: gate.clone(),
                expires_in: 3600,
            })
            .collect(),
        Reply::Token { expires_in: 3600 },
    );
    let recorder = Recorder::new();
    let client = client(CachePolicy::Apim, &fake, &recorder);
    let spawn = || {
        let client = client.clone();
        tokio::spawn(async move { client.get_token().await })
    };
    let a = spawn();
    until("A's request", || fake.calls() == 1).await;
    let b = spawn();
    until("B's request", || fake.calls() == 2).await;
    gates[0].add_permits(1);
    let token_a = a.await.unwrap().unwrap();
    assert!(client.report_rejected(&token_a, StatusCode::UNAUTHORIZED));
    let c = spawn();
    until("C's request", || fake.calls() == 3).await;
    gates[2].add_permits(1);
    c.await.unwrap().unwrap();
    gates[1].add_permits(1);
    b.await.unwrap().unwrap();

    let episodes = recorder.all::<EpisodeEnded>();
    assert_eq!(episodes.len(), 2);
    assert_eq!(episodes[0].herd_size, 2, "A and B");
    assert_eq!(
        episodes[1].herd_size, 1,
        "C only: B was issued before episode 2 started"
    );
    let started: Vec<u32> = recorder
        .all::<FetchStarted>()
        .iter()
        .map(|f| f.herd_size)
        .collect();
    assert_eq!(started, [1, 2, 1]);
    // B ended after both episodes: it still reports its own episode's final herd.
    let finished: Vec<(Option<u64>, u32)> = recorder
        .all::<FetchFinished>()
        .iter()
        .map(|f| (f.episode, f.herd_size))
        .collect();
    let (one, two) = (Some(episodes[0].episode), Some(episodes[1].episode));
    assert_eq!(finished, [(one, 2), (two, 1), (one, 2)]);
    assert_eq!(recorder.all::<Rejected>().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_episode_joining_a_refresh_in_flight_has_no_herd_of_its_own() {
    // refresh-ahead: the refresh request is in flight when the token expires; the miss that
    // starts the episode joins it, and no request is issued during the episode.
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::new(
        vec![
            Reply::Token { expires_in: 100 },
            Reply::Gated {
                gate: gate.clone(),
                expires_in: 100,
            },
        ],
        Reply::Token { expires_in: 100 },
    );
    let recorder = Recorder::new();
    let mut config = settings(CachePolicy::RefreshAhead);
    config.refresh_window = Some(secs(10.0));
    config.refresh_jitter = Duration::ZERO;
    let client = build(config, &fake, &recorder);
    let old = client.get_token().await.unwrap();
    tokio::time::advance(secs(95.0)).await;
    client.get_token().await.unwrap();
    until("the refresh request", || fake.calls() == 2).await;
    tokio::time::advance(old.expires_at() - Instant::now()).await;
    let miss = tokio::spawn({
        let client = client.clone();
        async move { client.get_token().await }
    });
    until("the miss", || recorder.misses() == 2).await;
    gate.add_permits(1);
    assert_ne!(miss.await.unwrap().unwrap().generation(), old.generation());
    assert_eq!(fake.calls(), 2);
    let episodes = recorder.all::<EpisodeEnded>();
    assert_eq!(episodes.len(), 2);
    assert_eq!(episodes[0].herd_size, 1, "the first miss");
    assert_eq!(episodes[1].herd_size, 0, "the refresh was issued before it");
    assert!(episodes[1].stored);
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_assertion_cannot_be_signed_is_not_in_the_herd() {
    let gate = Arc::new(Semaphore::new(0));
    let fake = Fake::tokens(3600);
    let gated = Arc::new(common::Gate {
        inner: Arc::clone(&fake),
        permits: gate.clone(),
    });
    let recorder = Recorder::new();
    let (credential, fail) = failing_credential();
    let client = TokenClient::builder(
        settings(CachePolicy::Apim),
        ClientAuth::Certificate(credential),
    )
    .transport(gated)
    .observer(recorder.clone())
    .build()
    .unwrap();
    // A signs and waits at the gate; B's signature fails: nothing is sent for it.
    let a = tokio::spawn({
        let client = client.clone();
        async move { client.get_token().await }
    });
    until("A's fetch", || recorder.all::<FetchStarted>().len() == 1).await;
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let error = client.get_token().await.unwrap_err();
    assert!(matches!(error, Error::Assertion { .. }), "{error:?}");
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    gate.add_permits(1);
    a.await.unwrap().unwrap();
    assert_eq!(fake.calls(), 1);

    let started: Vec<u32> = recorder
        .all::<FetchStarted>()
        .iter()
        .map(|f| f.herd_size)
        .collect();
    assert_eq!(started, [1, 2], "B counted while it signed");
    let finished = recorder.all::<FetchFinished>();
    assert!(matches!(
        finished[0].outcome,
        FetchOutcome::Failed(Error::Assertion { .. })
    ));
    assert_eq!(finished[0].requests, 0, "B sent nothing");
    assert_eq!(finished[0].herd_size, 1, "and was taken back out");
    assert_eq!(finished[1].requests, 1);
    let episodes = recorder.all::<EpisodeEnded>();
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0].herd_size, 1);
}

/// Awaits every task.
async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}
