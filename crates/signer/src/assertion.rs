//! JWT client assertions of the Entra ID profile (RFC 7523 `private_key_jwt`).

use std::{
    borrow::Cow,
    fmt::Write as _,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    encoding::{append_b64url, b64url},
    Algorithm, Certificate, Credential, Error, SigningKey, Thumbprint,
};

/// The RFC 7523 `client_assertion_type` that goes with the assertions this crate builds.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Assertion lifetime when none is set: 600 s, as MSAL uses.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// The claims of a client assertion, in the order they are written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims<'a> {
    /// The token endpoint URL (or whatever audience the provider wants).
    pub aud: Cow<'a, str>,
    /// The client id.
    pub iss: Cow<'a, str>,
    /// The client id again.
    pub sub: Cow<'a, str>,
    /// A fresh UUID v4 per assertion.
    pub jti: Cow<'a, str>,
    /// Not before: issue time, seconds since the epoch.
    pub nbf: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry: issue time plus the lifetime.
    pub exp: u64,
}

/// Builds signed client assertions for one credential, client id and audience.
///
/// The header is encoded once, at construction; each [`build`](Self::build) only writes the
/// claims, encodes them and signs.
///
/// Header: `{"alg":"PS256","typ":"JWT","x5t#S256":…}` by default; RS256 carries `x5t`
/// (Entra's legacy profile); ES256 and EdDSA carry `x5t#S256`.
#[derive(Clone)]
pub struct AssertionBuilder {
    key: Arc<dyn SigningKey>,
    certificate: Certificate,
    encoded_header: String,
    client_id: String,
    audience: String,
    /// `{"aud":…,"iss":…,"sub":…,"jti":"` with the strings JSON-escaped once.
    claims_prefix: String,
    lifetime_secs: u64,
}

impl std::fmt::Debug for AssertionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionBuilder")
            .field("key", &self.key)
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl AssertionBuilder {
    /// A builder for `credential`'s algorithm, with `iss` = `sub` = `client_id` and `aud` =
    /// `audience`, lifetime [`DEFAULT_LIFETIME`].
    pub fn new(
        credential: &Credential,
        client_id: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        let thumbprint = match credential.algorithm() {
            Algorithm::Rs256 => Thumbprint::X5t,
            Algorithm::Ps256 | Algorithm::Es256 | Algorithm::EdDsa => Thumbprint::X5tS256,
        };
        let (client_id, audience) = (client_id.into(), audience.into());
        let client_json = serde_json::Value::from(client_id.as_str()).to_string();
        let claims_prefix = format!(
            r#"{{"aud":{},"iss":{client_json},"sub":{client_json},"jti":""#,
            serde_json::Value::from(audience.as_str())
        );
        let mut builder = AssertionBuilder {
            key: Arc::clone(credential.signing_key()),
            certificate: credential.certificate().clone(),
            encoded_header: String::new(),
            client_id,
            audience,
            claims_prefix,
            lifetime_secs: DEFAULT_LIFETIME.as_secs(),
        };
        builder.encode_header(thumbprint);
        builder
    }

    /// Sets the lifetime (`exp - iat`), in whole seconds.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime_secs = lifetime.as_secs();
        self
    }

    /// Puts this thumbprint in the header instead of the algorithm's default.
    pub fn with_thumbprint(mut self, thumbprint: Thumbprint) -> Self {
        self.encode_header(thumbprint);
        self
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// Builds and signs an assertion issued now, with a fresh `jti`.
    pub fn build(&self) -> Result<String, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.build_issued_at(now)
    }

    /// Builds and signs an assertion issued at `issued_at` (seconds since the epoch: a
    /// simulation's virtual clock) with a fresh `jti`.
    pub fn build_issued_at(&self, issued_at: u64) -> Result<String, Error> {
        self.build_at(issued_at, Uuid::new_v4())
    }

    /// Builds and signs an assertion issued at `issued_at` (seconds since the epoch) with `jti`.
    pub fn build_at(&self, issued_at: u64, jti: Uuid) -> Result<String, Error> {
        let exp = issued_at.saturating_add(self.lifetime_secs);
        let mut payload = String::with_capacity(self.claims_prefix.len() + 100);
        payload.push_str(&self.claims_prefix);
        // Writing to a String cannot fail.
        let _ = write!(
            payload,
            r#"{}","nbf":{issued_at},"iat":{issued_at},"exp":{exp}}}"#,
            jti.hyphenated()
        );
        // header '.' payload '.' signature; base64url grows by 4/3; 700 covers RSA-4096.
        let mut jws =
            String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 2 + 700);
        jws.push_str(&self.encoded_header);
        jws.push('.');
        append_b64url(payload.as_bytes(), &mut jws);
        let signature = self.key.sign(jws.as_bytes())?;
        jws.push('.');
        append_b64url(&signature, &mut jws);
        Ok(jws)
    }

    fn encode_header(&mut self, thumbprint: Thumbprint) {
        // serde_json's map keeps keys sorted (or in insertion order with `preserve_order`):
        // either way alg, typ, then the thumbprint.
        let header = serde_json::json!({
            "alg": self.key.algorithm().as_str(),
            "typ": "JWT",
            thumbprint.header_name(): self.certificate.thumbprint(thumbprint),
        });
        self.encoded_header = b64url(header.to_string().as_bytes());
    }
}
