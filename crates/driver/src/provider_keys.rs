//! The signing keys of the external identity provider whose tokens the embedded backend
//! validates (`[backend] issuer`): its JWKS, found by `jwks_url` or by discovery, fetched
//! over the run's TLS trust.

use std::sync::Arc;

use client::{openid, HyperTransport};
use mock::{BoxFuture, JwksError, JwksSource};
use rustls::ClientConfig;
use scenario::ProviderTrust;
use serde_json::Value;

use crate::error::RunError;

/// An external provider's JWKS, fetched over HTTP(S) each time the backend asks.
pub(crate) struct RemoteJwks {
    transport: HyperTransport,
    url: String,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .finish()
    }
}

impl RemoteJwks {
    /// The JWKS of `trust`'s provider: at `jwks_url`, or where the issuer's discovery
    /// document says (fetched now, so that a wrong issuer fails before the run).
    pub(crate) async fn locate(
        trust: &ProviderTrust,
        tls: Arc<ClientConfig>,
    ) -> Result<Self, RunError> {
        let transport = HyperTransport::with_tls(tls);
        let url = match &trust.jwks_url {
            Some(url) => url.clone(),
            None => openid::discover_jwks_uri(&transport, &trust.issuer)
                .await
                .map_err(|e| RunError::ProviderKeys {
                    issuer: trust.issuer.clone(),
                    reason: format!("discovery: {e}"),
                })?,
        };
        Ok(RemoteJwks { transport, url })
    }
}

impl JwksSource for RemoteJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Value, JwksError>> {
        Box::pin(async move {
            openid::fetch_json(&self.transport, &self.url)
                .await
                .map_err(|e| JwksError {
                    location: e.url,
                    reason: e.reason,
                })
        })
    }

    fn location(&self) -> &str {
        &self.url
    }
}
