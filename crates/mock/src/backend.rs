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
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use signer::{jws::Jws, Algorithm};

use crate::{
    clock::Clock,
    config::{BackendTrust, MockConfig},
    error::ConfigError,
    faults::{Draws, Latency},
    http_util::json_response,
    idp::IdentityProvider,
    jwks::{JwksError, JwksSource, KeySet},
    stats::Stats,
};

/// Mixed into the seed of the backend's draws, so they differ from the provider's.
const BACKEND_DRAWS: u64 = 0x9e37_79b9_7f4a_7c15;

/// Shortest time between two JWKS refreshes triggered by unknown `kid`s.
const JWKS_REFRESH_INTERVAL_MS: u64 = 1000;
/// Most verified tokens remembered. On reaching it the expired are dropped; if more than
/// three quarters remain, all are (they are verified again on their next use). Either way
/// a quarter of the room is free again, so the scan runs at most once per 250 000 inserts.
const MAX_VERIFIED: usize = 1_000_000;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 401: no bearer token.
    #[error("no bearer token")]
    Missing,
    /// 401: not a well-formed JWT.
    #[error("the token is malformed")]
    Malformed,
    /// 401: signed by a key not in the provider's JWKS (or not for the token's algorithm), or
    /// the signature does not verify.
    #[error("the token signature is invalid or its key is unknown")]
    BadSignature,
    /// 401: wrong issuer or audience.
    #[error("the token issuer or audience is invalid")]
    WrongIssuerOrAudience,
    /// 401: expired or not yet valid.
    #[error("the token is expired or not yet valid")]
    Expired,
    /// 401: issued before the last revocation.
    #[error("the token has been revoked")]
    Revoked,
    /// 403: valid, but without the required role.
    #[error("the token lacks the required role")]
    MissingRole,
    /// 403: valid, but its client did not authenticate as required (`azpacr`: "2" for a
    /// certificate, "1" for a secret).
    #[error("the token's client did not authenticate as required (azpacr)")]
    ClientAuthentication,
    /// 403: valid, but without the required delegated permission in `scp`.
    #[error("the token lacks the required delegated scope (scp)")]
    MissingScope,
}

impl Refusal {
    /// Whether the token is valid but not allowed (403), rather than invalid (401).
    fn is_forbidden(self) -> bool {
        matches!(
            self,
            Refusal::MissingRole | Refusal::ClientAuthentication | Refusal::MissingScope
        )
    }

    fn status(self) -> StatusCode {
        if self.is_forbidden() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        }
    }
}

/// What the backend remembers of a token that passed signature verification once (keyed by
/// the SHA-256 of the whole token, never the token itself).
struct Verified {
    kid: Box<str>,
    /// The embedded provider's issue sequence, from `uti`; `None` for another provider's.
    sequence: Option<u64>,
    nbf: u64,
    exp: u64,
    has_role: bool,
    /// Whether its `azpacr` is the one required (or none is).
    client_authentication_ok: bool,
    /// Whether its `scp` holds the required scope (or none is).
    has_scope: bool,
}

/// Where the backend's keys come from.
enum KeySource {
    /// The embedded provider's JWKS, read in-process.
    Provider(Arc<IdentityProvider>),
    /// Another OpenID provider's JWKS, fetched.
    Remote(Arc<dyn JwksSource>),
}

/// The mock protected backend. [`ProtectedBackend::check`] is the whole validation, callable
/// in-process; [`ProtectedBackend::handle`] adds latency and the HTTP answer.
pub struct ProtectedBackend {
    source: KeySource,
    issuer: String,
    /// `aud` values accepted.
    audiences: Vec<String>,
    required_role: Option<String>,
    required_azpacr: Option<String>,
    required_scope: Option<String>,
    skew_secs: u64,
    latency: RwLock<Latency>,
    keys: RwLock<Arc<KeySet>>,
    /// The earliest time (ms) an unknown `kid` may trigger the next JWKS refresh; claimed
    /// with a compare-exchange, so concurrent unknown `kid`s cause one refresh, not several.
    next_refresh_ms: AtomicU64,
    /// Held while a remote JWKS is fetched for an unknown `kid`: requests with an unknown
    /// `kid` meanwhile wait for that fetch rather than fail.
    remote_fetch: tokio::sync::Mutex<()>,
    verified: RwLock<HashMap<[u8; 32], Verified>>,
    /// Tokens whose issue sequence is at most this are revoked (0: none).
    revoked_through: AtomicU64,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    draws: Draws,
}

impl std::fmt::Debug for ProtectedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedBackend")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("required_role", &self.required_role)
            .field("required_azpacr", &self.required_azpacr)
            .field("required_scope", &self.required_scope)
            .finish_non_exhaustive()
    }
}

impl ProtectedBackend {
    /// A backend checking tokens as `config.backend` says (with its skew), on `config`'s
    /// clock and seed. Trusting `idp` ([`BackendTrust::Embedded`]), it reads its JWKS now;
    /// trusting another provider, it has no key until [`reload_keys`](Self::reload_keys) or
    /// the first token fetches them.
    pub fn new(idp: Arc<IdentityProvider>, config: &MockConfig, stats: Arc<Stats>) -> Self {
        let (clock, skew_secs) = (
            Arc::clone(&config.clock),
            config.backend.clock_skew.as_secs(),
        );
        // Its own stream of draws, apart from the identity provider's.
        let draws = Draws::new(config.seed.map(|seed| seed ^ BACKEND_DRAWS));
        let config = &config.backend;
        let (source, issuer) = match &config.trust {
            BackendTrust::Embedded => {
                let issuer = idp.issuer(&config.tenant);
                (KeySource::Provider(idp), issuer)
            }
            BackendTrust::OpenId { issuer, keys } => {
                (KeySource::Remote(Arc::clone(keys)), issuer.clone())
            }
        };
        let backend = ProtectedBackend {
            source,
            issuer,
            audiences: std::iter::once(&config.audience)
                .chain(&config.other_audiences)
                .cloned()
                .collect(),
            required_role: config.required_role.clone(),
            required_azpacr: config.required_azpacr.clone(),
            required_scope: config.required_scope.clone(),
            skew_secs,
            latency: RwLock::new(config.latency),
            keys: RwLock::new(Arc::new(KeySet::default())),
            next_refresh_ms: AtomicU64::new(0),
            remote_fetch: tokio::sync::Mutex::new(()),
            verified: RwLock::new(HashMap::new()),
            revoked_through: AtomicU64::new(0),
            stats,
            clock,
            draws,
        };
        if let KeySource::Provider(idp) = &backend.source {
            backend.read_provider_keys(idp);
            backend.hold_off_refresh();
        }
        backend
    }

    /// Serves one `/api/…` request: latency, then 200, 401 or 403.
    pub async fn handle(&self, authorization: Option<&HeaderValue>) -> Response<Bytes> {
        let delay = self.draws.latency(&self.latency());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let authorization = authorization.map(HeaderValue::as_bytes);
        let mut verdict = self.check(authorization);
        if verdict == Err(Refusal::BadSignature) && self.fetch_for_unknown_kid(authorization).await
        {
            verdict = self.check(authorization);
        }
        let response = match verdict {
            Ok(()) => json_response(StatusCode::OK, &json!({"ok": true})),
            Err(refusal) => {
                let mut response =
                    json_response(refusal.status(), &json!({"error": refusal.to_string()}));
                let challenge = if refusal.is_forbidden() {
                    r#"Bearer error="insufficient_scope""#.to_owned()
                } else {
                    format!(r#"Bearer error="invalid_token", error_description="{refusal}""#)
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
    /// that only its times, the revocation mark and the key's presence are checked. Verified
    /// tokens are found by the SHA-256 of the whole token: any other token, even one carrying
    /// a remembered token's signature, is verified in full. An unknown `kid` refreshes the
    /// embedded provider's keys at once (at most once a second); another provider's keys
    /// are fetched only by [`handle`](Self::handle), which awaits them.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        let token = bearer_token(authorization.ok_or(Refusal::Missing)?)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now_ms = self.clock.now_ms();
        {
            let verified = self.verified.read().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = verified.get(&digest) {
                return self.still_valid(entry, now_ms);
            }
        }
        let entry = self.verify(token)?;
        let result = self.still_valid(&entry, now_ms);
        self.remember(digest, entry, now_ms);
        result
    }

    /// Adds a verified token to the cache, making room first if it is full.
    fn remember(&self, digest: [u8; 32], entry: Verified, now_ms: u64) {
        let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
        insert_bounded(
            &mut verified,
            digest,
            entry,
            MAX_VERIFIED,
            now_ms / 1000,
            self.skew_secs,
        );
    }

    fn still_valid(&self, entry: &Verified, now_ms: u64) -> Result<(), Refusal> {
        let now = now_ms / 1000;
        if entry.exp.saturating_add(self.skew_secs) <= now
            || entry.nbf > now.saturating_add(self.skew_secs)
        {
            return Err(Refusal::Expired);
        }
        if entry
            .sequence
            .is_some_and(|sequence| sequence <= self.revoked_through.load(Ordering::Acquire))
        {
            return Err(Refusal::Revoked);
        }
        if !self.current_keys().contains(&entry.kid) {
            return Err(Refusal::BadSignature);
        }
        if !entry.has_role {
            return Err(Refusal::MissingRole);
        }
        if !entry.client_authentication_ok {
            return Err(Refusal::ClientAuthentication);
        }
        if !entry.has_scope {
            return Err(Refusal::MissingScope);
        }
        Ok(())
    }

    /// Full validation of a token not seen before.
    fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let jws = Jws::parse(token).map_err(|_| Refusal::Malformed)?;
        // Entra signs its access tokens with RS256 only; another provider's JWKS says which
        // algorithms its keys verify.
        if matches!(self.source, KeySource::Provider(_)) && jws.algorithm() != Algorithm::Rs256 {
            return Err(Refusal::BadSignature);
        }
        let kid = jws.header().kid.clone().ok_or(Refusal::BadSignature)?;
        let mut keys = self.current_keys();
        if !keys.contains(&kid) {
            keys = self.refresh_provider_keys_rate_limited();
        }
        // Counted per attempt: a bad signature under a known key counts too.
        let claims: Value = keys
            .verifiers(&kid, jws.algorithm())
            .find_map(|key| {
                self.stats.signature_verified();
                jws.verify_claims(key).ok()
            })
            .ok_or(Refusal::BadSignature)?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        // A NumericDate may have a fraction (RFC 7519); whole seconds are what is compared.
        let time = |name: &str| {
            let value = claims.get(name)?;
            value.as_u64().or_else(|| {
                value
                    .as_f64()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .map(|t| t as u64)
            })
        };
        // `aud` is a string (Entra) or an array of them (RFC 7519).
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| self.audiences.iter().any(|a| a == aud)),
            _ => false,
        };
        if text("iss") != Some(self.issuer.as_str()) || !audience_ok {
            return Err(Refusal::WrongIssuerOrAudience);
        }
        let exp = time("exp").ok_or(Refusal::Malformed)?;
        let sequence = match self.source {
            // `uti` starts with the provider's issue sequence: revocation orders tokens by
            // it, finer than any clock (two tokens of one millisecond are still ordered).
            KeySource::Provider(_) => Some(
                text("uti")
                    .and_then(issue_sequence)
                    .ok_or(Refusal::Malformed)?,
            ),
            KeySource::Remote(_) => None,
        };
        let has_role = self.required_role.as_ref().is_none_or(|required| {
            claims
                .get("roles")
                .and_then(Value::as_array)
                .is_some_and(|roles| roles.iter().any(|r| r.as_str() == Some(required)))
        });
        let client_authentication_ok = self
            .required_azpacr
            .as_deref()
            .is_none_or(|required| text("azpacr") == Some(required));
        let has_scope = self.required_scope.as_deref().is_none_or(|required| {
            text("scp").is_some_and(|scp| scp.split(' ').any(|s| s == required))
        });
        Ok(Verified {
            has_scope,
            kid: kid.into(),
            client_authentication_ok,
            sequence,
            // As validate-jwt: `nbf` if present; `iat` is not checked (a provider whose clock
            // runs a little ahead would otherwise have fresh tokens refused).
            nbf: time("nbf").unwrap_or(0),
            exp,
            has_role,
        })
    }

    /// From now on, every token issued before this call is refused (401), even one issued
    /// in the same millisecond: tokens are ordered by the provider's issue sequence (the first
    /// 8 bytes of their `uti`), not by time. Returns the last sequence revoked; `None` when
    /// the backend trusts another provider, whose tokens it cannot order.
    pub fn revoke_all(&self) -> Option<u64> {
        let KeySource::Provider(idp) = &self.source else {
            return None;
        };
        let through = idp.last_issue_sequence();
        self.revoked_through.fetch_max(through, Ordering::AcqRel);
        Some(through)
    }

    /// Drops the cached JWKS and refetches it: what a validate-jwt policy does when its
    /// metadata refresh runs, so that tokens under a rotated-out key fail at once. Counted in
    /// `jwks_refreshes`, and restarts the one-second wait before an unknown `kid` may refresh.
    /// Returns how many keys the set holds; a failed fetch keeps the keys it had.
    pub async fn reload_keys(&self) -> Result<usize, JwksError> {
        self.hold_off_refresh();
        let keys = match &self.source {
            KeySource::Provider(idp) => self.read_provider_keys(idp),
            KeySource::Remote(source) => {
                // One fetch at a time, so that a slower one never installs older keys.
                let _fetching = self.remote_fetch.lock().await;
                self.fetch_remote_keys(source.as_ref()).await?
            }
        };
        Ok(keys.len())
    }

    /// Whether it validates another provider's tokens ([`BackendTrust::OpenId`]) rather than
    /// the embedded one's.
    pub fn trusts_another_provider(&self) -> bool {
        matches!(self.source, KeySource::Remote(_))
    }

    /// The added latency now in force.
    pub fn latency(&self) -> Latency {
        *self.latency.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the added latency.
    pub fn set_latency(&self, latency: Latency) -> Result<(), ConfigError> {
        latency.validate()?;
        *self.latency.write().unwrap_or_else(|p| p.into_inner()) = latency;
        Ok(())
    }

    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn install_keys(&self, keys: KeySet) -> Arc<KeySet> {
        let keys = Arc::new(keys);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&keys);
        keys
    }

    /// An unknown `kid` may refresh the keys again only [`JWKS_REFRESH_INTERVAL_MS`] from now.
    fn hold_off_refresh(&self) {
        let next = self.clock.now_ms().saturating_add(JWKS_REFRESH_INTERVAL_MS);
        self.next_refresh_ms.fetch_max(next, Ordering::AcqRel);
    }

    /// Claims the next refresh for an unknown `kid`, at most one per
    /// [`JWKS_REFRESH_INTERVAL_MS`]: of concurrent callers, the one whose compare-exchange
    /// wins.
    fn claim_refresh(&self) -> bool {
        let now = self.clock.now_ms();
        let next = self.next_refresh_ms.load(Ordering::Acquire);
        now >= next
            && self
                .next_refresh_ms
                .compare_exchange(
                    next,
                    now.saturating_add(JWKS_REFRESH_INTERVAL_MS),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Rereads the embedded provider's JWKS for an unknown `kid` if a refresh may run now;
    /// otherwise (or trusting another provider) the keys as they are.
    fn refresh_provider_keys_rate_limited(&self) -> Arc<KeySet> {
        match &self.source {
            KeySource::Provider(idp) if self.claim_refresh() => self.read_provider_keys(idp),
            _ => self.current_keys(),
        }
    }

    /// Reads the embedded provider's JWKS, as a validate-jwt policy fetches it.
    fn read_provider_keys(&self, idp: &IdentityProvider) -> Arc<KeySet> {
        self.stats.jwks_refreshed();
        self.install_keys(KeySet::from_jwks(&idp.jwks()))
    }

    /// Trusting another provider, fetches its JWKS when a token's `kid` is not in the keys
    /// (rate-limited as [`claim_refresh`](Self::claim_refresh) says; requests meanwhile wait
    /// for the fetch in flight). Returns whether the keys now hold that `kid`, so that the
    /// token is worth checking again.
    async fn fetch_for_unknown_kid(&self, authorization: Option<&[u8]>) -> bool {
        let KeySource::Remote(source) = &self.source else {
            return false;
        };
        let Some(kid) = authorization
            .and_then(|value| bearer_token(value).ok())
            .and_then(|token| Jws::parse(token).ok())
            .and_then(|jws| jws.header().kid.clone())
        else {
            return false;
        };
        // Known now: another request's fetch brought it since this one's check.
        if self.current_keys().contains(&kid) {
            return true;
        }
        let _fetching = self.remote_fetch.lock().await;
        if self.current_keys().contains(&kid) {
            return true;
        }
        if !self.claim_refresh() {
            return false;
        }
        self.fetch_remote_keys(source.as_ref())
            .await
            .is_ok_and(|keys| keys.contains(&kid))
    }

    /// Fetches another provider's JWKS and installs its keys. A fetch that fails, or finds no
    /// usable key, keeps the keys the backend had.
    async fn fetch_remote_keys(&self, source: &dyn JwksSource) -> Result<Arc<KeySet>, JwksError> {
        self.stats.jwks_refreshed();
        let keys = KeySet::from_jwks(&source.fetch().await?);
        if keys.len() == 0 {
            return Err(JwksError {
                location: source.location().to_owned(),
                reason: "no RSA, EC P-256 or Ed25519 signature key with a kid".to_owned(),
            });
        }
        Ok(self.install_keys(keys))
    }
}

/// Inserts into a cache of at most `cap` entries. When full, the expired entries are dropped
/// and, if more than three quarters of `cap` remain, all of them: a full scan then frees at
/// least a quarter of the room, so scans are rare (amortised O(1) per insert). Returns
/// whether it scanned.
fn insert_bounded(
    verified: &mut HashMap<[u8; 32], Verified>,
    digest: [u8; 32],
    entry: Verified,
    cap: usize,
    now: u64,
    skew_secs: u64,
) -> bool {
    let full = verified.len() >= cap && !verified.contains_key(&digest);
    if full {
        verified.retain(|_, e| e.exp.saturating_add(skew_secs) > now);
        if verified.len() > cap / 4 * 3 {
            verified.clear();
        }
    }
    verified.insert(digest, entry);
    full
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

/// The issue sequence at the start of an embedded provider's `uti` (8 bytes, big-endian).
fn issue_sequence(uti: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(uti).ok()?;
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exp: u64) -> Verified {
        Verified {
            kid: "k".into(),
            sequence: Some(1),
            nbf: 0,
            exp,
            has_role: true,
            client_authentication_ok: true,
            has_scope: true,
        }
    }

    fn digest(i: usize) -> [u8; 32] {
        Sha256::digest(i.to_be_bytes()).into()
    }

    #[test]
    fn a_full_cache_of_live_tokens_is_scanned_once_per_cap_inserts() {
        let (cap, now) = (100, 1_000);
        let mut verified = HashMap::new();
        let scans = (0..1_000)
            .filter(|&i| insert_bounded(&mut verified, digest(i), entry(now + 60), cap, now, 0))
            .count();
        assert_eq!(scans, 9, "cleared at 100, 200, …, 900 inserts");
        assert!(verified.len() <= cap);
    }

    #[test]
    fn a_full_cache_drops_the_expired_first_and_keeps_the_live_when_that_frees_enough() {
        let (cap, now) = (100, 1_000);
        let mut verified = HashMap::new();
        for i in 0..cap {
            // Every other token expired (exp + skew ≤ now).
            let exp = if i % 2 == 0 { now - 10 } else { now + 60 };
            assert!(!insert_bounded(
                &mut verified,
                digest(i),
                entry(exp),
                cap,
                now,
                5
            ));
        }
        assert!(insert_bounded(
            &mut verified,
            digest(cap),
            entry(now + 60),
            cap,
            now,
            5
        ));
        assert_eq!(verified.len(), cap / 2 + 1, "the live ones are kept");
        assert!(verified.contains_key(&digest(1)));
        assert!(!verified.contains_key(&digest(0)));
        // The next scan only after the freed room is used up again.
        let scans = (cap + 1..cap + 50)
            .filter(|&i| insert_bounded(&mut verified, digest(i), entry(now + 60), cap, now, 5))
            .count();
        assert_eq!(scans, 0);
    }
}
