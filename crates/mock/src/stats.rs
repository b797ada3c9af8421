//! Counters of what the mock servers answered, served as JSON by `GET /admin/stats`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// How a token request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    /// A token was issued.
    Ok,
    /// OAuth `invalid_request`.
    InvalidRequest,
    /// OAuth `invalid_client`.
    InvalidClient,
    /// OAuth `invalid_scope`.
    InvalidScope,
    /// OAuth `unsupported_grant_type`.
    UnsupportedGrantType,
    /// OAuth `invalid_grant`: a user assertion, code or refresh token refused, or consent
    /// missing.
    InvalidGrant,
    /// 429 from the per-client token bucket.
    Throttled,
    /// A 500 or 503 injected by the error rate.
    InjectedError,
    /// Refused during an outage window.
    Outage,
    /// 503: a store (spent `jti`s, codes, refresh tokens) is full of unexpired entries (not
    /// an injected fault).
    Unavailable,
    /// 500: the provider could not sign the access token.
    ServerError,
}

impl TokenOutcome {
    /// How many outcomes there are.
    const COUNT: usize = TokenOutcome::ServerError as usize + 1;
}

/// Live counters; cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    token: [AtomicU64; TokenOutcome::COUNT],
    token_in_flight: AtomicU64,
    token_peak_in_flight: AtomicU64,
    backend_ok: AtomicU64,
    backend_unauthorized: AtomicU64,
    backend_forbidden: AtomicU64,
    backend_other: AtomicU64,
    jwks_refreshes: AtomicU64,
    signature_verifications: AtomicU64,
    slow_bodies: AtomicU64,
    connection_cap_waits: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_handshake_failures: AtomicU64,
    tls_handshake_micros: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// Token requests by outcome.
    pub token_requests: TokenCounts,
    /// Token requests being handled right now.
    pub token_requests_in_flight: u64,
    /// The most token requests handled at once so far.
    pub token_requests_peak_in_flight: u64,
    /// Backend requests by status.
    pub backend_requests: BackendCounts,
    /// Requests whose body did not arrive within the body read timeout: answered 408 and
    /// their connections closed (loopback server only).
    #[serde(default)]
    pub slow_bodies_cut: u64,
    /// Times the loopback server held its most connections and a new one had to wait for
    /// one to close before it was accepted.
    #[serde(default)]
    pub connection_cap_waits: u64,
    /// TLS handshakes completed (HTTPS server only; each is a new connection).
    #[serde(default)]
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or were not finished within 10 s.
    #[serde(default)]
    pub tls_handshake_failures: u64,
    /// Time the completed handshakes took on the server, from accept to the handshake's end.
    #[serde(default)]
    pub tls_handshake_micros: u64,
}

/// Token requests by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TokenCounts {
    /// All token requests.
    pub total: u64,
    /// Tokens issued.
    pub ok: u64,
    /// `invalid_request`.
    pub invalid_request: u64,
    /// `invalid_client`.
    pub invalid_client: u64,
    /// `invalid_scope`.
    pub invalid_scope: u64,
    /// `unsupported_grant_type`.
    pub unsupported_grant_type: u64,
    /// `invalid_grant`.
    #[serde(default)]
    pub invalid_grant: u64,
    /// 429 throttled.
    pub throttled: u64,
    /// Injected 500/503.
    pub injected_error: u64,
    /// Refused by an outage.
    pub outage: u64,
    /// 503 because a store (spent `jti`s, authorization codes, refresh tokens) is full;
    /// not an injected fault.
    pub unavailable: u64,
    /// 500 because the provider could not sign the token.
    pub server_error: u64,
}

/// Backend requests by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BackendCounts {
    /// All backend requests.
    pub total: u64,
    /// 200.
    pub ok: u64,
    /// 401.
    pub unauthorized: u64,
    /// 403.
    pub forbidden: u64,
    /// Anything else (404 outside `/api/`, …).
    pub other: u64,
    /// JWKS fetches by the backend: at start, on an unknown `kid` (at most once a second),
    /// and on every explicit reload (`POST /admin/rotate-keys` reloads after rotating).
    pub jwks_refreshes: u64,
    /// Signature verifications the backend attempted: one per token not already remembered
    /// as verified whose `kid` is known, whether or not the signature holds (a forged token
    /// costs one each time it is sent; a valid one is verified once, then remembered until
    /// it expires or the cache is cleared).
    pub signature_verifications: u64,
}

impl Stats {
    pub(crate) fn token_outcome(&self, outcome: TokenOutcome) {
        self.token[outcome as usize].fetch_add(1, Relaxed);
    }

    /// Counts a token request in flight until the guard drops.
    pub(crate) fn token_in_flight(&self) -> InFlight<'_> {
        let now = self.token_in_flight.fetch_add(1, Relaxed) + 1;
        self.token_peak_in_flight.fetch_max(now, Relaxed);
        InFlight(self)
    }

    pub(crate) fn backend_status(&self, status: http::StatusCode) {
        let counter = match status.as_u16() {
            200 => &self.backend_ok,
            401 => &self.backend_unauthorized,
            403 => &self.backend_forbidden,
            _ => &self.backend_other,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn jwks_refreshed(&self) {
        self.jwks_refreshes.fetch_add(1, Relaxed);
    }

    pub(crate) fn signature_verified(&self) {
        self.signature_verifications.fetch_add(1, Relaxed);
    }

    pub(crate) fn slow_body_cut(&self) {
        self.slow_bodies.fetch_add(1, Relaxed);
    }

    pub(crate) fn tls_handshake(&self, took: std::time::Duration) {
        self.tls_handshakes.fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.tls_handshake_micros.fetch_add(micros, Relaxed);
    }

    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_cap_wait(&self) {
        self.connection_cap_waits.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let t = |o: TokenOutcome| self.token[o as usize].load(Relaxed);
        let token_requests = TokenCounts {
            total: self.token.iter().map(|c| c.load(Relaxed)).sum(),
            ok: t(TokenOutcome::Ok),
            invalid_request: t(TokenOutcome::InvalidRequest),
            invalid_client: t(TokenOutcome::InvalidClient),
            invalid_scope: t(TokenOutcome::InvalidScope),
            unsupported_grant_type: t(TokenOutcome::UnsupportedGrantType),
            invalid_grant: t(TokenOutcome::InvalidGrant),
            throttled: t(TokenOutcome::Throttled),
            injected_error: t(TokenOutcome::InjectedError),
            outage: t(TokenOutcome::Outage),
            unavailable: t(TokenOutcome::Unavailable),
            server_error: t(TokenOutcome::ServerError),
        };
        let (ok, unauthorized, forbidden, other) = (
            self.backend_ok.load(Relaxed),
            self.backend_unauthorized.load(Relaxed),
            self.backend_forbidden.load(Relaxed),
            self.backend_other.load(Relaxed),
        );
        StatsSnapshot {
            token_requests,
            token_requests_in_flight: self.token_in_flight.load(Relaxed),
            token_requests_peak_in_flight: self.token_peak_in_flight.load(Relaxed),
            backend_requests: BackendCounts {
                total: ok + unauthorized + forbidden + other,
                ok,
                unauthorized,
                forbidden,
                other,
                jwks_refreshes: self.jwks_refreshes.load(Relaxed),
                signature_verifications: self.signature_verifications.load(Relaxed),
            },
            slow_bodies_cut: self.slow_bodies.load(Relaxed),
            connection_cap_waits: self.connection_cap_waits.load(Relaxed),
            tls_handshakes: self.tls_handshakes.load(Relaxed),
            tls_handshake_failures: self.tls_handshake_failures.load(Relaxed),
            tls_handshake_micros: self.tls_handshake_micros.load(Relaxed),
        }
    }
}

/// Decrements the in-flight gauge on drop.
pub(crate) struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.token_in_flight.fetch_sub(1, Relaxed);
    }
}
