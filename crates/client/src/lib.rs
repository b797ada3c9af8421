//! The caching token client of tokenbench.
//!
//! A [`TokenClient`] gets OAuth 2.0 client-credentials tokens for one token URL, client id
//! and scope, authenticating with a certificate-signed client assertion (RFC 7523
//! `private_key_jwt`, through any [`signer`] backend and algorithm) or a client secret, and
//! caches them under one of four [`CachePolicy`]s (`docs/cache-policies.md`):
//!
//! - [`CachePolicy::Apim`], the reference API Management policy: every concurrent miss signs
//!   and fetches, tokens are cached for `cache_fraction × expires_in`, every 401/403 removes
//!   the cached token;
//! - [`CachePolicy::SingleFlight`]: concurrent misses share one fetch;
//! - [`CachePolicy::RefreshAhead`]: hits never wait; one background refresh per window;
//! - [`CachePolicy::CredentialManager`]: a managed store, as refresh-ahead, that refreshes
//!   each token itself when its window opens, even when no lookup comes.
//!
//! Under all but `apim` a 401/403 removes the token only if it is still the cached one.
//! A [`TokenObserver`] sees hits, misses, miss episodes with their herd sizes, fetches,
//! signatures and retries. Clients built on one [`TokenCache`] share tokens per key.
//! [`openid`] fetches a provider's discovery document and JWKS.
//!
//! A [`DelegatedTokenClient`] caches users' tokens the same way, one entry per user up to a
//! limit (least recently used evicted), fetched on behalf of the user
//! ([`UserGrant::on_behalf_of`]) or with the user's refresh token ([`UserGrant::refresh_token`]).
//!
//! ```no_run
//! use client::{CachePolicy, ClientAuth, ClientSecret, TokenClient, TokenClientConfig};
//!
//! # async fn example() -> Result<(), client::Error> {
//! let mut config = TokenClientConfig::new(
//!     "https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
//!     "6731de76-14a6-49ae-97bc-6eba6914391e",
//!     "api://backend/.default",
//! );
//! config.policy = CachePolicy::SingleFlight;
//! let auth = ClientAuth::Secret(ClientSecret::new("…"));
//! let client = TokenClient::builder(config, auth).build()?;
//! let token = client.get_token().await?;
//! println!("got {token}, valid for {:?}", token.expires_in()); // never prints the token
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod client;
pub mod config;
mod delegated;
mod error;
mod flight;
mod grant;
pub mod observer;
pub mod openid;
mod response;
mod tls;
mod token;
pub mod transport;
mod virtual_time;

pub use cache::{CacheKey, TokenCache};
pub use client::{TokenClient, TokenClientBuilder};
pub use config::{CachePolicy, ClientAuth, ClientSecret, RetryPolicy, TokenClientConfig};
pub use delegated::{
    DelegatedTokenClient, DelegatedTokenClientBuilder, DEFAULT_MAX_ENTRIES, MAX_ENTRIES_LIMIT,
};
pub use error::Error;
pub use grant::{RefreshTokenSlot, UserGrant, JWT_BEARER_GRANT};
pub use observer::{NoopObserver, TokenObserver};
pub use tls::TlsTrust;
pub use token::Token;
pub use transport::{HyperTransport, Transport};
pub use virtual_time::VirtualTime;
