//! Loading keys and certificates: thumbprints, and a clear error for every bad input.

mod common;

use std::path::Path;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::*;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use signer::{
    backend, Algorithm, Certificate, Credential, Error, KeyKind, KeySpec, PrivateKey, PublicKey,
    Thumbprint,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_key_err(bytes: &[u8], password: Option<&str>) -> Error {
    PrivateKey::from_bytes(bytes, "the-key-file", password).unwrap_err()
}

#[test]
fn thumbprints_match_an_independent_computation() {
    for spec in KeySpec::ALL {
        let cert = cert(spec);
        let der = cert.der();
        assert_eq!(
            cert.thumbprint(Thumbprint::X5t),
            URL_SAFE_NO_PAD.encode(Sha1::digest(der))
        );
        assert_eq!(
            cert.thumbprint(Thumbprint::X5tS256),
            URL_SAFE_NO_PAD.encode(Sha256::digest(der))
        );
        assert_eq!(cert.thumbprint(Thumbprint::X5t).len(), 27);
        assert_eq!(cert.thumbprint(Thumbprint::X5tS256).len(), 43);
    }
}

#[test]
fn certificates_load_from_pem_and_der_with_the_right_key_kind() {
    let expected = [
        (KeySpec::Rsa2048, KeyKind::Rsa { bits: 2048 }),
        (KeySpec::Rsa3072, KeyKind::Rsa { bits: 3072 }),
        (KeySpec::Rsa4096, KeyKind::Rsa { bits: 4096 }),
        (KeySpec::P256, KeyKind::EcP256),
        (KeySpec::Ed25519, KeyKind::Ed25519),
    ];
    for (spec, kind) in expected {
        let from_der = Certificate::from_bytes(cert(spec).der(), "cert.der").unwrap();
        assert_eq!(from_der.der(), cert(spec).der());
        assert_eq!(from_der.public_key().kind(), kind);
        assert_eq!(key(spec).kind(), kind);
    }
}

#[test]
fn missing_file_names_the_path() {
    let err = PrivateKey::load(Path::new("/nonexistent/key.pem"), None).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
    let err = Certificate::load(Path::new("/nonexistent/cert.pem")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn garbled_pem_is_an_invalid_key() {
    let garbled = b"-----BEGIN PRIVATE KEY-----\nMIIE!!!not base64!!!\n-----END PRIVATE KEY-----\n";
    let err = load_key_err(garbled, None);
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
    assert!(err.to_string().starts_with("the-key-file: "), "{err}");

    // Valid base64, but not a key inside.
    let hollow = pem("PRIVATE KEY", b"not DER at all");
    assert!(matches!(
        load_key_err(hollow.as_bytes(), None),
        Error::InvalidKey { .. }
    ));
    // Truncated: no end line.
    let key_pem = generated(KeySpec::P256).key_pem.as_str();
    let truncated = &key_pem[..key_pem.len() / 2];
    assert!(matches!(
        load_key_err(truncated.as_bytes(), None),
        Error::InvalidKey { .. }
    ));
    // Random bytes.
    assert!(matches!(
        load_key_err(&[0x30, 0x03, 0x02, 0x01], None),
        Error::InvalidKey { .. }
    ));
    assert!(matches!(load_key_err(b"", None), Error::InvalidKey { .. }));
}

#[test]
fn a_certificate_where_a_key_is_expected_and_the_reverse() {
    let cert_pem = generated(KeySpec::Rsa2048).cert_pem.as_bytes();
    let err = load_key_err(cert_pem, None);
    assert!(
        err.to_string()
            .contains("holds a certificate, not a private key"),
        "{err}"
    );
    let err = load_key_err(cert(KeySpec::Rsa2048).der(), None);
    assert!(
        err.to_string()
            .contains("holds a certificate, not a private key"),
        "{err}"
    );

    let key_pem = generated(KeySpec::Rsa2048).key_pem.as_bytes();
    let err = Certificate::from_bytes(key_pem, "the-cert-file").unwrap_err();
    assert!(matches!(err, Error::InvalidCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("the-cert-file"), "{err}");
    assert!(
        err.to_string()
            .contains("holds a private key, not a certificate"),
        "{err}"
    );
    let err = Certificate::from_bytes(&pkcs8_der(KeySpec::Rsa2048), "the-cert-file").unwrap_err();
    assert!(matches!(err, Error::InvalidCertificate { .. }), "{err:?}");
}

#[test]
fn encrypted_key_without_password() {
    let encrypted = encrypted_pkcs8_der(KeySpec::P256);
    for bytes in [
        encrypted.clone(),
        pem("ENCRYPTED PRIVATE KEY", &encrypted).into_bytes(),
    ] {
        let err = load_key_err(&bytes, None);
        assert!(matches!(err, Error::PasswordRequired { .. }), "{err:?}");
        assert!(err.to_string().contains("the-key-file"), "{err}");
    }
    let err = load_key_err(&pkcs12(KeySpec::P256), None);
    assert!(matches!(err, Error::PasswordRequired { .. }), "{err:?}");
}

/// An encrypted PKCS#8 key whose key derivation asks for `kdf` (the ciphertext is junk:
/// it must be refused before any decryption work).
fn encrypted_with_kdf(kdf: pkcs8::pkcs5::pbes2::Kdf<'_>) -> Vec<u8> {
    use der::Encode;
    let params = pkcs8::pkcs5::pbes2::Parameters {
        kdf,
        encryption: pkcs8::pkcs5::pbes2::EncryptionScheme::Aes256Cbc { iv: &[0; 16] },
    };
    pkcs8::EncryptedPrivateKeyInfo {
        encryption_algorithm: pkcs8::pkcs5::EncryptionScheme::Pbes2(params),
        encrypted_data: &[0; 48],
    }
    .to_der()
    .unwrap()
}

#[test]
fn hostile_key_derivation_parameters_are_refused_before_any_work() {
    use pkcs8::pkcs5::pbes2::{Kdf, Pbkdf2Params, Pbkdf2Prf, ScryptParams};
    let slow_pbkdf2 = encrypted_with_kdf(Kdf::Pbkdf2(Pbkdf2Params {
        salt: &[1; 16],
        iteration_count: u32::MAX,
        key_length: None,
        prf: Pbkdf2Prf::HmacWithSha256,
    }));
    let err = load_key_err(&slow_pbkdf2, Some(PASSWORD));
    assert!(err.to_string().contains("PBKDF2 iteration count"), "{err}");
    for (n, r) in [(0, 8), (3, 8), (1 << 40, 8), (1 << 20, 4096)] {
        let scrypt = encrypted_with_kdf(Kdf::Scrypt(ScryptParams {
            salt: &[1; 16],
            cost_parameter: n,
            block_size: r,
            parallelization: 1,
            key_length: None,
        }));
        let err = load_key_err(&scrypt, Some(PASSWORD));
        assert!(
            matches!(err, Error::InvalidKey { .. }),
            "N={n} r={r}: {err:?}"
        );
        assert!(
            err.to_string().contains("scrypt parameters out of range"),
            "{err}"
        );
    }
}

#[test]
fn oversized_files_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "huge.pem", &vec![b'A'; 2 * 1024 * 1024]);
    let err = PrivateKey::load(&path, None).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains("huge.pem") && err.to_string().contains("larger than"),
        "{err}"
    );
}

#[test]
fn wrong_password() {
    let err = load_key_err(&encrypted_pkcs8_der(KeySpec::P256), Some("wrong"));
    assert!(matches!(err, Error::Decrypt { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong password"), "{err}");
    let err = load_key_err(&pkcs12(KeySpec::P256), Some("wrong"));
    assert!(matches!(err, Error::Decrypt { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong password"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let pfx = write(dir.path(), "bundle.pfx", &pkcs12(KeySpec::Rsa2048));
    let err =
        Credential::load(backend::default_backend(), &pfx, None, Some("wrong"), None).unwrap_err();
    assert!(err.to_string().contains("bundle.pfx"), "{err}");
}

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
#[test]
fn key_that_does_not_match_the_certificate_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = write(
        dir.path(),
        "key.pem",
        generated(KeySpec::Rsa2048).key_pem.as_bytes(),
    );
    let cert_path = write(
        dir.path(),
        "cert.pem",
        other_generated(KeySpec::Rsa2048).cert_pem.as_bytes(),
    );
    for backend in backend::all() {
        let err = Credential::load(*backend, &key_path, Some(&cert_path), None, None).unwrap_err();
        assert!(
            matches!(err, Error::KeyCertificateMismatch { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("key.pem") && text.contains("cert.pem"),
            "{text}"
        );
    }
    // A key of another kind than the certificate's.
    let err = Credential::new(
        backend::default_backend(),
        &key(KeySpec::P256),
        cert(KeySpec::Ed25519),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::KeyCertificateMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let small = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
    let der = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&small).unwrap();
    let err = load_key_err(der.as_bytes(), None);
    assert!(
        matches!(err, Error::KeyTooSmall { bits: 1024, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("1024 bits"), "{err}");
    let pkcs1 = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&small).unwrap();
    let err = load_key_err(pem("RSA PRIVATE KEY", pkcs1.as_bytes()).as_bytes(), None);
    assert!(
        matches!(err, Error::KeyTooSmall { bits: 1024, .. }),
        "{err:?}"
    );
}

#[test]
fn an_algorithm_the_key_cannot_do() {
    let err = Credential::new(
        backend::default_backend(),
        &key(KeySpec::Rsa2048),
        cert(KeySpec::Rsa2048),
        Some(Algorithm::Es256),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AlgorithmMismatch {
                alg: Algorithm::Es256,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("PS256, RS256"), "{err}");
}

#[test]
fn unknown_names_list_the_choices() {
    let err = backend::by_name("openssl").unwrap_err();
    assert!(
        err.to_string().contains(&backend::names().join(", ")),
        "{err}"
    );
    assert_eq!(
        backend::by_name("RING").ok().map(|b| b.name()),
        backend::by_name("ring").ok().map(|b| b.name())
    );
    assert!("HS256".parse::<Algorithm>().is_err());
    assert_eq!("ps256".parse::<Algorithm>().unwrap(), Algorithm::Ps256);
    assert_eq!("EDDSA".parse::<Algorithm>().unwrap(), Algorithm::EdDsa);
    assert!("rsa1024".parse::<KeySpec>().is_err());
}

#[test]
fn public_keys_load_from_spki_pem_and_der() {
    for spec in KeySpec::ALL {
        let cert = cert(spec);
        let x509 = <x509_cert::Certificate as der::Decode>::from_der(cert.der()).unwrap();
        let spki = der::Encode::to_der(&x509.tbs_certificate.subject_public_key_info).unwrap();
        let from_der = PublicKey::from_bytes(&spki, "spki.der").unwrap();
        let from_pem =
            PublicKey::from_bytes(pem("PUBLIC KEY", &spki).as_bytes(), "spki.pem").unwrap();
        assert_eq!(&from_der, cert.public_key());
        assert_eq!(&from_pem, cert.public_key());
    }
}

#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
#[test]
fn hostile_jws_is_refused_before_any_signature_work() {
    use signer::jws::{Jws, JwsError};
    let header = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let sig = URL_SAFE_NO_PAD.encode([1u8; 64]);
    let cases = [
        (
            format!("{}.e30.{sig}", header(r#"{"alg":"none"}"#)),
            "AlgorithmNotAllowed",
        ),
        (
            format!("{}.e30.{sig}", header(r#"{"alg":"HS256"}"#)),
            "AlgorithmNotAllowed",
        ),
        (
            format!("{}.e30.", header(r#"{"alg":"none"}"#)),
            "AlgorithmNotAllowed",
        ),
        (
            format!("{}.e30.{sig}", header(r#"{"alg":"PS256","crit":["b64"]}"#)),
            "CriticalExtension",
        ),
        (format!("{}.e30", header(r#"{"alg":"PS256"}"#)), "Malformed"),
        (
            format!("{}.e30.{sig}.x", header(r#"{"alg":"PS256"}"#)),
            "Malformed",
        ),
        (format!("{}.e30.{sig}", header("not json")), "Malformed"),
        (
            format!("{}=.e30.{sig}", header(r#"{"alg":"PS256"}"#)),
            "Malformed",
        ),
        (
            format!("{}.e30.", header(r#"{"alg":"PS256"}"#)),
            "Malformed",
        ),
        ("a".repeat(signer::jws::MAX_COMPACT_LEN + 1), "TooLong"),
    ];
    for (token, expected) in cases {
        let err = Jws::parse(&token).unwrap_err();
        assert!(
            format!("{err:?}").starts_with(expected),
            "{token:.60}: {err:?}"
        );
    }

    // Well-formed but signed by another key, or with a key for another algorithm.
    let backend = backend::default_backend();
    let credential =
        Credential::new(backend, &key(KeySpec::P256), cert(KeySpec::P256), None).unwrap();
    let token = signer::AssertionBuilder::new(&credential, CLIENT_ID, AUDIENCE)
        .build()
        .unwrap();
    let other = other_generated(KeySpec::P256).certificate("other").unwrap();
    let verifier = backend
        .load_verifying_key(other.public_key(), Algorithm::Es256)
        .unwrap();
    let jws = Jws::parse(&token).unwrap();
    assert_eq!(
        jws.verify(verifier.as_ref()),
        Err(JwsError::BadSignature {
            alg: Algorithm::Es256
        })
    );
    let ed = backend
        .load_verifying_key(cert(KeySpec::Ed25519).public_key(), Algorithm::EdDsa)
        .unwrap();
    assert!(matches!(
        jws.verify(ed.as_ref()),
        Err(JwsError::AlgorithmMismatch { .. })
    ));
}
