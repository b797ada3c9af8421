//! The `ring` backend.

ring_api_backend!(
    /// The `ring` backend: RS256, PS256 (RSA 2048 to 4096 bits), ES256 and EdDSA.
    Ring, ring, "ring",
    ecdsa_from_pkcs8 = |der, rng| EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        der,
        rng
    ),
    // ring has no parsed public key type: the bytes are read again on each verification.
    public_key = signature::UnparsedPublicKey<Vec<u8>>,
    parse_public_key = |algorithm, bytes| Ok(signature::UnparsedPublicKey::new(algorithm, bytes.to_vec())),
    verify = |key, message, signature| key.verify(message, signature)
);
