//! The RustCrypto `rsa` backend.

use rand_core::OsRng;
use rsa::{
    pkcs1::{DecodeRsaPublicKey, EncodeRsaPublicKey},
    pkcs1v15,
    pkcs8::DecodePrivateKey,
    pss,
    sha2::Sha256,
    signature::{RandomizedSigner, SignatureEncoding, Verifier},
    RsaPrivateKey, RsaPublicKey,
};

use crate::{
    backend::{check_combination, CryptoBackend, InvalidSignature, SigningKey, VerifyingKey},
    Algorithm, Error, KeyKind, PrivateKey, PublicKey,
};

/// The RustCrypto `rsa` backend (rsa 0.9): RS256 and PS256 only.
///
/// **For comparison only.** rsa 0.9 is affected by RUSTSEC-2023-0071 (Marvin: a timing
/// side channel in its non-constant-time big-integer arithmetic). This backend always signs
/// with blinding (`RandomizedSigner`), which is the mitigation the advisory recommends, but
/// it is here to compare against, not to guard production keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoRsa;

const NAME: &str = "rsa";

enum Padding {
    Pss(pss::BlindedSigningKey<Sha256>),
    Pkcs1(pkcs1v15::SigningKey<Sha256>),
}

struct LoadedKey {
    padding: Padding,
    /// PKCS#1 `RSAPublicKey` DER, encoded once at load.
    public_der: Vec<u8>,
    alg: Algorithm,
    kind: KeyKind,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("backend", &NAME)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl CryptoBackend for RustCryptoRsa {
    fn name(&self) -> &'static str {
        NAME
    }

    fn supports(&self, alg: Algorithm) -> bool {
        alg.is_rsa()
    }

    fn load_signing_key(
        &self,
        key: &PrivateKey,
        alg: Algorithm,
    ) -> Result<Box<dyn SigningKey>, Error> {
        check_combination(self, key.kind(), alg, key.origin())?;
        let private =
            RsaPrivateKey::from_pkcs8_der(key.pkcs8_der()).map_err(|e| Error::KeyRejected {
                backend: NAME,
                origin: key.origin().to_owned(),
                reason: e.to_string(),
            })?;
        let public_der = private
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| Error::KeyRejected {
                backend: NAME,
                origin: key.origin().to_owned(),
                reason: format!("cannot encode its public key: {e}"),
            })?
            .into_vec();
        let padding = if alg == Algorithm::Ps256 {
            // Salt length defaults to the digest size: 32 bytes, as PS256 requires.
            Padding::Pss(pss::BlindedSigningKey::new(private))
        } else {
            Padding::Pkcs1(pkcs1v15::SigningKey::new(private))
        };
        Ok(Box::new(LoadedKey {
            padding,
            public_der,
            alg,
            kind: key.kind(),
        }))
    }

    fn load_verifying_key(
        &self,
        key: &PublicKey,
        alg: Algorithm,
    ) -> Result<Box<dyn VerifyingKey>, Error> {
        check_combination(self, key.kind(), alg, "public key")?;
        let public =
            RsaPublicKey::from_pkcs1_der(key.as_bytes()).map_err(|e| Error::KeyRejected {
                backend: NAME,
                origin: "public key".to_owned(),
                reason: e.to_string(),
            })?;
        let verifier = if alg == Algorithm::Ps256 {
            RsaVerifier::Pss(pss::VerifyingKey::new(public))
        } else {
            RsaVerifier::Pkcs1(pkcs1v15::VerifyingKey::new(public))
        };
        Ok(Box::new(LoadedPublicKey { verifier, alg }))
    }
}

impl SigningKey for LoadedKey {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn backend(&self) -> &'static str {
        NAME
    }

    fn public_key(&self) -> PublicKey {
        PublicKey::from_raw(self.kind, self.public_der.clone())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        // `RandomizedSigner` blinds the private-key operation (defence in depth; see the type's docs).
        let failed = |_| Error::Signing {
            backend: NAME,
            alg: self.alg,
        };
        match &self.padding {
            Padding::Pss(key) => key
                .try_sign_with_rng(&mut OsRng, message)
                .map(|s| s.to_vec())
                .map_err(failed),
            Padding::Pkcs1(key) => key
                .try_sign_with_rng(&mut OsRng, message)
                .map(|s| s.to_vec())
                .map_err(failed),
        }
    }
}

#[derive(Debug)]
enum RsaVerifier {
    Pss(pss::VerifyingKey<Sha256>),
    Pkcs1(pkcs1v15::VerifyingKey<Sha256>),
}

#[derive(Debug)]
struct LoadedPublicKey {
    verifier: RsaVerifier,
    alg: Algorithm,
}

impl VerifyingKey for LoadedPublicKey {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        let ok = match &self.verifier {
            RsaVerifier::Pss(key) => {
                pss::Signature::try_from(signature).is_ok_and(|s| key.verify(message, &s).is_ok())
            }
            RsaVerifier::Pkcs1(key) => pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
        };
        ok.then_some(()).ok_or(InvalidSignature)
    }
}
