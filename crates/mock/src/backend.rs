//! The mock protected backend: every `/api/…` request needs a bearer token that an APIM
//! `validate-jwt` policy would accept.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use der::Encode;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use signer::{jws::Jws, Algorithm, KeyKind, PublicKey, VerifyingKey};

use crate::{
    clock::Clock, config::BackendConfig, faults::Latency, http_util::json_response,
    idp::IdentityProvider, stats::Stats,
};

/// Shortest time between two JWKS refreshes triggered by unknown `kid`s.
const JWKS_REFRESH_INTERVAL_MS: u64 = 1000;
/// Most verified tokens remembered; beyond, expired ones are dropped, then all.
const MAX_VERIFIED: usize = 1_000_000;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no bearer token.
    Missing,
    /// 401: not a well-formed RS256 JWT.
    Malformed,
    /// 401: signed by a key not in the provider's JWKS, or the signature does not verify.
    BadSignature,
    /// 401: wrong issuer or audience.
    WrongIssuerOrAudience,
    /// 401: expired or not yet valid.
    Expired,
    /// 401: issued before the last revocation.
    Revoked,
    /// 403: valid, but without the required role.
    MissingRole,
}

impl Refusal {
    fn status(self) -> StatusCode {
        if self == Refusal::MissingRole {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        }
    }

    fn description(self) -> &'static str {
        match self {
            Refusal::Missing => "no bearer token",
            Refusal::Malformed => "the token is malformed",
            Refusal::BadSignature => "the token signature is invalid or its key is unknown",
            Refusal::WrongIssuerOrAudience => "the token issuer or audience is invalid",
            Refusal::Expired => "the token is expired or not yet valid",
            Refusal::Revoked => "the token has been revoked",
            Refusal::MissingRole => "the token lacks the required role",
        }
    }
}

/// A token that passed signature verification once.
struct Verified {
    token: Box<str>,
    kid: Box<str>,
    issued_ms: u64,
    nbf: u64,
    exp: u64,
    has_role: bool,
}

/// The provider's keys as the backend last fetched them.
struct KeySet {
    keys: HashMap<String, Box<dyn VerifyingKey>>,
    fetched_ms: u64,
}

/// The mock protected backend. [`ProtectedBackend::check`] is the whole validation, callable
/// in-process; [`ProtectedBackend::handle`] adds latency and the HTTP answer.
pub struct ProtectedBackend {
    idp: Arc<IdentityProvider>,
    issuer: String,
    audience: String,
    required_role: String,
    skew_secs: u64,
    latency: RwLock<Latency>,
    keys: RwLock<Arc<KeySet>>,
    verified: RwLock<HashMap<Box<str>, Verified>>,
    revoked_before_ms: AtomicU64,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ProtectedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedBackend")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("required_role", &self.required_role)
            .finish_non_exhaustive()
    }
}

impl ProtectedBackend {
    /// A backend trusting `idp`'s tokens for `config.audience`, fetching its JWKS now.
    pub fn new(
        idp: Arc<IdentityProvider>,
        config: &BackendConfig,
        skew_secs: u64,
        stats: Arc<Stats>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let backend = ProtectedBackend {
            issuer: idp.issuer(&config.tenant),
            idp,
            audience: config.audience.clone(),
            required_role: config.required_role.clone(),
            skew_secs,
            latency: RwLock::new(config.latency),
            keys: RwLock::new(Arc::new(KeySet {
                keys: HashMap::new(),
                fetched_ms: 0,
            })),
            verified: RwLock::new(HashMap::new()),
            revoked_before_ms: AtomicU64::new(0),
            stats,
            clock,
        };
        backend.refresh_keys();
        backend
    }

    /// Serves one `/api/…` request: latency, then 200, 401 or 403.
    pub async fn handle(&self, authorization: Option<&HeaderValue>) -> Response<Bytes> {
        let delay = self.latency().sample(&mut rand::rng());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let response = match self.check(authorization.map(HeaderValue::as_bytes)) {
            Ok(()) => json_response(StatusCode::OK, &json!({"ok": true})),
            Err(refusal) => {
                let mut response =
                    json_response(refusal.status(), &json!({"error": refusal.description()}));
                let challenge = if refusal == Refusal::MissingRole {
                    r#"Bearer error="insufficient_scope""#.to_owned()
                } else {
                    format!(
                        r#"Bearer error="invalid_token", error_description="{}""#,
                        refusal.description()
                    )
                };
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                response
            }
        };
        self.stats.backend_status(response.status());
        response
    }

    /// Validates an `Authorization` header value. A token is verified at most once; after
    /// that only its times, the revocation mark and the key's presence are checked.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        let token = bearer_token(authorization.ok_or(Refusal::Missing)?)?;
        let signature = token.rsplit('.').next().unwrap_or_default();
        let now_ms = self.clock.now_ms();
        {
            let verified = self.verified.read().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = verified.get(signature).filter(|e| *e.token == *token) {
                return self.still_valid(entry, now_ms);
            }
        }
        let entry = self.verify(token)?;
        let result = self.still_valid(&entry, now_ms);
        let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= MAX_VERIFIED {
            let now = now_ms / 1000;
            verified.retain(|_, e| e.exp.saturating_add(self.skew_secs) > now);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(signature.into(), entry);
        result
    }

    fn still_valid(&self, entry: &Verified, now_ms: u64) -> Result<(), Refusal> {
        let now = now_ms / 1000;
        if entry.exp.saturating_add(self.skew_secs) <= now
            || entry.nbf > now.saturating_add(self.skew_secs)
        {
            return Err(Refusal::Expired);
        }
        if entry.issued_ms < self.revoked_before_ms.load(Ordering::Acquire) {
            return Err(Refusal::Revoked);
        }
        if !self.current_keys().keys.contains_key(&*entry.kid) {
            return Err(Refusal::BadSignature);
        }
        if !entry.has_role {
            return Err(Refusal::MissingRole);
        }
        Ok(())
    }

    /// Full validation of a token not seen before.
    fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let jws = Jws::parse(token).map_err(|_| Refusal::Malformed)?;
        if jws.algorithm() != Algorithm::Rs256 {
            return Err(Refusal::BadSignature);
        }
        let kid = jws.header().kid.clone().ok_or(Refusal::BadSignature)?;
        let mut keys = self.current_keys();
        if !keys.keys.contains_key(&kid) {
            keys = self.refresh_keys_rate_limited();
        }
        let key = keys.keys.get(&kid).ok_or(Refusal::BadSignature)?;
        self.stats.signature_verified();
        let claims: Value = jws
            .verify_claims(key.as_ref())
            .map_err(|_| Refusal::BadSignature)?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let time = |name: &str| claims.get(name).and_then(Value::as_u64);
        if text("iss") != Some(self.issuer.as_str()) || text("aud") != Some(self.audience.as_str())
        {
            return Err(Refusal::WrongIssuerOrAudience);
        }
        let (exp, iat) = (
            time("exp").ok_or(Refusal::Malformed)?,
            time("iat").ok_or(Refusal::Malformed)?,
        );
        // `uti` carries the issue time in milliseconds: revocation needs finer grain than `iat`.
        let issued_ms = text("uti")
            .and_then(|uti| URL_SAFE_NO_PAD.decode(uti).ok())
            .and_then(|bytes| {
                bytes
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
            })
            .unwrap_or(iat.saturating_mul(1000));
        let has_role = claims
            .get("roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| {
                roles
                    .iter()
                    .any(|r| r.as_str() == Some(self.required_role.as_str()))
            });
        Ok(Verified {
            token: token.into(),
            kid: kid.into(),
            issued_ms,
            nbf: time("nbf").unwrap_or(iat),
            exp,
            has_role,
        })
    }

    /// From now on, every token issued before now is refused (401).
    pub fn revoke_all(&self) -> u64 {
        let now_ms = self.clock.now_ms();
        self.revoked_before_ms.store(now_ms, Ordering::Release);
        now_ms
    }

    /// Drops the cached JWKS and refetches it: what a validate-jwt policy does when its
    /// metadata refresh runs, so that tokens under a rotated-out key fail at once.
    pub fn reload_keys(&self) {
        self.refresh_keys();
    }

    /// The added latency now in force.
    pub fn latency(&self) -> Latency {
        *self.latency.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the added latency.
    pub fn set_latency(&self, latency: Latency) -> Result<(), String> {
        latency.validate()?;
        *self.latency.write().unwrap_or_else(|p| p.into_inner()) = latency;
        Ok(())
    }

    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn refresh_keys_rate_limited(&self) -> Arc<KeySet> {
        let keys = self.current_keys();
        if self.clock.now_ms().saturating_sub(keys.fetched_ms) < JWKS_REFRESH_INTERVAL_MS {
            return keys;
        }
        self.refresh_keys()
    }

    /// Fetches the provider's JWKS and parses every RSA key in it, as a validate-jwt policy does.
    fn refresh_keys(&self) -> Arc<KeySet> {
        self.stats.jwks_refreshed();
        let backend = signer::backend::default_backend();
        let jwks = self.idp.jwks();
        let mut keys = HashMap::new();
        for jwk in jwks["keys"].as_array().into_iter().flatten() {
            let Some((kid, public_key)) = rsa_jwk(jwk) else {
                continue;
            };
            if let Ok(verifier) = backend.load_verifying_key(&public_key, Algorithm::Rs256) {
                keys.insert(kid, verifier);
            }
        }
        let set = Arc::new(KeySet {
            keys,
            fetched_ms: self.clock.now_ms(),
        });
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&set);
        set
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Result<&str, Refusal> {
    let value = std::str::from_utf8(value).map_err(|_| Refusal::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(Refusal::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Refusal::Missing);
    }
    Ok(token)
}

/// `kid` and public key of an RSA JWK (`n`, `e` base64url big-endian integers).
fn rsa_jwk(jwk: &Value) -> Option<(String, PublicKey)> {
    if jwk["kty"] != "RSA" {
        return None;
    }
    let kid = jwk["kid"].as_str()?.to_owned();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str()?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str()?).ok()?;
    let der = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(&n).ok()?,
        public_exponent: pkcs1::UintRef::new(&e).ok()?,
    }
    .to_der()
    .ok()?;
    let bits = n
        .iter()
        .position(|b| *b != 0)
        .map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
    Some((kid, PublicKey::from_raw(KeyKind::Rsa { bits }, der)))
}
