//! Key and certificate loading: PEM and DER, PKCS#8 (plain and encrypted), PKCS#1, SEC1,
//! PKCS#12, X.509 certificates, each key loaded into every backend, and a key checked against
//! its certificate.
//!
//! Input: a mode byte (its value modulo 4; seeds use the digits `0`–`3`), then
//! - `0`: a key file, no password;
//! - `1`: a key file opened with the password `fuzz-password` (encrypted PKCS#8, PKCS#12);
//! - `2`: a certificate file;
//! - `3`: a key file, [`CERT_SEPARATOR`], a certificate file: a credential.
//!
//! Seeds: generated at run time (RSA-2048, P-256, Ed25519 in each form), since test keys are
//! never committed.
//!
//! Promise checked: a credential (a key and its certificate) made in any backend signs
//! assertions its certificate verifies.

use signer::{
    backend, jws, keygen, AssertionBuilder, Certificate, Credential, KeySpec, PrivateKey,
    Thumbprint,
};

use crate::{Outcome, Target};

pub(crate) const TARGET: Target = Target {
    name: "keys",
    about: "private keys and certificates in every accepted form",
    run,
    seeds,
};

/// The password of mode `1`.
const PASSWORD: &str = "fuzz-password";
/// Between the key and the certificate of mode `3`.
const CERT_SEPARATOR: &[u8] = b"\n--fuzz-certificate--\n";

fn run(data: &[u8]) -> Outcome {
    let Some((&mode, rest)) = data.split_first() else {
        return Outcome::Refused;
    };
    match mode % 4 {
        0 => load_key(rest, None),
        1 => load_key(rest, Some(PASSWORD)),
        2 => {
            let result = Certificate::from_bytes(rest, "fuzz.crt");
            if let Ok(cert) = &result {
                let _ = (cert.thumbprint(Thumbprint::X5t), cert.public_key().kind());
            }
            Outcome::of(&result)
        }
        _ => {
            let Some(at) = rest
                .windows(CERT_SEPARATOR.len())
                .position(|w| w == CERT_SEPARATOR)
            else {
                return Outcome::Refused;
            };
            let key = PrivateKey::from_bytes(&rest[..at], "fuzz.key", None);
            let cert = Certificate::from_bytes(&rest[at + CERT_SEPARATOR.len()..], "fuzz.crt");
            let (Ok(key), Ok(cert)) = (key, cert) else {
                return Outcome::Refused;
            };
            // Every backend: one may refuse a key another loads (ring and aws-lc-rs check
            // different things).
            let alg = key.kind().default_algorithm();
            let mut outcome = Outcome::Accepted;
            for backend in backend::all().iter().filter(|b| b.supports(alg)) {
                let Ok(credential) = Credential::new(*backend, &key, cert.clone(), None) else {
                    outcome = Outcome::Refused;
                    continue;
                };
                let assertion = AssertionBuilder::new(&credential, "fuzz", "https://fuzz")
                    .build()
                    .expect("a credential signs");
                if let Err(e) = jws::verify_with_certificate(&assertion, &cert, *backend) {
                    panic!(
                        "a {} credential signs what its certificate refuses: {e}",
                        backend.name()
                    );
                }
            }
            outcome
        }
    }
}

fn load_key(bytes: &[u8], password: Option<&str>) -> Outcome {
    let result = PrivateKey::from_bytes(bytes, "fuzz.key", password);
    let Ok(key) = &result else {
        return Outcome::Refused;
    };
    let kind = key.kind();
    let mut outcome = Outcome::Accepted;
    for backend in backend::all() {
        for &alg in kind.algorithms() {
            if !backend.supports(alg) {
                continue;
            }
            // A backend may check more than the parser (ring and aws-lc-rs refuse a P-256
            // key whose public point is not its scalar's): an error naming the key is fine.
            let Ok(signing) = backend.load_signing_key(key, alg) else {
                outcome = Outcome::Refused;
                continue;
            };
            // ring finds some inconsistent RSA keys only when it signs: an error, no panic
            // (a credential refuses such a key: mode 3).
            if alg == kind.default_algorithm() && signing.sign(b"fuzz").is_err() {
                outcome = Outcome::Refused;
            }
        }
    }
    outcome
}

/// Every spec's key and certificate in each form the modes take.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for spec in [KeySpec::Rsa2048, KeySpec::P256, KeySpec::Ed25519] {
        let generated = keygen::generate(spec, "fuzz seed", 1)
            .expect("the fuzz harness generates its seed keys");
        let key = generated.private_key("seed").expect("a fresh key parses");
        let cert = generated
            .certificate("seed")
            .expect("a fresh certificate parses");
        let pkcs8 = key.pkcs8_der();
        let mut with = |name: &str, mode: u8, bytes: &[u8]| {
            let mut seed = vec![mode];
            seed.extend_from_slice(bytes);
            seeds.push((format!("{spec}-{name}"), seed));
        };
        with("pkcs8.pem", b'0', generated.key_pem.as_bytes());
        with("pkcs8.der", b'0', pkcs8);
        with("encrypted.der", b'1', &encrypted_pkcs8(pkcs8));
        with("bundle.p12", b'1', &pkcs12(pkcs8, cert.der()));
        with("cert.pem", b'2', generated.cert_pem.as_bytes());
        with("cert.der", b'2', cert.der());
        let pair = [
            generated.key_pem.as_bytes(),
            CERT_SEPARATOR,
            generated.cert_pem.as_bytes(),
        ];
        with("credential", b'3', &pair.concat());
    }
    seeds
}

/// `pkcs8` encrypted as OpenSSL does by default (PBES2, PBKDF2-SHA256, AES-256-CBC).
fn encrypted_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8).expect("a generated key is PKCS#8");
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16])
        .expect("valid PBES2 parameters");
    info.encrypt_with_params(params, PASSWORD)
        .expect("a generated key encrypts")
        .as_bytes()
        .to_vec()
}

/// The key and its certificate as a PKCS#12 bundle.
fn pkcs12(pkcs8: &[u8], cert_der: &[u8]) -> Vec<u8> {
    let cert = p12_keystore::Certificate::from_der(cert_der).expect("a generated certificate");
    let chain = p12_keystore::PrivateKeyChain::new(pkcs8, [1, 2, 3, 4], [cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("fuzz", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    store
        .writer(PASSWORD)
        .write()
        .expect("a PKCS#12 bundle is written")
}
