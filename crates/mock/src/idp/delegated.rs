//! The delegated grants, where a token is for a user: on-behalf-of, authorization code (with
//! PKCE) and refresh token; and the admin endpoints that stand in for a user signing in
//! (`POST /admin/user-token`, `POST /admin/authorize`).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};
use signer::{jws::Jws, Algorithm};

use super::{
    azpacr,
    grants::{is_pkce_value, CodeChallenge, Holder},
    unknown_client, unknown_tenant, Client, IdentityProvider, Issued, Principal, TokenFor,
};
use crate::{
    expiring::digest,
    http_util::{json_response, truncate, OAuthRejection},
    token_form::{ClientCredentials, DelegatedGrant, Fields},
};

/// `azp` of user tokens issued by `POST /admin/user-token` without a `client_id`: the
/// public client (a browser app) the user signed in to.
pub const USER_AGENT_CLIENT_ID: &str = "tokenbench-user-agent";
/// Longest user name accepted by the admin endpoints.
const MAX_USER_LEN: usize = 256;
/// Scopes of OpenID Connect itself, not of a resource.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A user's grant to a client: who, on which resource, with which delegated permissions.
#[derive(Clone, Debug)]
pub(super) struct Delegation {
    /// The user's name (`preferred_username`).
    user: String,
    /// The user's object id (`oid`): the same in every token for them, whatever the client.
    oid: String,
    resource: String,
    /// Delegated permissions (`scp`) on `resource`.
    scopes: Vec<String>,
    /// Whether `offline_access` was granted: a refresh token comes with the token.
    offline: bool,
}

impl Delegation {
    fn new(tenant: &str, user: &str, requested: RequestedScopes) -> Self {
        Delegation {
            user: user.to_owned(),
            oid: user_oid(tenant, user),
            resource: requested.resource,
            scopes: requested.scopes,
            offline: requested.offline,
        }
    }

    pub(super) fn offline(&self) -> bool {
        self.offline
    }

    /// The user's claims in a token for `resource`: `oid`, a pairwise `sub`,
    /// `preferred_username` and `scp`.
    pub(super) fn add_claims(&self, claims: &mut Value, resource: &str) {
        claims["oid"] = json!(self.oid);
        claims["sub"] = json!(pairwise_sub(&self.oid, resource));
        claims["preferred_username"] = json!(self.user);
        claims["scp"] = json!(self.scopes.join(" "));
    }

    /// The response's `scope`: the permissions as `resource/name`, and `offline_access`.
    fn granted_scope(&self) -> String {
        let mut scope: Vec<String> = self
            .scopes
            .iter()
            .map(|s| format!("{}/{s}", self.resource))
            .collect();
        if self.offline {
            scope.push("offline_access".to_owned());
        }
        scope.join(" ")
    }
}

/// A user's object id: a UUID derived from the tenant and user name, so that a user has one
/// `oid` across tokens, clients and restarts.
pub fn user_oid(tenant: &str, user: &str) -> String {
    let hash = digest(&["oid", tenant, user]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// `sub` as Entra issues it: pairwise, different for each application the token is for.
pub fn pairwise_sub(oid: &str, resource: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&["sub", oid, resource]))
}

/// What a delegated request's `scope` asks for, checked against the client's consent.
struct RequestedScopes {
    resource: String,
    scopes: Vec<String>,
    offline: bool,
    /// Asked as `resource/.default`: whatever is consented (on a redemption, whatever of it
    /// was granted).
    default: bool,
}

impl IdentityProvider {
    /// Answers a token request of a delegated grant for `client`.
    pub(super) fn delegated_token(
        &self,
        client: &Client,
        grant: DelegatedGrant,
        credentials: &ClientCredentials,
        tenant: &str,
        now_ms: u64,
    ) -> Result<Issued, OAuthRejection> {
        let now = now_ms / 1000;
        let holder = Holder {
            client_id: &client.registration.client_id,
            tenant,
        };
        // Everything that spends nothing is checked before the client's credentials (which
        // spend an assertion's jti), and those before the code or refresh token is spent.
        let (delegation, refresh_token, via_certificate) = match grant {
            DelegatedGrant::OnBehalfOf { assertion, scope } => {
                let requested = self.requested_scopes(client, &scope)?;
                let (user, oid) = self.check_user_assertion(client, &assertion, tenant, now)?;
                let via_certificate = self.authenticate(client, credentials, tenant, now_ms)?;
                let mut delegation = Delegation::new(tenant, &user, requested);
                delegation.oid = oid;
                let refresh_token = if delegation.offline {
                    Some(
                        self.grants
                            .issue_refresh_token(holder, delegation.clone(), now)?
                            .0,
                    )
                } else {
                    None
                };
                (delegation, refresh_token, via_certificate)
            }
            DelegatedGrant::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                scope,
            } => {
                let requested = scope
                    .map(|s| self.requested_scopes(client, &s))
                    .transpose()?;
                let via_certificate = self.authenticate(client, credentials, tenant, now_ms)?;
                let (granted, refresh_token) = self.grants.redeem_code(
                    &code,
                    holder,
                    &redirect_uri,
                    code_verifier.as_deref(),
                    |granted| within(granted, requested.as_ref()),
                    now,
                )?;
                (narrowed(granted, requested), refresh_token, via_certificate)
            }
            DelegatedGrant::RefreshToken {
                refresh_token,
                scope,
            } => {
                let requested = scope
                    .map(|s| self.requested_scopes(client, &s))
                    .transpose()?;
                let via_certificate = self.authenticate(client, credentials, tenant, now_ms)?;
                let (granted, rotated) = self.grants.rotate_refresh_token(
                    &refresh_token,
                    holder,
                    |granted| within(granted, requested.as_ref()),
                    now,
                )?;
                (narrowed(granted, requested), Some(rotated), via_certificate)
            }
        };
        let mut issued = self.issue(
            &TokenFor {
                principal: Principal::User(&delegation),
                azp: &client.registration.client_id,
                azpacr: azpacr(via_certificate),
                resource: &delegation.resource,
            },
            tenant,
            now_ms,
        )?;
        issued.scope = Some(delegation.granted_scope());
        issued.refresh_token = refresh_token;
        Ok(issued)
    }

    /// Checks an on-behalf-of assertion: an unexpired user access token of this provider
    /// and tenant, signed under its current key, for `client` (`aud` its id or
    /// `api://{id}`). Returns the user's name and `oid`.
    fn check_user_assertion(
        &self,
        client: &Client,
        assertion: &str,
        tenant: &str,
        now: u64,
    ) -> Result<(String, String), OAuthRejection> {
        let invalid = |reason: &str| {
            OAuthRejection::invalid_grant(
                Some(50013),
                format!("Assertion failed validation: {reason}."),
            )
        };
        let jws = Jws::parse(assertion).map_err(|e| invalid(&format!("malformed ({e})")))?;
        let key = self.current_key();
        if jws.algorithm() != Algorithm::Rs256 || jws.header().kid.as_deref() != Some(&key.kid) {
            return Err(invalid("it was not signed by this provider's current key"));
        }
        let claims: Value = jws
            .verify_claims(key.verifier.as_ref())
            .map_err(|_| invalid("its signature does not verify"))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(self.issuer(tenant).as_str()) {
            return Err(invalid("it was issued by another tenant or provider"));
        }
        let client_id = client.registration.client_id.as_str();
        let aud = text("aud").unwrap_or_default();
        if aud != client_id && aud.strip_prefix("api://") != Some(client_id) {
            return Err(invalid(
                "its audience is not the client app presenting it (aud must be the client id or api://{client id})",
            ));
        }
        let time = |name: &str| claims.get(name).and_then(Value::as_f64).map(|t| t as u64);
        let exp = time("exp").ok_or_else(|| invalid("it has no exp"))?;
        let nbf = time("nbf").unwrap_or(0);
        if exp.saturating_add(self.skew_secs) <= now || nbf > now.saturating_add(self.skew_secs) {
            return Err(OAuthRejection::invalid_grant(
                Some(500133),
                format!("Assertion is not within its valid time range. Current time: {now}, expiry time of assertion {exp}."),
            ));
        }
        match (text("scp"), text("preferred_username"), text("oid")) {
            (Some(_), Some(user), Some(oid)) => Ok((user.to_owned(), oid.to_owned())),
            _ => Err(invalid(
                "it is not a user's access token (an app-only token has no scp, preferred_username and oid)",
            )),
        }
    }

    /// Parses a delegated `scope`: permissions of one resource (`resource/name`, or
    /// `resource/.default` for all the client is consented to), plus OpenID Connect scopes.
    fn requested_scopes(
        &self,
        client: &Client,
        scope: &str,
    ) -> Result<RequestedScopes, OAuthRejection> {
        let invalid = |reason: String| {
            OAuthRejection::invalid_scope(
                Some(70011),
                format!(
                    "The provided value for the input parameter 'scope' is not valid: {reason}."
                ),
            )
        };
        let mut offline = false;
        let mut resource: Option<&str> = None;
        let mut names = Vec::new();
        for item in scope.split_whitespace() {
            if OIDC_SCOPES.contains(&item) {
                offline |= item == "offline_access";
                continue;
            }
            let (item_resource, name) = item
                .rsplit_once('/')
                .filter(|(r, n)| !r.is_empty() && !n.is_empty())
                .ok_or_else(|| {
                    invalid(format!("'{}' is not resource/permission", truncate(item)))
                })?;
            if resource.is_some_and(|r| r != item_resource) {
                return Err(OAuthRejection::invalid_scope(
                    Some(28000),
                    "The provided value for the input parameter scope is not valid because it contains more than one resource.",
                ));
            }
            resource = Some(item_resource);
            names.push(name);
        }
        let resource = resource.ok_or_else(|| invalid("it names no resource".to_owned()))?;
        let resource = self.registered_resource(resource)?;
        let consented = client
            .registration
            .delegated_scopes
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let not_consented = |what: &str| {
            OAuthRejection::invalid_grant(
                Some(65001),
                format!("The user or administrator has not consented to use the application with ID '{}' for {what}.", client.registration.client_id),
            )
        };
        let scopes: Vec<String> = if names.contains(&".default") {
            if names.len() > 1 {
                return Err(invalid(
                    "/.default cannot be combined with other permissions".to_owned(),
                ));
            }
            if consented.is_empty() {
                return Err(not_consented(resource));
            }
            consented.to_vec()
        } else {
            for name in &names {
                if !consented.iter().any(|c| c == name) {
                    return Err(not_consented(&format!("{resource}/{}", truncate(name))));
                }
            }
            names.iter().map(|n| (*n).to_owned()).collect()
        };
        Ok(RequestedScopes {
            default: names.contains(&".default"),
            resource: resource.to_owned(),
            scopes,
            offline,
        })
    }

    /// `POST /admin/user-token`: a user's access token, as if the user had signed in to a
    /// public client (`azpacr` "0"). Form: `user`, `audience` (`aud`: the client app the
    /// token is for), `scope` (space-separated permissions, its `scp`); optional
    /// `client_id` (`azp`, by default [`USER_AGENT_CLIENT_ID`]) and `tenant` (by default the
    /// first).
    pub fn admin_user_token(&self, body: &[u8]) -> Response<Bytes> {
        let now_ms = self.clock.now_ms();
        let result = (|| {
            let mut fields = Fields::parse(body)?;
            let user = user_field(&mut fields)?;
            let audience = fields.required("audience")?;
            let scope = fields.required("scope")?;
            let azp = fields
                .optional("client_id")
                .unwrap_or_else(|| USER_AGENT_CLIENT_ID.to_owned());
            let tenant = self.tenant_field(&mut fields)?;
            let delegation = Delegation::new(
                &tenant,
                &user,
                RequestedScopes {
                    resource: audience.clone(),
                    scopes: scope.split_whitespace().map(str::to_owned).collect(),
                    offline: false,
                    default: false,
                },
            );
            let issued = self.issue(
                &TokenFor {
                    principal: Principal::User(&delegation),
                    azp: &azp,
                    azpacr: "0",
                    resource: &audience,
                },
                &tenant,
                now_ms,
            )?;
            Ok::<_, OAuthRejection>(json!({
                "token_type": "Bearer",
                "access_token": issued.access_token,
                "expires_in": issued.lifetime_secs,
                "oid": delegation.oid,
            }))
        })();
        match result {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(rejection) => rejection.to_response(),
        }
    }

    /// `POST /admin/authorize`: an authorization code, as the authorize endpoint would
    /// redirect with once the user signed in and consented. Form: `user`, `client_id`,
    /// `redirect_uri` (one the client registered); optional `code_challenge` with
    /// `code_challenge_method` (`S256` or `plain`, the default as in RFC 7636), `scope`
    /// (by default `{first resource}/.default offline_access`) and `tenant`.
    pub fn admin_authorize(&self, body: &[u8]) -> Response<Bytes> {
        let now = self.clock.now_secs();
        let result = (|| {
            let mut fields = Fields::parse(body)?;
            let user = user_field(&mut fields)?;
            let client_id = fields.required("client_id")?;
            let redirect_uri = fields.required("redirect_uri")?;
            let tenant = self.tenant_field(&mut fields)?;
            let client = self
                .clients
                .get(&client_id)
                .ok_or_else(|| unknown_client(&client_id, &tenant))?;
            if !client.registration.redirect_uris.contains(&redirect_uri) {
                return Err(OAuthRejection::invalid_request(
                    Some(50011),
                    format!("The redirect URI '{}' specified in the request does not match the redirect URIs configured for the application '{client_id}'.", truncate(&redirect_uri)),
                ));
            }
            let challenge = match (
                fields.optional("code_challenge"),
                fields.optional("code_challenge_method"),
            ) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(OAuthRejection::invalid_request(
                        None,
                        "code_challenge_method without a code_challenge.",
                    ))
                }
                (Some(challenge), method) => {
                    if !is_pkce_value(&challenge) {
                        return Err(OAuthRejection::invalid_request(
                            None,
                            "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~.",
                        ));
                    }
                    match method.as_deref() {
                        None | Some("plain") => Some(CodeChallenge::Plain(challenge)),
                        Some("S256") => Some(CodeChallenge::S256(challenge)),
                        Some(other) => {
                            return Err(OAuthRejection::invalid_request(
                                None,
                                format!(
                                    "code_challenge_method must be S256 or plain, not '{}'.",
                                    truncate(other)
                                ),
                            ))
                        }
                    }
                }
            };
            let scope = fields.optional("scope").unwrap_or_else(|| {
                format!(
                    "{}/.default offline_access",
                    self.resources.first().map_or("", String::as_str)
                )
            });
            let requested = self.requested_scopes(client, &scope)?;
            let delegation = Delegation::new(&tenant, &user, requested);
            let holder = Holder {
                client_id: &client_id,
                tenant: &tenant,
            };
            let code = self
                .grants
                .issue_code(holder, &redirect_uri, challenge, delegation, now)?;
            Ok(json!({
                "code": code,
                "expires_in": super::grants::CODE_LIFETIME_SECS,
            }))
        })();
        match result {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(rejection) => rejection.to_response(),
        }
    }

    /// The form's `tenant`, one this provider serves; the first when absent.
    fn tenant_field(&self, fields: &mut Fields) -> Result<String, OAuthRejection> {
        match fields.optional("tenant") {
            None => Ok(self.tenants[0].clone()),
            Some(tenant) if self.tenants.contains(&tenant) => Ok(tenant),
            Some(tenant) => Err(unknown_tenant(&tenant)),
        }
    }
}

/// The form's `user`: a name of at most [`MAX_USER_LEN`] bytes.
fn user_field(fields: &mut Fields) -> Result<String, OAuthRejection> {
    let user = fields.required("user")?;
    if user.len() > MAX_USER_LEN {
        return Err(OAuthRejection::invalid_request(
            None,
            format!("user must be at most {MAX_USER_LEN} bytes."),
        ));
    }
    Ok(user)
}

/// Refuses a request whose scopes go beyond what its code or refresh token granted: the
/// same resource and some of the permissions granted, never more (RFC 6749 §6). (The
/// client's consent to them was checked already.)
fn within(granted: &Delegation, requested: Option<&RequestedScopes>) -> Result<(), OAuthRejection> {
    let Some(requested) = requested else {
        return Ok(());
    };
    // `.default` asks for nothing beyond the grant: what of it is still consented.
    if requested.resource == granted.resource
        && (requested.default || requested.scopes.iter().all(|s| granted.scopes.contains(s)))
    {
        return Ok(());
    }
    Err(OAuthRejection::invalid_scope(
        Some(70011),
        "The provided value for the input parameter 'scope' is not valid: it asks for more than the code or refresh token granted.",
    ))
}

/// The delegation a code or refresh token granted, narrowed to the permissions a request
/// names (which [`within`] accepted); for `.default`, to those granted and still consented.
fn narrowed(granted: Delegation, requested: Option<RequestedScopes>) -> Delegation {
    match requested {
        None => granted,
        Some(requested) if requested.default => {
            let scopes = granted
                .scopes
                .iter()
                .filter(|s| requested.scopes.contains(s))
                .cloned()
                .collect();
            Delegation { scopes, ..granted }
        }
        Some(requested) => Delegation {
            scopes: requested.scopes,
            ..granted
        },
    }
}
