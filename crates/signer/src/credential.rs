use std::{path::Path, sync::Arc};

use crate::{
    cert::{is_pkcs12, open_pkcs12},
    key::read_file,
    Algorithm, Certificate, CryptoBackend, Error, PrivateKey, SigningKey,
};

/// A private key loaded into a backend for one algorithm, together with its certificate.
///
/// Construction checks that the certificate's public key is the private key's, so an
/// assertion built from a `Credential` always names the certificate that verifies it.
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
        let alg = alg.unwrap_or_else(|| key.kind().default_algorithm());
        let signing_key = backend.load_signing_key(key, alg)?;
        if signing_key.public_key() != *certificate.public_key() {
            return Err(Error::KeyCertificateMismatch {
                key: key.origin().to_owned(),
                certificate: certificate.origin().to_owned(),
            });
        }
        Ok(Credential {
            key: Arc::from(signing_key),
            certificate,
        })
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
        let (key, bundled_cert) = if is_pkcs12(&bytes) {
            let (key, cert) = open_pkcs12(&bytes, &origin, password)?;
            (key, Some(cert))
        } else {
            (PrivateKey::from_bytes(&bytes, &origin, password)?, None)
        };
        let certificate = match (cert_path, bundled_cert) {
            (Some(path), _) => Certificate::load(path)?,
            (None, Some(cert)) => cert,
            (None, None) => {
                return Err(Error::InvalidCertificate {
                    origin,
                    reason: "no certificate given, and the key file is not a PKCS#12 bundle"
                        .to_owned(),
                })
            }
        };
        Self::new(backend, &key, certificate, alg)
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
