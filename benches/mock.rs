//! Criterion benches of the mock identity provider and backend.
//!
//! - `backend/check_verified_token`: the backend's check of a token it has verified before
//!   (the path every request after the first takes), in-process.
//! - `backend/check_new_token`: the first check of a token: RS256 verification and claims.
//! - `idp/token_secret` and `idp/token_ps256_assertion`: the token endpoint in-process, with a
//!   client secret (one RSA signature: the access token) and with a PS256 assertion (one RSA
//!   verification more); assertions are built outside the timed region.
//! - `idp/loopback_ps256_tokens`: the token endpoint over real loopback HTTP/1.1 from 8
//!   concurrent keep-alive connections; criterion's throughput line reads as tokens per second.
//!
//! `cargo bench --bench mock` (about a minute), or a filter: `cargo bench --bench mock -- backend`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mock::{server::MockServer, ClientRegistration, Mock, MockConfig, DEFAULT_RESOURCE};
use signer::{backend, keygen, AssertionBuilder, Credential, KeySpec};

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const SECRET: &str = "bench-secret";

struct Setup {
    config: MockConfig,
    credential: Credential,
}

fn setup() -> Setup {
    let material = keygen::generate(KeySpec::Rsa2048, "bench client", 1).unwrap();
    let key = material.private_key("bench key").unwrap();
    let cert = material.certificate("bench cert").unwrap();
    let credential = Credential::new(backend::default_backend(), &key, cert.clone(), None).unwrap();
    let config = MockConfig {
        clients: vec![ClientRegistration::with_certificates(CLIENT, vec![cert]).with_secret(SECRET)],
        ..MockConfig::default()
    };
    Setup { config, credential }
}

fn form(pairs: &[(&str, &str)]) -> Bytes {
    Bytes::from(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish(),
    )
}

fn assertion_form(builder: &AssertionBuilder) -> Bytes {
    let scope = format!("{DEFAULT_RESOURCE}/.default");
    let assertion = builder.build().unwrap();
    form(&[
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("scope", &scope),
        ("client_assertion_type", signer::CLIENT_ASSERTION_TYPE),
        ("client_assertion", &assertion),
    ])
}

fn token_request(path: &str, body: Bytes) -> Request<Bytes> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(body)
        .unwrap()
}

fn in_process(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Setup { config, credential } = setup();
    let mock = Mock::new(&config, "http://127.0.0.1:9").unwrap();
    let token_path = "/tokenbench/oauth2/v2.0/token";
    let scope = format!("{DEFAULT_RESOURCE}/.default");
    let secret_form = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("scope", &scope),
        ("client_secret", SECRET),
    ]);
    let issue = |body: Bytes| {
        let response = runtime
            .block_on(mock.handle(token_request(token_path, body)))
            .unwrap();
        assert_eq!(response.status(), 200);
        let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        format!("Bearer {}", json["access_token"].as_str().unwrap())
    };

    let mut group = c.benchmark_group("backend");
    let verified = issue(secret_form.clone());
    mock.backend.check(Some(verified.as_bytes())).unwrap();
    group.bench_function("check_verified_token", |b| {
        b.iter(|| {
            mock.backend
                .check(Some(std::hint::black_box(verified.as_bytes())))
        })
    });
    group.bench_function("check_new_token", |b| {
        b.iter_batched(
            || issue(secret_form.clone()),
            |token| mock.backend.check(Some(token.as_bytes())),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("idp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("token_secret", |b| {
        b.iter(|| {
            runtime
                .block_on(mock.handle(token_request(token_path, secret_form.clone())))
                .unwrap()
        })
    });
    let builder = AssertionBuilder::new(&credential, CLIENT, mock.urls().token_url.clone());
    group.bench_function("token_ps256_assertion", |b| {
        b.iter_batched(
            || assertion_form(&builder),
            |body| {
                runtime
                    .block_on(mock.handle(token_request(token_path, body)))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn loopback(c: &mut Criterion) {
    const CONNECTIONS: usize = 8;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let Setup { config, credential } = setup();
    let server = runtime
        .block_on(MockServer::start(config, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let token_url = server.urls().token_url.clone();
    let builder = AssertionBuilder::new(&credential, CLIENT, token_url.clone());
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS)
        .build_http();
    let client = Arc::new(client);

    let mut group = c.benchmark_group("idp");
    group.throughput(Throughput::Elements(1));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("loopback_ps256_tokens", |b| {
        b.iter_custom(|iters| {
            // Assertions are signed before the clock starts: this measures the server.
            let bodies: Vec<Bytes> = (0..iters).map(|_| assertion_form(&builder)).collect();
            let per_connection = bodies.len().div_ceil(CONNECTIONS).max(1);
            runtime.block_on(async {
                let start = tokio::time::Instant::now();
                let tasks: Vec<_> = bodies
                    .chunks(per_connection)
                    .map(|chunk| {
                        let (client, url, chunk) =
                            (Arc::clone(&client), token_url.clone(), chunk.to_vec());
                        tokio::spawn(async move {
                            for body in chunk {
                                let request = Request::post(&url)
                                    .header(
                                        header::CONTENT_TYPE,
                                        "application/x-www-form-urlencoded",
                                    )
                                    .body(Full::new(body))
                                    .unwrap();
                                let response = client.request(request).await.unwrap();
                                assert_eq!(response.status(), 200);
                                response.into_body().collect().await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    runtime.block_on(server.shutdown());
}

criterion_group!(benches, in_process, loopback);
criterion_main!(benches);
