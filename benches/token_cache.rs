//! Criterion benches of the token cache's hit path.
//!
//! Every bench calls `TokenClient::get_token` on a client whose cache holds a valid token
//! (`expires_in` 3599 s, fetched once at start from an in-process transport), so every call
//! is a hit. The future is polled once with a no-op waker: the figure is `get_token`'s own
//! cost (clock read, lock-free replica load, reference-count increment, observer call,
//! dropping the returned token), without an executor's.
//!
//! - `token_cache/hit/{apim,single-flight,refresh-ahead}`: one thread, ns per `get_token`.
//! - `token_cache/hit-2-threads/{striped-replicas,1-replica}`: two threads calling
//!   `get_token` on one shared client at once, each `iters` times; the time is the wall
//!   time from the first thread's start to the last one's end, so one "iteration" is two
//!   calls (criterion's throughput line shows calls per second). Scaling = 2 × t(1 thread) /
//!   t(2 threads). `1-replica` keeps one copy of the token, so both threads increment one
//!   shared reference count: the cache-line bouncing the striped per-thread replicas avoid.
//! - `token_cache/hit/1-replica`: the one-thread baseline of `1-replica`.
//!
//! The two-thread figures need both cores to themselves: on a two-core machine, anything else
//! running (a build) halves them. Measure on a quiet machine.
//!
//! ```text
//! cargo bench --bench token_cache
//! cargo bench --bench token_cache -- hit-2-threads
//! ```

use std::{
    future::Future as _,
    hint::black_box,
    pin::pin,
    sync::{Arc, Barrier},
    task::{Context, Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use bytes::Bytes;
use client::{
    transport::{BoxFuture, FormBody, TransportError},
    CachePolicy, ClientAuth, ClientSecret, Token, TokenCache, TokenClient, TokenClientConfig,
    Transport,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Answers every token request with a fresh Entra-shaped token valid for 3599 s.
struct FixedTransport;

impl Transport for FixedTransport {
    fn post_form<'a>(
        &'a self,
        _url: &'a http::Uri,
        _form: FormBody,
        _max_body: usize,
    ) -> BoxFuture<'a, Result<http::Response<Bytes>, TransportError>> {
        let body = format!(
            r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{}"}}"#,
            "x".repeat(1500)
        );
        Box::pin(async move { Ok(http::Response::new(Bytes::from(body))) })
    }
}

/// A client with a cached token.
fn primed_client(policy: CachePolicy, cache: &TokenCache) -> TokenClient {
    let mut config = TokenClientConfig::new(
        "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token",
        "6731de76-14a6-49ae-97bc-6eba6914391e",
        "api://backend/.default",
    );
    config.policy = policy;
    let client = TokenClient::builder(config, ClientAuth::Secret(ClientSecret::new("s")))
        .cache(cache)
        .transport(Arc::new(FixedTransport))
        .build()
        .expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(client.get_token()).expect("first token");
    client
}

/// One `get_token`, which must complete at once (a hit).
#[inline]
fn hit(client: &TokenClient) -> Token {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(client.get_token()).poll(&mut context) {
        Poll::Ready(Ok(token)) => token,
        Poll::Ready(Err(error)) => panic!("get_token failed: {error}"),
        Poll::Pending => panic!("get_token did not hit"),
    }
}

/// Wall time of `threads` threads each calling `get_token` `iters` times at once.
fn concurrent_hits(client: &TokenClient, threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(hit(black_box(client)));
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("spans");
    let end = spans.iter().map(|s| s.1).max().expect("spans");
    end - start
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_cache/hit");
    group.throughput(Throughput::Elements(1));
    for policy in CachePolicy::ALL {
        let client = primed_client(policy, &TokenCache::new());
        group.bench_function(policy.as_str(), |b| b.iter(|| hit(black_box(&client))));
    }
    let single = primed_client(CachePolicy::SingleFlight, &TokenCache::with_replicas(1));
    group.bench_function("1-replica", |b| b.iter(|| hit(black_box(&single))));
    group.finish();

    let mut group = c.benchmark_group("token_cache/hit-2-threads");
    group.throughput(Throughput::Elements(2));
    let cache = TokenCache::new();
    let client = primed_client(CachePolicy::SingleFlight, &cache);
    group.bench_function("striped-replicas", |b| {
        b.iter_custom(|iters| concurrent_hits(&client, 2, iters))
    });
    group.bench_function("1-replica", |b| {
        b.iter_custom(|iters| concurrent_hits(&single, 2, iters))
    });
    group.finish();
}

criterion_group!(token_cache, benches);
criterion_main!(token_cache);
