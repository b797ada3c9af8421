//! An OpenID provider's discovery document and JWKS, fetched from a wiremock server: what is
//! accepted, and every refusal naming the document and what is wrong with it.

use client::{openid, HyperTransport};
use serde_json::json;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

async fn provider(discovery: ResponseTemplate) -> (MockServer, String) {
    let server = MockServer::start().await;
    let issuer = format!("{}/contoso/v2.0", server.uri());
    Mock::given(method("GET"))
        .and(path("/contoso/v2.0/.well-known/openid-configuration"))
        .respond_with(discovery)
        .mount(&server)
        .await;
    (server, issuer)
}

#[tokio::test]
async fn the_jwks_uri_is_read_from_the_issuers_discovery_document() {
    let server = MockServer::start().await;
    let issuer = format!("{}/contoso/v2.0", server.uri());
    let jwks_uri = format!("{}/contoso/discovery/v2.0/keys", server.uri());
    Mock::given(method("GET"))
        .and(path("/contoso/v2.0/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": issuer, "jwks_uri": jwks_uri})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/contoso/discovery/v2.0/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": []})))
        .mount(&server)
        .await;
    let transport = HyperTransport::new().unwrap();
    // A trailing slash on the configured issuer does not double the slash of the path.
    assert_eq!(
        openid::discovery_url(&format!("{issuer}/")),
        format!("{issuer}/.well-known/openid-configuration")
    );
    let found = openid::discover_jwks_uri(&transport, &issuer)
        .await
        .unwrap();
    assert_eq!(found, jwks_uri);
    let jwks = openid::fetch_json(&transport, &found).await.unwrap();
    assert_eq!(jwks, json!({"keys": []}));
}

#[tokio::test]
async fn a_wrong_or_broken_discovery_document_is_refused_naming_it() {
    let cases = [
        (
            ResponseTemplate::new(200).set_body_json(
                json!({"issuer": "https://elsewhere.test/v2.0", "jwks_uri": "https://k.test/keys"}),
            ),
            "the document is for issuer \"https://elsewhere.test/v2.0\"",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"jwks_uri": "https://k.test/keys"})),
            "the document has no issuer",
        ),
        (ResponseTemplate::new(404), "status 404 Not Found"),
        (
            ResponseTemplate::new(200).set_body_string("<html>sign in</html>"),
            "the body is not JSON",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!(["not", "an", "object"])),
            "the body is not a JSON object",
        ),
        (
            ResponseTemplate::new(200).set_body_string(" ".repeat(openid::MAX_DOCUMENT_BYTES + 1)),
            "response body larger than",
        ),
    ];
    let transport = HyperTransport::new().unwrap();
    for (answer, expected) in cases {
        let (server, issuer) = provider(answer).await;
        let error = openid::discover_jwks_uri(&transport, &issuer)
            .await
            .unwrap_err();
        assert_eq!(error.url, openid::discovery_url(&issuer));
        assert!(error.reason.contains(expected), "{error} / {expected}");
        drop(server);
    }
    // The document's issuer matches but its jwks_uri is missing or not http(s).
    for (jwks_uri, expected) in [
        (None, "the document has no jwks_uri"),
        (
            Some("file:///etc/keys"),
            "jwks_uri \"file:///etc/keys\" is not an http(s) URL",
        ),
    ] {
        let server = MockServer::start().await;
        let issuer = format!("{}/contoso/v2.0", server.uri());
        let mut document = json!({"issuer": issuer});
        if let Some(uri) = jwks_uri {
            document["jwks_uri"] = json!(uri);
        }
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(document))
            .mount(&server)
            .await;
        let error = openid::discover_jwks_uri(&transport, &issuer)
            .await
            .unwrap_err();
        assert_eq!(error.reason, expected);
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_an_error_naming_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let error = openid::fetch_json(&HyperTransport::new().unwrap(), &url)
        .await
        .unwrap_err();
    assert_eq!(error.url, url);
    assert!(
        error.to_string().starts_with(&format!("{url}: ")),
        "{error}"
    );
}
