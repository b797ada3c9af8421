use std::{path::Path, sync::Arc};

use crate::{
    pkcs12::is_pkcs12, source::read_file, Algorithm, Certificate, CryptoBackend, Error, PrivateKey,
    SigningKey,
};

/// A private key loaded into a backend for one algorithm, together with its certificate.
///
/// Construction checks that the certificate's public key is the private key's, and that a
/// test signature verifies under it, so an assertion built from a `Credential` always names
/// the certificate that verifies it.
#[derive(Clone, Debug)]
pub struct Credential {
    key: Arc<dyn SigningKey>,
    certificate: Certificate,
}

impl Credential {
    /// Loads `key` into `backend` for `alg` (default: the key kind's default, PS256 for RSA)
    /// and pairs it with `certificate`.
    pub fn new(
        backend: &dyn CryptoBackend,
        key: &PrivateKey,
        certificate: Certificate,
        alg: Option<Algorithm>,
    ) -> Result<Self, Error> {
        Self::with_matching_certificate(backend, key, vec![certificate], alg)
    }

    /// Loads a key file and a certificate file. `key_path` may also be a PKCS#12 (.pfx/.p12)
    /// bundle, opened with `password`; its certificate is used unless `cert_path` is given.
    pub fn load(
        backend: &dyn CryptoBackend,
        key_path: &Path,
        cert_path: Option<&Path>,
        password: Option<&str>,
        alg: Option<Algorithm>,
    ) -> Result<Self, Error> {
        let origin = key_path.display().to_string();
        let bytes = zeroize::Zeroizing::new(read_file(key_path)?);
        let (key, bundled) = if is_pkcs12(&bytes) {
            PrivateKey::from_pkcs12(&bytes, &origin, password)?
        } else {
            (
                PrivateKey::from_bytes(&bytes, &origin, password)?,
                Vec::new(),
            )
        };
        let candidates = match cert_path {
            Some(path) => vec![Certificate::load(path)?],
            None if bundled.is_empty() => {
                return Err(Error::InvalidCertificate {
                    origin,
                    reason: "no certificate given, and the key file is not a PKCS#12 bundle"
                        .to_owned(),
                })
            }
            None => bundled,
        };
        Self::with_matching_certificate(backend, &key, candidates, alg)
    }

    /// Loads the key, then takes the first candidate certificate whose public key is the key's.
    fn with_matching_certificate(
        backend: &dyn CryptoBackend,
        key: &PrivateKey,
        candidates: Vec<Certificate>,
        alg: Option<Algorithm>,
    ) -> Result<Self, Error> {
        let alg = alg.unwrap_or_else(|| key.kind().default_algorithm());
        let signing_key = backend.load_signing_key(key, alg)?;
        let public_key = signing_key.public_key();
        let first_origin = candidates
            .first()
            .map(|c| c.origin().to_owned())
            .unwrap_or_default();
        let certificate = candidates
            .into_iter()
            .find(|c| *c.public_key() == public_key)
            .ok_or_else(|| Error::KeyCertificateMismatch {
                key: key.origin().to_owned(),
                certificate: first_origin,
            })?;
        self_test(backend, signing_key.as_ref(), &certificate, key.origin())?;
        Ok(Credential {
            key: Arc::from(signing_key),
            certificate,
        })
    }

    /// The loaded signing key.
    pub fn signing_key(&self) -> &Arc<dyn SigningKey> {
        &self.key
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The algorithm every signature uses.
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }
}

/// One signature, verified under the certificate: a key whose private components disagree
/// with its public ones (a corrupted RSA CRT parameter, say) parses and matches its
/// certificate, and then signs nothing the identity provider accepts — or nothing at all.
/// Found here, the error names the key before any run starts.
fn self_test(
    backend: &dyn CryptoBackend,
    signing_key: &dyn SigningKey,
    certificate: &Certificate,
    origin: &str,
) -> Result<(), Error> {
    const MESSAGE: &[u8] = b"tokenbench key self-test";
    let inconsistent = |detail: String| Error::KeyRejected {
        backend: backend.name(),
        origin: origin.to_owned(),
        reason: format!("its private and public components are inconsistent ({detail})"),
    };
    let signature = signing_key
        .sign(MESSAGE)
        .map_err(|e| inconsistent(format!("signing failed: {e}")))?;
    backend
        .load_verifying_key(certificate.public_key(), signing_key.algorithm())?
        .verify(MESSAGE, &signature)
        .map_err(|_| inconsistent("its signature does not verify under its public key".to_owned()))
}
