//! https token endpoints: the client trusts Mozilla's roots and the operating system's, and
//! a private CA only when given its file (`tokenbench mock --tls` stands in for a staging
//! identity provider with a private CA).

use std::sync::Arc;

use client::{
    ClientAuth, ClientSecret, Error, HyperTransport, TlsTrust, TokenClient, TokenClientConfig,
};
use mock::{server::MockServer, ClientRegistration, MockConfig};

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const SECRET: &str = "tls-secret";

fn client(server: &MockServer, transport: HyperTransport) -> TokenClient {
    let urls = server.urls();
    let config = TokenClientConfig::new(urls.token_url.clone(), CLIENT, urls.scope.clone());
    TokenClient::builder(config, ClientAuth::Secret(ClientSecret::new(SECRET)))
        .transport(Arc::new(transport))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_only_through_its_file() {
    let config = MockConfig {
        clients: vec![ClientRegistration::with_certificates(CLIENT, vec![]).with_secret(SECRET)],
        tls: true,
        ..MockConfig::default()
    };
    let server = MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(server.urls().token_url.starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("mock-ca.pem");
    std::fs::write(&ca_file, server.ca_pem().unwrap()).unwrap();

    let untrusting = client(&server, HyperTransport::new().unwrap());
    let err = untrusting.get_token().await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("invalid peer certificate") && message.contains("UnknownIssuer"),
        "{message}"
    );

    let mut trust = TlsTrust::new();
    trust.add_pem_file(&ca_file).unwrap();
    let trusting = client(&server, HyperTransport::with_trust(&trust).unwrap());
    let token = trusting.get_token().await.unwrap();
    assert!(!token.access_token().is_empty());
    server.shutdown().await;
}

#[test]
fn a_ca_file_that_holds_no_usable_certificate_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "just text\n").unwrap();
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (file, says) in [
        (&missing, "No such file"),
        (&empty, "no CERTIFICATE"),
        (&garbled, "not a usable CA certificate"),
    ] {
        match TlsTrust::new().add_pem_file(file) {
            Err(Error::Config { field, reason }) => {
                assert_eq!(field, "ca_file");
                assert!(reason.contains(&file.display().to_string()), "{reason}");
                assert!(reason.contains(says), "{reason}");
            }
            Err(other) => panic!("{}: {other}", file.display()),
            Ok(()) => panic!("{}: accepted", file.display()),
        }
    }
}
