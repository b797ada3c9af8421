//! Request routing over the identity provider, the backend and the admin endpoints.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    backend::ProtectedBackend,
    config::MockConfig,
    error::ConfigError,
    faults::{Latency, TokenFaults},
    http_util::json_response,
    idp::IdentityProvider,
    stats::Stats,
    ConnectionReset, MockError,
};

/// The mock identity provider and backend together, with their counters.
#[derive(Debug)]
pub struct Mock {
    /// The identity provider.
    pub idp: Arc<IdentityProvider>,
    /// The protected backend.
    pub backend: Arc<ProtectedBackend>,
    /// Counters of both.
    pub stats: Arc<Stats>,
    urls: MockUrls,
}

/// Where things are, for the first tenant and resource of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockUrls {
    /// Token issuer.
    pub issuer: String,
    /// Token endpoint.
    pub token_url: String,
    /// JWKS.
    pub jwks_url: String,
    /// Base URL of the backend; protected resources live under `/api/`.
    pub backend_url: String,
    /// Base of the `/admin` endpoints.
    pub admin_url: String,
    /// A scope clients may request.
    pub scope: String,
}

/// `GET`/`PUT /admin/faults`: the faults in force.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsDocument {
    /// Token endpoint faults.
    pub token: TokenFaults,
    /// Backend latency.
    pub backend_latency: Latency,
}

impl Mock {
    /// Builds both servers' logic for a listener reachable at `base_url`.
    pub fn new(config: &MockConfig, base_url: &str) -> Result<Self, MockError> {
        let stats = Arc::new(Stats::default());
        let idp = Arc::new(IdentityProvider::new(config, base_url, Arc::clone(&stats))?);
        let backend = Arc::new(ProtectedBackend::new(
            Arc::clone(&idp),
            config,
            Arc::clone(&stats),
        ));
        let base = base_url.trim_end_matches('/');
        let tenant = &config.tenants[0];
        let urls = MockUrls {
            issuer: idp.issuer(tenant),
            token_url: idp.token_url(tenant),
            jwks_url: idp.jwks_url(tenant),
            backend_url: base.to_owned(),
            admin_url: format!("{base}/admin"),
            scope: format!("{}/.default", config.backend.audience),
        };
        Ok(Mock {
            idp,
            backend,
            stats,
            urls,
        })
    }

    /// Where things are.
    pub fn urls(&self) -> &MockUrls {
        &self.urls
    }

    /// Answers one request (the whole HTTP surface, without sockets).
    pub async fn handle(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, ConnectionReset> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = &parts.method;
        let response = match (method, segments.as_slice()) {
            (_, ["api", ..]) => {
                self.backend
                    .handle(parts.headers.get(header::AUTHORIZATION))
                    .await
            }
            (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => {
                return self.idp.token(tenant, &body).await
            }
            (&Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
                self.idp.openid_configuration(tenant)
            }
            (&Method::GET, [tenant, "discovery", "v2.0", "keys"]) => self.idp.jwks_response(tenant),
            (&Method::POST, ["admin", "revoke"]) => match self.backend.revoke_all() {
                Some(revoked_through) => json_response(
                    StatusCode::OK,
                    &json!({ "revoked_through_sequence": revoked_through }),
                ),
                None => json_response(
                    StatusCode::CONFLICT,
                    &json!({ "error": "the backend trusts another identity provider, whose \
                                       tokens it cannot revoke" }),
                ),
            },
            (&Method::POST, ["admin", "rotate-keys"]) if self.backend.trusts_another_provider() => {
                json_response(
                    StatusCode::CONFLICT,
                    &json!({ "error": "the backend trusts another identity provider, whose \
                                       keys rotate there" }),
                )
            }
            (&Method::POST, ["admin", "rotate-keys"]) => match self.idp.rotate_keys().await {
                Ok(kid) => match self.backend.reload_keys().await {
                    Ok(_) => json_response(StatusCode::OK, &json!({ "kid": kid })),
                    Err(e) => json_response(
                        StatusCode::BAD_GATEWAY,
                        &json!({ "kid": kid, "error": e.to_string() }),
                    ),
                },
                Err(e) => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({ "error": e.to_string() }),
                ),
            },
            (&Method::POST, ["admin", "user-token"]) => self.idp.admin_user_token(&body),
            (&Method::POST, ["admin", "authorize"]) => self.idp.admin_authorize(&body),
            (&Method::GET, ["admin", "stats"]) => {
                json_response(StatusCode::OK, &self.stats.snapshot())
            }
            (&Method::GET, ["admin", "faults"]) => json_response(StatusCode::OK, &self.faults()),
            (&Method::PUT, ["admin", "faults"]) => {
                match serde_json::from_slice::<FaultsDocument>(&body) {
                    Ok(document) => match self.set_faults(document) {
                        Ok(()) => json_response(StatusCode::OK, &self.faults()),
                        Err(e) => json_response(
                            StatusCode::BAD_REQUEST,
                            &json!({ "error": e.to_string() }),
                        ),
                    },
                    Err(e) => json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({ "error": format!("invalid faults document: {e}") }),
                    ),
                }
            }
            (_, [_, "oauth2", "v2.0", "token"] | ["admin", ..])
            | (_, [_, "v2.0", ".well-known", _] | [_, "discovery", "v2.0", "keys"]) => {
                json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({ "error": "method not allowed" }),
                )
            }
            _ => json_response(StatusCode::NOT_FOUND, &json!({ "error": "not found" })),
        };
        Ok(response)
    }

    /// The faults in force.
    pub fn faults(&self) -> FaultsDocument {
        FaultsDocument {
            token: self.idp.faults(),
            backend_latency: self.backend.latency(),
        }
    }

    /// Replaces the faults (checked first; nothing changes on error).
    pub fn set_faults(&self, document: FaultsDocument) -> Result<(), ConfigError> {
        document.token.validate()?;
        document.backend_latency.validate()?;
        self.idp.set_faults(document.token)?;
        self.backend.set_latency(document.backend_latency)
    }
}
