//! The client against a token endpoint over real loopback HTTP (wiremock): request form,
//! assertions, concurrency of the policies, every kind of bad answer.

mod common;

use std::{sync::Arc, time::Duration};

use client::{
    observer::{
        EpisodeEnded, FetchFinished, FetchOutcome, FetchStarted, Rejected, Retrying, Signed,
    },
    CachePolicy, ClientAuth, Error, HyperTransport, RetryPolicy, Token, TokenClient,
    TokenClientConfig,
};
use common::{credential, credential_from, secret, until, Gate, Recorder};
use http::StatusCode;
use serde_json::{json, Value};
use signer::{jws, keygen, Algorithm, KeySpec, CLIENT_ASSERTION_TYPE};
use tokio::sync::Semaphore;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const SCOPE: &str = "api://backend/.default";
const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.access-token-secret.sig";

fn token_body() -> Value {
    json!({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":ACCESS_TOKEN})
}

/// A server answering every POST /token with `response`.
async fn endpoint(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn settings(server: &MockServer, policy: CachePolicy) -> TokenClientConfig {
    let mut config = TokenClientConfig::new(format!("{}/token", server.uri()), CLIENT_ID, SCOPE);
    config.policy = policy;
    config.retry = Some(RetryPolicy::none());
    config
}

/// A client whose requests wait at `gate`, so that tests decide when the endpoint answers.
fn gated_client(
    config: TokenClientConfig,
    gate: &Arc<Semaphore>,
    recorder: &Arc<Recorder>,
) -> TokenClient {
    TokenClient::builder(config, secret())
        .transport(Arc::new(Gate {
            inner: HyperTransport::new().unwrap(),
            permits: gate.clone(),
        }))
        .observer(recorder.clone())
        .build()
        .unwrap()
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap()
}

fn form(request: &wiremock::Request) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Runs `n` concurrent `get_token` calls; returns their results once all are done.
async fn concurrently(
    client: &TokenClient,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Token, Error>>> {
    (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_token().await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_1000_concurrent_misses_make_one_request() {
    let server = endpoint(ResponseTemplate::new(200).set_body_json(token_body())).await;
    let gate = Arc::new(Semaphore::new(0));
    let recorder = Recorder::new();
    let client = gated_client(
        settings(&server, CachePolicy::SingleFlight),
        &gate,
        &recorder,
    );
    let callers = concurrently(&client, 1000).await;
    until("1000 misses", || recorder.misses() == 1000).await;
    gate.add_permits(1000);
    let mut generations = Vec::new();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(token.access_token(), ACCESS_TOKEN);
        generations.push(token.generation());
    }
    assert!(generations.iter().all(|g| *g == generations[0]));
    assert_eq!(requests(&server).await.len(), 1);
    assert_eq!(recorder.all::<FetchStarted>().len(), 1);
    let episodes = recorder.all::<EpisodeEnded>();
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0].herd_size, 1);
    // Later lookups hit.
    client.get_token().await.unwrap();
    assert_eq!(recorder.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_failure_reaches_all_1000_waiters_with_one_request() {
    let server = endpoint(ResponseTemplate::new(400).set_body_json(json!({
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.",
    })))
    .await;
    let gate = Arc::new(Semaphore::new(0));
    let recorder = Recorder::new();
    let client = gated_client(
        settings(&server, CachePolicy::SingleFlight),
        &gate,
        &recorder,
    );
    let callers = concurrently(&client, 1000).await;
    until("1000 misses", || recorder.misses() == 1000).await;
    gate.add_permits(1000);
    for caller in callers {
        let error = caller.await.unwrap().unwrap_err();
        assert_eq!(error.status(), Some(400));
        assert_eq!(error.oauth_error(), Some("invalid_client"));
        assert!(error.to_string().contains("AADSTS7000215"), "{error}");
    }
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apim_concurrent_misses_each_fetch_and_all_succeed() {
    let server = endpoint(ResponseTemplate::new(200).set_body_json(token_body())).await;
    let gate = Arc::new(Semaphore::new(0));
    let recorder = Recorder::new();
    let client = gated_client(settings(&server, CachePolicy::Apim), &gate, &recorder);
    let callers = concurrently(&client, 50).await;
    until("50 fetches", || recorder.all::<FetchStarted>().len() == 50).await;
    gate.add_permits(50);
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().access_token(), ACCESS_TOKEN);
    }
    let sent = requests(&server).await.len();
    assert!(sent > 1, "apim does not coordinate misses");
    assert_eq!(sent, 50);
    assert_eq!(recorder.misses(), 50);
    let episodes = recorder.all::<EpisodeEnded>();
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0].herd_size, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_rejections_of_a_stale_token_refetches_once() {
    for policy in [CachePolicy::SingleFlight, CachePolicy::RefreshAhead] {
        let server = endpoint(ResponseTemplate::new(200).set_body_json(token_body())).await;
        let recorder = Recorder::new();
        let client = TokenClient::builder(settings(&server, policy), secret())
            .observer(recorder.clone())
            .build()
            .unwrap();
        let stale = client.get_token().await.unwrap();
        // Half the reports come at once, half only after the refetched token is stored (as
        // 401s of requests still in flight with the stale token would).
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let client = client.clone();
                let stale = stale.clone();
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    if i % 2 == 1 {
                        until("the refetch", || recorder.all::<FetchFinished>().len() == 2).await;
                    }
                    let removed = client.report_rejected(&stale, StatusCode::UNAUTHORIZED);
                    (removed, client.get_token().await)
                })
            })
            .collect();
        let mut removals = 0;
        for task in tasks {
            let (removed, token) = task.await.unwrap();
            removals += usize::from(removed);
            assert_ne!(token.unwrap().generation(), stale.generation(), "{policy}");
        }
        assert_eq!(removals, 1, "{policy}");
        assert_eq!(
            requests(&server).await.len(),
            2,
            "{policy}: exactly one refetch"
        );
        assert_eq!(recorder.all::<Rejected>().len(), 100);
    }
}

#[tokio::test]
async fn certificate_requests_carry_a_verifiable_assertion_and_the_form_fields() {
    let server = endpoint(ResponseTemplate::new(200).set_body_json(token_body())).await;
    let rsa = keygen::generate(KeySpec::Rsa2048, "client-test", 1).unwrap();
    let p256 = keygen::generate(KeySpec::P256, "client-test", 1).unwrap();
    let cases = [
        ("rsa", Algorithm::Ps256, &rsa),
        ("rsa", Algorithm::Rs256, &rsa),
        ("ring", Algorithm::Ps256, &rsa),
        ("ring", Algorithm::Rs256, &rsa),
        ("aws-lc-rs", Algorithm::Ps256, &rsa),
        ("aws-lc-rs", Algorithm::Rs256, &rsa),
        ("aws-lc-rs", Algorithm::Es256, &p256),
    ];
    for (i, (backend, alg, material)) in cases.into_iter().enumerate() {
        let credential = credential_from(material, backend, Some(alg));
        let certificate = credential.certificate().clone();
        let recorder = Recorder::new();
        let config = settings(&server, CachePolicy::SingleFlight);
        let token_url = config.token_url.clone();
        let client = TokenClient::builder(config, ClientAuth::Certificate(credential))
            .observer(recorder.clone())
            .build()
            .unwrap();
        client.get_token().await.unwrap();

        let all = requests(&server).await;
        assert_eq!(all.len(), i + 1);
        let request = &all[i];
        assert_eq!(
            request.headers.get("content-type").unwrap(),
            "application/x-www-form-urlencoded"
        );
        let form = form(request);
        assert_eq!(field(&form, "grant_type"), Some("client_credentials"));
        assert_eq!(field(&form, "client_id"), Some(CLIENT_ID));
        assert_eq!(field(&form, "scope"), Some(SCOPE));
        assert_eq!(
            field(&form, "client_assertion_type"),
            Some(CLIENT_ASSERTION_TYPE)
        );
        assert_eq!(field(&form, "client_secret"), None);
        let assertion = field(&form, "client_assertion").expect("an assertion");
        let payload = jws::verify_with_certificate(
            assertion,
            &certificate,
            signer::backend::by_name("aws-lc-rs").unwrap(),
        )
        .unwrap_or_else(|e| panic!("{backend} {alg}: {e}"));
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["aud"], token_url.as_str());
        assert_eq!(claims["iss"], CLIENT_ID);
        assert_eq!(claims["sub"], CLIENT_ID);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            600
        );
        assert_eq!(jws::Jws::parse(assertion).unwrap().algorithm(), alg);

        let signatures = recorder.all::<Signed>();
        assert_eq!(signatures.len(), 1, "one signature per request");
        assert_eq!((signatures[0].backend, signatures[0].alg), (backend, alg));
    }
}

#[tokio::test]
async fn audience_and_lifetime_of_the_assertion_can_be_set() {
    let server = endpoint(ResponseTemplate::new(200).set_body_json(token_body())).await;
    let mut config = settings(&server, CachePolicy::Apim);
    config.assertion_audience = Some("https://issuer.example".to_owned());
    config.assertion_lifetime = Duration::from_secs(120);
    let credential = credential(KeySpec::Ed25519, "ring", None);
    let client = TokenClient::builder(config, ClientAuth::Certificate(credential))
        .build()
        .unwrap();
    client.get_token().await.unwrap();
    let form = form(&requests(&server).await[0]);
    let assertion = field(&form, "client_assertion").unwrap();
    let jws = jws::Jws::parse(assertion).unwrap();
    assert_eq!(jws.algorithm(), Algorithm::EdDsa);
    let payload = assertion.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&base64_url_decode(payload)).unwrap();
    assert_eq!(claims["aud"], "https://issuer.example");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    // Small decoder, to keep the test free of another dependency.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let value = alphabet.iter().position(|b| *b == byte).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

#[tokio::test]
async fn secret_requests_carry_the_secret_and_no_assertion() {
    let server = endpoint(ResponseTemplate::new(200).set_body_json(token_body())).await;
    let client = TokenClient::builder(settings(&server, CachePolicy::Apim), secret())
        .build()
        .unwrap();
    let token = client.get_token().await.unwrap();
    assert_eq!(token.token_type(), "Bearer");
    assert_eq!(token.expires_in(), Duration::from_secs(3599));
    assert_eq!(
        token.scope(),
        SCOPE,
        "the requested scope when the answer has none"
    );
    let form = form(&requests(&server).await[0]);
    assert_eq!(
        field(&form, "client_secret"),
        Some("client-secret-value-do-not-log")
    );
    assert_eq!(field(&form, "client_assertion"), None);
    assert_eq!(field(&form, "client_assertion_type"), None);
    assert_eq!(field(&form, "grant_type"), Some("client_credentials"));
}

#[tokio::test]
async fn retry_after_arrives_through_http() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "0")
                .set_body_json(json!({"error": "throttled"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body()))
        .with_priority(2)
        .mount(&server)
        .await;
    let recorder = Recorder::new();
    let mut config = settings(&server, CachePolicy::SingleFlight);
    config.retry = Some(RetryPolicy {
        max_retries: 1,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        max_retry_after: Duration::from_secs(1),
    });
    let client = TokenClient::builder(config, secret())
        .observer(recorder.clone())
        .build()
        .unwrap();
    client.get_token().await.unwrap();
    assert_eq!(requests(&server).await.len(), 2);
    let retries = recorder.all::<Retrying>();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].retry_after, Some(Duration::ZERO));
}

/// `get_token` against an endpoint that answers `response`, with no retries.
async fn answer_error(response: ResponseTemplate) -> Error {
    let server = endpoint(response).await;
    let recorder = Recorder::new();
    let client = TokenClient::builder(settings(&server, CachePolicy::SingleFlight), secret())
        .observer(recorder.clone())
        .build()
        .unwrap();
    let error = client.get_token().await.unwrap_err();
    // The failure is reported, and nothing was cached.
    assert!(matches!(
        recorder.all::<FetchFinished>()[0].outcome,
        FetchOutcome::Failed(_)
    ));
    assert_eq!(recorder.hits(), 0);
    error
}

#[tokio::test]
async fn malformed_answers_are_errors_not_panics() {
    let ok = || ResponseTemplate::new(200);
    let json_ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    let invalid = [
        (ok().set_body_string("not json"), "not JSON"),
        (ok(), "not JSON"),
        (json_ok(json!([ACCESS_TOKEN])), "not a JSON object"),
        (
            json_ok(json!({"expires_in": 3599})),
            "access_token is missing",
        ),
        (
            json_ok(json!({"access_token": 7, "expires_in": 3599})),
            "access_token is a number",
        ),
        (
            json_ok(json!({"access_token": ACCESS_TOKEN})),
            "expires_in is missing",
        ),
        (
            json_ok(json!({"access_token": ACCESS_TOKEN, "expires_in": 0})),
            "expires_in must be",
        ),
        (
            json_ok(json!({"access_token": ACCESS_TOKEN, "expires_in": -1})),
            "not a negative number",
        ),
        (
            json_ok(json!({"access_token": ACCESS_TOKEN, "expires_in": "later"})),
            "expires_in must be",
        ),
        (
            json_ok(json!({"access_token": ACCESS_TOKEN, "expires_in": ACCESS_TOKEN})),
            "not a string",
        ),
        (
            json_ok(json!({"access_token": "t", "expires_in": 60, "token_type": 5})),
            "token_type is invalid: a positive whole number",
        ),
    ];
    for (response, expected) in invalid {
        let error = answer_error(response).await;
        let Error::InvalidResponse { reason, .. } = &error else {
            panic!("expected InvalidResponse for {expected:?}, got {error:?}");
        };
        assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        assert!(
            !error.to_string().contains("access-token-secret"),
            "{error}"
        );
    }

    let huge = "x".repeat(client::transport::MAX_BODY_BYTES + 1);
    for status in [200, 400] {
        let error = answer_error(ResponseTemplate::new(status).set_body_string(huge.clone())).await;
        assert!(
            matches!(error, Error::ResponseTooLarge { status: s, limit: 65536, .. } if s == status),
            "{error:?}"
        );
    }

    let error = answer_error(ResponseTemplate::new(500).set_body_string("<html>oops</html>")).await;
    assert!(
        matches!(
            error,
            Error::Endpoint {
                status: 500,
                error: None,
                error_description: None,
                ..
            }
        ),
        "{error:?}"
    );
    let error =
        answer_error(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
            .await;
    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(error.status(), Some(401));
}

#[tokio::test]
async fn transport_failures_and_timeouts_are_errors() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config =
        TokenClientConfig::new(format!("http://127.0.0.1:{port}/token"), CLIENT_ID, SCOPE);
    config.retry = Some(RetryPolicy::none());
    let client = TokenClient::builder(config, secret()).build().unwrap();
    let error = client.get_token().await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(error.to_string().contains(&port.to_string()), "{error}");

    let server = endpoint(
        ResponseTemplate::new(200)
            .set_body_json(token_body())
            .set_delay(Duration::from_secs(10)),
    )
    .await;
    let mut config = settings(&server, CachePolicy::Apim);
    config.timeout = Duration::from_millis(200);
    let client = TokenClient::builder(config, secret()).build().unwrap();
    let error = client.get_token().await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

#[test]
fn bad_settings_are_refused_by_name() {
    let build = |change: &dyn Fn(&mut TokenClientConfig)| {
        let mut config = TokenClientConfig::new("https://idp.example/token", CLIENT_ID, SCOPE);
        change(&mut config);
        TokenClient::builder(config, secret()).build().unwrap_err()
    };
    type Change = dyn Fn(&mut TokenClientConfig);
    fn retry(change: impl Fn(&mut RetryPolicy)) -> Option<RetryPolicy> {
        let mut policy = RetryPolicy::default();
        change(&mut policy);
        Some(policy)
    }
    let cases: [(&Change, &str); 14] = [
        (&|c| c.token_url = "not a url".into(), "token_url"),
        (
            &|c| c.token_url = "ftp://idp.example/token".into(),
            "token_url",
        ),
        (&|c| c.client_id = " ".into(), "client_id"),
        (&|c| c.scope = String::new(), "scope"),
        (&|c| c.cache_fraction = 0.0, "cache_fraction"),
        (&|c| c.cache_fraction = 1.5, "cache_fraction"),
        (&|c| c.timeout = Duration::ZERO, "timeout"),
        (
            &|c| c.refresh_window = Some(Duration::ZERO),
            "refresh_window",
        ),
        (
            &|c| c.retry = retry(|r| r.max_retries = 11),
            "retry.max_retries",
        ),
        (
            &|c| c.retry = retry(|r| r.max_retries = u32::MAX),
            "retry.max_retries",
        ),
        (
            &|c| c.retry = retry(|r| r.max_backoff = Duration::from_secs(601)),
            "retry.max_backoff",
        ),
        (
            &|c| c.retry = retry(|r| r.max_retry_after = Duration::from_secs(601)),
            "retry.max_retry_after",
        ),
        (
            &|c| c.retry = retry(|r| r.max_retry_after = Duration::MAX),
            "retry.max_retry_after",
        ),
        (
            &|c| c.retry = retry(|r| r.initial_backoff = Duration::from_secs(6)),
            "retry.initial_backoff",
        ),
    ];
    for (change, field) in cases {
        let error = build(change);
        assert!(
            matches!(error, Error::Config { field: f, .. } if f == field),
            "{field}: {error:?}"
        );
        assert!(error.to_string().contains(field), "{error}");
    }
    // The bounds themselves are allowed.
    let mut config = TokenClientConfig::new("https://idp.example/token", CLIENT_ID, SCOPE);
    config.retry = Some(RetryPolicy {
        max_retries: client::config::MAX_RETRIES_LIMIT,
        initial_backoff: Duration::from_secs(1),
        max_backoff: client::config::MAX_DELAY_LIMIT,
        max_retry_after: client::config::MAX_DELAY_LIMIT,
    });
    TokenClient::builder(config, secret()).build().unwrap();
    assert_eq!(
        "Single-Flight".parse::<CachePolicy>().unwrap(),
        CachePolicy::SingleFlight
    );
    assert!("lru"
        .parse::<CachePolicy>()
        .unwrap_err()
        .to_string()
        .contains("lru"));
}

#[tokio::test]
async fn https_urls_go_through_tls() {
    // A plain-HTTP server spoken to with https://: the TLS handshake fails, as a transport
    // error (the real-provider path is rustls with Mozilla's roots).
    let server = endpoint(ResponseTemplate::new(200).set_body_json(token_body())).await;
    let url = format!("{}/token", server.uri()).replace("http://", "https://");
    let mut config = TokenClientConfig::new(url, CLIENT_ID, SCOPE);
    config.retry = Some(RetryPolicy::none());
    let client = TokenClient::builder(config, secret()).build().unwrap();
    let error = client.get_token().await.unwrap_err();
    let Error::Transport { reason, .. } = &error else {
        panic!("expected a transport error, got {error:?}");
    };
    assert!(
        reason.to_lowercase().contains("tls") || reason.contains("corrupt"),
        "{reason}"
    );
    assert!(
        requests(&server).await.is_empty(),
        "no HTTP request got through"
    );
}
