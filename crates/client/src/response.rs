//! Token endpoint answers: a token, an OAuth error, or something unusable.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::{
    token::{SharedStr, BEARER_PREFIX},
    transport::MAX_BODY_BYTES,
    Error,
};

/// Largest `expires_in` accepted: about 136 years, so that instants cannot overflow.
const MAX_EXPIRES_IN: u64 = u32::MAX as u64;
/// `error_description` is cut to this many bytes.
const MAX_DESCRIPTION: usize = 2048;

/// A successful token response.
pub(crate) struct TokenResponse {
    /// `Bearer <access_token>`: the token is the rest after [`BEARER_PREFIX`].
    pub(crate) bearer: Arc<str>,
    /// The same bytes as a header value (sharing `bearer`'s allocation), validated once
    /// here and marked sensitive.
    pub(crate) authorization: HeaderValue,
    pub(crate) token_type: String,
    pub(crate) expires_in: Duration,
    pub(crate) scope: Option<String>,
    /// A refresh token (delegated grants with `offline_access`).
    pub(crate) refresh_token: Option<Zeroizing<String>>,
}

/// Reads a token endpoint answer. Errors name what is wrong, never the token.
pub(crate) fn parse(url: &str, response: &Response<Bytes>) -> Result<TokenResponse, Error> {
    let status = response.status();
    let body = response.body();
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::ResponseTooLarge {
            url: url.to_owned(),
            status: status.as_u16(),
            limit: MAX_BODY_BYTES,
        });
    }
    if !status.is_success() {
        let (error, error_description) = oauth_error(body);
        return Err(Error::Endpoint {
            url: url.to_owned(),
            status: status.as_u16(),
            error,
            error_description,
            retry_after: retry_after(response, SystemTime::now()),
        });
    }
    let invalid = |reason: String| Error::InvalidResponse {
        url: url.to_owned(),
        reason,
    };
    // Parse to a `Value` first: serde_json's syntax errors name positions, never content,
    // whereas typed deserialization errors can quote values (a token in a wrong field).
    let json: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON ({e})")))?;
    let Value::Object(fields) = json else {
        return Err(invalid("the body is not a JSON object".to_owned()));
    };
    let access_token = match fields.get("access_token") {
        Some(Value::String(token)) if is_b64token(token) => token.clone(),
        Some(Value::String(token)) if token.is_empty() => {
            return Err(invalid("access_token is empty".to_owned()))
        }
        Some(Value::String(_)) => {
            return Err(invalid(
                "access_token has characters a Bearer Authorization header cannot carry \
                 (RFC 6750 b64token)"
                    .to_owned(),
            ))
        }
        Some(other) => {
            return Err(invalid(format!(
                "access_token is a {}, not a string",
                type_name(other)
            )))
        }
        None => return Err(invalid("access_token is missing".to_owned())),
    };
    let expires_in = match fields.get("expires_in") {
        None => return Err(invalid("expires_in is missing".to_owned())),
        Some(value) => seconds(value).ok_or_else(|| {
            invalid(format!(
                "expires_in must be a positive whole number of seconds (at most {MAX_EXPIRES_IN}), not {}",
                short(value)
            ))
        })?,
    };
    // RFC 6749 §7.1: a client must not use a token of a type it does not understand, and
    // this one sends every token as `Authorization: Bearer`.
    let token_type = match fields.get("token_type") {
        None => "Bearer".to_owned(),
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => t.clone(),
        Some(Value::String(t)) if !t.is_empty() => {
            return Err(invalid(
                "token_type is not Bearer: a token of another type (RFC 6749 §7.1) cannot be \
                 sent as a bearer token"
                    .to_owned(),
            ))
        }
        Some(other) => return Err(invalid(format!("token_type is invalid: {}", short(other)))),
    };
    let scope = match fields.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(invalid(format!(
                "scope is a {}, not a string",
                type_name(other)
            )))
        }
    };
    // Only a user's grant redeems one; an empty one is no refresh token (some providers
    // send `""` with client credentials).
    let refresh_token = match fields.get("refresh_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => Some(Zeroizing::new(t.clone())),
        Some(other) => {
            return Err(invalid(format!(
                "refresh_token is a {}, not a string",
                type_name(other)
            )))
        }
    };
    let bearer: Arc<str> = Arc::from(format!("{BEARER_PREFIX}{access_token}"));
    let mut authorization =
        HeaderValue::from_maybe_shared(Bytes::from_owner(SharedStr(Arc::clone(&bearer))))
            .map_err(|_| invalid("access_token cannot be sent in a header".to_owned()))?;
    authorization.set_sensitive(true);
    Ok(TokenResponse {
        bearer,
        authorization,
        token_type,
        expires_in,
        scope,
        refresh_token,
    })
}

/// Whether `token` has the syntax RFC 6750 §2.1 allows after `Bearer `:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A positive whole number of seconds, as a JSON number or a string of digits (some
/// providers send `"3599"`).
fn seconds(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    (secs > 0 && secs <= MAX_EXPIRES_IN).then(|| Duration::from_secs(secs))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What kind of value a field has, for messages: its JSON type, and for numbers their sign
/// or shape. Never the value itself (a misplaced token must not reach an error message).
fn short(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(0), _, _) => "zero",
            (Some(_), _, _) => "a positive whole number",
            (None, Some(_), _) => "a negative number",
            (_, _, Some(f)) if f < 0.0 => "a negative number",
            (_, _, Some(f)) if f.fract() != 0.0 => "a fractional number",
            _ => "a number too large",
        },
        Value::Array(_) => "a JSON array",
        Value::Object(_) => "a JSON object",
    }
}

/// The OAuth `error` and `error_description` of an error answer's body, if it is a JSON
/// object that has them.
fn oauth_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => Some(truncate(s, MAX_DESCRIPTION).to_owned()),
        _ => None,
    };
    (text("error"), text("error_description"))
}

/// The first `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The `Retry-After` of an answer: delta-seconds or an HTTP date (relative to `now`).
pub(crate) fn retry_after<B>(response: &Response<B>, now: SystemTime) -> Option<Duration> {
    let value = response
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Response<Bytes> {
        Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    const URL: &str = "https://idp.example/token";

    fn invalid_reason(body: &str) -> String {
        match parse(URL, &answer(200, body)) {
            Err(Error::InvalidResponse { reason, .. }) => reason,
            Err(other) => panic!("{body}: expected InvalidResponse, got {other}"),
            Ok(_) => panic!("{body}: expected an error"),
        }
    }

    #[test]
    fn a_token_response() {
        let r = parse(
            URL,
            &answer(
                200,
                r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#,
            ),
        )
        .unwrap();
        assert_eq!(&r.bearer[BEARER_PREFIX.len()..], "abc");
        assert_eq!(r.authorization.as_bytes(), b"Bearer abc");
        assert_eq!(r.token_type, "Bearer");
        assert_eq!(r.expires_in, Duration::from_secs(3599));
        assert_eq!(r.scope, None);
        let r = parse(
            URL,
            &answer(
                200,
                r#"{"expires_in":"60","access_token":"x","scope":"s1 s2"}"#,
            ),
        )
        .unwrap();
        assert_eq!(r.expires_in, Duration::from_secs(60));
        assert_eq!(r.token_type, "Bearer");
        assert_eq!(r.scope.as_deref(), Some("s1 s2"));
        // The type's name is case-insensitive (RFC 6749 §5.1).
        let r = parse(
            URL,
            &answer(
                200,
                r#"{"token_type":"bearer","expires_in":60,"access_token":"x"}"#,
            ),
        )
        .unwrap();
        assert_eq!(r.token_type, "bearer");
    }

    #[test]
    fn malformed_token_responses_are_named_without_their_content() {
        let secret = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-token";
        let cases = [
            ("", "not JSON"),
            ("{\"access_token\":", "not JSON"),
            ("<html>oops</html>", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"expires_in":3599}"#, "access_token is missing"),
            (
                r#"{"access_token":"","expires_in":3599}"#,
                "access_token is empty",
            ),
            (
                r#"{"access_token":"abc\r\nX-Injected: 1","expires_in":3599}"#,
                "RFC 6750 b64token",
            ),
            (
                r#"{"access_token":"a b","expires_in":3599}"#,
                "RFC 6750 b64token",
            ),
            (
                r#"{"access_token":42,"expires_in":3599}"#,
                "access_token is a number",
            ),
            (r#"{"access_token":"t"}"#, "expires_in is missing"),
            (
                r#"{"access_token":"t","expires_in":0}"#,
                "expires_in must be",
            ),
            (
                r#"{"access_token":"t","expires_in":-5}"#,
                "not a negative number",
            ),
            (
                r#"{"access_token":"t","expires_in":1.5}"#,
                "expires_in must be",
            ),
            (
                r#"{"access_token":"t","expires_in":"soon"}"#,
                "expires_in must be",
            ),
            (
                r#"{"access_token":"t","expires_in":null}"#,
                "expires_in must be",
            ),
            (
                r#"{"access_token":"t","expires_in":99999999999999}"#,
                "expires_in must be",
            ),
            (
                r#"{"access_token":"t","expires_in":60,"scope":7}"#,
                "scope is a number",
            ),
            (
                r#"{"access_token":"t","expires_in":60,"token_type":false}"#,
                "token_type is invalid",
            ),
            (
                r#"{"access_token":"t","expires_in":60,"token_type":"mac"}"#,
                "token_type is not Bearer",
            ),
            (
                r#"{"access_token":"t","expires_in":60,"token_type":"DPoP"}"#,
                "token_type is not Bearer",
            ),
        ];
        for (body, expected) in cases {
            let reason = invalid_reason(body);
            assert!(
                reason.contains(expected),
                "{body}: {reason:?} lacks {expected:?}"
            );
        }
        // A token in the wrong field never reaches the message.
        let body = format!(r#"{{"access_token":"t","expires_in":{{"v":"{secret}"}}}}"#);
        assert!(!invalid_reason(&body).contains("secret-token"));
        let body = format!(r#"{{"access_token":["{secret}"],"expires_in":60}}"#);
        assert!(!invalid_reason(&body).contains("secret-token"));
    }

    #[test]
    fn invalid_values_are_described_never_quoted() {
        // Strings in `expires_in`, whose kind the message names: never their content.
        for value in ["eyJhbGciOi.secret-token.sig", "xq", "-5", "1.5", ""] {
            let body = format!(r#"{{"access_token":"t","expires_in":"{value}"}}"#);
            let reason = invalid_reason(&body);
            assert!(
                reason.ends_with("not a string") || reason.ends_with("not an empty string"),
                "{body}: {reason:?}"
            );
            assert!(
                value.is_empty() || !reason.contains(value),
                "{body}: {reason:?} quotes the value"
            );
        }
        let described = [
            ("-5", "a negative number"),
            ("-0.5", "a negative number"),
            ("1.5", "a fractional number"),
            ("0", "zero"),
            ("1e300", "a number too large"),
            ("99999999999999", "a positive whole number"),
            ("true", "a boolean"),
            ("null", "null"),
            (r#"{"a":"secret-token"}"#, "a JSON object"),
            (r#"["secret-token"]"#, "a JSON array"),
        ];
        for (json, expected) in described {
            let reason = invalid_reason(&format!(r#"{{"access_token":"t","expires_in":{json}}}"#));
            assert!(
                reason.ends_with(&format!("not {expected}")),
                "{json}: {reason:?}"
            );
            assert!(!reason.contains("secret-token"), "{reason:?}");
        }
        let reason = invalid_reason(r#"{"access_token":"t","expires_in":60,"token_type":""}"#);
        assert!(
            reason.ends_with("token_type is invalid: an empty string"),
            "{reason:?}"
        );
        let reason = invalid_reason(r#"{"access_token":"t","expires_in":60,"token_type":7}"#);
        assert!(
            reason.ends_with("token_type is invalid: a positive whole number"),
            "{reason:?}"
        );
    }

    #[test]
    fn oauth_errors() {
        let err = parse(
            URL,
            &answer(
                400,
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
            ),
        )
        .err()
        .unwrap();
        assert_eq!(err.oauth_error(), Some("invalid_client"));
        assert_eq!(err.status(), Some(400));
        let text = err.to_string();
        assert!(
            text.contains("HTTP 400") && text.contains("AADSTS7000215"),
            "{text}"
        );

        let err = parse(URL, &answer(502, "<html>bad gateway</html>"))
            .err()
            .unwrap();
        assert!(matches!(
            err,
            Error::Endpoint {
                status: 502,
                error: None,
                ..
            }
        ));
        assert!(err.to_string().contains("no OAuth error"), "{err}");

        let long = "é".repeat(5000);
        let body = format!(r#"{{"error":"invalid_request","error_description":"{long}"}}"#);
        let Err(Error::Endpoint {
            error_description: Some(d),
            ..
        }) = parse(URL, &answer(400, &body))
        else {
            panic!("expected an endpoint error")
        };
        assert!(d.len() <= MAX_DESCRIPTION && !d.is_empty());
    }

    #[test]
    fn oversized_bodies() {
        let body = "x".repeat(MAX_BODY_BYTES + 1);
        for status in [200, 400] {
            assert!(matches!(
                parse(URL, &answer(status, &body)),
                Err(Error::ResponseTooLarge {
                    limit: MAX_BODY_BYTES,
                    ..
                })
            ));
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let with = |value: &str| {
            Response::builder()
                .status(429)
                .header(header::RETRY_AFTER, value)
                .body(())
                .unwrap()
        };
        assert_eq!(retry_after(&with("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(&with(" 120 "), now),
            Some(Duration::from_secs(120))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(retry_after(&with(&date), now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(retry_after(&with(&past), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&with("soon"), now), None);
        assert_eq!(retry_after(&with("-1"), now), None);
        let none = Response::builder().status(429).body(()).unwrap();
        assert_eq!(retry_after(&none, now), None);
    }
}
