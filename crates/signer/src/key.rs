//! Private keys, normalised at load to PKCS#8 so that every backend takes one form.

use std::{fmt, path::Path};

use der::{Decode, Encode};
use rustls_pki_types::pem::{PemObject, SectionKind};
use spki::AlgorithmIdentifierRef;
use zeroize::Zeroizing;

use crate::{
    error::invalid_key,
    pkcs12,
    public_key::{ec_kind, key_kind, OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION},
    source::{looks_like_pem, read_file},
    Certificate, Error, KeyKind,
};

/// Most PBKDF2 iterations accepted in an encrypted key (OpenSSL writes 2048; 10⁶ is generous).
const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;
/// Most memory scrypt may ask for when decrypting a key (128 · r · N bytes).
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;

/// A private key, held as PKCS#8 DER whatever form it was loaded from.
///
/// Accepted forms: PEM or DER; RSA in PKCS#8 or PKCS#1, P-256 in PKCS#8 or SEC1, Ed25519 in
/// PKCS#8; encrypted PKCS#8 and PKCS#12 with a password. RSA keys under 2048 bits are refused.
/// The key bytes are zeroed on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    kind: KeyKind,
    origin: String,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Reads a key file (PEM, DER, or PKCS#12 with `password`).
    pub fn load(path: &Path, password: Option<&str>) -> Result<Self, Error> {
        let bytes = Zeroizing::new(read_file(path)?);
        Self::from_bytes(&bytes, &path.display().to_string(), password)
    }

    /// Parses key bytes in any accepted form; `origin` names them in errors (usually the path).
    pub fn from_bytes(bytes: &[u8], origin: &str, password: Option<&str>) -> Result<Self, Error> {
        if looks_like_pem(bytes) {
            Self::from_pem(bytes, origin, password)
        } else {
            Self::from_der(bytes, origin, password)
        }
    }

    /// Parses a PKCS#8 `PrivateKeyInfo` (unencrypted), v1 or v2.
    ///
    /// The key is kept re-encoded as PKCS#8 v1 without the optional public key, and RSA keys
    /// with NULL algorithm parameters: the one form every backend (ring included) accepts.
    pub fn from_pkcs8_der(der: &[u8], origin: &str) -> Result<Self, Error> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| invalid_key(origin, format!("malformed PKCS#8: {e}")))?;
        let kind = key_kind(&info.algorithm, origin, || {
            pkcs1::RsaPrivateKey::try_from(info.private_key)
                .map(|rsa| rsa.modulus.as_bytes().to_vec())
                .map_err(|e| format!("malformed RSA key inside PKCS#8: {e}"))
        })?;
        let normalised = pkcs8::PrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: info.algorithm.oid,
                parameters: match kind {
                    KeyKind::Rsa { .. } => Some(der::asn1::AnyRef::NULL),
                    _ => info.algorithm.parameters,
                },
            },
            private_key: info.private_key,
            public_key: None,
        };
        Ok(PrivateKey {
            pkcs8: encode_secret(&normalised, origin)?,
            kind,
            origin: origin.to_owned(),
        })
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Where the key came from (for messages).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key as PKCS#8 DER: what backends parse. Secret: do not log.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    fn from_pem(bytes: &[u8], origin: &str, password: Option<&str>) -> Result<Self, Error> {
        let invalid = |reason: String| invalid_key(origin, reason);
        let mut found_certificate = false;
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
            let (kind, der) = section.map_err(|e| invalid(format!("malformed PEM: {e}")))?;
            let der = Zeroizing::new(der);
            match kind {
                SectionKind::PrivateKey => return Self::from_pkcs8_der(&der, origin),
                SectionKind::RsaPrivateKey => return Self::from_pkcs1_der(&der, origin),
                SectionKind::EcPrivateKey => return Self::from_sec1_der(&der, origin),
                SectionKind::Certificate => found_certificate = true,
                _ => {}
            }
        }
        // rustls-pki-types skips labels it does not know, such as the encrypted PKCS#8 one.
        if let Some(block) = encrypted_pem_block(bytes) {
            let (_, der) = der::pem::decode_vec(block)
                .map_err(|e| invalid(format!("malformed encrypted PEM: {e}")))?;
            return Self::from_encrypted_pkcs8_der(&der, origin, password);
        }
        Err(invalid(if found_certificate {
            "the file holds a certificate, not a private key".to_owned()
        } else {
            "no PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY section in the PEM"
                .to_owned()
        }))
    }

    fn from_der(der: &[u8], origin: &str, password: Option<&str>) -> Result<Self, Error> {
        if pkcs8::PrivateKeyInfo::try_from(der).is_ok() {
            return Self::from_pkcs8_der(der, origin);
        }
        if pkcs8::EncryptedPrivateKeyInfo::try_from(der).is_ok() {
            return Self::from_encrypted_pkcs8_der(der, origin, password);
        }
        if pkcs1::RsaPrivateKey::try_from(der).is_ok() {
            return Self::from_pkcs1_der(der, origin);
        }
        if sec1::EcPrivateKey::try_from(der).is_ok() {
            return Self::from_sec1_der(der, origin);
        }
        if pkcs12::is_pkcs12(der) {
            return Self::from_pkcs12(der, origin, password).map(|(key, _)| key);
        }
        let reason = if x509_cert::Certificate::from_der(der).is_ok() {
            "the file holds a certificate, not a private key"
        } else {
            "neither PEM nor DER of a PKCS#8, PKCS#1, SEC1 or PKCS#12 key"
        };
        Err(invalid_key(origin, reason.to_owned()))
    }

    /// Opens a PKCS#12 bundle: its private key, and its certificates with the one linked to
    /// the key (by local key id) first. `Credential` picks the one whose public key is the key's.
    pub(crate) fn from_pkcs12(
        der: &[u8],
        origin: &str,
        password: Option<&str>,
    ) -> Result<(Self, Vec<Certificate>), Error> {
        let contents = pkcs12::open(der, origin, password)?;
        let key = Self::from_pkcs8_der(&contents.key, origin)?;
        let certificates = contents
            .certificates
            .into_iter()
            .map(|der| Certificate::from_der(der, origin))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((key, certificates))
    }

    fn from_encrypted_pkcs8_der(
        der: &[u8],
        origin: &str,
        password: Option<&str>,
    ) -> Result<Self, Error> {
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
            .map_err(|e| invalid_key(origin, format!("malformed encrypted PKCS#8: {e}")))?;
        let password = password.ok_or_else(|| Error::PasswordRequired {
            origin: origin.to_owned(),
        })?;
        check_kdf(&encrypted.encryption_algorithm, origin)?;
        let wrong_password = || Error::Decrypt {
            origin: origin.to_owned(),
            reason: "wrong password".to_owned(),
        };
        // A wrong password shows as bad padding, or (1 time in 256) as garbage that
        // happens to be padded right: either way, not a PKCS#8 key.
        let plain = encrypted.decrypt(password).map_err(|e| match e {
            pkcs8::Error::EncryptedPrivateKey(
                pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
            ) => wrong_password(),
            other => Error::Decrypt {
                origin: origin.to_owned(),
                reason: other.to_string(),
            },
        })?;
        if pkcs8::PrivateKeyInfo::try_from(plain.as_bytes()).is_err() {
            return Err(wrong_password());
        }
        Self::from_pkcs8_der(plain.as_bytes(), origin)
    }

    /// Wraps a PKCS#1 `RSAPrivateKey` into PKCS#8.
    fn from_pkcs1_der(der: &[u8], origin: &str) -> Result<Self, Error> {
        pkcs1::RsaPrivateKey::try_from(der)
            .map_err(|e| invalid_key(origin, format!("malformed PKCS#1 RSA key: {e}")))?;
        let info = pkcs8::PrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: OID_RSA_ENCRYPTION,
                parameters: Some(der::asn1::AnyRef::NULL),
            },
            private_key: der,
            public_key: None,
        };
        Self::from_pkcs8_der(&encode_secret(&info, origin)?, origin)
    }

    /// Wraps a SEC1 `ECPrivateKey` into PKCS#8, moving the curve into the algorithm identifier.
    fn from_sec1_der(der: &[u8], origin: &str) -> Result<Self, Error> {
        let invalid = |reason: String| invalid_key(origin, reason);
        let mut ec = sec1::EcPrivateKey::try_from(der)
            .map_err(|e| invalid(format!("malformed SEC1 EC key: {e}")))?;
        let curve = ec
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| invalid("SEC1 EC key without a named curve".to_owned()))?;
        ec_kind(curve, origin)?;
        // In PKCS#8 the curve belongs in the algorithm identifier; RFC 5915 §3 lets the inner
        // copy go.
        ec.parameters = None;
        let inner = encode_secret(&ec, origin)?;
        let info = pkcs8::PrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: OID_EC_PUBLIC_KEY,
                parameters: Some((&curve).into()),
            },
            private_key: &inner,
            public_key: None,
        };
        Self::from_pkcs8_der(&encode_secret(&info, origin)?, origin)
    }
}

/// Refuses key-derivation parameters that would cost unbounded time or memory.
fn check_kdf(scheme: &pkcs8::pkcs5::EncryptionScheme<'_>, origin: &str) -> Result<(), Error> {
    use pkcs8::pkcs5::{pbes2::Kdf, EncryptionScheme};
    let EncryptionScheme::Pbes2(params) = scheme else {
        return Err(invalid_key(origin, "PBES1 encryption is not supported; re-encrypt with PBES2 (openssl pkcs8 -topk8 -v2 aes256)"));
    };
    match &params.kdf {
        Kdf::Pbkdf2(pbkdf2) if pbkdf2.iteration_count > MAX_PBKDF2_ITERATIONS => Err(invalid_key(
            origin,
            format!(
                "PBKDF2 iteration count {} exceeds {MAX_PBKDF2_ITERATIONS}",
                pbkdf2.iteration_count
            ),
        )),
        Kdf::Scrypt(scrypt) => {
            let n = scrypt.cost_parameter;
            let memory = 128u64
                .saturating_mul(u64::from(scrypt.block_size))
                .saturating_mul(n)
                .saturating_mul(u64::from(scrypt.parallelization).max(1));
            if n < 2 || !n.is_power_of_two() || memory > MAX_SCRYPT_MEMORY {
                return Err(invalid_key(
                    origin,
                    format!(
                        "scrypt parameters out of range (N={n}, r={}, p={})",
                        scrypt.block_size, scrypt.parallelization
                    ),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn encrypted_pem_block(bytes: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";
    let start = bytes.windows(BEGIN.len()).position(|w| w == BEGIN)?;
    let len = bytes[start..].windows(END.len()).position(|w| w == END)?;
    Some(&bytes[start..start + len + END.len()])
}

fn encode_secret(value: &impl Encode, origin: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    value
        .to_der()
        .map(Zeroizing::new)
        .map_err(|e| invalid_key(origin, format!("cannot re-encode as PKCS#8: {e}")))
}
