//! X.509 certificates and their thumbprints.

use std::{fmt, path::Path};

use der::{Decode, Encode};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::{
    encoding::b64url,
    source::{looks_like_pem, read_file},
    Error, PublicKey,
};

/// Which certificate thumbprint a JWS header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thumbprint {
    /// `x5t`: base64url SHA-1 of the certificate DER (Entra's legacy profile).
    X5t,
    /// `x5t#S256`: base64url SHA-256 of the certificate DER (Entra's current profile).
    X5tS256,
}

impl Thumbprint {
    /// The JWS header parameter name.
    pub const fn header_name(self) -> &'static str {
        match self {
            Thumbprint::X5t => "x5t",
            Thumbprint::X5tS256 => "x5t#S256",
        }
    }

    /// Computes this thumbprint of a certificate's DER.
    pub fn of_der(self, der: &[u8]) -> String {
        match self {
            Thumbprint::X5t => b64url(&Sha1::digest(der)),
            Thumbprint::X5tS256 => b64url(&Sha256::digest(der)),
        }
    }
}

/// An X.509 certificate with its public key and both thumbprints, computed once at load.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    public_key: PublicKey,
    x5t: String,
    x5t_s256: String,
    origin: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("origin", &self.origin)
            .field("key", &self.public_key.kind())
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads a certificate file, PEM or DER.
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::from_bytes(&read_file(path)?, &path.display().to_string())
    }

    /// Parses PEM (the first `CERTIFICATE` section) or DER; `origin` names the input in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, Error> {
        if !looks_like_pem(bytes) {
            return Self::from_der(bytes.to_vec(), origin);
        }
        match CertificateDer::from_pem_slice(bytes) {
            Ok(der) => Self::from_der(der.to_vec(), origin),
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                let holds_key = rustls_pki_types::PrivateKeyDer::from_pem_slice(bytes).is_ok()
                    || bytes.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY");
                Err(invalid_certificate(
                    origin,
                    if holds_key {
                        "the file holds a private key, not a certificate".to_owned()
                    } else {
                        "no CERTIFICATE section in the PEM".to_owned()
                    },
                ))
            }
            Err(e) => Err(invalid_certificate(origin, format!("malformed PEM: {e}"))),
        }
    }

    /// Parses a DER certificate.
    pub fn from_der(der: Vec<u8>, origin: &str) -> Result<Self, Error> {
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| invalid_certificate(origin, format!("malformed X.509 DER: {e}")))?;
        let spki_der = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| invalid_certificate(origin, format!("bad public key info: {e}")))?;
        let public_key = PublicKey::from_spki_der(&spki_der, origin)?;
        Ok(Certificate {
            x5t: Thumbprint::X5t.of_der(&der),
            x5t_s256: Thumbprint::X5tS256.of_der(&der),
            der,
            public_key,
            origin: origin.to_owned(),
        })
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate's subject public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The requested thumbprint, base64url without padding.
    pub fn thumbprint(&self, which: Thumbprint) -> &str {
        match which {
            Thumbprint::X5t => &self.x5t,
            Thumbprint::X5tS256 => &self.x5t_s256,
        }
    }

    /// Where the certificate came from (for messages).
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

fn invalid_certificate(origin: &str, reason: String) -> Error {
    Error::InvalidCertificate {
        origin: origin.to_owned(),
        reason,
    }
}
