//! Key kinds and public keys: what a key is, read from its algorithm identifier.

use std::{fmt, path::Path};

use der::asn1::ObjectIdentifier;
use rustls_pki_types::pem::PemObject;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use crate::{
    error::invalid_key,
    source::{looks_like_pem, read_file},
    Algorithm, Error,
};

pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const OID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (big keys cost unbounded work in some backends).
pub const MAX_RSA_BITS: usize = 8192;

/// What a key is, as far as signing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// ECDSA on NIST P-256.
    EcP256,
    /// Ed25519.
    Ed25519,
}

impl KeyKind {
    /// The algorithms a key of this kind can sign with; the first is the default.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyKind::Rsa { .. } => &[Algorithm::Ps256, Algorithm::Rs256],
            KeyKind::EcP256 => &[Algorithm::Es256],
            KeyKind::Ed25519 => &[Algorithm::EdDsa],
        }
    }

    /// The algorithm used when none is asked for: PS256 for RSA (Entra's default), else the only one.
    pub fn default_algorithm(self) -> Algorithm {
        self.algorithms()[0]
    }

    /// Key size in bits as reports give it (the modulus for RSA, 256 for P-256 and Ed25519).
    pub fn bits(self) -> usize {
        match self {
            KeyKind::Rsa { bits } => bits,
            KeyKind::EcP256 | KeyKind::Ed25519 => 256,
        }
    }

    /// Checks that `alg` can be used with this kind of key; `origin` names the key in the error.
    pub(crate) fn check_algorithm(self, alg: Algorithm, origin: &str) -> Result<(), Error> {
        if self.algorithms().contains(&alg) {
            return Ok(());
        }
        Err(Error::AlgorithmMismatch {
            origin: origin.to_owned(),
            alg,
            kind: self,
            allowed: self
                .algorithms()
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::EcP256 => f.write_str("P-256"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// A public key: its kind and the content of the SPKI `subjectPublicKey` bit string
/// (PKCS#1 `RSAPublicKey` DER, an uncompressed P-256 point, or 32 Ed25519 bytes), which is
/// the form every backend verifies with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    bytes: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Reads a public key file: PEM `PUBLIC KEY` or DER `SubjectPublicKeyInfo`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::from_bytes(&read_file(path)?, &path.display().to_string())
    }

    /// Parses PEM `PUBLIC KEY` or DER `SubjectPublicKeyInfo` bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, Error> {
        if looks_like_pem(bytes) {
            let spki =
                rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(bytes).map_err(|e| {
                    invalid_key(
                        origin,
                        format!("no usable PUBLIC KEY section in the PEM: {e}"),
                    )
                })?;
            Self::from_spki_der(&spki, origin)
        } else {
            Self::from_spki_der(bytes, origin)
        }
    }

    /// Parses a DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(der: &[u8], origin: &str) -> Result<Self, Error> {
        let spki = SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| invalid_key(origin, format!("malformed SubjectPublicKeyInfo: {e}")))?;
        Self::from_spki(&spki, origin)
    }

    pub(crate) fn from_spki(
        spki: &SubjectPublicKeyInfoRef<'_>,
        origin: &str,
    ) -> Result<Self, Error> {
        let invalid = |reason: String| invalid_key(origin, reason);
        let bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| invalid("public key bit string is not whole bytes".to_owned()))?;
        let kind = key_kind(&spki.algorithm, origin, || {
            pkcs1::RsaPublicKey::try_from(bytes)
                .map(|rsa| rsa.modulus.as_bytes().to_vec())
                .map_err(|e| format!("malformed RSA public key: {e}"))
        })?;
        Ok(PublicKey {
            kind,
            bytes: bytes.to_vec(),
        })
    }

    /// Builds a public key from its kind and `subjectPublicKey` bytes (as backends report them).
    pub fn from_raw(kind: KeyKind, bytes: Vec<u8>) -> Self {
        PublicKey { kind, bytes }
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The `subjectPublicKey` content.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The kind of key an algorithm identifier names. `rsa_modulus` reads the modulus of an RSA
/// key (from the private or the public key structure, whichever the caller has).
pub(crate) fn key_kind(
    algorithm: &AlgorithmIdentifierRef<'_>,
    origin: &str,
    rsa_modulus: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<KeyKind, Error> {
    let invalid = |reason: String| invalid_key(origin, reason);
    match algorithm.oid {
        OID_RSA_ENCRYPTION => rsa_kind(&rsa_modulus().map_err(invalid)?, origin),
        OID_EC_PUBLIC_KEY => {
            let curve = algorithm
                .parameters_oid()
                .map_err(|e| invalid(format!("EC key without a named curve: {e}")))?;
            ec_kind(curve, origin)
        }
        OID_ED25519 => Ok(KeyKind::Ed25519),
        other => Err(invalid(format!(
            "unsupported key algorithm {other}; expected RSA, EC P-256 or Ed25519"
        ))),
    }
}

fn rsa_kind(modulus: &[u8], origin: &str) -> Result<KeyKind, Error> {
    // `as_bytes` has no leading zero bytes; the top byte may still have leading zero bits.
    let bits = match modulus.first() {
        Some(top) => modulus.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if bits < MIN_RSA_BITS {
        return Err(Error::KeyTooSmall {
            origin: origin.to_owned(),
            bits,
        });
    }
    if bits > MAX_RSA_BITS {
        return Err(invalid_key(
            origin,
            format!("RSA key of {bits} bits is larger than the {MAX_RSA_BITS} supported"),
        ));
    }
    Ok(KeyKind::Rsa { bits })
}

/// The kind of an EC key on `curve`: only P-256 is supported.
pub(crate) fn ec_kind(curve: ObjectIdentifier, origin: &str) -> Result<KeyKind, Error> {
    if curve == OID_P256 {
        Ok(KeyKind::EcP256)
    } else {
        Err(invalid_key(
            origin,
            format!("unsupported EC curve {curve}; only P-256 (ES256) is supported"),
        ))
    }
}
