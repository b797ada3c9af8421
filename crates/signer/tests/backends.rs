//! One suite, run against every compiled-in backend: signatures, cross-verification,
//! determinism, the assertion profile, and every accepted key encoding.

mod common;

use std::{collections::HashSet, time::Duration};

use common::*;
use serde_json::{json, Value};
use signer::{
    backend, jws::Jws, Algorithm, AssertionBuilder, AssertionClaims, Credential, CryptoBackend,
    Error, KeySpec, PrivateKey, Thumbprint,
};

const RSA_SPECS: [KeySpec; 3] = [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096];

fn spec_for(alg: Algorithm) -> &'static [KeySpec] {
    match alg {
        Algorithm::Ps256 | Algorithm::Rs256 => &RSA_SPECS,
        Algorithm::Es256 => &[KeySpec::P256],
        Algorithm::EdDsa => &[KeySpec::Ed25519],
    }
}

fn supported(backend: &dyn CryptoBackend) -> Vec<Algorithm> {
    Algorithm::ALL
        .into_iter()
        .filter(|a| backend.supports(*a))
        .collect()
}

fn credential(backend: &dyn CryptoBackend, spec: KeySpec, alg: Algorithm) -> Credential {
    Credential::new(backend, &key(spec), cert(spec), Some(alg)).unwrap()
}

fn decode_json(part: &str) -> Value {
    let bytes = base64_url_decode(part);
    serde_json::from_slice(&bytes).unwrap()
}

fn base64_url_decode(part: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap()
}

fn signs_and_every_backend_verifies(backend: &dyn CryptoBackend) {
    let message = b"header.payload of an assertion-sized message";
    for alg in supported(backend) {
        for &spec in spec_for(alg) {
            let signature = credential(backend, spec, alg)
                .signing_key()
                .sign(message)
                .unwrap();
            for verifier_backend in backend::all().iter().filter(|b| b.supports(alg)) {
                let verifier = verifier_backend
                    .load_verifying_key(cert(spec).public_key(), alg)
                    .unwrap();
                assert_eq!(
                    verifier.verify(message, &signature),
                    Ok(()),
                    "{} {alg} {spec} signature rejected by {}",
                    backend.name(),
                    verifier_backend.name()
                );
                let mut tampered = signature.clone();
                tampered[5] ^= 1;
                assert!(verifier.verify(message, &tampered).is_err());
                assert!(verifier.verify(b"another message", &signature).is_err());
            }
        }
    }
}

fn rs256_is_deterministic_across_backends(backend: &dyn CryptoBackend) {
    for spec in RSA_SPECS {
        let message = b"the same message for every backend";
        let ours = credential(backend, spec, Algorithm::Rs256)
            .signing_key()
            .sign(message)
            .unwrap();
        for other in backend::all() {
            let theirs = credential(*other, spec, Algorithm::Rs256)
                .signing_key()
                .sign(message)
                .unwrap();
            assert_eq!(
                ours,
                theirs,
                "{} vs {} on {spec}",
                backend.name(),
                other.name()
            );
        }
    }
}

fn assertion_has_the_entra_profile(backend: &dyn CryptoBackend) {
    for alg in supported(backend) {
        let spec = spec_for(alg)[0];
        let cert = cert(spec);
        let builder = AssertionBuilder::new(&credential(backend, spec, alg), CLIENT_ID, AUDIENCE)
            .with_lifetime(Duration::from_secs(300));
        let issued_at = 1_700_000_000;
        let jti = uuid::Uuid::new_v4();
        let token = builder.build_at(issued_at, jti).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!token.contains('='), "base64url must not be padded");

        let (thumbprint_name, thumbprint) = if alg == Algorithm::Rs256 {
            ("x5t", cert.thumbprint(Thumbprint::X5t))
        } else {
            ("x5t#S256", cert.thumbprint(Thumbprint::X5tS256))
        };
        // Byte for byte: the order and spacing Entra's examples and MSAL use.
        let header = String::from_utf8(base64_url_decode(parts[0])).unwrap();
        assert_eq!(
            header,
            format!(r#"{{"alg":"{alg}","typ":"JWT","{thumbprint_name}":"{thumbprint}"}}"#)
        );
        assert_eq!(
            decode_json(parts[1]),
            json!({
                "aud": AUDIENCE, "iss": CLIENT_ID, "sub": CLIENT_ID, "jti": jti.to_string(),
                "nbf": issued_at, "iat": issued_at, "exp": issued_at + 300,
            })
        );

        let verifier = backend.load_verifying_key(cert.public_key(), alg).unwrap();
        let claims: AssertionClaims = Jws::parse(&token)
            .unwrap()
            .verify_claims(verifier.as_ref())
            .unwrap();
        assert_eq!(claims.exp - claims.nbf, 300);
    }
}

fn default_assertion_is_ps256_with_600s_and_fresh_jti(backend: &dyn CryptoBackend) {
    let credential = Credential::new(
        backend,
        &key(KeySpec::Rsa2048),
        cert(KeySpec::Rsa2048),
        None,
    )
    .unwrap();
    assert_eq!(credential.algorithm(), Algorithm::Ps256);
    let builder = AssertionBuilder::new(&credential, CLIENT_ID, AUDIENCE);
    let mut seen = HashSet::new();
    for _ in 0..50 {
        let token = builder.build().unwrap();
        let header = decode_json(token.split('.').next().unwrap());
        assert_eq!(header["alg"], "PS256");
        assert!(header.get("x5t#S256").is_some() && header.get("x5t").is_none());
        let claims = decode_json(token.split('.').nth(1).unwrap());
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
            600
        );
        assert_eq!(claims["iat"], claims["nbf"]);
        let jti = uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).unwrap();
        assert_eq!(jti.get_version_num(), 4);
        assert!(seen.insert(jti), "jti repeated");
    }
}

fn loads_every_key_encoding(backend: &dyn CryptoBackend) {
    let mut forms: Vec<(KeySpec, &str, Vec<u8>, Option<&str>)> = Vec::new();
    for spec in KeySpec::ALL {
        forms.push((
            spec,
            "PKCS#8 PEM",
            generated(spec).key_pem.as_bytes().to_vec(),
            None,
        ));
        forms.push((spec, "PKCS#8 DER", pkcs8_der(spec), None));
        let encrypted = encrypted_pkcs8_der(spec);
        forms.push((
            spec,
            "encrypted PKCS#8 PEM",
            pem("ENCRYPTED PRIVATE KEY", &encrypted).into_bytes(),
            Some(PASSWORD),
        ));
        forms.push((spec, "encrypted PKCS#8 DER", encrypted, Some(PASSWORD)));
        forms.push((spec, "PKCS#12", pkcs12(spec), Some(PASSWORD)));
    }
    for spec in RSA_SPECS {
        forms.push((
            spec,
            "PKCS#1 PEM",
            pem("RSA PRIVATE KEY", &pkcs1_der(spec)).into_bytes(),
            None,
        ));
        forms.push((spec, "PKCS#1 DER", pkcs1_der(spec), None));
    }
    forms.push((
        KeySpec::P256,
        "SEC1 PEM",
        pem("EC PRIVATE KEY", &sec1_der(KeySpec::P256)).into_bytes(),
        None,
    ));
    forms.push((KeySpec::P256, "SEC1 DER", sec1_der(KeySpec::P256), None));

    for (spec, form, bytes, password) in forms {
        let alg = key(spec).kind().default_algorithm();
        if !backend.supports(alg) {
            continue;
        }
        let key = PrivateKey::from_bytes(&bytes, form, password)
            .unwrap_or_else(|e| panic!("{spec} {form}: {e}"));
        assert_eq!(key.kind(), common::key(spec).kind(), "{spec} {form}");
        // The certificate match proves it is the same key, whatever the encoding.
        let credential = Credential::new(backend, &key, cert(spec), None)
            .unwrap_or_else(|e| panic!("{spec} {form}: {e}"));
        let token = AssertionBuilder::new(&credential, CLIENT_ID, AUDIENCE)
            .build()
            .unwrap();
        signer::jws::verify_with_certificate(&token, &cert(spec), backend).unwrap();
    }
}

fn pkcs12_file_gives_key_and_certificate(backend: &dyn CryptoBackend) {
    let dir = tempfile::tempdir().unwrap();
    for spec in [KeySpec::Rsa2048, KeySpec::P256, KeySpec::Ed25519] {
        let alg = key(spec).kind().default_algorithm();
        if !backend.supports(alg) {
            continue;
        }
        let path = dir.path().join(format!("{spec}.pfx"));
        std::fs::write(&path, pkcs12(spec)).unwrap();
        let credential = Credential::load(backend, &path, None, Some(PASSWORD), None).unwrap();
        assert_eq!(credential.certificate().der(), cert(spec).der());
        assert_eq!(credential.algorithm(), alg);
    }
}

fn refuses_what_it_lacks_or_the_key_cannot_do(backend: &dyn CryptoBackend) {
    for alg in Algorithm::ALL {
        for spec in [KeySpec::Rsa2048, KeySpec::P256, KeySpec::Ed25519] {
            let result = Credential::new(backend, &key(spec), cert(spec), Some(alg));
            let key_can = key(spec).kind().algorithms().contains(&alg);
            match (backend.supports(alg), key_can, result) {
                (true, true, Ok(c)) => assert_eq!(c.algorithm(), alg),
                (
                    false,
                    true,
                    Err(Error::UnsupportedAlgorithm {
                        backend: name,
                        alg: a,
                    }),
                ) => {
                    assert_eq!((name, a), (backend.name(), alg));
                }
                (_, false, Err(Error::AlgorithmMismatch { alg: a, .. })) => assert_eq!(a, alg),
                (s, k, r) => panic!(
                    "{} {alg} on {spec}: supports={s} key_can={k} got {r:?}",
                    backend.name()
                ),
            }
        }
    }
}

fn refuses_a_key_that_is_not_the_certificates(backend: &dyn CryptoBackend) {
    for spec in [KeySpec::Rsa2048, KeySpec::P256, KeySpec::Ed25519] {
        let alg = key(spec).kind().default_algorithm();
        if !backend.supports(alg) {
            continue;
        }
        let other_cert = other_generated(spec).certificate("other-cert.pem").unwrap();
        match Credential::new(backend, &key(spec), other_cert, None) {
            Err(Error::KeyCertificateMismatch { key, certificate }) => {
                assert_eq!(
                    (key.as_str(), certificate.as_str()),
                    (spec.as_str(), "other-cert.pem")
                );
            }
            other => panic!("{spec}: expected a mismatch error, got {other:?}"),
        }
    }
}

/// RSA keys with one private component off by one bit (as a fuzzer made one): each parses and its public half is
/// the certificate's. The backend either refuses it, naming the key, or signs correctly
/// (the `rsa` crate recomputes the CRT values from d, p and q); never a credential whose
/// signatures the identity provider would refuse.
fn refuses_a_key_whose_private_components_disagree(backend: &dyn CryptoBackend) {
    use der::{asn1::UintRef, Decode, Encode};
    if !backend.supports(Algorithm::Ps256) {
        return;
    }
    let pkcs1 = pkcs1_der(KeySpec::Rsa2048);
    for component in ["d", "dP", "dQ", "qInv"] {
        let mut rsa = pkcs1::RsaPrivateKey::from_der(&pkcs1).unwrap();
        let field = match component {
            "d" => &mut rsa.private_exponent,
            "dP" => &mut rsa.exponent1,
            "dQ" => &mut rsa.exponent2,
            _ => &mut rsa.coefficient,
        };
        // A bit in the middle: the last would make the exponent even, which ring checks.
        let mut flipped = field.as_bytes().to_vec();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 1;
        *field = UintRef::new(&flipped).unwrap();
        let pem = pem("RSA PRIVATE KEY", &rsa.to_der().unwrap());
        let key = PrivateKey::from_bytes(pem.as_bytes(), "corrupt.pem", None).unwrap();
        match Credential::new(backend, &key, cert(KeySpec::Rsa2048), None) {
            Err(Error::KeyRejected { origin, .. }) => assert_eq!(origin, "corrupt.pem"),
            Ok(credential) => {
                let token = AssertionBuilder::new(&credential, CLIENT_ID, AUDIENCE)
                    .build()
                    .unwrap();
                signer::jws::verify_with_certificate(&token, &cert(KeySpec::Rsa2048), backend)
                    .unwrap_or_else(|e| {
                        panic!(
                            "{}: {component} flipped: a credential that signs wrong: {e}",
                            backend.name()
                        )
                    });
            }
            Err(other) => panic!("{}: {component} flipped: {other}", backend.name()),
        }
    }
}

fn debug_output_shows_no_secrets(backend: &dyn CryptoBackend) {
    let key = key(KeySpec::Rsa2048);
    let credential = Credential::new(backend, &key, cert(KeySpec::Rsa2048), None).unwrap();
    let builder = AssertionBuilder::new(&credential, CLIENT_ID, AUDIENCE);
    let token = builder.build().unwrap();
    // A line from the middle of the PEM: key-specific (the first lines are a shared prefix).
    let pem_line = generated(KeySpec::Rsa2048)
        .key_pem
        .lines()
        .nth(10)
        .unwrap()
        .to_owned();
    for debug in [
        format!("{key:?}"),
        format!("{credential:?}"),
        format!("{builder:?}"),
        format!("{:?}", generated(KeySpec::Rsa2048)),
    ] {
        assert!(!debug.contains(&pem_line[..32]), "key material in {debug}");
        assert!(
            !debug.contains(token.split('.').nth(2).unwrap()),
            "signature in {debug}"
        );
    }
}

macro_rules! backend_suite {
    ($($feature:literal => $module:ident;)*) => {$(
        #[cfg(feature = $feature)]
        mod $module {
            fn backend() -> &'static dyn signer::CryptoBackend {
                signer::backend::by_name($feature).unwrap()
            }

            backend_suite!(@tests
                signs_and_every_backend_verifies,
                rs256_is_deterministic_across_backends,
                assertion_has_the_entra_profile,
                default_assertion_is_ps256_with_600s_and_fresh_jti,
                loads_every_key_encoding,
                pkcs12_file_gives_key_and_certificate,
                refuses_what_it_lacks_or_the_key_cannot_do,
                refuses_a_key_that_is_not_the_certificates,
                refuses_a_key_whose_private_components_disagree,
                debug_output_shows_no_secrets,
            );
        }
    )*};
    (@tests $($test:ident,)*) => {$(
        #[test]
        fn $test() {
            super::$test(backend());
        }
    )*};
}

backend_suite! {
    "rsa" => rsa;
    "ring" => ring;
    "aws-lc-rs" => aws_lc_rs;
}

#[test]
fn a_known_backend_left_out_of_the_build_names_its_feature() {
    for name in backend::names() {
        assert!(
            backend::KNOWN.contains(&name),
            "{name} is missing from KNOWN"
        );
    }
    for name in backend::KNOWN {
        match backend::by_name(name) {
            Ok(found) => assert_eq!(found.name(), name),
            Err(error) => {
                assert!(
                    matches!(error, signer::Error::BackendNotBuilt { .. }),
                    "{error}"
                );
                assert!(
                    error.to_string().contains(&format!("feature `{name}`")),
                    "{error}"
                );
            }
        }
    }
    assert!(matches!(
        backend::by_name("openssl"),
        Err(signer::Error::UnknownBackend { .. })
    ));
}
