//! Runs against an external identity provider (a `tokenbench mock` over HTTPS standing in
//! for Entra or any OpenID provider) with the embedded backend validating its tokens: keys
//! found by discovery or `jwks_url`, issuer, audience and role enforced, and a provider
//! whose keys cannot be had stopping the run before it starts.

use std::future::pending;

use mock::{server::MockServer, ClientRegistration, MockConfig, DEFAULT_RESOURCE, DEFAULT_ROLE};
use report::Report;
use scenario::Scenario;

const CLIENT: &str = "7d5f3a1e-0000-4000-8000-000000000001";
const SECRET: &str = "external-provider-secret";

/// The stand-in provider, over HTTPS with its CA in `dir`.
struct Provider {
    server: MockServer,
    _dir: tempfile::TempDir,
    ca_file: String,
}

async fn provider() -> Provider {
    let server =
        MockServer::start(
            MockConfig {
                tls: true,
                clients: vec![
                    ClientRegistration::with_certificates(CLIENT, vec![]).with_secret(SECRET)
                ],
                ..MockConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("provider-ca.pem");
    std::fs::write(&ca_file, server.ca_pem().unwrap()).unwrap();
    Provider {
        server,
        ca_file: ca_file.display().to_string(),
        _dir: dir,
    }
}

impl Provider {
    /// A 1 s run at 20 requests/s against this provider, the embedded backend (over HTTPS)
    /// configured by `backend` (the lines after `[backend]`).
    fn scenario(&self, backend: &str) -> Scenario {
        let urls = self.server.urls();
        let toml = format!(
            r#"
            duration = "1s"
            tls = true
            [traffic]
            kind = "constant"
            rate = 20
            [gateway]
            instances = 2
            [idp]
            token_url = "{token_url}"
            client_id = "{CLIENT}"
            client_secret = "{SECRET}"
            scope = "{scope}"
            ca_file = {ca_file:?}
            [backend]
            {backend}
            "#,
            token_url = urls.token_url,
            scope = urls.scope,
            ca_file = self.ca_file,
        );
        Scenario::from_toml_str(&toml, "external.toml").unwrap()
    }

    async fn run(&self, backend: &str) -> Result<Report, String> {
        driver::run(
            &self.scenario(backend),
            driver::Mode::RealTime,
            pending(),
            |_| {},
        )
        .await
        .map(|outcome| outcome.report)
        .map_err(|e| e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_backend_validates_every_token_of_an_external_provider() {
    let p = provider().await;
    let issuer = &p.server.urls().issuer;
    let jwks_url = &p.server.urls().jwks_url;
    let discovered = format!("issuer = {issuer:?}\naudience = {DEFAULT_RESOURCE:?}");
    let given = format!("{discovered}\njwks_url = {jwks_url:?}\nrole = {DEFAULT_ROLE:?}");
    for backend in [&discovered, &given] {
        let report = p.run(backend).await.unwrap();
        let requests = report.metrics.requests;
        assert_eq!(
            (requests.sent, requests.ok),
            (20, 20),
            "{backend}: {requests:?}"
        );
        assert!(report.metrics.idp.token_requests >= 2, "one per instance");
    }

    // Tokens for another audience or without the role the backend requires are refused.
    let other_audience = format!("issuer = {issuer:?}\naudience = \"api://orders\"");
    let requests = p.run(&other_audience).await.unwrap().metrics.requests;
    assert_eq!(
        (requests.sent, requests.unauthorized),
        (20, 20),
        "{requests:?}"
    );
    let other_role = format!("{discovered}\nrole = \"Orders.Write\"");
    let requests = p.run(&other_role).await.unwrap().metrics.requests;
    assert_eq!(
        (requests.sent, requests.forbidden),
        (20, 20),
        "{requests:?}"
    );
    p.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_whose_keys_cannot_be_had_stops_the_run_before_it_starts() {
    let p = provider().await;
    let urls = p.server.urls().clone();
    // An issuer the provider does not serve: its discovery document is not there.
    let wrong_issuer = urls.issuer.replace("/tokenbench/", "/contoso/");
    let error = p
        .run(&format!("issuer = {wrong_issuer:?}\naudience = \"a\""))
        .await
        .unwrap_err();
    assert!(
        error.contains(&format!("[backend] issuer {wrong_issuer:?}"))
            && error.contains("discovery")
            && error.contains(&format!("{wrong_issuer}/.well-known/openid-configuration")),
        "{error}"
    );
    // A JWKS URL that answers no key set.
    let no_keys = format!("{}/nothing/here", urls.backend_url);
    let error = p
        .run(&format!(
            "issuer = {:?}\naudience = \"a\"\njwks_url = {no_keys:?}",
            urls.issuer
        ))
        .await
        .unwrap_err();
    assert!(error.contains(&format!("JWKS from {no_keys}")), "{error}");
    p.server.shutdown().await;
}
