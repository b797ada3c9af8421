//! The backend in front of another OpenID provider: tokens verified with keys fetched from
//! that provider's JWKS (every key kind), its issuer and audience required, an unknown `kid`
//! fetched once, and fetch failures kept apart from the keys already held.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex, OnceLock,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use der::Decode;
use http::{header, Method, Request, StatusCode};
use mock::{
    clock::{Clock, ManualClock},
    BackendConfig, BackendTrust, BoxFuture, JwksError, JwksSource, Mock, MockConfig,
};
use serde_json::{json, Value};
use signer::{backend, keygen, Algorithm, KeyKind, KeySpec, SigningKey};

const ISSUER: &str = "https://login.example.test/contoso/v2.0";
const AUDIENCE: &str = "api://orders";
const JWKS_URL: &str = "https://login.example.test/contoso/keys";
const NOW_MS: u64 = 1_800_000_000_000;
const NOW: u64 = NOW_MS / 1000;

/// A provider's JWKS as a test serves it: replaceable, failing on demand, fetches counted.
#[derive(Debug, Default)]
struct ServedJwks {
    document: Mutex<Option<Value>>,
    fetches: AtomicUsize,
    /// When set, each fetch waits for a permit of it before answering.
    gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
}

impl ServedJwks {
    fn serve(&self, document: Option<Value>) {
        *self.document.lock().unwrap() = document;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl JwksSource for ServedJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Value, JwksError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let document = self.document.lock().unwrap().clone();
        let gate = self.gate.lock().unwrap().clone();
        Box::pin(async move {
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            document.ok_or_else(|| JwksError {
                location: JWKS_URL.to_owned(),
                reason: "connection refused".to_owned(),
            })
        })
    }

    fn location(&self) -> &str {
        JWKS_URL
    }
}

/// A signing key of the foreign provider, with its JWK.
struct ProviderKey {
    kid: String,
    key: Box<dyn SigningKey>,
    jwk: Value,
}

fn provider_key(spec: KeySpec, alg: Algorithm, kid: &str) -> ProviderKey {
    static GENERATED: [OnceLock<keygen::Generated>; 5] = [const { OnceLock::new() }; 5];
    let index = KeySpec::ALL.iter().position(|s| *s == spec).unwrap();
    let generated =
        GENERATED[index].get_or_init(|| keygen::generate(spec, "foreign provider", 1).unwrap());
    let private = generated.private_key(kid).unwrap();
    let public = generated.certificate(kid).unwrap().public_key().clone();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let bytes = public.as_bytes();
    let mut jwk = match public.kind() {
        KeyKind::Rsa { .. } => {
            let rsa = pkcs1::RsaPublicKey::from_der(bytes).unwrap();
            json!({"kty": "RSA", "n": b64(rsa.modulus.as_bytes()),
                   "e": b64(rsa.public_exponent.as_bytes())})
        }
        KeyKind::EcP256 => {
            json!({"kty": "EC", "crv": "P-256", "x": b64(&bytes[1..33]), "y": b64(&bytes[33..])})
        }
        KeyKind::Ed25519 => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(bytes)}),
    };
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(alg.as_str());
    ProviderKey {
        kid: kid.to_owned(),
        key: backend::default_backend()
            .load_signing_key(&private, alg)
            .unwrap(),
        jwk,
    }
}

impl ProviderKey {
    /// A token of this key: `claims` over the defaults (issuer, audience, valid now).
    fn token(&self, claims: Value) -> String {
        let mut all = json!({"iss": ISSUER, "aud": AUDIENCE, "iat": NOW - 10, "nbf": NOW - 10,
                             "exp": NOW + 3600, "sub": "gateway"});
        for (name, value) in claims.as_object().unwrap() {
            all[name] = value.clone();
        }
        self.token_as(self.key.algorithm(), &all)
    }

    /// A token claiming `alg` in its header, signed by this key whatever `alg` says.
    fn token_as(&self, alg: Algorithm, claims: &Value) -> String {
        let header = json!({"alg": alg.as_str(), "typ": "JWT", "kid": self.kid});
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.key.sign(token.as_bytes()).unwrap();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }
}

fn jwks(keys: &[&ProviderKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

struct Harness {
    mock: Mock,
    clock: Arc<ManualClock>,
    served: Arc<ServedJwks>,
}

fn harness(required_role: Option<&str>, document: Option<Value>) -> Harness {
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let served = Arc::new(ServedJwks::default());
    served.serve(document);
    let config = MockConfig {
        clock: Arc::clone(&clock) as Arc<dyn Clock>,
        backend: BackendConfig {
            trust: BackendTrust::OpenId {
                issuer: ISSUER.to_owned(),
                keys: Arc::clone(&served) as Arc<dyn JwksSource>,
            },
            audience: AUDIENCE.to_owned(),
            required_role: required_role.map(str::to_owned),
            ..BackendConfig::default()
        },
        ..MockConfig::default()
    };
    Harness {
        mock: Mock::new(&config, "http://127.0.0.1:9").unwrap(),
        clock,
        served,
    }
}

impl Harness {
    async fn call(&self, token: &str) -> StatusCode {
        self.request(Method::GET, "/api/orders", Some(token)).await
    }

    async fn request(&self, method: Method, path: &str, token: Option<&str>) -> StatusCode {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.mock
            .handle(request.body(Bytes::new()).unwrap())
            .await
            .unwrap()
            .status()
    }
}

#[tokio::test]
async fn every_key_kind_of_the_providers_jwks_verifies_its_tokens() {
    let keys = [
        provider_key(KeySpec::Rsa2048, Algorithm::Rs256, "rsa-rs256"),
        provider_key(KeySpec::Rsa2048, Algorithm::Ps256, "rsa-ps256"),
        provider_key(KeySpec::P256, Algorithm::Es256, "p256"),
        provider_key(KeySpec::Ed25519, Algorithm::EdDsa, "ed25519"),
    ];
    let h = harness(None, Some(jwks(&keys.iter().collect::<Vec<_>>())));
    assert_eq!(h.mock.backend.reload_keys().await, Ok(4));
    for key in &keys {
        assert_eq!(
            h.call(&key.token(json!({}))).await,
            StatusCode::OK,
            "{}",
            key.kid
        );
    }
    assert_eq!(h.served.fetches(), 1, "known kids need no further fetch");
}

#[tokio::test]
async fn issuer_audience_times_and_the_jwks_algorithm_are_enforced() {
    let key = provider_key(KeySpec::Rsa2048, Algorithm::Rs256, "k1");
    let h = harness(None, Some(jwks(&[&key])));
    h.mock.backend.reload_keys().await.unwrap();
    let cases = [
        (json!({}), StatusCode::OK),
        (json!({"aud": ["api://other", AUDIENCE]}), StatusCode::OK),
        (json!({"iat": null, "nbf": null}), StatusCode::OK),
        (
            json!({"iss": "https://login.example.test/fabrikam/v2.0"}),
            StatusCode::UNAUTHORIZED,
        ),
        (json!({"aud": "api://other"}), StatusCode::UNAUTHORIZED),
        (json!({"aud": ["api://other"]}), StatusCode::UNAUTHORIZED),
        (json!({"exp": NOW}), StatusCode::UNAUTHORIZED),
        (json!({"exp": null}), StatusCode::UNAUTHORIZED),
        (json!({"nbf": NOW + 60}), StatusCode::UNAUTHORIZED),
    ];
    for (claims, expected) in cases {
        assert_eq!(
            h.call(&key.token(claims.clone())).await,
            expected,
            "{claims}"
        );
    }
    // The JWK allows RS256 only: the same key's PS256 signature is refused.
    let ps256 = provider_key(KeySpec::Rsa2048, Algorithm::Ps256, "k1");
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 60});
    assert_eq!(
        h.call(&ps256.token_as(Algorithm::Ps256, &claims)).await,
        StatusCode::UNAUTHORIZED
    );
    // A fractional NumericDate counts by its whole seconds; `iat` is not checked.
    assert_eq!(
        h.call(&key.token(json!({"exp": NOW as f64 + 60.5, "iat": NOW + 30, "nbf": null})))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        h.call(&key.token(json!({"nbf": NOW as f64 + 1.5}))).await,
        StatusCode::UNAUTHORIZED
    );
    // No revocation or key rotation of another provider's tokens here.
    assert_eq!(h.mock.backend.revoke_all(), None);
    for path in ["/admin/revoke", "/admin/rotate-keys"] {
        assert_eq!(
            h.request(Method::POST, path, None).await,
            StatusCode::CONFLICT,
            "{path}"
        );
    }
}

#[tokio::test]
async fn requests_with_an_unknown_kid_wait_for_the_one_fetch_in_flight() {
    let key = provider_key(KeySpec::Ed25519, Algorithm::EdDsa, "late");
    let h = harness(None, Some(jwks(&[&key])));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *h.served.gate.lock().unwrap() = Some(Arc::clone(&gate));
    let token = key.token(json!({}));
    let (first, second) = (h.call(&token), h.call(&token));
    let release = async {
        // Both requests are waiting (one fetching, one behind it) before the fetch answers.
        while h.served.fetches() == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
    };
    let (first, second, ()) = tokio::join!(first, second, release);
    assert_eq!((first, second), (StatusCode::OK, StatusCode::OK));
    assert_eq!(h.served.fetches(), 1);
}

#[tokio::test]
async fn two_keys_under_one_kid_both_verify() {
    let first = provider_key(KeySpec::Rsa2048, Algorithm::Rs256, "shared");
    let second = provider_key(KeySpec::P256, Algorithm::Es256, "shared");
    let h = harness(None, Some(jwks(&[&first, &second])));
    for key in [&first, &second] {
        assert_eq!(h.call(&key.token(json!({}))).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_required_role_is_enforced_only_when_configured() {
    let key = provider_key(KeySpec::P256, Algorithm::Es256, "ec");
    let h = harness(Some("Orders.Read"), Some(jwks(&[&key])));
    assert_eq!(h.call(&key.token(json!({}))).await, StatusCode::FORBIDDEN);
    assert_eq!(
        h.call(&key.token(json!({"roles": ["Orders.Write"]}))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call(&key.token(json!({"roles": ["Orders.Read"]}))).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_jwks_at_most_once_a_second() {
    let old = provider_key(KeySpec::Rsa2048, Algorithm::Rs256, "old");
    let new = provider_key(KeySpec::P256, Algorithm::Es256, "new");
    // No key fetched before the first token: it fetches them.
    let h = harness(None, Some(jwks(&[&old])));
    assert_eq!(h.call(&old.token(json!({}))).await, StatusCode::OK);
    assert_eq!(h.served.fetches(), 1);
    // The provider rolls its key. Within a second of the last fetch, a new kid is refused
    // without a fetch; a second later it is fetched, and the old key is gone.
    h.served.serve(Some(jwks(&[&new])));
    assert_eq!(
        h.call(&new.token(json!({}))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.served.fetches(), 1);
    h.clock.advance_ms(1000);
    assert_eq!(h.call(&new.token(json!({}))).await, StatusCode::OK);
    assert_eq!(h.served.fetches(), 2);
    assert_eq!(
        h.call(&old.token(json!({}))).await,
        StatusCode::UNAUTHORIZED
    );
    // A kid the provider does not have costs one fetch a second, however many tokens carry it.
    let stranger = provider_key(KeySpec::Ed25519, Algorithm::EdDsa, "stranger");
    h.clock.advance_ms(1000);
    for _ in 0..5 {
        assert_eq!(
            h.call(&stranger.token(json!({}))).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(h.served.fetches(), 3);
}

#[tokio::test]
async fn a_failed_or_empty_fetch_is_an_error_naming_the_jwks_and_keeps_the_keys_held() {
    let key = provider_key(KeySpec::Rsa2048, Algorithm::Rs256, "k1");
    let h = harness(None, None);
    let error = h.mock.backend.reload_keys().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("JWKS from {JWKS_URL}: connection refused")
    );
    assert_eq!(
        h.call(&key.token(json!({}))).await,
        StatusCode::UNAUTHORIZED
    );

    h.served.serve(Some(jwks(&[&key])));
    assert_eq!(h.mock.backend.reload_keys().await, Ok(1));
    for (document, reason) in [
        (None, "connection refused"),
        (
            Some(json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]})),
            "no RSA, EC P-256 or Ed25519 signature key with a kid",
        ),
    ] {
        h.served.serve(document);
        let error = h.mock.backend.reload_keys().await.unwrap_err();
        assert_eq!(error.reason, reason);
        assert_eq!(error.location, JWKS_URL);
        assert_eq!(h.call(&key.token(json!({}))).await, StatusCode::OK);
    }
}
