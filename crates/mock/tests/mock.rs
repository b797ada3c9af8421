//! The mock identity provider and backend, in-process: valid requests from every signer
//! backend, a table of hostile ones, and the faults.

use std::sync::{Arc, Barrier, OnceLock};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use mock::{
    clock::{Clock, ManualClock},
    BackendConfig, ClientRegistration, ConfigError, ConnectionReset, FaultsDocument, Latency, Mock,
    MockConfig, OutageMode, Refusal, TokenFaults, DEFAULT_RESOURCE, DEFAULT_ROLE, DEFAULT_TENANT,
};
use serde_json::{json, Value};
use signer::{
    backend, jws::MAX_COMPACT_LEN, keygen, Algorithm, AssertionBuilder, Certificate, Credential,
    KeySpec, PrivateKey, Thumbprint, CLIENT_ASSERTION_TYPE,
};

const BASE: &str = "http://127.0.0.1:9";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "s3cret-value";
const NO_ROLE_CLIENT: &str = "22222222-0000-0000-0000-000000000000";
const RSA_ONLY_CLIENT: &str = "33333333-0000-0000-0000-000000000000";

fn generated(spec: KeySpec) -> &'static keygen::Generated {
    static CACHE: [OnceLock<keygen::Generated>; 5] = [const { OnceLock::new() }; 5];
    let index = KeySpec::ALL.iter().position(|s| *s == spec).unwrap();
    CACHE[index].get_or_init(|| keygen::generate(spec, "mock test", 1).unwrap())
}

fn unregistered() -> &'static keygen::Generated {
    static KEY: OnceLock<keygen::Generated> = OnceLock::new();
    KEY.get_or_init(|| keygen::generate(KeySpec::Rsa2048, "stranger", 1).unwrap())
}

fn key(spec: KeySpec) -> PrivateKey {
    generated(spec).private_key(spec.as_str()).unwrap()
}

fn cert(spec: KeySpec) -> Certificate {
    generated(spec).certificate(spec.as_str()).unwrap()
}

struct Harness {
    mock: Mock,
    clock: Arc<ManualClock>,
}

/// The clients of every harness: `CLIENT` (RSA, P-256 and Ed25519 certificates and a secret),
/// `NO_ROLE_CLIENT` (a secret, no roles) and `RSA_ONLY_CLIENT` (P-256 and RSA certificates,
/// RSA algorithms only; its RSA certificate is also `CLIENT`'s).
fn clients() -> Vec<ClientRegistration> {
    let specs = [KeySpec::Rsa2048, KeySpec::P256, KeySpec::Ed25519];
    let mut no_role =
        ClientRegistration::with_certificates(NO_ROLE_CLIENT, vec![]).with_secret(SECRET);
    no_role.roles.clear();
    let mut rsa_only = ClientRegistration::with_certificates(
        RSA_ONLY_CLIENT,
        vec![cert(KeySpec::P256), cert(KeySpec::Rsa2048)],
    );
    rsa_only.extra_algorithms.clear();
    vec![
        ClientRegistration::with_certificates(CLIENT, specs.iter().map(|s| cert(*s)).collect())
            .with_secret(SECRET),
        no_role,
        rsa_only,
    ]
}

/// A harness over `config`, with a manual clock.
fn harness_from(config: MockConfig) -> Harness {
    let clock = Arc::new(ManualClock::new(mock::clock::SystemClock.now_ms()));
    let config = MockConfig {
        clock: clock.clone(),
        ..config
    };
    Harness {
        mock: Mock::new(&config, BASE).unwrap(),
        clock,
    }
}

fn harness_with(faults: TokenFaults) -> Harness {
    harness_from(MockConfig {
        clients: clients(),
        token_faults: faults,
        ..MockConfig::default()
    })
}

fn harness() -> Harness {
    harness_with(TokenFaults::default())
}

impl Harness {
    fn now(&self) -> u64 {
        self.clock.now_secs()
    }

    fn builder(&self, spec: KeySpec, alg: Algorithm, backend_name: &str) -> AssertionBuilder {
        let backend = backend::by_name(backend_name).unwrap();
        let credential = Credential::new(backend, &key(spec), cert(spec), Some(alg)).unwrap();
        AssertionBuilder::new(&credential, CLIENT, self.mock.urls().token_url.clone())
    }

    fn assertion(&self) -> String {
        self.builder(KeySpec::Rsa2048, Algorithm::Ps256, "aws-lc-rs")
            .build_at(self.now(), uuid::Uuid::new_v4())
            .unwrap()
    }

    async fn post(
        &self,
        path: &str,
        method: Method,
        body: Vec<u8>,
    ) -> Result<(StatusCode, http::HeaderMap, Value), ConnectionReset> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Bytes::from(body))
            .unwrap();
        let response = self.mock.handle(request).await?;
        let json = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        Ok((response.status(), response.headers().clone(), json))
    }

    async fn token_request(&self, fields: &[(&str, &str)]) -> (StatusCode, http::HeaderMap, Value) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.post(
            "/tokenbench/oauth2/v2.0/token",
            Method::POST,
            body.into_bytes(),
        )
        .await
        .unwrap()
    }

    async fn with_assertion(&self, assertion: &str) -> (StatusCode, Value) {
        self.with_assertion_as(CLIENT, assertion).await
    }

    async fn with_assertion_as(&self, client_id: &str, assertion: &str) -> (StatusCode, Value) {
        self.with_assertion_for(
            client_id,
            &format!("{DEFAULT_RESOURCE}/.default"),
            assertion,
        )
        .await
    }

    async fn with_assertion_for(
        &self,
        client_id: &str,
        scope: &str,
        assertion: &str,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("scope", scope),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", assertion),
            ])
            .await;
        (status, body)
    }

    /// The claims of a `CLIENT` assertion for this token URL, with these times.
    fn assertion_claims(&self, iat: u64, nbf: u64, exp: u64) -> Value {
        json!({
            "aud": self.mock.urls().token_url,
            "iss": CLIENT,
            "sub": CLIENT,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": iat,
            "nbf": nbf,
            "exp": exp,
        })
    }

    /// A token from the endpoint of `tenant` for `scope`, with the client secret.
    async fn token_for(&self, tenant: &str, scope: &str) -> String {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", scope),
                ("client_secret", SECRET),
            ])
            .finish();
        let (status, _, body) = self
            .post(
                &format!("/{tenant}/oauth2/v2.0/token"),
                Method::POST,
                body.into_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The backend's verdict on `token`, in-process.
    fn check(&self, token: &str) -> Result<(), Refusal> {
        self.mock
            .backend
            .check(Some(format!("Bearer {token}").as_bytes()))
    }

    fn jwks_refreshes(&self) -> u64 {
        self.mock.stats.snapshot().backend_requests.jwks_refreshes
    }

    async fn with_secret(&self, client_id: &str, secret: &str) -> (StatusCode, Value) {
        let (status, _, body) = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("scope", &format!("{DEFAULT_RESOURCE}/.default")),
                ("client_secret", secret),
            ])
            .await;
        (status, body)
    }

    async fn token(&self) -> String {
        let (status, body) = self.with_secret(CLIENT, SECRET).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn backend(&self, authorization: Option<&str>) -> (StatusCode, http::HeaderMap) {
        let mut request = Request::builder().method(Method::GET).uri("/api/orders/42");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = self
            .mock
            .handle(request.body(Bytes::new()).unwrap())
            .await
            .unwrap();
        (response.status(), response.headers().clone())
    }

    async fn call_with(&self, token: &str) -> StatusCode {
        self.backend(Some(&format!("Bearer {token}"))).await.0
    }
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// The header of a PS256 assertion under the registered RSA certificate.
fn rsa_header() -> Value {
    json!({"alg": "PS256", "typ": "JWT", "x5t#S256": cert(KeySpec::Rsa2048).thumbprint(Thumbprint::X5tS256)})
}

/// `token` with its header replaced by one naming `kid` (the signature no longer matches).
fn with_kid(token: &str, kid: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!(
        "{}.{rest}",
        b64(&json!({"typ": "JWT", "alg": "RS256", "kid": kid}))
    )
}

/// A JWS over arbitrary header and claims, signed with the registered RSA key (PS256).
fn signed(header: &Value, claims: &Value) -> String {
    signed_segment(&b64(header), claims)
}

/// A JWS whose header segment is `header` as given (any encoding), signed over it.
fn signed_segment(header: &str, claims: &Value) -> String {
    let credential = Credential::new(
        backend::default_backend(),
        &key(KeySpec::Rsa2048),
        cert(KeySpec::Rsa2048),
        Some(Algorithm::Ps256),
    )
    .unwrap();
    let input = format!("{header}.{}", b64(claims));
    let signature = credential.signing_key().sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[tokio::test]
async fn every_backend_and_algorithm_gets_a_token_the_backend_accepts() {
    let h = harness();
    let mut tokens = 0;
    for backend in backend::all() {
        for (spec, alg) in [
            (KeySpec::Rsa2048, Algorithm::Ps256),
            (KeySpec::Rsa2048, Algorithm::Rs256),
            (KeySpec::P256, Algorithm::Es256),
            (KeySpec::Ed25519, Algorithm::EdDsa),
        ] {
            if !backend.supports(alg) {
                continue;
            }
            let assertion = h
                .builder(spec, alg, backend.name())
                .build_at(h.now(), uuid::Uuid::new_v4())
                .unwrap();
            let (status, body) = h.with_assertion(&assertion).await;
            assert_eq!(status, StatusCode::OK, "{} {alg}: {body}", backend.name());
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["expires_in"], 3599);
            assert_eq!(body["ext_expires_in"], 3599);
            let token = body["access_token"].as_str().unwrap();
            let claims = claims_of(token);
            assert_eq!(claims["azpacr"], "2");
            assert_eq!(claims["azp"], CLIENT);
            assert_eq!(claims["aud"], DEFAULT_RESOURCE);
            assert_eq!(claims["ver"], "2.0");
            assert_eq!(claims["tid"], "tokenbench");
            assert_eq!(claims["roles"], json!(["Backend.Access"]));
            assert_token_lives(&claims, 3599);
            let header: Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(token.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header["alg"], "RS256");
            assert_eq!(header["kid"], h.mock.idp.current_kid());
            assert_eq!(h.call_with(token).await, StatusCode::OK);
            tokens += 1;
        }
    }
    assert_eq!(tokens, 10);
    assert_eq!(h.mock.stats.snapshot().token_requests.ok, 10);
}

#[tokio::test]
async fn client_secret_gets_azpacr_1_and_a_wrong_one_is_refused() {
    let h = harness();
    let (status, body) = h.with_secret(CLIENT, SECRET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["azpacr"],
        "1"
    );
    let (status, body) = h.with_secret(CLIENT, "not-the-secret").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert_eq!(body["error_codes"], json!([7000215]));
    assert!(!body.to_string().contains("not-the-secret"));
}

/// A hostile assertion and the check that must refuse it.
struct Hostile {
    name: &'static str,
    client_id: &'static str,
    assertion: String,
    status: StatusCode,
    error: &'static str,
    /// The AADSTS code of the check that refuses it.
    code: u64,
    /// What that check's description says.
    says: String,
}

fn hostile(
    name: &'static str,
    client_id: &'static str,
    assertion: String,
    code: u64,
    says: impl Into<String>,
) -> Hostile {
    let (status, error) = if code == 50027 {
        (StatusCode::BAD_REQUEST, "invalid_request")
    } else {
        (StatusCode::UNAUTHORIZED, "invalid_client")
    };
    Hostile {
        name,
        client_id,
        assertion,
        status,
        error,
        code,
        says: says.into(),
    }
}

#[tokio::test]
async fn hostile_assertions_are_refused_by_the_check_they_target() {
    let h = harness();
    let now = h.now();
    let token_url = h.mock.urls().token_url.clone();
    let rsa_cert = cert(KeySpec::Rsa2048);
    let thumb = rsa_cert.thumbprint(Thumbprint::X5tS256).to_owned();
    let header = rsa_header();
    let claims = || h.assertion_claims(now, now, now + 600);
    let good = h.assertion();
    let (good_head, good_payload, good_sig) = {
        let p: Vec<&str> = good.split('.').collect();
        (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
    };

    let truncated_sig = {
        let bytes = URL_SAFE_NO_PAD.decode(&good_sig).unwrap();
        URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 10])
    };
    let spki = {
        // HS256 keyed with the certificate's public key: the classic algorithm confusion.
        let hs_header = json!({"alg": "HS256", "typ": "JWT", "x5t#S256": thumb});
        let input = format!("{}.{}", b64(&hs_header), b64(&claims()));
        let mac = hmac_sha256(rsa_cert.public_key().as_bytes(), input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
    };
    let mut tampered_claims = claims_of(&good);
    tampered_claims["exp"] = json!(now + 86_000);
    let stranger = {
        let backend = backend::default_backend();
        let credential = Credential::new(
            backend,
            &unregistered().private_key("k").unwrap(),
            unregistered().certificate("c").unwrap(),
            None,
        )
        .unwrap();
        AssertionBuilder::new(&credential, CLIENT, token_url.clone())
            .build_at(now, uuid::Uuid::new_v4())
            .unwrap()
    };
    // Signed with the RSA key, which both CLIENT and RSA_ONLY_CLIENT have registered: the
    // thumbprint and the signature hold, only iss tells the clients apart.
    let as_client = |client_id: &str| {
        let credential = Credential::new(
            backend::default_backend(),
            &key(KeySpec::Rsa2048),
            cert(KeySpec::Rsa2048),
            None,
        )
        .unwrap();
        AssertionBuilder::new(&credential, client_id, token_url.clone())
            .build_at(now, uuid::Uuid::new_v4())
            .unwrap()
    };
    let es256_not_enabled = {
        let backend = backend::default_backend();
        let credential =
            Credential::new(backend, &key(KeySpec::P256), cert(KeySpec::P256), None).unwrap();
        AssertionBuilder::new(&credential, RSA_ONLY_CLIENT, token_url.clone())
            .build_at(now, uuid::Uuid::new_v4())
            .unwrap()
    };
    let mut iss_not_sub = claims();
    iss_not_sub["sub"] = json!("someone-else");
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("https://login.microsoftonline.com/other/oauth2/v2.0/token");
    let mut no_jti = claims();
    no_jti.as_object_mut().unwrap().remove("jti");
    // Longer than the JWS parser accepts, shorter than the form field limit: the parser's
    // own limit must refuse it.
    let oversized = {
        let rest = format!(".{good_payload}.{good_sig}");
        let mut oversized_header = json!({"alg": "PS256", "x5t#S256": thumb, "pad": ""});
        let room = (MAX_COMPACT_LEN + 300 - rest.len()) * 3 / 4 - b64(&oversized_header).len();
        oversized_header["pad"] = json!("x".repeat(room));
        format!("{}{rest}", b64(&oversized_header))
    };
    assert!(
        (MAX_COMPACT_LEN + 1..MAX_COMPACT_LEN + 1024).contains(&oversized.len()),
        "{}",
        oversized.len()
    );
    let time_range = "not within its valid time range";
    let bad_signature = "failed signature validation";
    let unsupported_alg = "is not a supported signature algorithm";

    let standard_header = base64::engine::general_purpose::STANDARD
        .encode(json!({"alg": "PS256", "typ": "JWT", "x5t#S256": thumb, "x": "???>"}).to_string());
    assert!(
        standard_header.contains(['+', '/', '=']),
        "{standard_header}"
    );
    let cases = vec![
        hostile(
            "alg none",
            CLIENT,
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "x5t#S256": thumb})),
                b64(&claims())
            ),
            5002738,
            unsupported_alg,
        ),
        hostile(
            "HS256 keyed with the public key",
            CLIENT,
            spki,
            5002738,
            unsupported_alg,
        ),
        hostile(
            "wrong aud",
            CLIENT,
            signed(&header, &wrong_aud),
            700023,
            "audience claim does not match",
        ),
        hostile(
            "expired",
            CLIENT,
            h.builder(KeySpec::Rsa2048, Algorithm::Ps256, "ring")
                .build_at(now - 3600, uuid::Uuid::new_v4())
                .unwrap(),
            700024,
            time_range,
        ),
        hostile(
            "nbf in the future",
            CLIENT,
            signed(&header, &h.assertion_claims(now, now + 3600, now + 4200)),
            700024,
            time_range,
        ),
        // Each time within the skew, but they contradict each other: never valid.
        hostile(
            "exp before nbf",
            CLIENT,
            signed(&header, &h.assertion_claims(now, now + 60, now + 30)),
            700024,
            time_range,
        ),
        hostile(
            "exp before iat",
            CLIENT,
            signed(&header, &h.assertion_claims(now + 60, now, now + 30)),
            700024,
            time_range,
        ),
        hostile(
            "iss is not sub",
            CLIENT,
            signed(&header, &iss_not_sub),
            700021,
            "iss and sub claims must both be the client id",
        ),
        hostile(
            "iss is not client_id",
            RSA_ONLY_CLIENT,
            as_client(CLIENT),
            700021,
            "doesn't match 'client_id'",
        ),
        hostile(
            "iss is another client",
            CLIENT,
            as_client(RSA_ONLY_CLIENT),
            700021,
            "doesn't match 'client_id'",
        ),
        hostile(
            "unknown thumbprint",
            CLIENT,
            stranger,
            700027,
            "is not registered on application",
        ),
        hostile(
            "payload tampered after signing",
            CLIENT,
            format!("{good_head}.{}.{good_sig}", b64(&tampered_claims)),
            700027,
            bad_signature,
        ),
        hostile(
            "truncated signature",
            CLIENT,
            format!("{good_head}.{good_payload}.{truncated_sig}"),
            700027,
            bad_signature,
        ),
        hostile(
            "ES256 not enabled for the client",
            RSA_ONLY_CLIENT,
            es256_not_enabled,
            5002738,
            "'ES256' is not enabled for this application",
        ),
        hostile(
            "jti missing",
            CLIENT,
            signed(&header, &no_jti),
            50027,
            "jti claim missing",
        ),
        hostile(
            "oversized header",
            CLIENT,
            oversized,
            50027,
            format!("longer than the {MAX_COMPACT_LEN} allowed"),
        ),
        hostile(
            "invalid base64url",
            CLIENT,
            format!("{good_head}.{good_payload}+*/.{good_sig}"),
            50027,
            "malformed JWS payload",
        ),
        // Signed over that very segment: only its encoding is wrong (`+`, `/`, `=` padding).
        hostile(
            "header in standard base64",
            CLIENT,
            signed_segment(&standard_header, &claims()),
            50027,
            "malformed JWS header",
        ),
        hostile(
            "header not JSON",
            CLIENT,
            format!(
                "{}.{good_payload}.{good_sig}",
                URL_SAFE_NO_PAD.encode("not json at all")
            ),
            50027,
            "malformed JWS header",
        ),
        hostile(
            "not a JWS",
            CLIENT,
            "just-one-part".to_owned(),
            50027,
            "malformed JWS structure",
        ),
    ];
    for case in &cases {
        let (status, body) = h.with_assertion_as(case.client_id, &case.assertion).await;
        let name = case.name;
        assert_eq!(
            (status, body["error"].as_str().unwrap_or("")),
            (case.status, case.error),
            "{name}: {body}"
        );
        assert_eq!(body["error_codes"], json!([case.code]), "{name}: {body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.starts_with(&format!("AADSTS{}: ", case.code))
                && description.contains(&case.says),
            "{name}: {description}"
        );
    }

    // Replay: the good assertion works once, then never again (no AADSTS code fits).
    assert_eq!(h.with_assertion(&good).await.0, StatusCode::OK);
    let (status, body) = h.with_assertion(&good).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "replay: {body}"
    );
    assert!(body.get("error_codes").is_none(), "replay: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already been used"),
        "replay: {body}"
    );

    let stats = h.mock.stats.snapshot().token_requests;
    assert_eq!(stats.ok, 1);
    assert_eq!(stats.total, cases.len() as u64 + 2);
}

#[tokio::test]
async fn assertion_times_are_checked_with_the_clock_skew() {
    let h = harness();
    let now = h.now();
    let header = rsa_header();
    // The default skew is 300 s.
    for (name, iat, nbf, exp, accepted) in [
        ("exp 200 s ago", now - 600, now - 600, now - 200, true),
        ("exp 400 s ago", now - 800, now - 800, now - 400, false),
        ("nbf 200 s ahead", now, now + 200, now + 800, true),
        ("nbf 400 s ahead", now, now + 400, now + 1000, false),
        ("iat 200 s ahead", now + 200, now, now + 800, true),
        ("iat 400 s ahead", now + 400, now, now + 1000, false),
    ] {
        let assertion = signed(&header, &h.assertion_claims(iat, nbf, exp));
        let (status, body) = h.with_assertion(&assertion).await;
        if accepted {
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
            assert_eq!(body["error_codes"], json!([700024]), "{name}: {body}");
        }
    }
}

#[tokio::test]
async fn a_nbf_or_iat_that_is_not_a_number_is_malformed() {
    let h = harness();
    let now = h.now();
    let header = rsa_header();
    for (claim, value) in [
        ("nbf", json!("soon")),
        ("iat", json!("yesterday")),
        ("nbf", json!(null)),
        ("iat", json!(-5)),
        ("nbf", json!({"at": now})),
    ] {
        let mut claims = h.assertion_claims(now, now, now + 600);
        claims[claim] = value.clone();
        let (status, body) = h.with_assertion(&signed(&header, &claims)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{claim}: {value}: {body}"
        );
        assert_eq!(body["error_codes"], json!([50027]), "{claim}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains(&format!("{claim} claim is not a NumericDate")),
            "{body}"
        );
    }
    assert_eq!(h.mock.stats.snapshot().token_requests.ok, 0);
}

#[tokio::test]
async fn a_refused_scope_does_not_spend_the_assertion() {
    let h = harness();
    let assertion = h.assertion();
    let (status, body) = h
        .with_assertion_for(CLIENT, "api://nope/.default", &assertion)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    assert_eq!(body["error_codes"], json!([500011]));
    let (status, body) = h.with_assertion(&assertion).await;
    assert_eq!(status, StatusCode::OK, "the jti is still unspent: {body}");
}

#[tokio::test]
async fn malformed_requests_get_the_oauth_error_that_fits() {
    let h = harness();
    let scope = format!("{DEFAULT_RESOURCE}/.default");
    let assertion = h.assertion();
    let base = |grant: &'static str| {
        vec![
            ("grant_type", grant),
            ("client_id", CLIENT),
            ("scope", scope.as_str()),
            ("client_secret", SECRET),
        ]
    };
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no grant_type",
            vec![
                ("client_id", CLIENT),
                ("scope", &scope),
                ("client_secret", SECRET),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "password grant",
            base("password"),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "no client_id",
            vec![
                ("grant_type", "client_credentials"),
                ("scope", &scope),
                ("client_secret", SECRET),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "no scope",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "scope without /.default",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", DEFAULT_RESOURCE),
                ("client_secret", SECRET),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            "unknown resource",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", "api://nope/.default"),
                ("client_secret", SECRET),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            "unknown client",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("scope", &scope),
                ("client_secret", SECRET),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "no credentials",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", &scope),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "wrong assertion type",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", &scope),
                ("client_assertion_type", "urn:other"),
                ("client_assertion", &assertion),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "duplicate field",
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", &scope),
                ("client_secret", SECRET),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (name, fields, status, error) in cases {
        let (got, _, body) = h.token_request(&fields).await;
        assert_eq!(
            (got, body["error"].as_str().unwrap_or("")),
            (status, error),
            "{name}: {body}"
        );
    }
    // Unknown tenant, and a body of garbage bytes.
    let (status, _, body) = h
        .post(
            "/nope/oauth2/v2.0/token",
            Method::POST,
            b"grant_type=client_credentials".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, _, _) = h
        .post(
            "/tokenbench/oauth2/v2.0/token",
            Method::POST,
            vec![0xff, 0xfe, b'&', b'=', 0x00],
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = h
        .post(
            "/tokenbench/oauth2/v2.0/token",
            Method::POST,
            "a=b&".repeat(100).into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(h.mock.stats.snapshot().token_requests.ok, 0);
}

#[tokio::test]
async fn backend_refuses_missing_malformed_and_foreign_tokens() {
    let h = harness();
    for authorization in [
        None,
        Some("Basic abc"),
        Some("Bearer "),
        Some("Bearer not.a.jwt"),
        Some("Bearer a.b"),
    ] {
        let (status, headers) = h.backend(authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with(r#"Bearer error="invalid_token""#),
            "{challenge}"
        );
    }
    // A token from another provider (same claims, unknown key).
    let other =
        Mock::new(
            &MockConfig {
                clients: vec![
                    ClientRegistration::with_certificates(CLIENT, vec![]).with_secret(SECRET)
                ],
                ..MockConfig::default()
            },
            BASE,
        )
        .unwrap();
    let request = |body: String| {
        Request::builder()
            .method(Method::POST)
            .uri("/tokenbench/oauth2/v2.0/token")
            .body(Bytes::from(body))
            .unwrap()
    };
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", &format!("{DEFAULT_RESOURCE}/.default")),
            ("client_secret", SECRET),
        ])
        .finish();
    let response = other.handle(request(form)).await.unwrap();
    let foreign: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(
        h.call_with(foreign["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_missing_role_is_403_and_each_token_is_verified_once() {
    let h = harness();
    let (status, body) = h.with_secret(NO_ROLE_CLIENT, SECRET).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().unwrap();
    let (status, headers) = h.backend(Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));

    let good = h.token().await;
    for _ in 0..20 {
        assert_eq!(h.call_with(&good).await, StatusCode::OK);
    }
    let backend = h.mock.stats.snapshot().backend_requests;
    assert_eq!(backend.signature_verifications, 2, "one per distinct token");
    assert_eq!((backend.ok, backend.forbidden), (20, 1));
}

#[tokio::test]
async fn a_backend_requiring_azpacr_2_admits_certificate_clients_only() {
    let h = harness_from(MockConfig {
        clients: clients(),
        backend: BackendConfig {
            required_azpacr: Some("2".to_owned()),
            ..BackendConfig::default()
        },
        ..MockConfig::default()
    });
    let (status, body) = h.with_assertion(&h.assertion()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let by_certificate = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&by_certificate)["azpacr"], "2");
    assert_eq!(h.call_with(&by_certificate).await, StatusCode::OK);

    let by_secret = h.token().await;
    assert_eq!(claims_of(&by_secret)["azpacr"], "1");
    let (status, headers) = h.backend(Some(&format!("Bearer {by_secret}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    assert_eq!(h.check(&by_secret), Err(Refusal::ClientAuthentication));
    // Remembered tokens are judged alike.
    assert_eq!(h.check(&by_secret), Err(Refusal::ClientAuthentication));
    assert_eq!(h.check(&by_certificate), Ok(()));
}

#[tokio::test]
async fn tokens_expire_at_the_backend_at_their_exp() {
    // A black-box attack found the backend accepting tokens 300 s past their `exp`; APIM's
    // validate-jwt allows no skew unless told to.
    let h = harness();
    let token = h.token().await;
    let exp = claims_of(&token)["exp"].as_u64().unwrap();
    assert_eq!(h.call_with(&token).await, StatusCode::OK);
    h.clock.advance_ms(exp * 1000 - 1 - h.clock.now_ms());
    assert_eq!(
        h.call_with(&token).await,
        StatusCode::OK,
        "a millisecond before exp"
    );
    h.clock.advance_ms(1);
    assert_eq!(
        h.call_with(&token).await,
        StatusCode::UNAUTHORIZED,
        "at exp"
    );
}

#[tokio::test]
async fn a_backend_told_to_allow_skew_accepts_tokens_that_much_past_exp() {
    let h = harness_from(MockConfig {
        clients: clients(),
        backend: BackendConfig {
            clock_skew: std::time::Duration::from_secs(300),
            ..BackendConfig::default()
        },
        ..MockConfig::default()
    });
    let token = h.token().await;
    let exp = claims_of(&token)["exp"].as_u64().unwrap();
    h.clock.advance_ms((exp + 299) * 1000 - h.clock.now_ms());
    assert_eq!(h.call_with(&token).await, StatusCode::OK, "within the skew");
    h.clock.advance_ms(1000);
    assert_eq!(h.call_with(&token).await, StatusCode::UNAUTHORIZED);
}

/// A token's claims say it lives at least `expires_in` from its issue: `iat` is the issue
/// second rounded down, `exp` the issue instant rounded up plus `expires_in`.
fn assert_token_lives(claims: &Value, expires_in: u64) {
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(
        exp - iat == expires_in || exp - iat == expires_in + 1,
        "iat {iat}, exp {exp}, expires_in {expires_in}"
    );
}

/// Entra draws lifetimes from 60 to 90 minutes; so does the mock with `token_lifetime_max`,
/// from its seed, and each token's `exp` follows its own `expires_in`.
#[tokio::test]
async fn lifetimes_are_drawn_per_token_within_the_range_from_the_seed() {
    let draw = |seed| async move {
        let h = harness_from(MockConfig {
            clients: clients(),
            token_lifetime: std::time::Duration::from_secs(3600),
            token_lifetime_max: Some(std::time::Duration::from_secs(5400)),
            seed: Some(seed),
            ..MockConfig::default()
        });
        let mut lifetimes = Vec::new();
        for _ in 0..40 {
            let (status, body) = h.with_secret(CLIENT, SECRET).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let expires_in = body["expires_in"].as_u64().unwrap();
            let claims = claims_of(body["access_token"].as_str().unwrap());
            assert_token_lives(&claims, expires_in);
            lifetimes.push(expires_in);
        }
        lifetimes
    };
    let lifetimes = draw(9).await;
    assert!(
        lifetimes.iter().all(|l| (3600..=5400).contains(l)),
        "{lifetimes:?}"
    );
    let spread = lifetimes.iter().max().unwrap() - lifetimes.iter().min().unwrap();
    assert!(
        spread > 900,
        "40 draws from 30 minutes spread over {spread} s only"
    );
    assert_eq!(
        draw(9).await,
        lifetimes,
        "the same seed draws the same lifetimes"
    );
}

#[tokio::test]
async fn revoke_rejects_earlier_tokens_even_of_the_same_millisecond_and_a_new_token_works() {
    let h = harness();
    // The clock never moves: revocation orders tokens by issue sequence, not time.
    let old = h.token().await;
    let unseen = h.token().await;
    assert_eq!(h.call_with(&old).await, StatusCode::OK);
    let (status, _, body) = h.post("/admin/revoke", Method::POST, vec![]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revoked_through_sequence"], 2, "{body}");
    assert_eq!(h.check(&old), Err(Refusal::Revoked), "a remembered token");
    assert_eq!(
        h.check(&unseen),
        Err(Refusal::Revoked),
        "a token never seen"
    );
    let new = h.token().await;
    assert_eq!(h.call_with(&new).await, StatusCode::OK);
    // Revoking again with nothing newer changes nothing for tokens issued after.
    assert_eq!(h.mock.backend.revoke_all(), Some(3));
    assert_eq!(h.check(&new), Err(Refusal::Revoked));
    assert_eq!(h.call_with(&h.token().await).await, StatusCode::OK);
}

#[tokio::test]
async fn rotated_keys_fail_old_tokens_until_a_new_one_is_fetched() {
    let h = harness();
    let old = h.token().await;
    let old_kid = h.mock.idp.current_kid();
    assert_eq!(h.call_with(&old).await, StatusCode::OK);
    let (status, _, body) = h
        .post("/admin/rotate-keys", Method::POST, vec![])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body["kid"], old_kid);
    assert_eq!(h.call_with(&old).await, StatusCode::UNAUTHORIZED);
    let new = h.token().await;
    assert_eq!(h.call_with(&new).await, StatusCode::OK);
    let jwks: Value =
        serde_json::from_slice(h.mock.idp.jwks_response("tokenbench").body()).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], body["kid"]);
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let h = harness_with(TokenFaults {
        throttle_rps: Some(1.0),
        ..TokenFaults::default()
    });
    assert_eq!(h.with_secret(CLIENT, SECRET).await.0, StatusCode::OK);
    let (status, headers, body) = h
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", &format!("{DEFAULT_RESOURCE}/.default")),
            ("client_secret", SECRET),
        ])
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    // Another client has its own bucket.
    assert_eq!(
        h.with_secret(NO_ROLE_CLIENT, SECRET).await.0,
        StatusCode::OK
    );
    h.clock.advance_ms(1000);
    assert_eq!(h.with_secret(CLIENT, SECRET).await.0, StatusCode::OK);
    let stats = h.mock.stats.snapshot().token_requests;
    assert_eq!((stats.ok, stats.throttled), (3, 1));
}

#[tokio::test]
async fn an_error_rate_of_one_fails_every_token_request() {
    let h = harness_with(TokenFaults {
        error_rate: 1.0,
        ..TokenFaults::default()
    });
    for _ in 0..20 {
        let (status, _) = h.with_secret(CLIENT, SECRET).await;
        assert!(
            status == StatusCode::INTERNAL_SERVER_ERROR
                || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    let stats = h.mock.stats.snapshot().token_requests;
    assert_eq!((stats.total, stats.injected_error, stats.ok), (20, 20, 0));
}

#[tokio::test]
async fn outages_answer_503_or_close_the_connection_for_their_window() {
    let h = harness();
    let outage = |mode| FaultsDocument {
        token: TokenFaults {
            outage_ms: Some(10_000),
            outage_mode: mode,
            ..TokenFaults::default()
        },
        backend_latency: Latency::None,
    };
    let body = serde_json::to_vec(&outage(OutageMode::ServiceUnavailable)).unwrap();
    let (status, _, applied) = h.post("/admin/faults", Method::PUT, body).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(
        h.with_secret(CLIENT, SECRET).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    h.mock.set_faults(outage(OutageMode::Reset)).unwrap();
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", &format!("{DEFAULT_RESOURCE}/.default")),
            ("client_secret", SECRET),
        ])
        .finish();
    let result = h
        .post(
            "/tokenbench/oauth2/v2.0/token",
            Method::POST,
            form.into_bytes(),
        )
        .await;
    assert_eq!(result.err(), Some(ConnectionReset));

    h.clock.advance_ms(10_001);
    assert_eq!(
        h.with_secret(CLIENT, SECRET).await.0,
        StatusCode::OK,
        "the window is over"
    );
    assert_eq!(h.mock.stats.snapshot().token_requests.outage, 2);

    // Impossible faults are refused, naming the field; nothing changes.
    let bad = json!({"token": {"error_rate": 1.5}});
    let (status, _, body) = h
        .post("/admin/faults", Method::PUT, bad.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("error_rate"),
        "{body}"
    );
    let (status, _, _) = h
        .post("/admin/faults", Method::PUT, b"{\"nope\":1}".to_vec())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_concurrent_token_requests_and_backend_statuses() {
    let h = Arc::new(harness_with(TokenFaults {
        latency: Latency::Fixed { ms: 50.0 },
        ..TokenFaults::default()
    }));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.with_secret(CLIENT, SECRET).await.0 })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let token = h.token().await;
    assert_eq!(h.call_with(&token).await, StatusCode::OK);
    assert_eq!(h.backend(None).await.0, StatusCode::UNAUTHORIZED);
    let (status, _, stats) = h.post("/admin/stats", Method::GET, vec![]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["token_requests"]["ok"], 9);
    assert_eq!(stats["token_requests_in_flight"], 0);
    let peak = stats["token_requests_peak_in_flight"].as_u64().unwrap();
    assert!(
        (2..=8).contains(&peak),
        "8 requests held 50 ms each overlap: peak {peak}"
    );
    assert_eq!(stats["backend_requests"]["ok"], 1);
    assert_eq!(stats["backend_requests"]["unauthorized"], 1);
    assert_eq!(stats["backend_requests"]["total"], 2);
}

#[tokio::test]
async fn discovery_and_jwks_name_this_provider() {
    let h = harness();
    let (status, _, discovery) = h
        .post(
            "/tokenbench/v2.0/.well-known/openid-configuration",
            Method::GET,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(discovery["token_endpoint"], h.mock.urls().token_url);
    assert_eq!(discovery["jwks_uri"], h.mock.urls().jwks_url);
    assert_eq!(discovery["issuer"], h.mock.urls().issuer);
    let (status, _, jwks) = h
        .post("/tokenbench/discovery/v2.0/keys", Method::GET, vec![])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["e"], "AQAB");
    let (status, _, _) = h
        .post("/nope/discovery/v2.0/keys", Method::GET, vec![])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = h
        .post("/tokenbench/oauth2/v2.0/token", Method::GET, vec![])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, _) = h.post("/elsewhere", Method::GET, vec![]).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_valid_signature_on_an_edited_payload_is_refused_after_the_token_was_cached() {
    let h = harness();
    let token = h.token().await;
    assert_eq!(h.check(&token), Ok(()));
    let verifications = || {
        h.mock
            .stats
            .snapshot()
            .backend_requests
            .signature_verifications
    };
    assert_eq!(verifications(), 1);
    let (head, rest) = token.split_once('.').unwrap();
    let signature = rest.rsplit('.').next().unwrap();
    for edit in [
        json!({"sub": "intruder"}),
        json!({"exp": claims_of(&token)["exp"].as_u64().unwrap() + 86_400}),
        json!({"roles": ["Backend.Access", "Admin"]}),
    ] {
        let mut claims = claims_of(&token);
        for (name, value) in edit.as_object().unwrap() {
            claims[name] = value.clone();
        }
        let forged = format!("{head}.{}.{signature}", b64(&claims));
        assert_eq!(h.check(&forged), Err(Refusal::BadSignature), "{edit}");
        assert_eq!(h.call_with(&forged).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        verifications(),
        7,
        "each forgery is verified, never taken from the cache"
    );
    assert_eq!(
        h.check(&token),
        Ok(()),
        "the real token is still remembered"
    );
    assert_eq!(verifications(), 7);
}

#[tokio::test]
async fn tokens_for_another_resource_or_tenant_are_refused() {
    const OTHER_RESOURCE: &str = "api://another-backend";
    const OTHER_TENANT: &str = "another-tenant";
    // CLIENT gets the backend's role on the other resource too: only `aud` is wrong there.
    let mut clients = clients();
    clients[0]
        .roles
        .insert(OTHER_RESOURCE.to_owned(), vec![DEFAULT_ROLE.to_owned()]);
    let h = harness_from(MockConfig {
        tenants: vec![DEFAULT_TENANT.to_owned(), OTHER_TENANT.to_owned()],
        resources: vec![DEFAULT_RESOURCE.to_owned(), OTHER_RESOURCE.to_owned()],
        clients,
        ..MockConfig::default()
    });
    let ours = h
        .token_for(DEFAULT_TENANT, &format!("{DEFAULT_RESOURCE}/.default"))
        .await;
    assert_eq!(h.check(&ours), Ok(()));

    let other_resource = h
        .token_for(DEFAULT_TENANT, &format!("{OTHER_RESOURCE}/.default"))
        .await;
    assert_eq!(claims_of(&other_resource)["aud"], OTHER_RESOURCE);
    assert_eq!(claims_of(&other_resource)["roles"], json!([DEFAULT_ROLE]));
    assert_eq!(
        h.check(&other_resource),
        Err(Refusal::WrongIssuerOrAudience)
    );

    let other_tenant = h
        .token_for(OTHER_TENANT, &format!("{DEFAULT_RESOURCE}/.default"))
        .await;
    assert_eq!(claims_of(&other_tenant)["tid"], OTHER_TENANT);
    assert_eq!(h.check(&other_tenant), Err(Refusal::WrongIssuerOrAudience));
    for token in [&other_resource, &other_tenant] {
        assert_eq!(h.call_with(token).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_jwks_at_most_once_a_second() {
    let h = harness();
    let old = h.token().await;
    assert_eq!(h.check(&old), Ok(()));
    assert_eq!(h.jwks_refreshes(), 1, "the fetch at start");

    // Rotated at the provider only: the backend still holds the old key set.
    h.mock.idp.rotate_keys().await.unwrap();
    let new = h.token().await;
    assert_eq!(
        h.check(&new),
        Err(Refusal::BadSignature),
        "within a second of the last fetch, an unknown kid cannot refresh"
    );
    for i in 0..5 {
        assert_eq!(
            h.check(&with_kid(&new, &format!("forged-{i}"))),
            Err(Refusal::BadSignature)
        );
    }
    assert_eq!(
        h.jwks_refreshes(),
        1,
        "forged kids within the second refresh nothing"
    );

    h.clock.advance_ms(1000);
    assert_eq!(h.check(&new), Ok(()), "the unknown kid refreshed the JWKS");
    assert_eq!(h.jwks_refreshes(), 2);
    assert_eq!(h.check(&old), Err(Refusal::BadSignature), "its key is gone");
    for i in 0..5 {
        assert_eq!(
            h.check(&with_kid(&new, &format!("forged-again-{i}"))),
            Err(Refusal::BadSignature)
        );
    }
    assert_eq!(h.jwks_refreshes(), 2);
    h.clock.advance_ms(1000);
    assert_eq!(
        h.check(&with_kid(&new, "forged-later")),
        Err(Refusal::BadSignature)
    );
    assert_eq!(h.jwks_refreshes(), 3, "a second later, one more refresh");
}

#[test]
fn concurrent_unknown_kids_cause_one_jwks_refresh() {
    let h = harness();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = runtime.block_on(h.token());
    const THREADS: usize = 16;
    for round in 0..5 {
        h.clock.advance_ms(1000);
        let before = h.jwks_refreshes();
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for i in 0..THREADS {
                let (h, barrier, token) = (&h, &barrier, &token);
                scope.spawn(move || {
                    let forged = with_kid(token, &format!("forged-{round}-{i}"));
                    barrier.wait();
                    assert_eq!(h.check(&forged), Err(Refusal::BadSignature));
                });
            }
        });
        assert_eq!(h.jwks_refreshes(), before + 1, "round {round}");
    }
}

#[tokio::test]
async fn throttling_applies_to_registered_clients_only() {
    let h = harness_with(TokenFaults {
        throttle_rps: Some(1.0),
        ..TokenFaults::default()
    });
    assert_eq!(h.with_secret(CLIENT, SECRET).await.0, StatusCode::OK);
    assert_eq!(
        h.with_secret(CLIENT, SECRET).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // More invented client ids than any bucket map could hold: each is an unknown client,
    // never throttled, and none of them refills CLIENT's bucket.
    const INVENTED: u64 = 100_001;
    for i in 0..INVENTED {
        let body = format!(
            "grant_type=client_credentials&client_id=invented-{i}&scope=x%2F.default&client_secret=x"
        );
        let response = h
            .mock
            .idp
            .token(DEFAULT_TENANT, body.as_bytes())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "invented-{i}");
    }
    let (status, headers, body) = h
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", &format!("{DEFAULT_RESOURCE}/.default")),
            ("client_secret", SECRET),
        ])
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let stats = h.mock.stats.snapshot().token_requests;
    assert_eq!(
        (stats.ok, stats.throttled, stats.invalid_client),
        (1, 2, INVENTED)
    );
}

#[tokio::test]
async fn impossible_settings_are_refused_naming_the_field() {
    let faults = |faults: TokenFaults| faults.validate().unwrap_err();
    let cases: Vec<(ConfigError, &str)> = vec![
        (
            faults(TokenFaults {
                throttle_rps: Some(10.0),
                throttle_burst: Some(0.5),
                ..TokenFaults::default()
            }),
            "throttle_burst",
        ),
        (
            faults(TokenFaults {
                throttle_rps: Some(0.0),
                ..TokenFaults::default()
            }),
            "throttle_rps",
        ),
        (
            faults(TokenFaults {
                error_rate: -0.1,
                ..TokenFaults::default()
            }),
            "error_rate",
        ),
        (
            Latency::Uniform {
                min_ms: 5.0,
                max_ms: 1.0,
            }
            .validate()
            .unwrap_err(),
            "min_ms",
        ),
        (
            MockConfig {
                token_lifetime: std::time::Duration::from_secs(86_401),
                ..MockConfig::default()
            }
            .validate()
            .unwrap_err(),
            "token_lifetime",
        ),
        (
            MockConfig {
                token_lifetime: std::time::Duration::from_millis(500),
                ..MockConfig::default()
            }
            .validate()
            .unwrap_err(),
            "token_lifetime",
        ),
        (
            MockConfig {
                token_lifetime_max: Some(std::time::Duration::from_secs(60)),
                ..MockConfig::default()
            }
            .validate()
            .unwrap_err(),
            "token_lifetime_max",
        ),
        (
            MockConfig {
                backend: BackendConfig {
                    audience: "api://not-a-resource".to_owned(),
                    ..BackendConfig::default()
                },
                ..MockConfig::default()
            }
            .validate()
            .unwrap_err(),
            "backend.audience",
        ),
        (
            MockConfig {
                clients: vec![
                    ClientRegistration::with_certificates("twice", vec![]).with_secret("a"),
                    ClientRegistration::with_certificates("twice", vec![]).with_secret("b"),
                ],
                ..MockConfig::default()
            }
            .validate()
            .unwrap_err(),
            "registered twice",
        ),
    ];
    for (error, field) in cases {
        assert!(error.to_string().contains(field), "{field}: {error}");
    }
    // A day is allowed.
    MockConfig {
        token_lifetime: mock::MAX_TOKEN_LIFETIME,
        ..MockConfig::default()
    }
    .validate()
    .unwrap();
    // At run time too: the admin endpoint answers 400 naming the field; nothing changes.
    let h = harness();
    let bad = json!({"token": {"throttle_rps": 5.0, "throttle_burst": 0.0}});
    let (status, _, body) = h
        .post("/admin/faults", Method::PUT, bad.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("throttle_burst"),
        "{body}"
    );
    assert_eq!(h.mock.faults(), FaultsDocument::default());
}

#[tokio::test]
async fn long_untrusted_values_are_truncated_in_error_descriptions() {
    let h = harness();
    let long = "z".repeat(1000);
    let scope = format!("{long}/.default");
    for (fields, echoed) in [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", long.as_str()),
                ("scope", "api://tokenbench-backend/.default"),
                ("client_secret", SECRET),
            ],
            "client_id",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", long.as_str()),
                ("client_secret", SECRET),
            ],
            "scope",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", scope.as_str()),
                ("client_secret", SECRET),
            ],
            "resource",
        ),
    ] {
        let (status, _, body) = h.token_request(&fields).await;
        assert!(status.is_client_error(), "{echoed}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains(&"z".repeat(64)),
            "{echoed}: {description}"
        );
        assert!(
            !description.contains(&"z".repeat(65)),
            "{echoed}: {description}"
        );
    }
    let alg = "Q".repeat(1000);
    let assertion = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": alg, "typ": "JWT"})),
        b64(&h.assertion_claims(h.now(), h.now(), h.now() + 600))
    );
    let (status, body) = h.with_assertion(&assertion).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(&"Q".repeat(64)), "{description}");
    assert!(!description.contains(&"Q".repeat(65)), "{description}");
}
