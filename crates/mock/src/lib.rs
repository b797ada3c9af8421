//! Mock Microsoft Entra ID identity provider and mock protected backend for tokenbench.
//!
//! - [`IdentityProvider`]: the v2 token endpoint (client credentials with a certificate
//!   assertion or a client secret, validated as Entra does), the OpenID discovery document
//!   and the JWKS; RS256 access tokens with Entra's claims.
//! - [`ProtectedBackend`]: `/api/…` guarded as an APIM `validate-jwt` policy would guard it,
//!   trusting the embedded provider or any OpenID provider's JWKS ([`BackendTrust`]).
//! - Faults: token endpoint latency, error rate, per-client throttling, outages; backend
//!   latency; revocation and key rotation ([`Mock::handle`]'s `/admin` endpoints).
//! - Revocation orders tokens by issue, not by clock: each token's `uti` claim is 16 bytes
//!   (base64url), the provider's 8-byte big-endian issue sequence then 8 random bytes, and
//!   [`ProtectedBackend::revoke_all`] refuses every token whose sequence is at most the last
//!   one issued before it — even one issued in the same millisecond.
//!
//! Everything is usable in-process ([`Mock`]: plain async handlers, no sockets) or as a
//! loopback server ([`server::MockServer`]).
//!
//! ```
//! # async fn demo() -> Result<(), mock::MockError> {
//! use mock::{server::MockServer, MockConfig};
//! let server = MockServer::start(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("token endpoint: {}", server.urls().token_url);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
pub mod clock;
mod config;
mod error;
mod expiring;
mod faults;
mod http_util;
mod idp;
mod jwks;
mod routes;
pub mod server;
mod stats;
mod tls;
mod token_form;

pub use backend::{ProtectedBackend, Refusal};
pub use config::{
    BackendConfig, BackendTrust, ClientRegistration, MockConfig, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_CLOCK_SKEW, DEFAULT_DELEGATED_SCOPE, DEFAULT_REDIRECT_URI, DEFAULT_RESOURCE,
    DEFAULT_ROLE, DEFAULT_TENANT, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME,
};
pub use error::ConfigError;
pub use faults::{Latency, LatencySampler, OutageMode, TokenFaults};
pub use idp::{
    pairwise_sub, user_oid, IdentityProvider, MAX_ASSERTION_LIFETIME, USER_AGENT_CLIENT_ID,
};
pub use jwks::{BoxFuture, JwksError, JwksSource};
pub use routes::{FaultsDocument, Mock, MockUrls};
pub use stats::{BackendCounts, Stats, StatsSnapshot, TokenCounts, TokenOutcome};
pub use tls::TlsIdentity;
pub use token_form::MAX_BODY;

/// Errors starting the mock servers, or rotating the provider's key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// An impossible setting.
    #[error("invalid mock configuration: {0}")]
    Config(#[from] ConfigError),
    /// Key material or key generation failed.
    #[error(transparent)]
    Signer(#[from] signer::Error),
    /// Preparing the provider's signing key failed: at start, or at run time when
    /// [`IdentityProvider::rotate_keys`] generates a new one (including its background task).
    #[error("mock setup failed: {0}")]
    Setup(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Answer nothing and close the connection (an outage in [`OutageMode::Reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection closed without an answer (injected outage)")]
pub struct ConnectionReset;
