//! The token request's form: size limits, and the fields the client-credentials grant reads.

use std::collections::HashMap;

use signer::jws::MAX_COMPACT_LEN;

use crate::http_util::{truncate, OAuthRejection};

/// Largest token request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest value of any form field but `client_assertion`, in bytes.
const MAX_FIELD: usize = 2048;
/// Largest `client_assertion` form field, in bytes: above the JWS parser's own limit
/// ([`MAX_COMPACT_LEN`]), so that the parser is what refuses an oversized assertion (with
/// its own message) and the form limit only bounds the copying before it.
const MAX_ASSERTION_FIELD: usize = MAX_COMPACT_LEN + 1024;
/// Most form fields accepted in one request.
const MAX_FIELDS: usize = 32;

/// The fields of a token request, each present at most once and within size limits.
pub(crate) struct TokenForm {
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) client_assertion_type: Option<String>,
    pub(crate) client_assertion: Option<String>,
    pub(crate) client_secret: Option<String>,
}

/// Longest accepted value of a form field.
fn field_limit(name: &str) -> usize {
    if name == "client_assertion" {
        MAX_ASSERTION_FIELD
    } else {
        MAX_FIELD
    }
}

impl TokenForm {
    /// Parses a form body, refusing oversized bodies and fields, repeated fields, missing
    /// required ones and other grant types.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, OAuthRejection> {
        if body.len() > MAX_BODY {
            return Err(OAuthRejection::invalid_request(
                None,
                format!("The request body exceeds {MAX_BODY} bytes."),
            ));
        }
        let mut fields: HashMap<String, String> = HashMap::new();
        for (count, (name, value)) in form_urlencoded::parse(body).enumerate() {
            if count >= MAX_FIELDS {
                return Err(OAuthRejection::invalid_request(
                    None,
                    format!("More than {MAX_FIELDS} form fields."),
                ));
            }
            if value.len() > field_limit(&name) {
                return Err(OAuthRejection::invalid_request(
                    None,
                    format!("Parameter '{}' is too long.", truncate(&name)),
                ));
            }
            if fields.contains_key(name.as_ref()) {
                return Err(OAuthRejection::invalid_request(
                    None,
                    format!(
                        "Parameter '{}' is included more than once.",
                        truncate(&name)
                    ),
                ));
            }
            fields.insert(name.into_owned(), value.into_owned());
        }
        let mut required = |name: &'static str| {
            fields
                .remove(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    OAuthRejection::invalid_request(
                        Some(900144),
                        format!("The request body must contain the following parameter: '{name}'."),
                    )
                })
        };
        let grant_type = required("grant_type")?;
        if grant_type != "client_credentials" {
            return Err(OAuthRejection::unsupported_grant_type(format!(
                "The app requested an unsupported grant type '{}'.",
                truncate(&grant_type)
            )));
        }
        let client_id = required("client_id")?;
        let scope = required("scope")?;
        Ok(TokenForm {
            client_id,
            scope,
            client_assertion_type: fields.remove("client_assertion_type"),
            client_assertion: fields.remove("client_assertion"),
            client_secret: fields.remove("client_secret"),
        })
    }
}
