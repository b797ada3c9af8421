//! Access tokens as the cache hands them out.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http::HeaderValue;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// An access token with its lifetime. Cloning is one reference-count increment.
///
/// `Debug` and `Display` never show the token: only a fingerprint, the first 8 hex digits of
/// the SHA-256 of the token (`sha256:1a2b3c4d`).
#[derive(Clone)]
pub struct Token(pub(crate) Arc<TokenInner>);

/// The shared part of a [`Token`]. Aligned to 128 bytes so that the reference counts of the
/// replicas the cache keeps (one per stripe of threads) never share a cache line.
#[repr(align(128))]
pub(crate) struct TokenInner {
    /// `Bearer <access token>`; `authorization` shares its bytes.
    pub(crate) bearer: Arc<str>,
    pub(crate) authorization: HeaderValue,
    pub(crate) token_type: Arc<str>,
    pub(crate) scope: Arc<str>,
    pub(crate) expires_in: Duration,
    pub(crate) generation: u64,
    pub(crate) obtained_at: Instant,
    pub(crate) fresh_until: Instant,
    pub(crate) refresh_at: Instant,
    pub(crate) expires_at: Instant,
    pub(crate) fingerprint: [u8; 4],
}

/// What an `Authorization` header value starts with before the token.
pub(crate) const BEARER_PREFIX: &str = "Bearer ";

/// A shared string as the owner of [`Bytes`]: a token's header value shares the allocation
/// of its `Bearer …` string instead of copying it (a cache of many users' tokens holds one
/// copy of each, not two).
pub(crate) struct SharedStr(pub(crate) Arc<str>);

impl AsRef<[u8]> for SharedStr {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Source of generations: unique across every cache of the process, never 0.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl TokenInner {
    /// A token with a fresh generation. `fresh_until`, `refresh_at` and `expires_at` must
    /// not be before `obtained_at`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        bearer: Arc<str>,
        authorization: HeaderValue,
        token_type: String,
        scope: String,
        expires_in: Duration,
        obtained_at: Instant,
        fresh_until: Instant,
        refresh_at: Instant,
        expires_at: Instant,
    ) -> Self {
        let digest = Sha256::digest(&bearer.as_bytes()[BEARER_PREFIX.len()..]);
        TokenInner {
            fingerprint: [digest[0], digest[1], digest[2], digest[3]],
            bearer,
            authorization,
            token_type: token_type.into(),
            scope: scope.into(),
            expires_in,
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            obtained_at,
            fresh_until,
            refresh_at,
            expires_at,
        }
    }
}

impl Clone for TokenInner {
    /// A replica: the header gets its own buffer, so that threads cloning it (into each
    /// request) touch only their replica's reference count.
    fn clone(&self) -> Self {
        let mut authorization =
            HeaderValue::from_maybe_shared(Bytes::copy_from_slice(self.authorization.as_bytes()))
                .unwrap_or_else(|_| self.authorization.clone());
        authorization.set_sensitive(true);
        TokenInner {
            bearer: Arc::clone(&self.bearer),
            authorization,
            token_type: Arc::clone(&self.token_type),
            scope: Arc::clone(&self.scope),
            ..*self
        }
    }
}

impl Token {
    /// The access token itself, for the `Authorization` header. Never log it.
    pub fn access_token(&self) -> &str {
        &self.0.bearer[BEARER_PREFIX.len()..]
    }

    /// `Bearer <access_token>`, ready for an `Authorization` header and marked sensitive
    /// (its `Debug` shows `Sensitive`). Cloning it is a reference-count increment.
    pub fn authorization(&self) -> &HeaderValue {
        &self.0.authorization
    }

    /// The `token_type` of the answer (`Bearer` when it had none).
    pub fn token_type(&self) -> &str {
        &self.0.token_type
    }

    /// The granted scope: the answer's `scope`, or the requested one when it had none.
    pub fn scope(&self) -> &str {
        &self.0.scope
    }

    /// The `expires_in` of the answer.
    pub fn expires_in(&self) -> Duration {
        self.0.expires_in
    }

    /// Identifies this token among all tokens of the process; a refetch gets a new one.
    pub fn generation(&self) -> u64 {
        self.0.generation
    }

    /// When the token endpoint's answer arrived.
    pub fn obtained_at(&self) -> Instant {
        self.0.obtained_at
    }

    /// When the token stops being fresh: `obtained_at + cache_fraction × expires_in`.
    /// `apim` and `single-flight` fetch a new token from then on.
    pub fn fresh_until(&self) -> Instant {
        self.0.fresh_until
    }

    /// When a `refresh-ahead` cache starts its background refresh (window start plus
    /// jitter); equal to [`fresh_until`](Self::fresh_until) for the other policies.
    pub fn refresh_at(&self) -> Instant {
        self.0.refresh_at
    }

    /// When the token really expires: `obtained_at + expires_in`.
    pub fn expires_at(&self) -> Instant {
        self.0.expires_at
    }

    /// `sha256:` and the first 8 hex digits of the SHA-256 of the token.
    pub fn fingerprint(&self) -> String {
        let [a, b, c, d] = self.0.fingerprint;
        format!("sha256:{a:02x}{b:02x}{c:02x}{d:02x}")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("fingerprint", &self.fingerprint())
            .field("token_type", &self.token_type())
            .field("scope", &self.scope())
            .field("expires_in", &self.expires_in())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Token {
    /// `<redacted sha256:1a2b3c4d>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {}>", self.fingerprint())
    }
}
