//! `InstanceObserver` fed by real token clients against the mock identity provider over
//! loopback: lookups, the apim stampede, token requests and signatures reach the metrics.

use std::sync::Arc;

use bytes::Bytes;
use client::{
    transport::{BoxFuture, FormBody, TransportError},
    CachePolicy, ClientAuth, HyperTransport, TokenClient, TokenClientConfig, Transport,
};
use metrics::{InstanceObserver, Metrics};
use mock::{server::MockServer, ClientRegistration, MockConfig};
use signer::{backend, keygen, Algorithm, Credential, KeySpec};
use tokio::{sync::Barrier, time::Instant};

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const HERD: usize = 8;

/// Holds every token request until `HERD` of them are in flight, then sends them all.
struct Together {
    inner: HyperTransport,
    barrier: Barrier,
}

impl Transport for Together {
    fn post_form<'a>(
        &'a self,
        url: &'a http::Uri,
        form: FormBody,
        max_body: usize,
    ) -> BoxFuture<'a, Result<http::Response<Bytes>, TransportError>> {
        Box::pin(async move {
            self.barrier.wait().await;
            self.inner.post_form(url, form, max_body).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_feeds_lookups_herds_fetches_and_signatures() {
    let material = keygen::generate(KeySpec::P256, "observer test", 1).unwrap();
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
    let metrics = Arc::new(Metrics::new(2, Instant::now()).unwrap());

    let urls = server.urls();
    let mut settings = TokenClientConfig::new(urls.token_url.clone(), CLIENT, urls.scope.clone());
    settings.policy = CachePolicy::Apim;
    let credential = Credential::new(
        backend::by_name("ring").unwrap(),
        &material.private_key("key.pem").unwrap(),
        material.certificate("cert.pem").unwrap(),
        Some(Algorithm::Es256),
    )
    .unwrap();
    let client = TokenClient::builder(settings, ClientAuth::Certificate(credential))
        .transport(Arc::new(Together {
            inner: HyperTransport::new().unwrap(),
            barrier: Barrier::new(HERD),
        }))
        .observer(Arc::new(InstanceObserver::new(Arc::clone(&metrics), 1)))
        .build()
        .unwrap();

    // HERD concurrent misses under apim: every one signs and fetches (one episode).
    let callers: Vec<_> = (0..HERD)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_token().await })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    // Then hits.
    for _ in 0..5 {
        client.get_token().await.unwrap();
    }
    metrics.set_idp_peak_concurrent(server.mock().stats.snapshot().token_requests_peak_in_flight);

    let s = metrics.snapshot(metrics.elapsed());
    let instance = &s.cache.instances[1];
    assert_eq!((instance.hits, instance.misses), (5, HERD as u64));
    assert_eq!(instance.token_requests, HERD as u64);
    assert_eq!(s.cache.instances[0].token_requests, 0);
    assert_eq!(s.stampede.episodes, 1);
    assert_eq!(s.stampede.max_herd, Some(HERD as u64));
    assert_eq!(s.stampede.unfinished, 0);
    assert_eq!(s.idp.token_requests, HERD as u64);
    assert_eq!(
        (s.idp.ok, s.idp.throttled, s.idp.errors),
        (HERD as u64, 0, 0)
    );
    assert_eq!(s.idp.peak_concurrent_fetches, HERD as u64);
    assert!((1..=HERD as u64).contains(&s.idp.peak_concurrent));
    assert_eq!(s.signing.count, HERD as u64);
    assert!(s.signing.mean_ns.is_some_and(|mean| mean > 0.0));
    let timeline_requests: u64 = s.timeline.iter().map(|r| r.token_requests).sum();
    assert_eq!(timeline_requests, HERD as u64);
    server.shutdown().await;
}
