//! A small gateway run against the mock identity provider and backend, with a revocation:
//! the observer sees real tokens, the transport real assertions, and no report file holds
//! any of them, nor the key.

use std::{
    fs,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use client::{
    transport::{BoxFuture, FormBody, TransportError},
    CachePolicy, ClientAuth, HyperTransport, TokenClient, TokenClientConfig, Transport,
};
use http::StatusCode;
use metrics::{InstanceObserver, Metrics, RequestOutcome, RequestRecord};
use mock::{server::MockServer, ClientRegistration, MockConfig};
use report::{ComparisonReport, Report, RunInfo};
use signer::{backend, keygen, Algorithm, Credential, KeySpec};
use tokio::time::Instant;

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

/// Keeps every client assertion it sends.
struct Recording {
    inner: HyperTransport,
    assertions: Mutex<Vec<String>>,
}

impl Transport for Recording {
    fn post_form<'a>(
        &'a self,
        url: &'a http::Uri,
        form: FormBody,
        max_body: usize,
    ) -> BoxFuture<'a, Result<http::Response<Bytes>, TransportError>> {
        if let Some((_, assertion)) = form.pairs().find(|(name, _)| name == "client_assertion") {
            self.assertions.lock().unwrap().push(assertion.into_owned());
        }
        self.inner.post_form(url, form, max_body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_a_run_that_saw_tokens_contain_none() {
    let material = keygen::generate(KeySpec::Rsa2048, "redaction test", 1).unwrap();
    let config = MockConfig {
        clients: vec![ClientRegistration::with_certificates(
            CLIENT,
            vec![material.certificate("cert.pem").unwrap()],
        )],
        ..MockConfig::default()
    };
    let server = MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::new(1, Instant::now()).unwrap());
    let transport = Arc::new(Recording {
        inner: HyperTransport::new().unwrap(),
        assertions: Mutex::new(Vec::new()),
    });
    let urls = server.urls();
    let mut settings = TokenClientConfig::new(urls.token_url.clone(), CLIENT, urls.scope.clone());
    settings.policy = CachePolicy::SingleFlight;
    let credential = Credential::new(
        backend::by_name("aws-lc-rs").unwrap(),
        &material.private_key("key.pem").unwrap(),
        material.certificate("cert.pem").unwrap(),
        Some(Algorithm::Ps256),
    )
    .unwrap();
    let client = TokenClient::builder(settings, ClientAuth::Certificate(credential))
        .transport(transport.clone())
        .observer(Arc::new(InstanceObserver::new(Arc::clone(&metrics), 0)))
        .build()
        .unwrap();

    // The gateway's request path, one request at a time: token, backend, outcome.
    let mut tokens = Vec::new();
    for i in 0..12 {
        if i == 6 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            server.mock().backend.revoke_all();
            metrics.revocation_event(metrics.elapsed());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let sent_at = metrics.elapsed();
        let token = client.get_token().await.unwrap();
        let header = format!("Bearer {}", token.access_token());
        let status = match server.mock().backend.check(Some(header.as_bytes())) {
            Ok(()) => StatusCode::OK,
            Err(_) => {
                client.report_rejected(&token, StatusCode::UNAUTHORIZED);
                StatusCode::UNAUTHORIZED
            }
        };
        metrics.record_request(&RequestRecord {
            instance: 0,
            intended_start: sent_at,
            sent_at,
            finished_at: metrics.elapsed(),
            outcome: RequestOutcome::Status(status.as_u16()),
            token_obtained_at: Some(metrics.offset(token.obtained_at())),
        });
        tokens.push(token.access_token().to_owned());
    }

    let snapshot = metrics.snapshot(metrics.elapsed());
    // The run did what it should: one 401 after the revocation, then a new token.
    assert_eq!(snapshot.requests.unauthorized, 1);
    assert_eq!(snapshot.requests.ok, 11);
    assert_eq!(snapshot.invalidation.events, 1);
    assert_eq!(snapshot.invalidation.failed_requests, 1);
    assert_eq!(snapshot.invalidation.redundant_fetches, 0);
    assert_eq!(snapshot.idp.token_requests, 2);
    assert_eq!(snapshot.signing.count, 2);

    let report = Report::new(
        RunInfo {
            scenario: "revocation".to_owned(),
            policy: "single-flight".to_owned(),
            backend: "aws-lc-rs".to_owned(),
            alg: "PS256".to_owned(),
            rate: None,
            seed: None,
            interrupted: false,
            ..RunInfo::default()
        },
        snapshot,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = report.write_all(&dir.path().join("single-flight")).unwrap();
    files.extend(
        ComparisonReport {
            key: "policy".to_owned(),
            values: vec![("single-flight".to_owned(), report)],
        }
        .write_all(dir.path())
        .unwrap(),
    );
    assert_eq!(files.len(), 7);

    let assertions = transport.assertions.lock().unwrap().clone();
    assert_eq!(assertions.len(), 2);
    let mut secrets: Vec<String> = Vec::new();
    for jwt in tokens.iter().chain(&assertions) {
        // The whole JWT, and each of its parts (the header alone is not secret, and is
        // shared by many tokens; its payload and signature are).
        secrets.push(jwt.clone());
        secrets.extend(jwt.split('.').skip(1).map(str::to_owned));
    }
    // The key's base64 body, line by line.
    secrets.extend(
        material
            .key_pem
            .lines()
            .filter(|line| !line.starts_with("-----") && line.len() >= 16)
            .map(str::to_owned),
    );
    assert!(secrets.iter().all(|s| s.len() >= 16));
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} contains secret material",
                file.display()
            );
        }
        // A JWT's header starts with `eyJ` (`{"`); the interval log's base64 may hold it by
        // chance, so only the text files are checked for it.
        if !file.ends_with("latency.hlog") {
            assert!(!text.contains("eyJ"), "{} contains a JWT", file.display());
        }
    }
    server.shutdown().await;
}
