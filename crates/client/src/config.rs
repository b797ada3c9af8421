//! What a [`TokenClient`](crate::TokenClient) is configured with.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use signer::Credential;
use zeroize::Zeroizing;

use crate::Error;

/// HTTP timeout of a token request when none is set: 20 s, as the reference APIM policy.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Share of `expires_in` a token is cached for when none is set.
pub const DEFAULT_CACHE_FRACTION: f64 = 0.95;
/// Upper bound of the random delay added to the start of a refresh-ahead window.
pub const DEFAULT_REFRESH_JITTER: Duration = Duration::from_secs(30);
/// Largest `max_retries` a [`RetryPolicy`] may have.
pub const MAX_RETRIES_LIMIT: u32 = 10;
/// Largest `max_backoff` and `max_retry_after` a [`RetryPolicy`] may have: 10 minutes.
pub const MAX_DELAY_LIMIT: Duration = Duration::from_secs(600);

/// How the cache treats concurrent misses and rejected tokens (`docs/cache-policies.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CachePolicy {
    /// The reference APIM policy: every miss signs and fetches on its own, a token is cached
    /// for `cache_fraction × expires_in`, and every 401/403 removes the cached token.
    ///
    /// Like the reference policy (which answers 500 on any non-200 from the token endpoint),
    /// it does not retry unless [`TokenClientConfig::retry`] sets a policy.
    Apim,
    /// Concurrent misses for one key share one fetch; every waiter gets its result or error.
    /// A 401/403 removes the token only if it is still the cached one.
    SingleFlight,
    /// Hits never wait: a token is served until it really expires, and inside its refresh
    /// window one background refresh runs; misses (no valid token) are single-flight.
    /// A 401/403 removes the token only if it is still the cached one.
    RefreshAhead,
    /// A managed token store, as API Management's Credential Manager: served as
    /// `refresh-ahead` serves, and the store refreshes each token itself when its refresh
    /// window opens, whether or not a lookup comes (a token nobody asks for is kept fresh all
    /// the same). Gateways share one store; what a lookup costs them is theirs to model.
    CredentialManager,
}

impl CachePolicy {
    /// Every policy.
    pub const ALL: [CachePolicy; 4] = [
        CachePolicy::Apim,
        CachePolicy::SingleFlight,
        CachePolicy::RefreshAhead,
        CachePolicy::CredentialManager,
    ];

    /// `apim`, `single-flight`, `refresh-ahead` or `credential-manager`.
    pub fn as_str(self) -> &'static str {
        match self {
            CachePolicy::Apim => "apim",
            CachePolicy::SingleFlight => "single-flight",
            CachePolicy::RefreshAhead => "refresh-ahead",
            CachePolicy::CredentialManager => "credential-manager",
        }
    }

    /// Whether tokens are served until they really expire and refreshed ahead of it
    /// (`refresh-ahead` and `credential-manager`).
    pub fn refreshes_ahead(self) -> bool {
        matches!(
            self,
            CachePolicy::RefreshAhead | CachePolicy::CredentialManager
        )
    }
}

impl fmt::Display for CachePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CachePolicy {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        CachePolicy::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| Error::Config {
                field: "policy",
                reason: format!(
                    "unknown cache policy {name:?}; expected apim, single-flight, refresh-ahead \
                     or credential-manager"
                ),
            })
    }
}

/// Retries of token requests answered with 429 or 503. Nothing else is retried: other
/// statuses, transport errors and timeouts are errors at once.
///
/// With `b = min(max_backoff, initial_backoff × 2^(n-1))`, the delay before retry `n`
/// (1-based) is:
///
/// - after an answer with a `Retry-After`: that wait (capped at `max_retry_after`) plus a
///   jitter uniform in `[0, b/2]`, so never earlier than the answer asked, and callers
///   throttled together do not all come back at the same instant;
/// - otherwise: a backoff uniform in `[b/2, b]`.
///
/// Building a client refuses `max_retries` above [`MAX_RETRIES_LIMIT`], `max_backoff` or
/// `max_retry_after` above [`MAX_DELAY_LIMIT`], and `initial_backoff` above `max_backoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` requests per fetch).
    pub max_retries: u32,
    /// Backoff before the first retry, doubled for each further one.
    #[serde(with = "duration_secs")]
    pub initial_backoff: Duration,
    /// Upper bound of the backoff.
    #[serde(with = "duration_secs")]
    pub max_backoff: Duration,
    /// Upper bound of the wait a `Retry-After` header can ask for.
    #[serde(with = "duration_secs")]
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// No retries: the first answer is final.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }
}

impl Default for RetryPolicy {
    /// 2 retries, backoff from 200 ms up to 5 s, `Retry-After` honoured up to 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Durations as (fractional) seconds in serialized forms.
mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// A signed JWT client assertion (RFC 7523 `private_key_jwt`), one per token request.
    Certificate(Credential),
    /// A client secret in the form body (`client_secret_post`).
    Secret(ClientSecret),
}

/// A client secret. Zeroed on drop; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(Zeroizing::new(secret.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// The settings of a [`TokenClient`](crate::TokenClient). [`TokenClientConfig::new`] sets
/// the defaults; change the public fields as needed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenClientConfig {
    /// The token endpoint, `http://` or `https://`.
    pub token_url: String,
    /// The client id (`client_id`; the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The scope requested, e.g. `api://backend/.default`.
    pub scope: String,
    /// The assertion's `aud`. Default (`None`): the token URL. Some providers want the issuer.
    pub assertion_audience: Option<String>,
    /// The assertion's lifetime (`exp - iat`). Default: 600 s.
    pub assertion_lifetime: Duration,
    /// Timeout of one token request, answer body included. Default: 20 s.
    pub timeout: Duration,
    /// The cache policy. Default: [`CachePolicy::Apim`], the reference policy.
    pub policy: CachePolicy,
    /// Share of `expires_in` for which a token counts as fresh, in `(0, 1]`. Default: 0.95.
    pub cache_fraction: f64,
    /// `refresh-ahead` only: how long before the token's real expiry its refresh window
    /// opens. Default (`None`): the window opens when the token stops being fresh, at
    /// `cache_fraction × expires_in`.
    ///
    /// The window never covers more than the second half of a token's lifetime: the refresh
    /// point is never earlier than `obtained_at + expires_in / 2`, whatever the window (or
    /// a small `cache_fraction`) says. So a window as long as the provider's `expires_in`,
    /// or longer, means "refresh at half-life", not "refresh every fresh token at once".
    pub refresh_window: Option<Duration>,
    /// `refresh-ahead` only: upper bound of the random delay of the refresh after the
    /// window opens (at most half the effective window). Default: 30 s.
    pub refresh_jitter: Duration,
    /// Retries of 429 and 503 answers. Default (`None`): [`RetryPolicy::none`] for
    /// [`CachePolicy::Apim`] (the reference policy does not retry), [`RetryPolicy::default`]
    /// for the other policies; see [`retry_policy`](Self::retry_policy).
    pub retry: Option<RetryPolicy>,
}

impl TokenClientConfig {
    /// The defaults for this token URL, client id and scope.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        scope: impl Into<String>,
    ) -> Self {
        TokenClientConfig {
            token_url: token_url.into(),
            client_id: client_id.into(),
            scope: scope.into(),
            assertion_audience: None,
            assertion_lifetime: signer::DEFAULT_LIFETIME,
            timeout: DEFAULT_TIMEOUT,
            policy: CachePolicy::Apim,
            cache_fraction: DEFAULT_CACHE_FRACTION,
            refresh_window: None,
            refresh_jitter: DEFAULT_REFRESH_JITTER,
            retry: None,
        }
    }

    /// The retry policy in force: [`retry`](Self::retry) if set, else none for
    /// [`CachePolicy::Apim`] and [`RetryPolicy::default`] for the other policies.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.unwrap_or(match self.policy {
            CachePolicy::Apim => RetryPolicy::none(),
            CachePolicy::SingleFlight
            | CachePolicy::RefreshAhead
            | CachePolicy::CredentialManager => RetryPolicy::default(),
        })
    }

    /// Checks every setting; returns the token URL parsed.
    pub(crate) fn validate(&self) -> Result<http::Uri, Error> {
        let uri: http::Uri = self.token_url.parse().map_err(|e| Error::Config {
            field: "token_url",
            reason: format!("{:?} is not a URL: {e}", self.token_url),
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(Error::Config {
                field: "token_url",
                reason: format!("{:?} is not an http:// or https:// URL", self.token_url),
            });
        }
        for (field, value) in [("client_id", &self.client_id), ("scope", &self.scope)] {
            if value.trim().is_empty() {
                return Err(Error::Config {
                    field,
                    reason: "must not be empty".to_owned(),
                });
            }
        }
        if !(self.cache_fraction > 0.0 && self.cache_fraction <= 1.0) {
            return Err(Error::Config {
                field: "cache_fraction",
                reason: format!("must be above 0 and at most 1, not {}", self.cache_fraction),
            });
        }
        if self.timeout.is_zero() {
            return Err(Error::Config {
                field: "timeout",
                reason: "must be above zero".to_owned(),
            });
        }
        if self.assertion_lifetime < Duration::from_secs(1) {
            return Err(Error::Config {
                field: "assertion_lifetime",
                reason: format!("must be at least 1 s, not {:?}", self.assertion_lifetime),
            });
        }
        if self.refresh_window.is_some_and(|w| w.is_zero()) {
            return Err(Error::Config {
                field: "refresh_window",
                reason: "must be above zero".to_owned(),
            });
        }
        let retry = self.retry_policy();
        if retry.max_retries > MAX_RETRIES_LIMIT {
            return Err(Error::Config {
                field: "retry.max_retries",
                reason: format!(
                    "must be at most {MAX_RETRIES_LIMIT}, not {}",
                    retry.max_retries
                ),
            });
        }
        for (field, value) in [
            ("retry.max_backoff", retry.max_backoff),
            ("retry.max_retry_after", retry.max_retry_after),
        ] {
            if value > MAX_DELAY_LIMIT {
                return Err(Error::Config {
                    field,
                    reason: format!("must be at most {MAX_DELAY_LIMIT:?}, not {value:?}"),
                });
            }
        }
        if retry.initial_backoff > retry.max_backoff {
            return Err(Error::Config {
                field: "retry.initial_backoff",
                reason: format!(
                    "{:?} is above retry.max_backoff {:?}",
                    retry.initial_backoff, retry.max_backoff
                ),
            });
        }
        Ok(uri)
    }
}
