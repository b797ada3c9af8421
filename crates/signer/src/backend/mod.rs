//! Crypto backends in the style of rustls's `CryptoProvider`: a backend parses a private key
//! once into a `Send + Sync` [`SigningKey`]; signing never parses again. Public keys become a
//! [`VerifyingKey`], pre-parsed where the backend allows it (aws-lc-rs, rsa; ring re-reads
//! the key bytes on each verification). Backends are picked at run time by name
//! ([`by_name`]); each is a cargo feature, all on by default.
//!
//! | backend | feature | algorithms |
//! |---|---|---|
//! | `rsa` | `rsa` | PS256, RS256 (RustCrypto; for comparison only, see [`RustCryptoRsa`]) |
//! | `ring` | `ring` | PS256, RS256, ES256, EdDSA |
//! | `aws-lc-rs` | `aws-lc-rs` | PS256, RS256, ES256, EdDSA |

use std::fmt;

use crate::{Algorithm, Error, KeyKind, PrivateKey, PublicKey};

#[cfg(not(any(feature = "rsa", feature = "ring", feature = "aws-lc-rs")))]
compile_error!("tokenbench-signer needs at least one backend feature: rsa, ring or aws-lc-rs");

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
#[macro_use]
mod ring_api;
#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
#[cfg(feature = "ring")]
mod ring;
#[cfg(feature = "rsa")]
mod rust_crypto;

#[cfg(feature = "aws-lc-rs")]
pub use aws_lc::AwsLcRs;
#[cfg(feature = "ring")]
pub use ring::Ring;
#[cfg(feature = "rsa")]
pub use rust_crypto::RustCryptoRsa;

/// A crypto backend: turns key material into signing and verifying keys.
pub trait CryptoBackend: Send + Sync + fmt::Debug {
    /// The name users pick it by (`rsa`, `ring`, `aws-lc-rs`).
    fn name(&self) -> &'static str;

    /// Whether this backend implements `alg` at all.
    fn supports(&self, alg: Algorithm) -> bool;

    /// Parses `key` once for signing with `alg`.
    ///
    /// Fails if the backend lacks `alg`, if the key's kind cannot do `alg`, or if the backend
    /// refuses the key (for example an RSA size it does not implement).
    fn load_signing_key(
        &self,
        key: &PrivateKey,
        alg: Algorithm,
    ) -> Result<Box<dyn SigningKey>, Error>;

    /// Prepares `key` for verifying `alg` signatures.
    fn load_verifying_key(
        &self,
        key: &PublicKey,
        alg: Algorithm,
    ) -> Result<Box<dyn VerifyingKey>, Error>;
}

/// A private key loaded into a backend, bound to one algorithm.
pub trait SigningKey: Send + Sync + fmt::Debug {
    /// The algorithm every signature uses.
    fn algorithm(&self) -> Algorithm;

    /// The backend's name.
    fn backend(&self) -> &'static str;

    /// The matching public key, as the backend derives it from the private key.
    fn public_key(&self) -> PublicKey;

    /// Signs `message` (the JWS signing input); returns the JWS signature bytes.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

/// A public key loaded into a backend, bound to one algorithm.
pub trait VerifyingKey: Send + Sync + fmt::Debug {
    /// The algorithm it verifies.
    fn algorithm(&self) -> Algorithm;

    /// Checks `signature` over `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature>;
}

/// A signature did not verify (deliberately says nothing more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct InvalidSignature;

/// The backends compiled into this build, in the order reports list them.
pub fn all() -> &'static [&'static dyn CryptoBackend] {
    &[
        #[cfg(feature = "rsa")]
        &RustCryptoRsa,
        #[cfg(feature = "ring")]
        &Ring,
        #[cfg(feature = "aws-lc-rs")]
        &AwsLcRs,
    ]
}

/// The names of the compiled-in backends.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|b| b.name()).collect()
}

/// Every backend tokenbench has, built in or not: each name is also its cargo feature's.
pub const KNOWN: [&str; 3] = ["rsa", "ring", "aws-lc-rs"];

/// The backend of that name (case-insensitive). A known backend this build lacks is
/// [`Error::BackendNotBuilt`], naming the feature to enable.
pub fn by_name(name: &str) -> Result<&'static dyn CryptoBackend, Error> {
    if let Some(backend) = all().iter().find(|b| b.name().eq_ignore_ascii_case(name)) {
        return Ok(*backend);
    }
    let available = names().join(", ");
    match KNOWN.iter().find(|known| known.eq_ignore_ascii_case(name)) {
        Some(known) => Err(Error::BackendNotBuilt {
            name: known,
            available,
        }),
        None => Err(Error::UnknownBackend {
            name: name.to_owned(),
            available,
        }),
    }
}

/// The backend used when none is named: aws-lc-rs when compiled in (the fastest), else the first.
///
pub fn default_backend() -> &'static dyn CryptoBackend {
    #[cfg(feature = "aws-lc-rs")]
    return &AwsLcRs;
    #[cfg(all(not(feature = "aws-lc-rs"), feature = "ring"))]
    return &Ring;
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    return &RustCryptoRsa;
}

/// The checks every backend makes before loading a key: the key can do `alg` (checked
/// first: no backend helps with that), and the backend has it.
pub(crate) fn check_combination(
    backend: &dyn CryptoBackend,
    kind: KeyKind,
    alg: Algorithm,
    origin: &str,
) -> Result<(), Error> {
    kind.check_algorithm(alg, origin)?;
    if !backend.supports(alg) {
        return Err(Error::UnsupportedAlgorithm {
            backend: backend.name(),
            alg,
        });
    }
    Ok(())
}
