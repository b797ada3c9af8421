//! Client authentication at the token endpoint: a certificate-signed assertion (checked as
//! Entra checks it, its `jti` spent once) or a client secret.

use serde_json::Value;
use signer::{jws::Jws, CLIENT_ASSERTION_TYPE};

use super::{Client, IdentityProvider, MAX_ASSERTION_LIFETIME_SECS, MAX_REMEMBERED_JTIS};
use crate::{
    expiring::digest,
    http_util::{truncate, OAuthRejection},
    token_form::ClientCredentials,
};

impl IdentityProvider {
    /// Authenticates `client` by the request's credentials; returns whether it used a
    /// certificate (`azpacr` "2") rather than a secret ("1").
    pub(super) fn authenticate(
        &self,
        client: &Client,
        credentials: &ClientCredentials,
        tenant: &str,
        now_ms: u64,
    ) -> Result<bool, OAuthRejection> {
        match (&credentials.client_assertion, &credentials.client_secret) {
            (Some(assertion), None) => {
                if credentials.client_assertion_type.as_deref() != Some(CLIENT_ASSERTION_TYPE) {
                    return Err(OAuthRejection::invalid_request(
                        None,
                        format!("client_assertion_type must be '{CLIENT_ASSERTION_TYPE}'."),
                    ));
                }
                self.check_assertion(client, assertion, tenant, now_ms / 1000)?;
                Ok(true)
            }
            (None, Some(secret)) => {
                let expected = client.registration.secret.as_deref().unwrap_or_default();
                if client.registration.secret.is_none() || !constant_time_eq(secret.as_bytes(), expected.as_bytes()) {
                    return Err(OAuthRejection::invalid_client(Some(7000215), "Invalid client secret provided."));
                }
                Ok(false)
            }
            (Some(_), Some(_)) => Err(OAuthRejection::invalid_request(
                None,
                "Only one client authentication method may be used: client_assertion or client_secret.",
            )),
            (None, None) => Err(OAuthRejection::invalid_client(
                Some(7000218),
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )),
        }
    }

    /// Validates a client assertion as Entra does; the `jti` is spent only once the rest holds.
    fn check_assertion(
        &self,
        client: &Client,
        assertion: &str,
        tenant: &str,
        now: u64,
    ) -> Result<(), OAuthRejection> {
        let malformed = |reason: String| {
            OAuthRejection::invalid_request(
                Some(50027),
                format!("JWT token is invalid or malformed: {reason}."),
            )
        };
        let jws = Jws::parse(assertion).map_err(|e| match e {
            signer::jws::JwsError::AlgorithmNotAllowed { alg } => OAuthRejection::invalid_client(
                Some(5002738),
                format!(
                    "Invalid JWT token. '{}' is not a supported signature algorithm.",
                    truncate(&alg)
                ),
            ),
            other => malformed(other.to_string()),
        })?;
        let alg = jws.algorithm();
        if !alg.is_rsa() && !client.registration.extra_algorithms.contains(&alg) {
            return Err(OAuthRejection::invalid_client(
                Some(5002738),
                format!("Invalid JWT token. '{alg}' is not enabled for this application."),
            ));
        }
        let header = jws.header();
        let certificate = client
            .certificates
            .iter()
            .find(|c| match (&header.x5t_s256, &header.x5t) {
                (Some(s256), _) => *s256 == c.x5t_s256,
                (None, Some(sha1)) => *sha1 == c.x5t,
                (None, None) => false,
            })
            .ok_or_else(|| {
                let id = truncate(header.x5t_s256.as_deref().or(header.x5t.as_deref()).unwrap_or("<none>"));
                OAuthRejection::invalid_client(
                    Some(700027),
                    format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{id}']"),
                )
            })?;
        let verifier = certificate
            .verifiers
            .iter()
            .find(|v| v.algorithm() == alg)
            .ok_or_else(|| {
                OAuthRejection::invalid_client(
                    Some(700027),
                    format!("The certificate's key cannot verify {alg} signatures."),
                )
            })?;
        let payload = jws.verify(verifier.as_ref()).map_err(|e| match e {
            signer::jws::JwsError::BadSignature { .. } => OAuthRejection::invalid_client(
                Some(700027),
                "Client assertion failed signature validation.",
            ),
            other => malformed(other.to_string()),
        })?;
        let claims: Value = serde_json::from_slice(payload)
            .map_err(|e| malformed(format!("payload is not JSON: {e}")))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        // A NumericDate claim: `Ok(None)` when absent; present but not a number ≥ 0 is malformed.
        let time = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .map(|t| Some(t as u64))
                .ok_or_else(|| malformed(format!("{name} claim is not a NumericDate"))),
        };

        let expected_aud = self.token_url(tenant);
        if text("aud") != Some(expected_aud.as_str()) {
            return Err(OAuthRejection::invalid_client(
                Some(700023),
                format!("Client assertion audience claim does not match Realm issuer. Expected '{expected_aud}'."),
            ));
        }
        let (iss, sub) = (text("iss"), text("sub"));
        if iss.is_none() || iss != sub {
            return Err(OAuthRejection::invalid_client(
                Some(700021),
                "Client assertion iss and sub claims must both be the client id.",
            ));
        }
        if iss != Some(client.registration.client_id.as_str()) {
            return Err(OAuthRejection::invalid_client(
                Some(700021),
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            ));
        }
        let exp = time("exp")?.ok_or_else(|| malformed("exp claim missing".to_owned()))?;
        let nbf = time("nbf")?;
        let iat = time("iat")?;
        // Within the skew each time may be a little off, but never after `exp`: an assertion
        // whose `nbf` or `iat` is not before its `exp` is valid at no time.
        let out_of_range = exp.saturating_add(self.skew_secs) <= now
            || [nbf, iat]
                .iter()
                .flatten()
                .any(|t| *t > now.saturating_add(self.skew_secs) || *t >= exp);
        if out_of_range {
            return Err(OAuthRejection::invalid_client(
                Some(700024),
                format!("Client assertion is not within its valid time range. Current time: {now}, assertion valid from {}, expiry time of assertion {exp}.", nbf.or(iat).unwrap_or(0)),
            ));
        }
        if exp > now.saturating_add(MAX_ASSERTION_LIFETIME_SECS) {
            return Err(OAuthRejection::invalid_client(
                Some(700024),
                "Client assertion lifetime exceeds the allowed maximum of one day.",
            ));
        }
        let jti = text("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| malformed("jti claim missing, empty or over 256 bytes".to_owned()))?;
        self.spend_jti(&client.registration.client_id, jti, exp, now)
    }

    /// Remembers `jti` until `exp` (plus skew); refuses one already spent.
    fn spend_jti(
        &self,
        client_id: &str,
        jti: &str,
        exp: u64,
        now: u64,
    ) -> Result<(), OAuthRejection> {
        let key = digest(&[client_id, jti]);
        let mut used = self.used_jtis.lock().unwrap_or_else(|p| p.into_inner());
        used.drop_expired(now);
        if used.contains(&key) {
            return Err(OAuthRejection::invalid_client(
                None,
                "The client assertion has already been used (replayed jti).",
            ));
        }
        if used.len() >= MAX_REMEMBERED_JTIS {
            return Err(OAuthRejection::store_full("client assertions"));
        }
        used.insert(key, exp.saturating_add(self.skew_secs), ());
        Ok(())
    }
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
