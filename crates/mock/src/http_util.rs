//! Response building shared by the identity provider, the backend and the admin endpoints.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::stats::TokenOutcome;

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Bytes> {
    // Serialising our own plain structs and `json!` values cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An OAuth 2.0 error (RFC 6749 §5.2) with Entra's AADSTS code where a documented one fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthRejection {
    /// HTTP status: 401 for `invalid_client`, 400 otherwise (429/500/503 for faults).
    pub(crate) status: StatusCode,
    /// The OAuth `error` code.
    pub(crate) error: &'static str,
    /// The AADSTS number, if one fits.
    pub(crate) code: Option<u32>,
    /// Human-readable reason.
    pub(crate) description: String,
    /// `Retry-After` seconds (429 and 503).
    pub(crate) retry_after: Option<u64>,
    /// How the stats count it.
    pub(crate) outcome: TokenOutcome,
}

impl OAuthRejection {
    fn new(
        status: StatusCode,
        error: &'static str,
        outcome: TokenOutcome,
        code: Option<u32>,
        description: String,
    ) -> Self {
        OAuthRejection {
            status,
            error,
            code,
            description,
            retry_after: None,
            outcome,
        }
    }

    /// 400 `invalid_request`.
    pub(crate) fn invalid_request(code: Option<u32>, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            TokenOutcome::InvalidRequest,
            code,
            description.into(),
        )
    }

    /// 401 `invalid_client`.
    pub(crate) fn invalid_client(code: Option<u32>, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            TokenOutcome::InvalidClient,
            code,
            description.into(),
        )
    }

    /// 400 `invalid_scope`.
    pub(crate) fn invalid_scope(code: Option<u32>, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            TokenOutcome::InvalidScope,
            code,
            description.into(),
        )
    }

    /// 400 `invalid_grant`.
    pub(crate) fn invalid_grant(code: Option<u32>, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            TokenOutcome::InvalidGrant,
            code,
            description.into(),
        )
    }

    /// 400 `unsupported_grant_type`.
    pub(crate) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            TokenOutcome::UnsupportedGrantType,
            Some(70003),
            description.into(),
        )
    }

    /// 429 with `Retry-After`.
    pub(crate) fn throttled(retry_after: u64) -> Self {
        let mut r = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            TokenOutcome::Throttled,
            None,
            format!("Too many requests for this client; retry after {retry_after} s."),
        );
        r.retry_after = Some(retry_after);
        r
    }

    /// An injected 500 or 503, or a 503 during an outage.
    pub(crate) fn injected(status: StatusCode, outcome: TokenOutcome) -> Self {
        let error = if status == StatusCode::SERVICE_UNAVAILABLE {
            "temporarily_unavailable"
        } else {
            "server_error"
        };
        let mut r = Self::new(
            status,
            error,
            outcome,
            None,
            "The service is unavailable (injected fault).".to_owned(),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.retry_after = Some(1);
        }
        r
    }

    /// 503: a store the provider keeps is full of unexpired entries (a real limit, not an
    /// injected fault); `what` names them ("client assertions", "refresh tokens").
    pub(crate) fn store_full(what: &str) -> Self {
        let mut r = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            TokenOutcome::Unavailable,
            None,
            format!("Too many unexpired {what} are remembered; retry later."),
        );
        r.retry_after = Some(1);
        r
    }

    /// 500 `server_error`: the provider failed (no token is better than a wrong one).
    pub(crate) fn server_error(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            TokenOutcome::ServerError,
            None,
            description.into(),
        )
    }

    /// The response Entra would send.
    pub(crate) fn to_response(&self) -> Response<Bytes> {
        let trace_id = uuid::Uuid::new_v4();
        let description = match self.code {
            Some(code) => format!("AADSTS{code}: {} Trace ID: {trace_id}", self.description),
            None => format!("{} Trace ID: {trace_id}", self.description),
        };
        let mut body = serde_json::json!({
            "error": self.error,
            "error_description": description,
            "trace_id": trace_id.to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(code) = self.code {
            body["error_codes"] = serde_json::json!([code]);
        }
        let mut response = json_response(self.status, &body);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// At most 64 characters of untrusted text, for messages.
pub(crate) fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}
