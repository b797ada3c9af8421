//! The `aws-lc-rs` backend.

ring_api_backend!(
    /// The `aws-lc-rs` backend (AWS-LC, the fastest here): RS256, PS256, ES256 and EdDSA.
    AwsLcRs, aws_lc_rs, "aws-lc-rs",
    ecdsa_from_pkcs8 = |der, rng| {
        let _ = rng; // AWS-LC draws its own randomness.
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
    },
    // Parsed once at load: a bad key fails here, and verification skips the key decoding.
    public_key = signature::ParsedPublicKey,
    parse_public_key = |algorithm, bytes| signature::ParsedPublicKey::new(algorithm, bytes),
    verify = |key, message, signature| key.verify_sig(message, signature)
);
