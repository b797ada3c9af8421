//! An OpenID provider's published documents: its discovery document (where its JWKS is) and
//! its JSON Web Key Set, as a resource server fetches them to verify the provider's tokens.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::openid::OpenIdError> {
//! use client::{openid, HyperTransport};
//! let transport = HyperTransport::new().expect("TLS roots");
//! let issuer = "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0";
//! let jwks_uri = openid::discover_jwks_uri(&transport, issuer).await?;
//! let jwks = openid::fetch_json(&transport, &jwks_uri).await?;
//! println!("{} keys", jwks["keys"].as_array().map_or(0, Vec::len));
//! # Ok(()) }
//! ```

use std::time::Duration;

use http::Uri;
use serde_json::Value;

use crate::HyperTransport;

/// Largest discovery or JWKS document read: 256 KiB (Entra's JWKS is about 10 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// How long a fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A document could not be fetched or is not what the provider should publish.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct OpenIdError {
    /// The document's URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// The discovery document's URL for `issuer`: `{issuer}/.well-known/openid-configuration`
/// (OpenID Connect Discovery 1.0, section 4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches `issuer`'s discovery document and returns its `jwks_uri`. The document's
/// `issuer` must be `issuer` exactly, as the specification requires of a client, so that a
/// misspelt issuer fails here rather than as every token refused.
pub async fn discover_jwks_uri(
    transport: &HyperTransport,
    issuer: &str,
) -> Result<String, OpenIdError> {
    let url = discovery_url(issuer);
    let document = fetch_json(transport, &url).await?;
    let invalid = |reason: String| OpenIdError {
        url: url.clone(),
        reason,
    };
    match document.get("issuer").and_then(Value::as_str) {
        Some(published) if published == issuer => {}
        Some(published) => {
            return Err(invalid(format!(
                "the document is for issuer {published:?}, not {issuer:?}"
            )))
        }
        None => return Err(invalid("the document has no issuer".to_owned())),
    }
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the document has no jwks_uri".to_owned()))?;
    match jwks_uri.parse::<Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => Ok(jwks_uri.to_owned()),
        _ => Err(invalid(format!(
            "jwks_uri {jwks_uri:?} is not an http(s) URL"
        ))),
    }
}

/// GETs `url` and parses its body as a JSON object: status 200, at most
/// [`MAX_DOCUMENT_BYTES`], within [`FETCH_TIMEOUT`].
pub async fn fetch_json(transport: &HyperTransport, url: &str) -> Result<Value, OpenIdError> {
    let failed = |reason: String| OpenIdError {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|e| failed(format!("not a URL: {e}")))?;
    let response = tokio::time::timeout(FETCH_TIMEOUT, transport.get(&uri, MAX_DOCUMENT_BYTES))
        .await
        .map_err(|_| failed(format!("no answer within {FETCH_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    if response.status() != http::StatusCode::OK {
        return Err(failed(format!("status {}", response.status())));
    }
    match serde_json::from_slice::<Value>(response.body()) {
        Ok(document @ Value::Object(_)) => Ok(document),
        Ok(_) => Err(failed("the body is not a JSON object".to_owned())),
        Err(e) => Err(failed(format!("the body is not JSON: {e}"))),
    }
}
