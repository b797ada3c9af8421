//! The `ring` backend.

ring_api_backend!(
    /// The `ring` backend: RS256, PS256 (RSA 2048 to 4096 bits), ES256 and EdDSA.
    Ring, ring, "ring",
    ecdsa_from_pkcs8 = |der, rng| EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        der,
        rng
    )
);
