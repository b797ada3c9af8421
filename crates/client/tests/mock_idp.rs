//! The client against the project's mock identity provider and backend, over real loopback
//! HTTP: every signer backend, and the gateway's recovery after revocation and key rotation.

use std::sync::Arc;

use client::{CachePolicy, ClientAuth, ClientSecret, TokenClient, TokenClientConfig};
use http::StatusCode;
use mock::{server::MockServer, ClientRegistration, MockConfig};
use signer::{backend, keygen, Algorithm, Credential, KeySpec};

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const SECRET: &str = "mock-secret";

struct Setup {
    server: MockServer,
    material: keygen::Generated,
}

async fn setup() -> Setup {
    let material = keygen::generate(KeySpec::Rsa2048, "client vs mock", 1).unwrap();
    let cert = material.certificate("cert.pem").unwrap();
    let config = MockConfig {
        clients: vec![ClientRegistration::with_certificates(CLIENT, vec![cert]).with_secret(SECRET)],
        ..MockConfig::default()
    };
    let server = MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Setup { server, material }
}

impl Setup {
    fn client(&self, auth: ClientAuth, policy: CachePolicy) -> TokenClient {
        let urls = self.server.urls();
        let mut config = TokenClientConfig::new(urls.token_url.clone(), CLIENT, urls.scope.clone());
        config.policy = policy;
        TokenClient::builder(config, auth).build().unwrap()
    }

    fn certificate_auth(&self, backend_name: &str, alg: Algorithm) -> ClientAuth {
        let key = self.material.private_key("key.pem").unwrap();
        let cert = self.material.certificate("cert.pem").unwrap();
        let backend = backend::by_name(backend_name).unwrap();
        ClientAuth::Certificate(Credential::new(backend, &key, cert, Some(alg)).unwrap())
    }

    fn backend_accepts(&self, token: &client::Token) -> bool {
        let header = format!("Bearer {}", token.access_token());
        self.server
            .mock()
            .backend
            .check(Some(header.as_bytes()))
            .is_ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signer_backend_gets_a_token_the_mock_backend_accepts() {
    let setup = setup().await;
    let mut fetched = 0;
    for backend in backend::all() {
        for alg in [Algorithm::Ps256, Algorithm::Rs256] {
            let client = setup.client(
                setup.certificate_auth(backend.name(), alg),
                CachePolicy::SingleFlight,
            );
            let token = client
                .get_token()
                .await
                .unwrap_or_else(|e| panic!("{} {alg}: {e}", backend.name()));
            assert!(setup.backend_accepts(&token), "{} {alg}", backend.name());
            fetched += 1;
        }
    }
    let secret = setup.client(
        ClientAuth::Secret(ClientSecret::new(SECRET)),
        CachePolicy::Apim,
    );
    assert!(setup.backend_accepts(&secret.get_token().await.unwrap()));
    let stats = setup.server.mock().stats.snapshot().token_requests;
    assert_eq!((stats.ok, stats.total), (fetched + 1, fetched + 1));
    setup.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_revocation_one_rejection_report_gets_a_token_that_works() {
    let setup = setup().await;
    let client = setup.client(
        setup.certificate_auth("aws-lc-rs", Algorithm::Ps256),
        CachePolicy::SingleFlight,
    );
    let old = client.get_token().await.unwrap();
    assert!(setup.backend_accepts(&old));

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    setup.server.mock().backend.revoke_all();
    assert!(!setup.backend_accepts(&old));
    // A burst of 401s for the same stale token: one invalidation, one refetch.
    let reports = (0..20)
        .filter(|_| client.report_rejected(&old, StatusCode::UNAUTHORIZED))
        .count();
    assert_eq!(reports, 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let new = client.get_token().await.unwrap();
    assert_ne!(new.generation(), old.generation());
    assert!(setup.backend_accepts(&new));
    assert_eq!(setup.server.mock().stats.snapshot().token_requests.ok, 2);
    setup.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_the_apim_policy_recovers_on_the_next_request() {
    let setup = setup().await;
    let client = Arc::new(setup.client(
        setup.certificate_auth("ring", Algorithm::Rs256),
        CachePolicy::Apim,
    ));
    let old = client.get_token().await.unwrap();
    assert!(setup.backend_accepts(&old));
    setup.server.mock().idp.rotate_keys().await.unwrap();
    setup.server.mock().backend.reload_keys().await.unwrap();
    assert!(!setup.backend_accepts(&old));
    assert!(client.report_rejected(&old, StatusCode::UNAUTHORIZED));
    let new = client.get_token().await.unwrap();
    assert!(setup.backend_accepts(&new));
    setup.server.shutdown().await;
}
