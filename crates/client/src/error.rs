use std::{fmt, sync::Arc, time::Duration};

/// Everything that can go wrong when configuring a client or getting a token.
///
/// Messages name what failed (the token URL, the setting, the status) and never contain an
/// access token, an assertion or a client secret. `Clone`, so that every waiter of a shared
/// fetch gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of the client cannot be used.
    #[error("invalid token client setting {field}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The client assertion could not be built or signed.
    #[error("cannot sign the client assertion for client {client_id}: {source}")]
    Assertion {
        /// The client id the assertion was for.
        client_id: String,
        /// The signer's error.
        source: Arc<signer::Error>,
    },
    /// The token request failed before an answer arrived (connection, TLS, I/O).
    #[error("token request to {url} failed: {reason}")]
    Transport {
        /// The token endpoint.
        url: String,
        /// What failed, with its causes.
        reason: String,
    },
    /// No answer within the HTTP timeout.
    #[error("token request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The token endpoint.
        url: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The token endpoint answered with a non-2xx status.
    #[error("token endpoint {url} answered HTTP {status}: {}", oauth_error(.error, .error_description))]
    Endpoint {
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code of the body, if it had one.
        error: Option<String>,
        /// The OAuth `error_description` of the body, if it had one (truncated to 2,048 bytes).
        error_description: Option<String>,
        /// The `Retry-After` of the answer, if it had a valid one.
        retry_after: Option<Duration>,
    },
    /// The answer's body exceeded the size limit.
    #[error("token endpoint {url} answered HTTP {status} with a body larger than {limit} bytes")]
    ResponseTooLarge {
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The limit in bytes.
        limit: usize,
    },
    /// A 2xx answer that is not a usable token response.
    #[error("token endpoint {url} answered with an invalid token response: {reason}")]
    InvalidResponse {
        /// The token endpoint.
        url: String,
        /// What is wrong with it (never its content).
        reason: String,
    },
    /// The shared fetch this call waited for ended without a result (its task was cancelled
    /// or panicked).
    #[error("the token fetch from {url} that this request waited for ended without a result")]
    FetchAborted {
        /// The token endpoint.
        url: String,
    },
}

impl Error {
    /// The OAuth `error` code, for [`Error::Endpoint`].
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Error::Endpoint { error, .. } => error.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of the token endpoint's answer, where there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Endpoint { status, .. } | Error::ResponseTooLarge { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// `error: description`, or what is missing.
fn oauth_error(error: &Option<String>, description: &Option<String>) -> impl fmt::Display {
    match (error, description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.clone(),
        (None, Some(d)) => format!("(no error code): {d}"),
        (None, None) => "no OAuth error in the body".to_owned(),
    }
}
