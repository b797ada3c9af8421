//! What the driver reports of each request and token answer.

use std::time::Duration;

/// What came of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The backend answered with this HTTP status.
    Status(u16),
    /// The token client returned an error, so the backend was not called.
    TokenError,
    /// The backend call ended without an answer (connection failure, timeout).
    BackendError,
}

impl RequestOutcome {
    pub(crate) fn class(self) -> Class {
        match self {
            RequestOutcome::Status(200..=299) => Class::Ok,
            RequestOutcome::Status(401) => Class::Unauthorized,
            RequestOutcome::Status(403) => Class::Forbidden,
            RequestOutcome::Status(_)
            | RequestOutcome::TokenError
            | RequestOutcome::BackendError => Class::Error,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Ok,
    Unauthorized,
    Forbidden,
    Error,
}

/// One completed request, as the driver reports it. All times are offsets from the run's
/// start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The gateway instance that served it (0-based, below [`Metrics::instances`](crate::Metrics::instances)).
    pub instance: usize,
    /// When it was scheduled to arrive (the open model's arrival time).
    pub intended_start: Duration,
    /// When the driver actually started it (asking the token client, then the backend).
    pub sent_at: Duration,
    /// When its final answer arrived (after the retry, if one was made).
    pub finished_at: Duration,
    /// Its final outcome.
    pub outcome: RequestOutcome,
    /// When the token of its final backend call was obtained from the identity provider
    /// (`Token::obtained_at` as an offset from the run start, saturating at zero); `None`
    /// if it got no token.
    pub token_obtained_at: Option<Duration>,
}

/// How the identity provider answered a token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAnswer {
    /// A token.
    Ok,
    /// HTTP 429.
    Throttled,
    /// Anything else: another status, no answer, a request that could not be prepared, or
    /// a fetch cancelled before its answer was used.
    Error,
}
