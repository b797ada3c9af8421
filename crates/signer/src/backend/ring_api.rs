//! ring and aws-lc-rs expose the same `signature` API (aws-lc-rs began as ring's API on
//! AWS-LC), so one definition serves both. Two things differ and are passed in: ECDSA key
//! loading (ring wants an RNG) and public keys (aws-lc-rs can parse one once, ring cannot).

macro_rules! ring_api_backend {
    (
        $(#[$meta:meta])*
        $backend:ident, $krate:ident, $name:literal,
        ecdsa_from_pkcs8 = |$der:ident, $rng:ident| $ecdsa:expr,
        public_key = $public_key:ty,
        parse_public_key = |$algorithm:ident, $bytes:ident| $parse:expr,
        verify = |$key:ident, $message:ident, $signature:ident| $verify:expr
    ) => {
        use $krate::{
            rand::SystemRandom,
            signature::{
                self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaEncoding, RsaKeyPair,
                VerificationAlgorithm,
            },
        };

        use crate::{
            backend::{check_combination, CryptoBackend, InvalidSignature, SigningKey, VerifyingKey},
            Algorithm, Error, KeyKind, PrivateKey, PublicKey,
        };

        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $backend;

        enum Pair {
            Rsa {
                pair: RsaKeyPair,
                padding: &'static dyn RsaEncoding,
                signature_len: usize,
            },
            Ecdsa(EcdsaKeyPair),
            Ed25519(Ed25519KeyPair),
        }

        struct LoadedKey {
            pair: Pair,
            alg: Algorithm,
            kind: KeyKind,
            rng: SystemRandom,
        }

        impl std::fmt::Debug for LoadedKey {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("SigningKey")
                    .field("backend", &$name)
                    .field("alg", &self.alg)
                    .field("kind", &self.kind)
                    .finish_non_exhaustive()
            }
        }

        impl CryptoBackend for $backend {
            fn name(&self) -> &'static str {
                $name
            }

            fn supports(&self, _alg: Algorithm) -> bool {
                true
            }

            fn load_signing_key(
                &self,
                key: &PrivateKey,
                alg: Algorithm,
            ) -> Result<Box<dyn SigningKey>, Error> {
                check_combination(self, key.kind(), alg, key.origin())?;
                let rejected = |e: $krate::error::KeyRejected| Error::KeyRejected {
                    backend: $name,
                    origin: key.origin().to_owned(),
                    reason: e.to_string(),
                };
                let rng = SystemRandom::new();
                let der = key.pkcs8_der();
                let rsa = |padding: &'static dyn RsaEncoding| -> Result<Pair, Error> {
                    Ok(Pair::Rsa {
                        pair: RsaKeyPair::from_pkcs8(der).map_err(rejected)?,
                        padding,
                        signature_len: key.kind().bits().div_ceil(8),
                    })
                };
                let pair = match alg {
                    Algorithm::Ps256 => rsa(&signature::RSA_PSS_SHA256)?,
                    Algorithm::Rs256 => rsa(&signature::RSA_PKCS1_SHA256)?,
                    Algorithm::Es256 => {
                        let ($der, $rng) = (der, &rng);
                        Pair::Ecdsa($ecdsa.map_err(rejected)?)
                    }
                    Algorithm::EdDsa => Pair::Ed25519(
                        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?,
                    ),
                };
                Ok(Box::new(LoadedKey {
                    pair,
                    alg,
                    kind: key.kind(),
                    rng,
                }))
            }

            fn load_verifying_key(
                &self,
                key: &PublicKey,
                alg: Algorithm,
            ) -> Result<Box<dyn VerifyingKey>, Error> {
                check_combination(self, key.kind(), alg, "public key")?;
                let algorithm: &'static dyn VerificationAlgorithm = match alg {
                    Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::EdDsa => &signature::ED25519,
                };
                let ($algorithm, $bytes) = (algorithm, key.as_bytes());
                let parsed: Result<$public_key, $krate::error::KeyRejected> = $parse;
                let key = parsed.map_err(|e| Error::KeyRejected {
                    backend: $name,
                    origin: "public key".to_owned(),
                    reason: e.to_string(),
                })?;
                Ok(Box::new(LoadedPublicKey { key, alg }))
            }
        }

        impl SigningKey for LoadedKey {
            fn algorithm(&self) -> Algorithm {
                self.alg
            }

            fn backend(&self) -> &'static str {
                $name
            }

            fn public_key(&self) -> PublicKey {
                let bytes = match &self.pair {
                    Pair::Rsa { pair, .. } => pair.public_key().as_ref().to_vec(),
                    Pair::Ecdsa(pair) => pair.public_key().as_ref().to_vec(),
                    Pair::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
                };
                PublicKey::from_raw(self.kind, bytes)
            }

            fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
                let failed = |_| Error::Signing {
                    backend: $name,
                    alg: self.alg,
                };
                match &self.pair {
                    Pair::Rsa {
                        pair,
                        padding,
                        signature_len,
                    } => {
                        let mut signature = vec![0; *signature_len];
                        pair.sign(*padding, &self.rng, message, &mut signature)
                            .map_err(failed)?;
                        Ok(signature)
                    }
                    Pair::Ecdsa(pair) => Ok(pair
                        .sign(&self.rng, message)
                        .map_err(failed)?
                        .as_ref()
                        .to_vec()),
                    Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
                }
            }
        }

        #[derive(Debug)]
        struct LoadedPublicKey {
            key: $public_key,
            alg: Algorithm,
        }

        impl VerifyingKey for LoadedPublicKey {
            fn algorithm(&self) -> Algorithm {
                self.alg
            }

            fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
                let ($key, $message, $signature) = (&self.key, message, signature);
                $verify.map_err(|_| InvalidSignature)
            }
        }
    };
}
