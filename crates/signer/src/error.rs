use std::path::PathBuf;

use crate::{Algorithm, KeyKind};

/// Everything that can go wrong in this crate. Each message names the input (file or
/// origin label) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input is not a private key in any supported form.
    #[error("{origin}: not a usable private key: {reason}")]
    InvalidKey {
        /// Where the key came from (usually a path).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The input is an encrypted private key and no password was given.
    #[error("{origin}: the private key is encrypted; give its password")]
    PasswordRequired {
        /// Where the key came from.
        origin: String,
    },
    /// Decryption of an encrypted key or PKCS#12 file failed (usually a wrong password).
    #[error("{origin}: cannot decrypt: {reason}")]
    Decrypt {
        /// Where the key came from.
        origin: String,
        /// What failed.
        reason: String,
    },
    /// The input is not an X.509 certificate.
    #[error("{origin}: not a usable X.509 certificate: {reason}")]
    InvalidCertificate {
        /// Where the certificate came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// An RSA key under 2048 bits.
    #[error("{origin}: RSA key of {bits} bits is too small; at least 2048 bits are required")]
    KeyTooSmall {
        /// Where the key came from.
        origin: String,
        /// Its modulus size.
        bits: usize,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "the private key {key} does not match the public key of the certificate {certificate}"
    )]
    KeyCertificateMismatch {
        /// Where the key came from.
        key: String,
        /// Where the certificate came from.
        certificate: String,
    },
    /// The algorithm cannot be used with this kind of key.
    #[error("{origin}: algorithm {alg} cannot be used with this {kind} key (it allows {allowed})")]
    AlgorithmMismatch {
        /// Where the key came from.
        origin: String,
        /// The requested algorithm.
        alg: Algorithm,
        /// The key's kind.
        kind: KeyKind,
        /// The algorithms this key allows, comma-separated.
        allowed: String,
    },
    /// The backend does not implement this algorithm.
    #[error("backend {backend} does not support {alg}")]
    UnsupportedAlgorithm {
        /// The backend's name.
        backend: &'static str,
        /// The algorithm.
        alg: Algorithm,
    },
    /// The backend refused a key that parsed as valid.
    #[error("backend {backend} rejected the key {origin}: {reason}")]
    KeyRejected {
        /// The backend's name.
        backend: &'static str,
        /// Where the key came from.
        origin: String,
        /// The backend's reason.
        reason: String,
    },
    /// A backend this build was compiled without (its cargo feature was off).
    #[error(
        "crypto backend {name:?} is not built into this binary; build it with the cargo \
         feature `{name}` (built in: {available})"
    )]
    BackendNotBuilt {
        /// The backend's name, which is also its feature's.
        name: &'static str,
        /// The compiled-in backends, comma-separated.
        available: String,
    },
    /// No backend of that name exists.
    #[error("unknown crypto backend {name:?}; available: {available}")]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// The compiled-in backends, comma-separated.
        available: String,
    },
    /// No algorithm of that name.
    #[error("unknown algorithm {name:?}; expected one of PS256, RS256, ES256, EdDSA")]
    UnknownAlgorithm {
        /// The name asked for.
        name: String,
    },
    /// No key kind of that name (key generation).
    #[error("unknown key kind {name:?}; expected one of rsa2048, rsa3072, rsa4096, p256, ed25519")]
    UnknownKeySpec {
        /// The name asked for.
        name: String,
    },
    /// The backend failed to produce a signature.
    #[error("backend {backend} failed to sign with {alg}")]
    Signing {
        /// The backend's name.
        backend: &'static str,
        /// The algorithm.
        alg: Algorithm,
    },
    /// Key or certificate generation failed.
    #[error("cannot generate a {spec} key and certificate: {reason}")]
    KeyGeneration {
        /// What was being generated.
        spec: String,
        /// Why it failed.
        reason: String,
    },
    /// A compact JWS could not be parsed or verified.
    #[error(transparent)]
    Jws(#[from] crate::jws::JwsError),
}

/// An [`Error::InvalidKey`] for the key from `origin`.
pub(crate) fn invalid_key(origin: &str, reason: impl Into<String>) -> Error {
    Error::InvalidKey {
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}
