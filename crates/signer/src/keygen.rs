//! Key and self-signed certificate generation (rcgen on aws-lc-rs), for `tokenbench keygen`,
//! sign-bench and tests.

use std::{fmt, str::FromStr};

use der::Encode;
use rcgen::{CertificateParams, DnType, KeyPair, RsaKeySize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::{Certificate, Error, KeyKind, PrivateKey};

/// What kind of key to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus.
    Rsa4096,
    /// ECDSA on P-256.
    P256,
    /// Ed25519.
    Ed25519,
}

impl KeySpec {
    /// Every kind, in order.
    pub const ALL: [KeySpec; 5] = [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::P256,
        KeySpec::Ed25519,
    ];

    /// The RSA kind with a modulus of `bits` (2048, 3072 or 4096).
    pub fn rsa(bits: usize) -> Result<Self, Error> {
        match bits {
            2048 => Ok(KeySpec::Rsa2048),
            3072 => Ok(KeySpec::Rsa3072),
            4096 => Ok(KeySpec::Rsa4096),
            other => Err(Error::UnknownKeySpec {
                name: format!("rsa{other}"),
            }),
        }
    }

    /// The kind of key it generates.
    pub const fn kind(self) -> KeyKind {
        match self {
            KeySpec::Rsa2048 => KeyKind::Rsa { bits: 2048 },
            KeySpec::Rsa3072 => KeyKind::Rsa { bits: 3072 },
            KeySpec::Rsa4096 => KeyKind::Rsa { bits: 4096 },
            KeySpec::P256 => KeyKind::EcP256,
            KeySpec::Ed25519 => KeyKind::Ed25519,
        }
    }

    /// The name `keygen --kind` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeySpec::Rsa2048 => "rsa2048",
            KeySpec::Rsa3072 => "rsa3072",
            KeySpec::Rsa4096 => "rsa4096",
            KeySpec::P256 => "p256",
            KeySpec::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeySpec {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        KeySpec::ALL
            .into_iter()
            .find(|spec| spec.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::UnknownKeySpec {
                name: name.to_owned(),
            })
    }
}

/// A generated key (PKCS#8 PEM) and its self-signed certificate (PEM).
pub struct Generated {
    /// The private key, PKCS#8 PEM. Secret: zeroed on drop, never shown by `Debug`.
    pub key_pem: Zeroizing<String>,
    /// The self-signed X.509 certificate, PEM.
    pub cert_pem: String,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated").finish_non_exhaustive()
    }
}

impl Generated {
    /// The key, parsed; `origin` names it in errors.
    pub fn private_key(&self, origin: &str) -> Result<PrivateKey, Error> {
        PrivateKey::from_bytes(self.key_pem.as_bytes(), origin, None)
    }

    /// The certificate, parsed; `origin` names it in errors.
    pub fn certificate(&self, origin: &str) -> Result<Certificate, Error> {
        Certificate::from_bytes(self.cert_pem.as_bytes(), origin)
    }
}

/// Generates a key of `spec` and a self-signed certificate with subject `CN=<subject>`,
/// valid from now for `days` days.
pub fn generate(spec: KeySpec, subject: &str, days: u32) -> Result<Generated, Error> {
    let failed = |e: rcgen::Error| Error::KeyGeneration {
        spec: spec.to_string(),
        reason: e.to_string(),
    };
    let key_pair = match spec {
        KeySpec::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeySpec::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeySpec::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
        KeySpec::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeySpec::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
    }
    .map_err(failed)?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, subject);
    let now = OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now
        .checked_add(Duration::days(i64::from(days)))
        .ok_or_else(|| Error::KeyGeneration {
            spec: spec.to_string(),
            reason: format!("a validity of {days} days ends after the year 9999"),
        })?;
    let certificate = params.self_signed(&key_pair).map_err(failed)?;
    Ok(Generated {
        key_pem: pkcs8_v1_pem(&key_pair.serialize_der()).map_err(|e| Error::KeyGeneration {
            spec: spec.to_string(),
            reason: format!("cannot encode the key as PKCS#8: {e}"),
        })?,
        cert_pem: certificate.pem(),
    })
}

/// Re-encodes PKCS#8 as version 1, without the optional public key: rcgen writes Ed25519
/// keys as version 2 (RFC 5958), which OpenSSL 3.0 and pyca/cryptography cannot read.
fn pkcs8_v1_pem(pkcs8_der: &[u8]) -> Result<Zeroizing<String>, String> {
    let mut info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).map_err(|e| e.to_string())?;
    info.public_key = None;
    let der = Zeroizing::new(info.to_der().map_err(|e| e.to_string())?);
    der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}
