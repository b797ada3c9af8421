//! `tokenbench token` end to end against a loopback token endpoint (wiremock) that checks
//! the request's form fields and, for certificates, verifies the assertion.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::{json, Value};
use signer::{jws, Algorithm, Certificate};
use wiremock::{
    matchers::{method, path},
    Match, Mock, MockServer, Request, ResponseTemplate,
};

const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const SCOPE: &str = "api://backend/.default";
const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.the-access-token.signature";

/// How the request must authenticate.
#[derive(Clone)]
enum Auth {
    /// A client assertion of `alg`, verifiable with `certificate`, for audience `audience`.
    Assertion {
        certificate: Certificate,
        alg: Algorithm,
        audience: String,
    },
    /// This client secret.
    Secret(String),
    /// Any well-formed request.
    Any,
}

/// Matches a client-credentials token request with the expected fields.
struct TokenRequest(Auth);

impl Match for TokenRequest {
    fn matches(&self, request: &Request) -> bool {
        let form: Vec<(String, String)> = form_pairs(&request.body);
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let common = field("grant_type") == Some("client_credentials")
            && field("client_id") == Some(CLIENT_ID)
            && field("scope") == Some(SCOPE);
        common
            && match &self.0 {
                Auth::Any => true,
                Auth::Secret(secret) => {
                    field("client_secret") == Some(secret) && field("client_assertion").is_none()
                }
                Auth::Assertion {
                    certificate,
                    alg,
                    audience,
                } => {
                    let (Some(kind), Some(assertion)) =
                        (field("client_assertion_type"), field("client_assertion"))
                    else {
                        return false;
                    };
                    let Ok(payload) = jws::verify_with_certificate(
                        assertion,
                        certificate,
                        signer::backend::by_name("aws-lc-rs").unwrap(),
                    ) else {
                        return false;
                    };
                    let claims: Value = serde_json::from_slice(&payload).unwrap();
                    kind == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                        && jws::Jws::parse(assertion).unwrap().algorithm() == *alg
                        && claims["aud"] == audience.as_str()
                        && claims["iss"] == CLIENT_ID
                        && claims["sub"] == CLIENT_ID
                        && field("client_secret").is_none()
                }
            }
    }
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A token endpoint at /token that answers requests matching `auth(url)` with a token (and
/// anything else with wiremock's 404). Returns the server and the token URL.
async fn endpoint(auth: impl FnOnce(&str) -> Auth) -> (MockServer, String) {
    let server = MockServer::start().await;
    let url = format!("{}/token", server.uri());
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(TokenRequest(auth(&url)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": ACCESS_TOKEN,
        })))
        .mount(&server)
        .await;
    (server, url)
}

async fn tokenbench(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tokenbench"))
            .args(&args)
            .env_remove("TOKENBENCH_KEY_PASSWORD")
            .env_remove("TOKENBENCH_CLIENT_SECRET")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn keygen(dir: &Path, kind: &str) -> (PathBuf, PathBuf) {
    let out = dir.join(kind);
    let output = Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args(["keygen", "--out", out.to_str().unwrap(), "--kind", kind])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    (out.join("key.pem"), out.join("cert.pem"))
}

fn token_args(url: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "token",
        "--token-url",
        url,
        "--client-id",
        CLIENT_ID,
        "--scope",
        SCOPE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn with_key<'a>(key: &'a Path, cert: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// Success: exactly one JSON line with the token's fields.
fn printed(output: &Output) -> Value {
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status.code()
    );
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["token_type"], "Bearer");
    assert_eq!(summary["expires_in"], 3599);
    assert_eq!(summary["scope"], SCOPE);
    summary
}

fn assert_redacted(summary: &Value) {
    let shown = summary["access_token"].as_str().unwrap();
    assert!(shown.starts_with("<redacted sha256:"), "{shown}");
    assert!(!shown.contains("the-access-token"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_with_every_backend_and_ps256_and_rs256() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "rsa2048");
    let certificate = Certificate::load(&cert).unwrap();
    for alg in [Algorithm::Ps256, Algorithm::Rs256] {
        // The audience defaults to the token URL.
        let (server, url) = endpoint(|url| Auth::Assertion {
            certificate: certificate.clone(),
            alg,
            audience: url.to_owned(),
        })
        .await;
        for backend in ["rsa", "ring", "aws-lc-rs"] {
            let output = tokenbench(
                token_args(
                    &url,
                    &with_key(&key, &cert, &["--alg", alg.as_str(), "--backend", backend]),
                ),
                vec![],
            )
            .await;
            assert_redacted(&printed(&output));
        }
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn show_token_prints_the_token_and_audience_can_be_the_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "p256");
    let certificate = Certificate::load(&cert).unwrap();
    let (_server, url) = endpoint(|_| Auth::Assertion {
        certificate,
        alg: Algorithm::Es256,
        audience: "https://issuer.example/tenant/v2.0".to_owned(),
    })
    .await;
    let output = tokenbench(
        token_args(
            &url,
            &with_key(
                &key,
                &cert,
                &[
                    "--audience",
                    "https://issuer.example/tenant/v2.0",
                    "--show-token",
                ],
            ),
        ),
        vec![],
    )
    .await;
    assert_eq!(printed(&output)["access_token"], ACCESS_TOKEN);

    // Without --audience the assertion's aud is the token URL, which this endpoint refuses.
    let output = tokenbench(token_args(&url, &with_key(&key, &cert, &[])), vec![]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("HTTP 404"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_with_a_client_secret() {
    let (_server, url) = endpoint(|_| Auth::Secret("s3cret+/=&".to_owned())).await;
    let output = tokenbench(token_args(&url, &["--client-secret", "s3cret+/=&"]), vec![]).await;
    let summary = printed(&output);
    assert_redacted(&summary);
    assert!(!text(&output.stderr).contains("s3cret"));

    // From the environment instead of the command line.
    let env = vec![("TOKENBENCH_CLIENT_SECRET", "s3cret+/=&".to_owned())];
    printed(&tokenbench(token_args(&url, &[]), env).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_the_environment_yields_to_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "ed25519");
    let certificate = Certificate::load(&cert).unwrap();
    let (server, url) = endpoint(|url| Auth::Assertion {
        certificate,
        alg: Algorithm::EdDsa,
        audience: url.to_owned(),
    })
    .await;
    let env = vec![("TOKENBENCH_CLIENT_SECRET", "from-env".to_owned())];
    printed(
        &tokenbench(
            token_args(&url, &with_key(&key, &cert, &["--backend", "ring"])),
            env,
        )
        .await,
    );
    let body = text(&server.received_requests().await.unwrap()[0].body);
    assert!(!body.contains("client_secret"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_client_secret_is_never_dropped_for_the_environment_one() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "p256");
    let url = "http://127.0.0.1:9/token";
    // --key and --client-secret together are refused, even when the secret equals the one
    // in the environment (it used to be dropped silently, and the key used).
    let env = || vec![("TOKENBENCH_CLIENT_SECRET", "from-env".to_owned())];
    let mut both = with_key(&key, &cert, &[]);
    both.extend(["--client-secret", "from-env"]);
    let output = tokenbench(token_args(url, &both), env()).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("--client-secret"),
        "{}",
        text(&output.stderr)
    );

    // Without --key, an explicit secret wins over the environment's.
    let (server, url) = endpoint(|_| Auth::Secret("explicit".to_owned())).await;
    printed(&tokenbench(token_args(&url, &["--client-secret", "explicit"]), env()).await);
    let body = text(&server.received_requests().await.unwrap()[0].body);
    assert!(body.contains("client_secret=explicit"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn assertion_options_require_key() {
    let url = "http://127.0.0.1:9/token";
    for option in [
        ["--alg", "PS256"],
        ["--backend", "ring"],
        ["--audience", "https://issuer.example"],
        ["--lifetime", "60s"],
    ] {
        // With --client-secret, or with the secret from the environment.
        let explicit = [&["--client-secret", "s"][..], &option[..]].concat();
        for (args, env) in [
            (explicit, vec![]),
            (
                option.to_vec(),
                vec![("TOKENBENCH_CLIENT_SECRET", "s".to_owned())],
            ),
        ] {
            let output = tokenbench(token_args(url, &args), env).await;
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{option:?}: {stderr}");
            assert!(
                stderr.contains(option[0]) && stderr.contains("--key"),
                "{option:?}: {stderr}"
            );
            assert!(output.stdout.is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lifetime_defaults_to_600s_and_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "p256");
    let (server, url) = endpoint(|_| Auth::Any).await;
    for (extra, lifetime) in [(&[][..], 600), (&["--lifetime", "2m"][..], 120)] {
        printed(&tokenbench(token_args(&url, &with_key(&key, &cert, extra)), vec![]).await);
        let requests = server.received_requests().await.unwrap();
        let form = form_pairs(&requests.last().unwrap().body);
        let assertion = &form
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1;
        let payload = jws::verify_with_certificate(
            assertion,
            &Certificate::load(&cert).unwrap(),
            signer::backend::by_name("aws-lc-rs").unwrap(),
        )
        .unwrap();
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            lifetime
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oauth_error_exits_1_with_error_and_description_on_stderr() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
        })))
        .mount(&server)
        .await;
    let url = format!("{}/token", server.uri());
    let output = tokenbench(
        token_args(&url, &["--client-secret", "wrong-secret"]),
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "nothing on stdout on failure");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(
        stderr.contains("AADSTS7000215: Invalid client secret provided."),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_exits_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    drop(listener);
    let output = tokenbench(
        token_args(&url, &["--client-secret", "s", "--timeout", "5s"]),
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(
        text(&output.stderr).contains(&url),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let url = "http://127.0.0.1:9/token";

    // An unreadable key file: named on stderr.
    let output = tokenbench(token_args(url, &with_key(&missing, &missing, &[])), vec![]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    assert!(
        text(&output.stderr).contains("missing.pem"),
        "{}",
        text(&output.stderr)
    );

    // Neither a key nor a secret; both.
    let output = tokenbench(token_args(url, &[]), vec![]).await;
    assert_eq!(output.status.code(), Some(2));
    let (key, cert) = keygen(dir.path(), "p256");
    let mut both = with_key(&key, &cert, &[]);
    both.extend(["--client-secret", "s"]);
    let output = tokenbench(token_args(url, &both), vec![]).await;
    assert_eq!(output.status.code(), Some(2));

    // A token URL that is not one.
    let output = tokenbench(
        token_args("ftp://idp/token", &["--client-secret", "s"]),
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("token_url"),
        "{}",
        text(&output.stderr)
    );

    // An unknown backend, an algorithm the key cannot do.
    let output = tokenbench(
        token_args(url, &with_key(&key, &cert, &["--backend", "openssl"])),
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    let output = tokenbench(
        token_args(url, &with_key(&key, &cert, &["--alg", "PS256"])),
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
}
