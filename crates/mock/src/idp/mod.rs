//! The mock identity provider: Entra ID v2 token endpoint, discovery document and JWKS.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use http::{Response, StatusCode};
use rand::Rng;
use serde_json::{json, Value};
use signer::{keygen, Algorithm, CryptoBackend, KeySpec, SigningKey, Thumbprint, VerifyingKey};

use crate::{
    clock::Clock,
    config::{ClientRegistration, MockConfig},
    error::ConfigError,
    expiring::ExpiringMap,
    faults::{Draws, OutageMode, TokenBucket, TokenFaults},
    http_util::{json_response, truncate, OAuthRejection},
    stats::{Stats, TokenOutcome},
    token_form::{Grant, TokenForm},
    ConnectionReset, MockError,
};

mod client_auth;
mod delegated;
mod grants;

use delegated::Delegation;
pub use delegated::{pairwise_sub, user_oid, USER_AGENT_CLIENT_ID};

/// Longest assertion lifetime accepted (`exp` at most this far ahead): bounds how long a `jti`
/// must be remembered.
pub const MAX_ASSERTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const MAX_ASSERTION_LIFETIME_SECS: u64 = MAX_ASSERTION_LIFETIME.as_secs();
/// Most unexpired `jti`s remembered; beyond, new assertions are refused (503) until some expire.
const MAX_REMEMBERED_JTIS: usize = 2_000_000;

/// The provider's token-signing key, as published in the JWKS.
struct ProviderKey {
    kid: String,
    key: Box<dyn SigningKey>,
    /// Checks the provider's own tokens when they come back as on-behalf-of assertions.
    verifier: Box<dyn VerifyingKey>,
    /// `base64url(header) + "."`: the same for every token under this key.
    encoded_header_dot: String,
    jwk: Value,
}

impl ProviderKey {
    fn generate(backend: &dyn CryptoBackend) -> Result<Self, MockError> {
        let generated =
            keygen::generate(KeySpec::Rsa2048, "tokenbench mock identity provider", 365)?;
        let private = generated.private_key("provider key")?;
        let cert = generated.certificate("provider certificate")?;
        let key = backend.load_signing_key(&private, Algorithm::Rs256)?;
        let verifier = backend.load_verifying_key(cert.public_key(), Algorithm::Rs256)?;
        let rsa = pkcs1::RsaPublicKey::try_from(cert.public_key().as_bytes())
            .map_err(|e| MockError::Setup(format!("provider public key: {e}")))?;
        // Entra's kid is the certificate's SHA-1 thumbprint (also its x5t).
        let kid = cert.thumbprint(Thumbprint::X5t).to_owned();
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "x5t": kid,
            "n": URL_SAFE_NO_PAD.encode(rsa.modulus.as_bytes()),
            "e": URL_SAFE_NO_PAD.encode(rsa.public_exponent.as_bytes()),
        });
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": kid});
        let encoded_header_dot = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        Ok(ProviderKey {
            kid,
            key,
            verifier,
            encoded_header_dot,
            jwk,
        })
    }
}

/// A registered client, ready to check assertions.
struct Client {
    registration: ClientRegistration,
    /// Per certificate: both thumbprints and a verifier per algorithm its key can do.
    certificates: Vec<ClientCertificate>,
    /// Its throttling bucket: only registered clients have one.
    bucket: TokenBucket,
}

struct ClientCertificate {
    x5t: String,
    x5t_s256: String,
    verifiers: Vec<Box<dyn VerifyingKey>>,
}

/// The mock identity provider. Its handlers are plain async methods: the HTTP shell in
/// [`crate::server`] calls them, and so can anything in-process.
pub struct IdentityProvider {
    base_url: String,
    tenants: Vec<String>,
    clients: HashMap<String, Client>,
    resources: Vec<String>,
    /// `expires_in` of its tokens: from the first to the second, drawn per token.
    token_lifetime_secs: (u64, u64),
    skew_secs: u64,
    backend: &'static dyn CryptoBackend,
    key: RwLock<Arc<ProviderKey>>,
    faults: RwLock<Arc<ActiveFaults>>,
    used_jtis: Mutex<ExpiringMap<()>>,
    /// Outstanding authorization codes and refresh tokens.
    grants: grants::Grants,
    /// The sequence number of the last token issued (0: none yet); carried in each token's
    /// `uti`, it orders tokens against revocations finer than any clock.
    issue_sequence: AtomicU64,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    draws: Draws,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("base_url", &self.base_url)
            .field("tenants", &self.tenants)
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Token faults with the time they were set (an outage runs from then).
#[derive(Debug)]
struct ActiveFaults {
    faults: TokenFaults,
    set_at_ms: u64,
}

/// A token issued by [`IdentityProvider::issue`].
struct Issued {
    access_token: String,
    /// Its `expires_in`.
    lifetime_secs: u64,
    /// The scopes granted, as the response's `scope` (delegated grants only).
    scope: Option<String>,
    /// A refresh token, when `offline_access` was granted.
    refresh_token: Option<String>,
}

/// Whom an access token is for.
enum Principal<'a> {
    /// The client itself, with its app roles on the resource.
    App { roles: Option<&'a [String]> },
    /// A user, with the delegated permissions granted.
    User(&'a Delegation),
}

/// What [`IdentityProvider::issue`] signs: the token's subject, the client that obtained
/// it (`azp`) and how that client authenticated (`azpacr`: "0" public, "1" secret,
/// "2" certificate), for `resource` (`aud`).
struct TokenFor<'a> {
    principal: Principal<'a>,
    azp: &'a str,
    azpacr: &'static str,
    resource: &'a str,
}

/// `azpacr` of a client that authenticated with a certificate or a secret.
fn azpacr(via_certificate: bool) -> &'static str {
    if via_certificate {
        "2"
    } else {
        "1"
    }
}

impl IdentityProvider {
    /// A provider reachable at `base_url` (e.g. `http://127.0.0.1:8080`), with a fresh
    /// RSA-2048 signing key.
    pub fn new(config: &MockConfig, base_url: &str, stats: Arc<Stats>) -> Result<Self, MockError> {
        config.validate()?;
        let backend = signer::backend::default_backend();
        let mut clients = HashMap::new();
        for registration in &config.clients {
            let mut certificates = Vec::new();
            for cert in &registration.certificates {
                let verifiers = cert
                    .public_key()
                    .kind()
                    .algorithms()
                    .iter()
                    .map(|&alg| backend.load_verifying_key(cert.public_key(), alg))
                    .collect::<Result<_, _>>()?;
                certificates.push(ClientCertificate {
                    x5t: cert.thumbprint(Thumbprint::X5t).to_owned(),
                    x5t_s256: cert.thumbprint(Thumbprint::X5tS256).to_owned(),
                    verifiers,
                });
            }
            let client = Client {
                registration: registration.clone(),
                certificates,
                bucket: TokenBucket::default(),
            };
            // `validate` refused duplicate ids.
            clients.insert(registration.client_id.clone(), client);
        }
        let now = config.clock.now_ms();
        Ok(IdentityProvider {
            base_url: base_url.trim_end_matches('/').to_owned(),
            tenants: config.tenants.clone(),
            clients,
            resources: config.resources.clone(),
            token_lifetime_secs: (
                config.token_lifetime.as_secs(),
                config
                    .token_lifetime_max
                    .unwrap_or(config.token_lifetime)
                    .as_secs(),
            ),
            skew_secs: config.clock_skew.as_secs(),
            backend,
            key: RwLock::new(Arc::new(ProviderKey::generate(backend)?)),
            faults: RwLock::new(Arc::new(ActiveFaults {
                faults: config.token_faults.clone(),
                set_at_ms: now,
            })),
            used_jtis: Mutex::new(ExpiringMap::default()),
            grants: grants::Grants::default(),
            issue_sequence: AtomicU64::new(0),
            stats,
            clock: Arc::clone(&config.clock),
            draws: Draws::new(config.seed),
        })
    }

    /// The token endpoint URL of `tenant`: what assertions must carry as `aud`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url)
    }

    /// The issuer of `tenant`'s tokens.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.base_url)
    }

    /// The JWKS URL of `tenant`.
    pub fn jwks_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/discovery/v2.0/keys", self.base_url)
    }

    /// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
    pub fn openid_configuration(&self, tenant: &str) -> Response<Bytes> {
        if !self.tenants.iter().any(|t| t == tenant) {
            return unknown_tenant(tenant).to_response();
        }
        json_response(
            StatusCode::OK,
            &json!({
                "issuer": self.issuer(tenant),
                "token_endpoint": self.token_url(tenant),
                "jwks_uri": self.jwks_url(tenant),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["PS256", "RS256", "ES256", "EdDSA"],
                "grant_types_supported": [
                    "client_credentials",
                    "authorization_code",
                    "refresh_token",
                    crate::token_form::JWT_BEARER_GRANT,
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
                "response_types_supported": ["token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": self.resources.iter().map(|r| format!("{r}/.default")).collect::<Vec<_>>(),
                "tenant_region_scope": "WW",
            }),
        )
    }

    /// `GET /{tenant}/discovery/v2.0/keys`.
    pub fn jwks_response(&self, tenant: &str) -> Response<Bytes> {
        if !self.tenants.iter().any(|t| t == tenant) {
            return unknown_tenant(tenant).to_response();
        }
        json_response(StatusCode::OK, &self.jwks())
    }

    /// The current JSON Web Key Set: only the current signing key (a rotated-out key is gone).
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.current_key().jwk.clone()] })
    }

    /// Replaces the signing key with a freshly generated one; returns the new `kid`.
    pub async fn rotate_keys(&self) -> Result<String, MockError> {
        let backend = self.backend;
        let key = tokio::task::spawn_blocking(move || ProviderKey::generate(backend))
            .await
            .map_err(|e| MockError::Setup(format!("key generation task: {e}")))??;
        let kid = key.kid.clone();
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(kid)
    }

    /// The token endpoint faults now in force.
    pub fn faults(&self) -> TokenFaults {
        self.active_faults().faults.clone()
    }

    /// Replaces the token endpoint faults; an outage in them starts now. Token buckets restart full.
    pub fn set_faults(&self, faults: TokenFaults) -> Result<(), ConfigError> {
        faults.validate()?;
        let set_at_ms = self.clock.now_ms();
        *self.faults.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(ActiveFaults { faults, set_at_ms });
        for client in self.clients.values() {
            client.bucket.reset();
        }
        Ok(())
    }

    /// The sequence number of the last token issued (0 before the first): every token
    /// carries its own in `uti`, so [`crate::ProtectedBackend::revoke_all`] can refuse exactly
    /// those issued before it.
    pub(crate) fn last_issue_sequence(&self) -> u64 {
        self.issue_sequence.load(Ordering::SeqCst)
    }

    /// `POST /{tenant}/oauth2/v2.0/token` with a form-encoded `body`.
    ///
    /// `Err(ConnectionReset)` means: answer nothing and close the connection (an outage in
    /// [`OutageMode::Reset`]).
    pub async fn token(
        &self,
        tenant: &str,
        body: &[u8],
    ) -> Result<Response<Bytes>, ConnectionReset> {
        let _in_flight = self.stats.token_in_flight();
        let faults = self.active_faults();
        let delay = self.draws.latency(&faults.faults.latency);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let result = self.token_after_latency(tenant, body, &faults);
        let outcome = match &result {
            Ok(_) => TokenOutcome::Ok,
            Err(rejection) => rejection.outcome,
        };
        self.stats.token_outcome(outcome);
        match result {
            Ok(issued) => {
                let mut body = json!({
                    "token_type": "Bearer",
                    "expires_in": issued.lifetime_secs,
                    "ext_expires_in": issued.lifetime_secs,
                    "access_token": issued.access_token,
                });
                if let Some(scope) = issued.scope {
                    body["scope"] = json!(scope);
                }
                if let Some(refresh_token) = issued.refresh_token {
                    body["refresh_token"] = json!(refresh_token);
                }
                Ok(json_response(StatusCode::OK, &body))
            }
            Err(rejection)
                if rejection.outcome == TokenOutcome::Outage
                    && faults.faults.outage_mode == OutageMode::Reset =>
            {
                Err(ConnectionReset)
            }
            Err(rejection) => Ok(rejection.to_response()),
        }
    }

    fn token_after_latency(
        &self,
        tenant: &str,
        body: &[u8],
        faults: &ActiveFaults,
    ) -> Result<Issued, OAuthRejection> {
        let now_ms = self.clock.now_ms();
        if let Some(outage_ms) = faults.faults.outage_ms {
            if now_ms < faults.set_at_ms.saturating_add(outage_ms) {
                return Err(OAuthRejection::injected(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TokenOutcome::Outage,
                ));
            }
        }
        if self.draws.chance(faults.faults.error_rate) {
            let status = if self.draws.chance(0.5) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Err(OAuthRejection::injected(
                status,
                TokenOutcome::InjectedError,
            ));
        }
        if !self.tenants.iter().any(|t| t == tenant) {
            return Err(unknown_tenant(tenant));
        }
        let form = TokenForm::parse(body)?;
        // The client first: only registered clients have a token bucket, so invented ids
        // can neither grow the throttle's memory nor disturb a real client's bucket.
        let client = self
            .clients
            .get(&form.client_id)
            .ok_or_else(|| unknown_client(&form.client_id, tenant))?;
        if let Some(rps) = faults.faults.throttle_rps {
            client
                .bucket
                .acquire(rps, faults.faults.burst(rps), now_ms)
                .map_err(OAuthRejection::throttled)?;
        }
        match form.grant {
            Grant::ClientCredentials { scope } => {
                // The scope before the credentials: a refused scope must not spend the
                // assertion's jti.
                let resource = self.resource_of(&scope)?;
                let via_certificate =
                    self.authenticate(client, &form.credentials, tenant, now_ms)?;
                let roles = client.registration.roles.get(resource).map(Vec::as_slice);
                self.issue(
                    &TokenFor {
                        principal: Principal::App { roles },
                        azp: &client.registration.client_id,
                        azpacr: azpacr(via_certificate),
                        resource,
                    },
                    tenant,
                    now_ms,
                )
            }
            Grant::Delegated(grant) => {
                self.delegated_token(client, grant, &form.credentials, tenant, now_ms)
            }
        }
    }

    fn resource_of<'a>(&'a self, scope: &str) -> Result<&'a str, OAuthRejection> {
        let resource = scope.strip_suffix("/.default").filter(|r| !r.contains(' ')).ok_or_else(|| {
            OAuthRejection::invalid_scope(
                Some(1002012),
                format!("The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", truncate(scope)),
            )
        })?;
        self.registered_resource(resource)
    }

    /// `resource` as registered; 400 `invalid_scope` (AADSTS500011) if it is not.
    fn registered_resource<'a>(&'a self, resource: &str) -> Result<&'a str, OAuthRejection> {
        self.resources
            .iter()
            .find(|r| *r == resource)
            .map(String::as_str)
            .ok_or_else(|| {
                OAuthRejection::invalid_scope(
                    Some(500011),
                    format!(
                        "The resource principal named {} was not found in the tenant.",
                        truncate(resource)
                    ),
                )
            })
    }

    /// Signs an access token.
    fn issue(
        &self,
        token: &TokenFor<'_>,
        tenant: &str,
        now_ms: u64,
    ) -> Result<Issued, OAuthRejection> {
        let now = now_ms / 1000;
        let (shortest, longest) = self.token_lifetime_secs;
        let lifetime_secs = self.draws.between(shortest, longest);
        // `uti`: the 8-byte big-endian issue sequence, then 8 random bytes (unique per token).
        let sequence = self.issue_sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let mut uti = [0u8; 16];
        uti[..8].copy_from_slice(&sequence.to_be_bytes());
        rand::rng().fill(&mut uti[8..]);
        // `exp` from the issue instant rounded up, so that a token lives at least its
        // `expires_in` (Entra counts from the second rounded down, up to a second less:
        // nothing against hour-long tokens, but a tenth of a 10 s one).
        let exp = now_ms.div_ceil(1000).saturating_add(lifetime_secs);
        let mut claims = json!({
            "aud": token.resource,
            "iss": self.issuer(tenant),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "azp": token.azp,
            "azpacr": token.azpacr,
            "tid": tenant,
            "jti": uuid::Uuid::new_v4().to_string(),
            "uti": URL_SAFE_NO_PAD.encode(uti),
            "ver": "2.0",
        });
        match &token.principal {
            Principal::App { roles } => {
                claims["oid"] = json!(token.azp);
                claims["sub"] = json!(token.azp);
                if let Some(roles) = roles.filter(|r| !r.is_empty()) {
                    claims["roles"] = json!(roles);
                }
            }
            Principal::User(delegation) => delegation.add_claims(&mut claims, token.resource),
        }
        // The provider's own freshly loaded RSA key: signing can only fail on a broken
        // backend, and then no token is better than a wrong one.
        let access_token = self
            .sign_access_token(claims.to_string().as_bytes())
            .map_err(|e| {
                OAuthRejection::server_error(format!("The access token could not be signed: {e}."))
            })?;
        Ok(Issued {
            access_token,
            lifetime_secs,
            scope: None,
            refresh_token: None,
        })
    }

    /// An access token carrying exactly `claims` (taken as given, JSON or not), signed under
    /// the provider's current key as its issued tokens are: the backend verifies its signature
    /// and then judges the claims. For tests and fuzzing of the backend's claim checks.
    pub fn sign_access_token(&self, claims: &[u8]) -> Result<String, signer::Error> {
        let key = self.current_key();
        let mut token = key.encoded_header_dot.clone();
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = key.key.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    fn current_key(&self) -> Arc<ProviderKey> {
        Arc::clone(&self.key.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn active_faults(&self) -> Arc<ActiveFaults> {
        Arc::clone(&self.faults.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The `kid` tokens are signed under now.
    pub fn current_kid(&self) -> String {
        self.current_key().kid.clone()
    }
}

/// 401: `client_id` is no client of this provider.
fn unknown_client(client_id: &str, tenant: &str) -> OAuthRejection {
    OAuthRejection::invalid_client(
        Some(700016),
        format!(
            "Application with identifier '{}' was not found in the directory '{tenant}'.",
            truncate(client_id)
        ),
    )
}

fn unknown_tenant(tenant: &str) -> OAuthRejection {
    OAuthRejection::invalid_request(
        Some(90002),
        format!("Tenant '{}' not found.", truncate(tenant)),
    )
}
