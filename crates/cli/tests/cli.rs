//! The `tokenbench` binary end to end: outputs, and exit code 2 with a clear message for bad input.

mod common;
use common::{stderr, stdout, tokenbench};

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::Value;

const AUDIENCE: &str = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token";

fn keygen(dir: &Path, kind: &str) -> (PathBuf, PathBuf) {
    let out = dir.join(kind);
    let output = tokenbench(&["keygen", "--out", out.to_str().unwrap(), "--kind", kind]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let key = PathBuf::from(summary["key"].as_str().unwrap());
    let cert = PathBuf::from(summary["cert"].as_str().unwrap());
    assert!(summary["x5t"].is_string() && summary["x5t#S256"].is_string());
    (key, cert)
}

fn assertion(key: &Path, cert: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "assertion",
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--client-id",
        "client-1",
        "--audience",
        AUDIENCE,
    ];
    args.extend_from_slice(extra);
    tokenbench(&args)
}

/// Exit code 2, and stderr names `needle` (usually the file) and says `what`.
fn assert_bad_input(output: &Output, needle: &str, what: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert!(output.stdout.is_empty(), "stdout must stay empty on error");
    assert!(
        err.contains(needle),
        "stderr {err:?} does not name {needle:?}"
    );
    assert!(err.contains(what), "stderr {err:?} does not say {what:?}");
}

#[test]
fn keygen_then_assertion_prints_only_the_jws() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, default_alg) in [
        ("rsa2048", "PS256"),
        ("p256", "ES256"),
        ("ed25519", "EdDSA"),
    ] {
        let (key, cert) = keygen(dir.path(), kind);
        let key_pem = std::fs::read_to_string(&key).unwrap();
        assert!(
            key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8 expected"
        );
        let output = assertion(&key, &cert, &["--lifetime", "2m"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        let jws = text.trim_end();
        assert_eq!(text.lines().count(), 1);
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], default_alg);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
            120
        );
        assert_eq!(claims["aud"], AUDIENCE);
    }
}

#[test]
fn keygen_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "p256");
    let out = dir.path().join("p256");
    let output = tokenbench(&["keygen", "--out", out.to_str().unwrap(), "--kind", "p256"]);
    assert_bad_input(&output, "key.pem", "--force");
}

#[test]
fn bad_key_and_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "rsa2048");
    let (_, other_cert) = keygen(dir.path(), "p256");
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN PRIVATE KEY-----\n@@@@\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");

    assert_bad_input(
        &assertion(&missing, &cert, &[]),
        "missing.pem",
        "cannot read",
    );
    assert_bad_input(
        &assertion(&garbled, &cert, &[]),
        "garbled.pem",
        "malformed PEM",
    );
    assert_bad_input(
        &assertion(&cert, &cert, &[]),
        "cert.pem",
        "holds a certificate, not a private key",
    );
    assert_bad_input(
        &assertion(&key, &key, &[]),
        "key.pem",
        "holds a private key, not a certificate",
    );
    assert_bad_input(
        &assertion(&key, &other_cert, &[]),
        "does not match",
        "p256/cert.pem",
    );
    assert_bad_input(
        &assertion(&key, &cert, &["--alg", "ES256"]),
        "key.pem",
        "cannot be used with this RSA-2048 key",
    );
    let (p256_key, p256_cert) = (dir.path().join("p256/key.pem"), other_cert.clone());
    assert_bad_input(
        &assertion(&p256_key, &p256_cert, &["--backend", "rsa"]),
        "backend rsa",
        "does not support ES256",
    );
    assert_bad_input(
        &assertion(&key, &cert, &["--backend", "openssl"]),
        "openssl",
        "available",
    );
}

#[test]
fn encrypted_key_and_pfx_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "p256");
    let pkcs8 = pem_der(&std::fs::read_to_string(&key).unwrap());
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8.as_slice()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[1; 16], &[2; 16]).unwrap();
    let encrypted = info.encrypt_with_params(params, "secret").unwrap();
    let encrypted_path = dir.path().join("encrypted.pem");
    std::fs::write(
        &encrypted_path,
        encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", Default::default())
            .unwrap(),
    )
    .unwrap();

    assert_bad_input(
        &assertion(&encrypted_path, &cert, &[]),
        "encrypted.pem",
        "encrypted; give its password",
    );
    assert_bad_input(
        &assertion(&encrypted_path, &cert, &["--password", "nope"]),
        "encrypted.pem",
        "cannot decrypt",
    );
    assert!(assertion(&encrypted_path, &cert, &["--password", "secret"])
        .status
        .success());

    let cert_der = pem_der(&std::fs::read_to_string(&cert).unwrap());
    let p12_cert = p12_keystore::Certificate::from_der(&cert_der).unwrap();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "k",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            &pkcs8,
            [1],
            [p12_cert],
        )),
    );
    let pfx = dir.path().join("bundle.pfx");
    std::fs::write(&pfx, store.writer("secret").write().unwrap()).unwrap();
    let pfx_args = |password: Option<&str>| {
        let mut args = vec![
            "assertion",
            "--key",
            pfx.to_str().unwrap(),
            "--client-id",
            "c",
            "--audience",
            AUDIENCE,
        ];
        if let Some(p) = password {
            args.extend(["--password", p]);
        }
        tokenbench(&args)
    };
    assert_bad_input(&pfx_args(None), "bundle.pfx", "give its password");
    assert_bad_input(&pfx_args(Some("nope")), "bundle.pfx", "wrong password");
    let ok = pfx_args(Some("secret"));
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn sign_bench_json_covers_every_backend() {
    let output = tokenbench(&[
        "sign-bench",
        "--json",
        "--seconds",
        "0.05",
        "--alg",
        "PS256,ES256",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let results: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let results = results.as_array().unwrap();
    // PS256 on all three backends, ES256 on ring and aws-lc-rs; rsa × ES256 is skipped with a note.
    assert_eq!(results.len(), 5);
    let mut backends: Vec<&str> = results
        .iter()
        .map(|r| r["backend"].as_str().unwrap())
        .collect();
    backends.sort_unstable();
    backends.dedup();
    assert_eq!(backends, ["aws-lc-rs", "ring", "rsa"]);
    for r in results {
        for key in [
            "signs_per_sec",
            "ns_per_sign",
            "assertions_per_sec",
            "assertion_ns",
        ] {
            assert!(r[key].as_f64().unwrap() > 0.0, "{key} in {r}");
        }
        let expected_bits = if r["alg"] == "PS256" { 2048 } else { 256 };
        assert_eq!(r["key_bits"], expected_bits);
    }
    assert!(
        stderr(&output).contains("skipping rsa ES256"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sign_bench_rejects_bad_values() {
    assert_bad_input(
        &tokenbench(&["sign-bench", "--backend", "nss"]),
        "nss",
        "unknown crypto backend",
    );
    assert_bad_input(
        &tokenbench(&["sign-bench", "--alg", "HS256"]),
        "HS256",
        "unknown algorithm",
    );
    assert_bad_input(
        &tokenbench(&["sign-bench", "--key-bits", "1024"]),
        "1024",
        "possible values: 2048, 3072, 4096",
    );
    assert_bad_input(
        &tokenbench(&["sign-bench", "--seconds", "0"]),
        "--seconds",
        "above 0",
    );
}

/// The DER inside a one-section PEM file.
fn pem_der(text: &str) -> Vec<u8> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn an_assertion_lifetime_past_a_day_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path(), "p256");
    for lifetime in ["18446744073709551615s", "25h"] {
        let output = assertion(&key, &cert, &["--lifetime", lifetime]);
        assert_eq!(output.status.code(), Some(2), "{lifetime}");
        assert!(
            stderr(&output).contains("1s to 1day"),
            "{}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty());
    }
}
