//! Test material: keys generated once per test binary (never committed), and the other
//! encodings of them that users bring (PKCS#1, SEC1, DER, encrypted PKCS#8, PKCS#12).
#![allow(dead_code)] // each test binary uses a different part

use std::sync::OnceLock;

use der::{pem::LineEnding, Decode, Encode};
use signer::{keygen, Certificate, KeySpec, PrivateKey};

pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const AUDIENCE: &str = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token";
pub const PASSWORD: &str = "correct horse battery staple";

/// The generated key and certificate of `spec`, made once per test binary.
pub fn generated(spec: KeySpec) -> &'static keygen::Generated {
    static CACHE: [OnceLock<keygen::Generated>; 5] = [const { OnceLock::new() }; 5];
    cached(&CACHE, spec, "tokenbench test")
}

/// A second, unrelated key of the same kind (for mismatch tests).
pub fn other_generated(spec: KeySpec) -> &'static keygen::Generated {
    static CACHE: [OnceLock<keygen::Generated>; 5] = [const { OnceLock::new() }; 5];
    cached(&CACHE, spec, "tokenbench other")
}

fn cached(
    cache: &'static [OnceLock<keygen::Generated>; 5],
    spec: KeySpec,
    subject: &str,
) -> &'static keygen::Generated {
    let index = KeySpec::ALL.iter().position(|s| *s == spec).unwrap();
    cache[index].get_or_init(|| keygen::generate(spec, subject, 1).unwrap())
}

pub fn key(spec: KeySpec) -> PrivateKey {
    generated(spec).private_key(spec.as_str()).unwrap()
}

pub fn cert(spec: KeySpec) -> Certificate {
    generated(spec).certificate(spec.as_str()).unwrap()
}

pub fn pkcs8_der(spec: KeySpec) -> Vec<u8> {
    key(spec).pkcs8_der().to_vec()
}

pub fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, LineEnding::LF, der).unwrap()
}

/// The PKCS#1 `RSAPrivateKey` inside an RSA PKCS#8 key.
pub fn pkcs1_der(spec: KeySpec) -> Vec<u8> {
    let pkcs8 = pkcs8_der(spec);
    pkcs8::PrivateKeyInfo::try_from(pkcs8.as_slice())
        .unwrap()
        .private_key
        .to_vec()
}

/// A standalone SEC1 `ECPrivateKey` (with its named curve, as `openssl ecparam -genkey` writes).
pub fn sec1_der(spec: KeySpec) -> Vec<u8> {
    let pkcs8 = pkcs8_der(spec);
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8.as_slice()).unwrap();
    let mut ec = sec1::EcPrivateKey::from_der(info.private_key).unwrap();
    ec.parameters = Some(sec1::EcParameters::NamedCurve(
        info.algorithm.parameters_oid().unwrap(),
    ));
    ec.to_der().unwrap()
}

/// The key as encrypted PKCS#8 (PBES2, PBKDF2-SHA256, AES-256-CBC: OpenSSL's default).
pub fn encrypted_pkcs8_der(spec: KeySpec) -> Vec<u8> {
    let pkcs8 = pkcs8_der(spec);
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8.as_slice()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16]).unwrap();
    info.encrypt_with_params(params, PASSWORD)
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// The key and certificate as a PKCS#12 bundle protected by [`PASSWORD`].
pub fn pkcs12(spec: KeySpec) -> Vec<u8> {
    let cert = p12_keystore::Certificate::from_der(cert(spec).der()).unwrap();
    let chain = p12_keystore::PrivateKeyChain::new(pkcs8_der(spec), [1, 2, 3, 4], [cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "tokenbench",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(PASSWORD).write().unwrap()
}
