//! Compact JWS parsing and verification (RFC 7515), for the algorithms of this crate only.
//!
//! The allowlist is closed: `none`, HMAC and anything else unknown are refused at parse
//! time, and a signature is only checked with a key loaded for the header's algorithm.
//!
//! ```
//! # use signer::{backend, keygen, jws::Jws, AssertionBuilder, AssertionClaims, Certificate, Credential, KeySpec, PrivateKey};
//! # let generated = keygen::generate(KeySpec::Rsa2048, "example", 1)?;
//! # let key = PrivateKey::from_bytes(generated.key_pem.as_bytes(), "key.pem", None)?;
//! # let cert = Certificate::from_bytes(generated.cert_pem.as_bytes(), "cert.pem")?;
//! # let backend = backend::default_backend();
//! # let credential = Credential::new(backend, &key, cert.clone(), None)?;
//! # let token = AssertionBuilder::new(&credential, "client", "https://idp/token").build()?;
//! let jws = Jws::parse(&token)?;
//! // Pick the certificate named by the header's thumbprint, then verify with its key.
//! assert_eq!(jws.header().x5t_s256.as_deref(), Some(cert.thumbprint(signer::Thumbprint::X5tS256)));
//! let verifier = backend.load_verifying_key(cert.public_key(), jws.algorithm())?;
//! let claims: AssertionClaims = jws.verify_claims(verifier.as_ref())?;
//! assert_eq!(claims.iss, "client");
//! # Ok::<(), signer::Error>(())
//! ```

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{encoding::decode_b64url, Algorithm, Certificate, CryptoBackend, Error, VerifyingKey};

/// The longest compact JWS accepted, in bytes: bounds the work hostile input can cause.
pub const MAX_COMPACT_LEN: usize = 16 * 1024;

/// Why a compact JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Longer than [`MAX_COMPACT_LEN`].
    #[error("JWS of {len} bytes is longer than the {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not `header.payload.signature`, or a part that does not decode.
    #[error("malformed JWS {part}: {reason}")]
    Malformed {
        /// Which part (`structure`, `header`, `payload`, `signature`).
        part: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An `alg` outside the allowlist (`none`, HMAC, unknown names).
    #[error("JWS algorithm {alg:?} is not allowed; allowed: PS256, RS256, ES256, EdDSA")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// A `crit` header: no extension is understood, so RFC 7515 §4.1.11 requires refusal.
    #[error("JWS header lists critical extensions {0:?}, none of which is supported")]
    CriticalExtension(Vec<String>),
    /// The key given is for another algorithm than the header's.
    #[error("JWS header says {header} but the key is for {key}")]
    AlgorithmMismatch {
        /// The header's algorithm.
        header: Algorithm,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// The signature does not verify.
    #[error("JWS {alg} signature does not verify")]
    BadSignature {
        /// The algorithm.
        alg: Algorithm,
    },
}

/// A JOSE header: the parameters this project reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The algorithm name.
    pub alg: String,
    /// The media type, `JWT` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Key id (provider-signed access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Base64url SHA-1 certificate thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
    /// Base64url SHA-256 certificate thumbprint.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    /// Critical extensions; any is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Vec<String>>,
}

/// A parsed, not yet verified, compact JWS. Its `Debug` shows the header only: the whole
/// token is a credential.
#[derive(Clone)]
pub struct Jws<'a> {
    signing_input: &'a str,
    payload: Vec<u8>,
    header: Header,
    alg: Algorithm,
    signature: Vec<u8>,
}

impl std::fmt::Debug for Jws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<'a> Jws<'a> {
    /// Splits and decodes `compact`; checks its size, structure, encoding and algorithm
    /// allowlist, so that malformed input is refused before any signature work.
    pub fn parse(compact: &'a str) -> Result<Self, JwsError> {
        if compact.len() > MAX_COMPACT_LEN {
            return Err(JwsError::TooLong {
                len: compact.len(),
                max: MAX_COMPACT_LEN,
            });
        }
        let malformed = |part, reason: String| JwsError::Malformed { part, reason };
        let mut parts = compact.split('.');
        let (Some(header_b64), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(
                "structure",
                "expected three base64url parts separated by dots".to_owned(),
            ));
        };
        let header_json =
            decode_b64url(header_b64).map_err(|e| malformed("header", e.to_string()))?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|e| malformed("header", e.to_string()))?;
        if let Some(crit) = &header.crit {
            return Err(JwsError::CriticalExtension(crit.clone()));
        }
        let alg = Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == header.alg)
            .ok_or_else(|| JwsError::AlgorithmNotAllowed {
                alg: header.alg.clone(),
            })?;
        let payload_json =
            decode_b64url(payload).map_err(|e| malformed("payload", e.to_string()))?;
        let signature =
            decode_b64url(signature).map_err(|e| malformed("signature", e.to_string()))?;
        if signature.is_empty() {
            return Err(malformed("signature", "empty".to_owned()));
        }
        Ok(Jws {
            signing_input: &compact[..header_b64.len() + 1 + payload.len()],
            payload: payload_json,
            header,
            alg,
            signature,
        })
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The header's algorithm (always one of the allowlist).
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Verifies the signature with `key`; returns the decoded payload.
    pub fn verify(&self, key: &dyn VerifyingKey) -> Result<&[u8], JwsError> {
        if key.algorithm() != self.alg {
            return Err(JwsError::AlgorithmMismatch {
                header: self.alg,
                key: key.algorithm(),
            });
        }
        key.verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JwsError::BadSignature { alg: self.alg })?;
        Ok(&self.payload)
    }

    /// Verifies the signature with `key`; returns the payload parsed as JSON into `T`.
    pub fn verify_claims<T: DeserializeOwned>(
        &self,
        key: &dyn VerifyingKey,
    ) -> Result<T, JwsError> {
        let payload = self.verify(key)?;
        serde_json::from_slice(payload).map_err(|e| JwsError::Malformed {
            part: "payload",
            reason: e.to_string(),
        })
    }
}

/// Parses `compact` and verifies it with `certificate`'s public key through `backend`;
/// returns the decoded payload.
pub fn verify_with_certificate(
    compact: &str,
    certificate: &Certificate,
    backend: &dyn CryptoBackend,
) -> Result<Vec<u8>, Error> {
    let jws = Jws::parse(compact)?;
    let key = backend.load_verifying_key(certificate.public_key(), jws.algorithm())?;
    Ok(jws.verify(key.as_ref())?.to_vec())
}
