//! The delegated grants of the mock identity provider, in-process: on-behalf-of, authorization
//! code with PKCE and refresh tokens; the claims of every token they issue and every refusal.

use std::sync::{Arc, OnceLock};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use mock::{
    clock::{Clock, ManualClock, SystemClock},
    pairwise_sub, user_oid, BackendConfig, ClientRegistration, Mock, MockConfig, Refusal,
    DEFAULT_CLOCK_SKEW, DEFAULT_DELEGATED_SCOPE, DEFAULT_REDIRECT_URI, DEFAULT_RESOURCE,
    DEFAULT_TENANT, DEFAULT_TOKEN_LIFETIME, USER_AGENT_CLIENT_ID,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use signer::{backend, keygen, AssertionBuilder, Credential, KeySpec, CLIENT_ASSERTION_TYPE};

const BASE: &str = "http://127.0.0.1:9";
/// The gateway: a certificate and a secret.
const GATEWAY: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const SECRET: &str = "gateway-secret";
/// Another registered client, with a secret only.
const OTHER: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const OTHER_SECRET: &str = "other-secret";
const USER: &str = "alice@contoso.example";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn generated() -> &'static keygen::Generated {
    static KEY: OnceLock<keygen::Generated> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate(KeySpec::Rsa2048, "delegated test", 1).unwrap())
}

struct Harness {
    mock: Mock,
    clock: Arc<ManualClock>,
}

fn harness_with(backend: BackendConfig) -> Harness {
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let certificate = generated().certificate("gateway").unwrap();
    let config = MockConfig {
        clients: vec![
            ClientRegistration::with_certificates(GATEWAY, vec![certificate]).with_secret(SECRET),
            ClientRegistration::with_certificates(OTHER, vec![]).with_secret(OTHER_SECRET),
        ],
        backend,
        clock: clock.clone(),
        ..MockConfig::default()
    };
    Harness {
        mock: Mock::new(&config, BASE).unwrap(),
        clock,
    }
}

fn harness() -> Harness {
    harness_with(BackendConfig::default())
}

/// The claims of a JWT, unverified (the tests read what the provider signed).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
        .into_bytes()
}

/// How a client authenticates in a request.
#[derive(Clone, Copy)]
enum Auth {
    Certificate,
    Secret(&'static str),
}

impl Harness {
    async fn post(&self, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .body(Bytes::from(body))
            .unwrap();
        let response = self.mock.handle(request).await.unwrap();
        let json = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (response.status(), json)
    }

    fn assertion(&self) -> String {
        let private = generated().private_key("gateway").unwrap();
        let certificate = generated().certificate("gateway").unwrap();
        let backend = backend::by_name("aws-lc-rs").unwrap();
        let credential = Credential::new(backend, &private, certificate, None).unwrap();
        AssertionBuilder::new(&credential, GATEWAY, self.mock.urls().token_url.clone())
            .build_at(self.clock.now_secs(), uuid::Uuid::new_v4())
            .unwrap()
    }

    /// A token request of `client_id` authenticating by `auth`, with `fields`.
    async fn token(
        &self,
        client_id: &str,
        auth: Auth,
        fields: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let assertion;
        let mut all = fields.to_vec();
        all.push(("client_id", client_id));
        match auth {
            Auth::Certificate => {
                assertion = self.assertion();
                all.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
                all.push(("client_assertion", &assertion));
            }
            Auth::Secret(secret) => all.push(("client_secret", secret)),
        }
        self.post("/tokenbench/oauth2/v2.0/token", form(&all)).await
    }

    /// A user access token from `POST /admin/user-token`.
    async fn user_token(&self, user: &str, audience: &str) -> String {
        let (status, body) = self
            .post(
                "/admin/user-token",
                form(&[
                    ("user", user),
                    ("audience", audience),
                    ("scope", "access_as_user"),
                ]),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn on_behalf_of(&self, auth: Auth, assertion: &str, scope: &str) -> (StatusCode, Value) {
        let client = match auth {
            Auth::Secret(OTHER_SECRET) => OTHER,
            _ => GATEWAY,
        };
        self.token(
            client,
            auth,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion),
                ("requested_token_use", "on_behalf_of"),
                ("scope", scope),
            ],
        )
        .await
    }

    /// A code for `USER` and `GATEWAY` with the S256 challenge of [`VERIFIER`].
    async fn code(&self) -> String {
        let (status, body) = self
            .post(
                "/admin/authorize",
                form(&[
                    ("user", USER),
                    ("client_id", GATEWAY),
                    ("redirect_uri", DEFAULT_REDIRECT_URI),
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "S256"),
                ]),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["expires_in"], 600);
        body["code"].as_str().unwrap().to_owned()
    }

    async fn redeem(
        &self,
        client: &str,
        auth: Auth,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = verifier {
            fields.push(("code_verifier", verifier));
        }
        self.token(client, auth, &fields).await
    }

    async fn refresh(&self, client: &str, auth: Auth, refresh_token: &str) -> (StatusCode, Value) {
        self.token(
            client,
            auth,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    fn backend_verdict(&self, token: &str) -> Result<(), Refusal> {
        self.mock
            .backend
            .check(Some(format!("Bearer {token}").as_bytes()))
    }
}

/// Asserts an OAuth error: status, `error`, and the AADSTS code when one is expected.
fn assert_refused(
    result: &(StatusCode, Value),
    status: StatusCode,
    error: &str,
    code: Option<u32>,
) {
    let (actual, body) = result;
    assert_eq!(*actual, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    match code {
        Some(code) => {
            assert_eq!(body["error_codes"], json!([code]), "{body}");
            let description = body["error_description"].as_str().unwrap();
            assert!(
                description.starts_with(&format!("AADSTS{code}: ")),
                "{description}"
            );
        }
        None => assert!(body.get("error_codes").is_none(), "{body}"),
    }
}

/// The claims every delegated token carries: the provider's, the user's and the client's.
fn assert_user_claims(token: &str, audience: &str, azp: &str, azpacr: &str, scp: &str) {
    let claims = claims(token);
    let oid = user_oid(DEFAULT_TENANT, USER);
    assert_eq!(claims["aud"], audience);
    assert_eq!(claims["iss"], format!("{BASE}/{DEFAULT_TENANT}/v2.0"));
    assert_eq!(claims["tid"], DEFAULT_TENANT);
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["azp"], azp);
    assert_eq!(claims["azpacr"], azpacr);
    assert_eq!(claims["oid"], oid.as_str());
    assert_eq!(claims["sub"], pairwise_sub(&oid, audience));
    assert_eq!(claims["preferred_username"], USER);
    assert_eq!(claims["scp"], scp);
    assert!(
        claims.get("roles").is_none(),
        "a user token carries no app roles: {claims}"
    );
    let (iat, nbf, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(iat, nbf);
    assert!(exp >= iat + DEFAULT_TOKEN_LIFETIME.as_secs(), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["uti"].as_str().is_some_and(|u| !u.is_empty()));
}

#[tokio::test]
async fn a_user_token_from_the_admin_endpoint_is_for_the_user_and_the_public_client() {
    let h = harness();
    let (status, body) = h
        .post(
            "/admin/user-token",
            form(&[
                ("user", USER),
                ("audience", GATEWAY),
                ("scope", "access_as_user User.Read"),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["oid"], user_oid(DEFAULT_TENANT, USER).as_str());
    assert_eq!(body["expires_in"], DEFAULT_TOKEN_LIFETIME.as_secs());
    let token = body["access_token"].as_str().unwrap();
    assert_user_claims(
        token,
        GATEWAY,
        USER_AGENT_CLIENT_ID,
        "0",
        "access_as_user User.Read",
    );

    for (fields, what) in [
        (vec![("audience", GATEWAY), ("scope", "s")], "user"),
        (vec![("user", USER), ("scope", "s")], "audience"),
        (vec![("user", USER), ("audience", GATEWAY)], "scope"),
    ] {
        let result = h.post("/admin/user-token", form(&fields)).await;
        assert_refused(
            &result,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(900144),
        );
        let description = result.1["error_description"].as_str().unwrap();
        assert!(description.contains(&format!("'{what}'")), "{description}");
    }
    let long_user = "u".repeat(257);
    let result = h
        .post(
            "/admin/user-token",
            form(&[("user", &long_user), ("audience", GATEWAY), ("scope", "s")]),
        )
        .await;
    assert_refused(&result, StatusCode::BAD_REQUEST, "invalid_request", None);
    let result = h
        .post(
            "/admin/user-token",
            form(&[
                ("user", USER),
                ("audience", GATEWAY),
                ("scope", "s"),
                ("tenant", "elsewhere"),
            ]),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some(90002),
    );
}

#[tokio::test]
async fn on_behalf_of_issues_a_token_for_the_same_user_whose_azpacr_says_how_the_gateway_authenticated(
) {
    let h = harness();
    let user_token = h.user_token(USER, GATEWAY).await;
    let scope = format!("{DEFAULT_RESOURCE}/.default");

    let (status, body) = h.on_behalf_of(Auth::Certificate, &user_token, &scope).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_user_claims(
        token,
        DEFAULT_RESOURCE,
        GATEWAY,
        "2",
        DEFAULT_DELEGATED_SCOPE,
    );
    assert_ne!(
        claims(token)["sub"],
        claims(&user_token)["sub"],
        "sub is pairwise, per application"
    );
    assert_eq!(
        body["scope"],
        format!("{DEFAULT_RESOURCE}/{DEFAULT_DELEGATED_SCOPE}")
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access, no refresh token: {body}"
    );

    // By secret: azpacr 1; with offline_access, a refresh token too.
    let (status, body) = h
        .on_behalf_of(
            Auth::Secret(SECRET),
            &user_token,
            &format!("{DEFAULT_RESOURCE}/{DEFAULT_DELEGATED_SCOPE} offline_access"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_user_claims(
        body["access_token"].as_str().unwrap(),
        DEFAULT_RESOURCE,
        GATEWAY,
        "1",
        DEFAULT_DELEGATED_SCOPE,
    );
    assert_eq!(
        body["scope"],
        format!("{DEFAULT_RESOURCE}/{DEFAULT_DELEGATED_SCOPE} offline_access")
    );
    let refresh_token = body["refresh_token"].as_str().unwrap();
    let (status, body) = h.refresh(GATEWAY, Auth::Certificate, refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_user_claims(
        body["access_token"].as_str().unwrap(),
        DEFAULT_RESOURCE,
        GATEWAY,
        "2",
        DEFAULT_DELEGATED_SCOPE,
    );

    // The user token may name the gateway by its App ID URI too.
    let by_uri = h.user_token(USER, &format!("api://{GATEWAY}")).await;
    let (status, body) = h.on_behalf_of(Auth::Certificate, &by_uri, &scope).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.mock.stats.snapshot().token_requests.ok, 4);
}

#[tokio::test]
async fn on_behalf_of_refuses_every_bad_user_assertion() {
    let h = harness();
    let scope = format!("{DEFAULT_RESOURCE}/.default");
    let good = h.user_token(USER, GATEWAY).await;

    let foreign = h.user_token(USER, OTHER).await;
    let result = h.on_behalf_of(Auth::Certificate, &foreign, &scope).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(50013),
    );
    assert!(
        result.1["error_description"]
            .as_str()
            .unwrap()
            .contains("audience"),
        "{}",
        result.1
    );

    // An app-only token (no scp, no user) signed by the provider for the gateway.
    let app_only = h
        .mock
        .idp
        .sign_access_token(
            json!({"aud": GATEWAY, "iss": h.mock.urls().issuer, "exp": h.clock.now_secs() + 600, "azp": OTHER, "oid": OTHER, "roles": ["x"]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let result = h.on_behalf_of(Auth::Certificate, &app_only, &scope).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(50013),
    );
    assert!(
        result.1["error_description"]
            .as_str()
            .unwrap()
            .contains("not a user's access token"),
        "{}",
        result.1
    );

    // A forged signature, and something that is no JWT at all.
    let mut forged = good.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    for bad in [forged.as_str(), "not-a-jwt"] {
        let result = h.on_behalf_of(Auth::Certificate, bad, &scope).await;
        assert_refused(
            &result,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            Some(50013),
        );
    }

    // A token of another provider's key: after a rotation, the old key's tokens are refused.
    h.mock.idp.rotate_keys().await.unwrap();
    let result = h.on_behalf_of(Auth::Certificate, &good, &scope).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(50013),
    );

    // Expired: past its exp and the tolerated skew.
    let fresh = h.user_token(USER, GATEWAY).await;
    let (status, body) = h.on_behalf_of(Auth::Certificate, &fresh, &scope).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.clock
        .advance_ms((DEFAULT_TOKEN_LIFETIME + DEFAULT_CLOCK_SKEW).as_millis() as u64 + 2000);
    let result = h.on_behalf_of(Auth::Certificate, &fresh, &scope).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(500133),
    );
    assert_eq!(h.mock.stats.snapshot().token_requests.invalid_grant, 6);
}

#[tokio::test]
async fn on_behalf_of_refuses_a_missing_or_wrong_requested_token_use_and_a_missing_assertion() {
    let h = harness();
    let user_token = h.user_token(USER, GATEWAY).await;
    let scope = format!("{DEFAULT_RESOURCE}/.default");
    let grant = ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let missing_use = h
        .token(
            GATEWAY,
            Auth::Certificate,
            &[grant, ("assertion", &user_token), ("scope", &scope)],
        )
        .await;
    assert_refused(
        &missing_use,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some(900144),
    );
    assert!(missing_use.1["error_description"]
        .as_str()
        .unwrap()
        .contains("'requested_token_use'"));
    let wrong_use = h
        .token(
            GATEWAY,
            Auth::Certificate,
            &[
                grant,
                ("assertion", &user_token),
                ("requested_token_use", "on_behalf_of_someone"),
                ("scope", &scope),
            ],
        )
        .await;
    assert_refused(&wrong_use, StatusCode::BAD_REQUEST, "invalid_request", None);
    assert!(wrong_use.1["error_description"]
        .as_str()
        .unwrap()
        .contains("requested_token_use must be 'on_behalf_of'"));
    let no_assertion = h
        .token(
            GATEWAY,
            Auth::Certificate,
            &[
                grant,
                ("requested_token_use", "on_behalf_of"),
                ("scope", &scope),
            ],
        )
        .await;
    assert_refused(
        &no_assertion,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some(900144),
    );
    assert!(no_assertion.1["error_description"]
        .as_str()
        .unwrap()
        .contains("'assertion'"));
}

#[tokio::test]
async fn delegated_scopes_must_name_one_resource_and_be_consented() {
    let h = harness();
    let user_token = h.user_token(USER, GATEWAY).await;
    let cases: [(String, &str, u32); 5] = [
        (
            format!("{DEFAULT_RESOURCE}/Data.Write"),
            "invalid_grant",
            65001,
        ),
        (
            format!("{DEFAULT_RESOURCE}/Data.Read api://other/Data.Read"),
            "invalid_scope",
            28000,
        ),
        (
            format!("{DEFAULT_RESOURCE}/.default {DEFAULT_RESOURCE}/Data.Read"),
            "invalid_scope",
            70011,
        ),
        (
            "api://nowhere/Data.Read".to_owned(),
            "invalid_scope",
            500011,
        ),
        ("openid offline_access".to_owned(), "invalid_scope", 70011),
    ];
    for (scope, error, code) in &cases {
        let result = h.on_behalf_of(Auth::Certificate, &user_token, scope).await;
        assert_refused(&result, StatusCode::BAD_REQUEST, error, Some(*code));
    }
    // The OTHER client has no delegated permission at all on another resource, and none
    // on the default one once cleared: `.default` is then refused for want of consent.
    let mut config = MockConfig::default();
    let mut bare = ClientRegistration::with_certificates(GATEWAY, vec![]).with_secret(SECRET);
    bare.delegated_scopes.clear();
    config.clients = vec![bare];
    let bare_mock = Mock::new(&config, BASE).unwrap();
    let user_token = {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/admin/user-token")
            .body(Bytes::from(form(&[
                ("user", USER),
                ("audience", GATEWAY),
                ("scope", "s"),
            ])))
            .unwrap();
        let response = bare_mock.handle(request).await.unwrap();
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let request = Request::builder()
        .method(Method::POST)
        .uri("/tokenbench/oauth2/v2.0/token")
        .body(Bytes::from(form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &user_token),
            ("requested_token_use", "on_behalf_of"),
            ("scope", &format!("{DEFAULT_RESOURCE}/.default")),
            ("client_id", GATEWAY),
            ("client_secret", SECRET),
        ])))
        .unwrap();
    let response = bare_mock.handle(request).await.unwrap();
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_refused(
        &(response.status(), body),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(65001),
    );
}

#[tokio::test]
async fn an_authorization_code_with_pkce_is_redeemed_once_by_its_client_at_its_redirect_uri() {
    let h = harness();
    let code = h.code().await;
    // A wrong secret is refused before the code is touched: the code still redeems.
    let result = h
        .redeem(
            GATEWAY,
            Auth::Secret("wrong"),
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        Some(7000215),
    );
    let (status, body) = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_user_claims(
        body["access_token"].as_str().unwrap(),
        DEFAULT_RESOURCE,
        GATEWAY,
        "2",
        DEFAULT_DELEGATED_SCOPE,
    );
    assert_eq!(
        body["scope"],
        format!("{DEFAULT_RESOURCE}/{DEFAULT_DELEGATED_SCOPE} offline_access")
    );
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // Replayed: refused, and the refresh token its first redemption issued is revoked.
    let result = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(54005),
    );
    let result = h.refresh(GATEWAY, Auth::Certificate, &refresh_token).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );

    // Another client: refused, and the code is untouched (its own client redeems it).
    let code = h.code().await;
    let result = h
        .redeem(
            OTHER,
            Auth::Secret(OTHER_SECRET),
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );
    assert!(result.1["error_description"]
        .as_str()
        .unwrap()
        .contains("another client"));
    let (status, body) = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Nor can it revoke what the code's redemption issued by replaying it.
    let result = h
        .redeem(
            OTHER,
            Auth::Secret(OTHER_SECRET),
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );
    let (status, _) = h
        .refresh(
            GATEWAY,
            Auth::Certificate,
            body["refresh_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Another redirect URI, a wrong or missing verifier: each refused, and each spends the
    // code.
    let cases: [(&str, Auth, &str, Option<&str>, u32); 3] = [
        (
            GATEWAY,
            Auth::Certificate,
            "https://localhost/elsewhere",
            Some(VERIFIER),
            500112,
        ),
        (
            GATEWAY,
            Auth::Certificate,
            DEFAULT_REDIRECT_URI,
            Some(CHALLENGE),
            50148,
        ),
        (
            GATEWAY,
            Auth::Certificate,
            DEFAULT_REDIRECT_URI,
            None,
            50148,
        ),
    ];
    for (client, auth, redirect_uri, verifier, code_number) in cases {
        let code = h.code().await;
        let result = h.redeem(client, auth, &code, redirect_uri, verifier).await;
        assert_refused(
            &result,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            Some(code_number),
        );
        let result = h
            .redeem(
                GATEWAY,
                Auth::Certificate,
                &code,
                DEFAULT_REDIRECT_URI,
                Some(VERIFIER),
            )
            .await;
        assert_refused(
            &result,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            Some(54005),
        );
    }

    // Expired after 10 minutes; unknown codes are invalid.
    let code = h.code().await;
    h.clock.advance_ms(600_000);
    let result = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70008),
    );
    let result = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            "made-up",
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );
}

#[tokio::test]
async fn a_plain_challenge_or_none_works_and_the_authorize_endpoint_refuses_what_entra_would() {
    let h = harness();
    let authorize = |fields: Vec<(&'static str, &'static str)>| {
        let mut all = vec![
            ("user", USER),
            ("client_id", GATEWAY),
            ("redirect_uri", DEFAULT_REDIRECT_URI),
        ];
        all.extend(fields);
        h.post("/admin/authorize", form(&all))
    };
    let (status, body) = authorize(vec![("code_challenge", VERIFIER)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = body["code"].as_str().unwrap();
    let (status, body) = h
        .redeem(
            GATEWAY,
            Auth::Secret(SECRET),
            code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "plain: {body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["azpacr"],
        "1"
    );

    // Without a challenge, no verifier is needed; a narrower scope without offline_access
    // gives no refresh token.
    let (status, body) = authorize(vec![("scope", "api://tokenbench-backend/Data.Read")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            body["code"].as_str().unwrap(),
            DEFAULT_REDIRECT_URI,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");

    type AuthorizeCase = (Vec<(&'static str, &'static str)>, Option<u32>);
    let refusals: [AuthorizeCase; 4] = [
        (vec![("code_challenge_method", "S256")], None),
        (vec![("code_challenge", "too-short")], None),
        (
            vec![
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S512"),
            ],
            None,
        ),
        (
            vec![("scope", "api://tokenbench-backend/Data.Write")],
            Some(65001),
        ),
    ];
    for (fields, code) in refusals {
        let (status, body) = authorize(fields.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields:?}: {body}");
        match code {
            Some(code) => assert_eq!(body["error_codes"], json!([code]), "{body}"),
            None => assert_eq!(body["error"], "invalid_request", "{fields:?}: {body}"),
        }
    }
    let result = h
        .post(
            "/admin/authorize",
            form(&[
                ("user", USER),
                ("client_id", GATEWAY),
                ("redirect_uri", "https://evil.example/cb"),
            ]),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some(50011),
    );
    let result = h
        .post(
            "/admin/authorize",
            form(&[
                ("user", USER),
                ("client_id", "nobody"),
                ("redirect_uri", DEFAULT_REDIRECT_URI),
            ]),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        Some(700016),
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_family() {
    let h = harness();
    let code = h.code().await;
    let (_, body) = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    let first = body["refresh_token"].as_str().unwrap().to_owned();

    // Another client cannot redeem it (and that does not spend it).
    let result = h.refresh(OTHER, Auth::Secret(OTHER_SECRET), &first).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );

    let (status, body) = h.refresh(GATEWAY, Auth::Certificate, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_user_claims(
        body["access_token"].as_str().unwrap(),
        DEFAULT_RESOURCE,
        GATEWAY,
        "2",
        DEFAULT_DELEGATED_SCOPE,
    );
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "refresh tokens rotate");
    assert_eq!(URL_SAFE_NO_PAD.decode(&second).unwrap().len(), 32);

    let (status, body) = h.refresh(GATEWAY, Auth::Secret(SECRET), &second).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["azpacr"],
        "1"
    );
    let third = body["refresh_token"].as_str().unwrap().to_owned();

    // `first` again: refused, and everything rotated from it (`third`) revoked.
    let result = h.refresh(GATEWAY, Auth::Certificate, &first).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );
    assert!(result.1["error_description"]
        .as_str()
        .unwrap()
        .contains("already been used"));
    let result = h.refresh(GATEWAY, Auth::Certificate, &third).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );

    // A refresh token expires a day after it was issued.
    let code = h.code().await;
    let (_, body) = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            &code,
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    let late = body["refresh_token"].as_str().unwrap().to_owned();
    h.clock.advance_ms(24 * 3600 * 1000 + 1000);
    let result = h.refresh(GATEWAY, Auth::Certificate, &late).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(70000),
    );
}

#[tokio::test]
async fn a_backend_requiring_a_scope_admits_delegated_tokens_and_refuses_app_tokens() {
    let h = harness_with(BackendConfig {
        required_role: None,
        required_scope: Some(DEFAULT_DELEGATED_SCOPE.to_owned()),
        required_azpacr: Some("2".to_owned()),
        ..BackendConfig::default()
    });
    let user_token = h.user_token(USER, GATEWAY).await;
    let scope = format!("{DEFAULT_RESOURCE}/.default");
    let (_, body) = h.on_behalf_of(Auth::Certificate, &user_token, &scope).await;
    assert_eq!(
        h.backend_verdict(body["access_token"].as_str().unwrap()),
        Ok(())
    );
    let (_, body) = h
        .on_behalf_of(Auth::Secret(SECRET), &user_token, &scope)
        .await;
    assert_eq!(
        h.backend_verdict(body["access_token"].as_str().unwrap()),
        Err(Refusal::ClientAuthentication)
    );
    let (status, body) = h
        .token(
            GATEWAY,
            Auth::Certificate,
            &[("grant_type", "client_credentials"), ("scope", &scope)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let app_token = body["access_token"].as_str().unwrap();
    assert_eq!(h.backend_verdict(app_token), Err(Refusal::MissingScope));
    // Through HTTP: 403, as APIM's validate-jwt with a required claim.
    let request = Request::builder()
        .uri("/api/data")
        .header(http::header::AUTHORIZATION, format!("Bearer {app_token}"))
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        h.mock.handle(request).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // The user's own token (for the gateway, not the backend) is refused as 401.
    assert_eq!(
        h.backend_verdict(&user_token),
        Err(Refusal::WrongIssuerOrAudience)
    );
    // The scope is matched as a whole word of scp.
    let partial = h
        .mock
        .idp
        .sign_access_token(
            json!({"aud": DEFAULT_RESOURCE, "iss": h.mock.urls().issuer, "exp": h.clock.now_secs() + 600, "azpacr": "2", "scp": "Data.ReadWrite", "uti": URL_SAFE_NO_PAD.encode([0xffu8; 16])})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(h.backend_verdict(&partial), Err(Refusal::MissingScope));
}

#[test]
fn the_pairwise_sub_and_the_oid_are_stable_and_distinct() {
    let oid = user_oid(DEFAULT_TENANT, USER);
    assert_eq!(oid, user_oid(DEFAULT_TENANT, USER));
    assert_ne!(oid, user_oid("other-tenant", USER));
    assert_ne!(oid, user_oid(DEFAULT_TENANT, "bob"));
    assert!(uuid::Uuid::parse_str(&oid).is_ok());
    assert_ne!(pairwise_sub(&oid, "a"), pairwise_sub(&oid, "b"));
    assert_eq!(pairwise_sub(&oid, "a").len(), 43);
    // The S256 challenge of the tests is that of RFC 7636's verifier.
    assert_eq!(URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER)), CHALLENGE);
}

#[tokio::test]
async fn a_verifier_for_a_code_without_a_challenge_is_a_downgrade_and_refused() {
    let h = harness();
    let (status, body) = h
        .post(
            "/admin/authorize",
            form(&[
                ("user", USER),
                ("client_id", GATEWAY),
                ("redirect_uri", DEFAULT_REDIRECT_URI),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = h
        .redeem(
            GATEWAY,
            Auth::Certificate,
            body["code"].as_str().unwrap(),
            DEFAULT_REDIRECT_URI,
            Some(VERIFIER),
        )
        .await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        Some(50148),
    );
    assert!(result.1["error_description"]
        .as_str()
        .unwrap()
        .contains("without a code_challenge"));
}

/// A token request of `GATEWAY` (by secret) with `fields`, and `scope` if given.
async fn with_scope(
    h: &Harness,
    mut fields: Vec<(&str, &str)>,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    if let Some(scope) = scope {
        fields.push(("scope", scope));
    }
    h.token(GATEWAY, Auth::Secret(SECRET), &fields).await
}

#[tokio::test]
async fn a_redemption_may_narrow_what_was_granted_never_widen_it() {
    // A client consented to two permissions; the user granted it one.
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let mut gateway = ClientRegistration::with_certificates(GATEWAY, vec![]).with_secret(SECRET);
    gateway.delegated_scopes.insert(
        DEFAULT_RESOURCE.to_owned(),
        vec!["Data.Read".to_owned(), "Data.Write".to_owned()],
    );
    let h = Harness {
        mock: Mock::new(
            &MockConfig {
                clients: vec![gateway],
                clock: clock.clone(),
                ..MockConfig::default()
            },
            BASE,
        )
        .unwrap(),
        clock,
    };
    let read = format!("{DEFAULT_RESOURCE}/Data.Read offline_access");
    let wider = format!("{DEFAULT_RESOURCE}/Data.Read {DEFAULT_RESOURCE}/Data.Write");
    let mut codes = Vec::new();
    for _ in 0..2 {
        let (_, body) = h
            .post(
                "/admin/authorize",
                form(&[
                    ("user", USER),
                    ("client_id", GATEWAY),
                    ("redirect_uri", DEFAULT_REDIRECT_URI),
                    ("scope", &read),
                ]),
            )
            .await;
        codes.push(body["code"].as_str().unwrap().to_owned());
    }
    fn redemption(code: &str) -> Vec<(&str, &str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", DEFAULT_REDIRECT_URI),
        ]
    }
    let result = with_scope(&h, redemption(&codes[0]), Some(&wider)).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        Some(70011),
    );
    let (status, body) = with_scope(&h, redemption(&codes[1]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["scp"],
        "Data.Read"
    );
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    // Wider: refused, and the refresh token not spent.
    let result = with_scope(&h, refresh.clone(), Some(&wider)).await;
    assert_refused(
        &result,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        Some(70011),
    );
    let narrower = format!("{DEFAULT_RESOURCE}/Data.Read");
    let (status, body) = with_scope(&h, refresh, Some(&narrower)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["scope"],
        format!("{DEFAULT_RESOURCE}/Data.Read offline_access")
    );
    // `.default` asks for what was granted (and is still consented), not for everything
    // the client is consented to.
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    let everything = format!("{DEFAULT_RESOURCE}/.default");
    let (status, body) = with_scope(
        &h,
        vec![("grant_type", "refresh_token"), ("refresh_token", &rotated)],
        Some(&everything),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["scp"],
        "Data.Read"
    );
}
