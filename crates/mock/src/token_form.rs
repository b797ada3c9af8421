//! Form bodies (token requests, admin forms): size limits, and the fields each grant reads.

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

/// `grant_type` of the on-behalf-of flow.
pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A token request's grant and what it carries.
pub(crate) enum Grant {
    /// The client for itself.
    ClientCredentials { scope: String },
    /// For a user.
    Delegated(DelegatedGrant),
}

/// A grant of a token for a user. The code and refresh token grants take an optional
/// `scope`: without it, the token is for what the code or refresh token was granted.
pub(crate) enum DelegatedGrant {
    /// On behalf of the user whose access token `assertion` is.
    OnBehalfOf { assertion: String, scope: String },
    /// Redeeming an authorization code.
    AuthorizationCode {
        code: String,
        redirect_uri: String,
        code_verifier: Option<String>,
        scope: Option<String>,
    },
    /// Redeeming a refresh token.
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
}

/// How the client authenticates: the credential fields of a token request.
pub(crate) struct ClientCredentials {
    pub(crate) client_assertion_type: Option<String>,
    pub(crate) client_assertion: Option<String>,
    pub(crate) client_secret: Option<String>,
}

/// The fields of a token request, each present at most once and within size limits.
pub(crate) struct TokenForm {
    pub(crate) grant: Grant,
    pub(crate) client_id: String,
    pub(crate) credentials: ClientCredentials,
}

/// Longest accepted value of a form field.
fn field_limit(name: &str) -> usize {
    // A user's access token (`assertion`) is as long as a client assertion, or longer.
    if name == "client_assertion" || name == "assertion" {
        MAX_ASSERTION_FIELD
    } else {
        MAX_FIELD
    }
}

/// The fields of a form body, each present at most once and within size limits.
pub(crate) struct Fields(HashMap<String, String>);

impl Fields {
    /// Parses a form body, refusing oversized bodies and fields and repeated fields.
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
        Ok(Fields(fields))
    }

    /// Takes a non-empty field, refusing its absence as Entra does (AADSTS900144).
    pub(crate) fn required(&mut self, name: &'static str) -> Result<String, OAuthRejection> {
        self.optional(name).ok_or_else(|| {
            OAuthRejection::invalid_request(
                Some(900144),
                format!("The request body must contain the following parameter: '{name}'."),
            )
        })
    }

    /// Takes a field; an empty one counts as absent.
    pub(crate) fn optional(&mut self, name: &str) -> Option<String> {
        self.0.remove(name).filter(|v| !v.is_empty())
    }
}

impl TokenForm {
    /// Parses a token request body, refusing oversized bodies and fields, repeated fields,
    /// missing required ones and unknown grant types.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, OAuthRejection> {
        let mut fields = Fields::parse(body)?;
        let grant_type = fields.required("grant_type")?;
        let client_id = fields.required("client_id")?;
        let grant = match grant_type.as_str() {
            "client_credentials" => Grant::ClientCredentials {
                scope: fields.required("scope")?,
            },
            JWT_BEARER_GRANT => {
                let assertion = fields.required("assertion")?;
                let token_use = fields.required("requested_token_use")?;
                if token_use != "on_behalf_of" {
                    return Err(OAuthRejection::invalid_request(
                        None,
                        format!(
                            "requested_token_use must be 'on_behalf_of', not '{}'.",
                            truncate(&token_use)
                        ),
                    ));
                }
                Grant::Delegated(DelegatedGrant::OnBehalfOf {
                    assertion,
                    scope: fields.required("scope")?,
                })
            }
            "authorization_code" => Grant::Delegated(DelegatedGrant::AuthorizationCode {
                code: fields.required("code")?,
                redirect_uri: fields.required("redirect_uri")?,
                code_verifier: fields.optional("code_verifier"),
                scope: fields.optional("scope"),
            }),
            "refresh_token" => Grant::Delegated(DelegatedGrant::RefreshToken {
                refresh_token: fields.required("refresh_token")?,
                scope: fields.optional("scope"),
            }),
            other => {
                return Err(OAuthRejection::unsupported_grant_type(format!(
                    "The app requested an unsupported grant type '{}'.",
                    truncate(other)
                )))
            }
        };
        Ok(TokenForm {
            grant,
            client_id,
            credentials: ClientCredentials {
                client_assertion_type: fields.optional("client_assertion_type"),
                client_assertion: fields.optional("client_assertion"),
                client_secret: fields.optional("client_secret"),
            },
        })
    }
}
