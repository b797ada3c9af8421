//! Criterion benches of client-assertion signing.
//!
//! What is measured, per crypto backend (`rsa`, `ring`, `aws-lc-rs`) × algorithm (PS256,
//! RS256 on RSA-2048; ES256 on P-256; EdDSA on Ed25519), skipping the pairs a backend lacks
//! (the `rsa` backend has no ES256 or EdDSA):
//!
//! - `sign/{backend}/{alg}`: the raw signature alone, `SigningKey::sign` over the signing
//!   input (`header.payload`) of a real assertion of that credential, so the message is the
//!   size the builder signs.
//! - `assertion/{backend}/{alg}`: a full `AssertionBuilder::build`: claims with a fresh `jti`
//!   and the current time, base64url encoding, the signature and its encoding. The difference
//!   to `sign` is what an assertion costs beyond its signature.
//! - `steps/thumbprint/x5t` and `steps/thumbprint/x5t#S256`: the certificate thumbprints
//!   (SHA-1 / SHA-256 of the DER, base64url) of the RSA-2048 certificate. The builder computes
//!   them once per certificate, at load, not per assertion.
//! - `steps/encode/claims` and `steps/encode/signature`: base64url (no padding) of the claims
//!   JSON (about 280 bytes) and of a 256-byte RSA-2048 signature, appended to a reused,
//!   preallocated `String` as the builder does.
//!
//! Keys and self-signed certificates are generated afresh at start, one per key kind and
//! shared by all backends. Client id and audience are Entra-sized: a GUID and
//! `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
//!
//! Run everything with `cargo bench` (a few minutes on two cores), or a subset by passing a
//! criterion filter (a regular expression over the ids above):
//!
//! ```text
//! cargo bench -- sign/aws-lc-rs          # raw signatures on aws-lc-rs
//! cargo bench -- '^assertion/.*/PS256'   # full PS256 assertions on every backend
//! cargo bench -- steps                   # thumbprints and encoding
//! cargo bench -- --quick steps           # a quick, less precise run
//! ```
//!
//! Warm-up (1 s) and measurement (3 s) times are defaults that `--warm-up-time` and
//! `--measurement-time` override; the `sign` and `assertion` groups take 30 samples each,
//! because a linear sampling plan of criterion's default 100 samples at about a millisecond
//! per RSA signature would need several times the measurement time.

use std::{hint::black_box, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use signer::{
    backend,
    keygen::{self, KeySpec},
    Algorithm, AssertionBuilder, Certificate, Credential, Thumbprint,
};

/// Client id of the benchmark assertions: a GUID, as Entra's are (same as `sign-bench`).
const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
/// Audience: an Entra v2 token endpoint with a tenant GUID (same as `sign-bench`).
const AUDIENCE: &str =
    "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token";

/// Samples per benchmark in the `sign` and `assertion` groups.
const SLOW_SAMPLES: usize = 30;

/// One backend × algorithm pair, ready to sign.
struct Case {
    /// `{backend}/{alg}`.
    id: String,
    builder: AssertionBuilder,
    credential: Credential,
    /// The signing input (`header.payload`) of one assertion built by `builder`.
    message: Vec<u8>,
}

/// Everything the benches use, built once.
struct Fixture {
    cases: Vec<Case>,
    /// The RSA-2048 certificate, for the thumbprint steps.
    rsa_certificate: Certificate,
    /// The claims JSON of one PS256 assertion, as the builder encodes it.
    claims: Vec<u8>,
    /// A PS256 signature with an RSA-2048 key (256 bytes), as the builder encodes it.
    signature: Vec<u8>,
}

/// The key kind each algorithm signs with.
fn key_spec(alg: Algorithm) -> KeySpec {
    match alg {
        Algorithm::Ps256 | Algorithm::Rs256 => KeySpec::Rsa2048,
        Algorithm::Es256 => KeySpec::P256,
        Algorithm::EdDsa => KeySpec::Ed25519,
    }
}

fn fixture() -> Fixture {
    let mut cases = Vec::new();
    let mut rsa_certificate = None;
    // One key per kind, shared by its algorithms (PS256 and RS256) and by all backends.
    let mut keys: Vec<(KeySpec, keygen::Generated)> = Vec::new();
    for alg in Algorithm::ALL {
        let spec = key_spec(alg);
        if !keys.iter().any(|(s, _)| *s == spec) {
            let generated = keygen::generate(spec, "bench", 1)
                .unwrap_or_else(|e| panic!("generating a {spec} key: {e}"));
            keys.push((spec, generated));
        }
        let (_, generated) = keys
            .iter()
            .find(|(s, _)| *s == spec)
            .expect("generated above");
        let key = generated
            .private_key(spec.as_str())
            .unwrap_or_else(|e| panic!("parsing the generated {spec} key: {e}"));
        let certificate = generated
            .certificate(spec.as_str())
            .unwrap_or_else(|e| panic!("parsing the generated {spec} certificate: {e}"));
        if spec == KeySpec::Rsa2048 && rsa_certificate.is_none() {
            rsa_certificate = Some(certificate.clone());
        }
        for &backend in backend::all() {
            let credential = match Credential::new(backend, &key, certificate.clone(), Some(alg)) {
                Ok(credential) => credential,
                Err(reason) => {
                    eprintln!("skipping {}/{alg}: {reason}", backend.name());
                    continue;
                }
            };
            let builder = AssertionBuilder::new(&credential, CLIENT_ID, AUDIENCE);
            let sample = builder
                .build()
                .unwrap_or_else(|e| panic!("building a {}/{alg} assertion: {e}", backend.name()));
            let (input, _) = sample
                .rsplit_once('.')
                .expect("a compact JWS has three parts");
            cases.push(Case {
                id: format!("{}/{alg}", backend.name()),
                builder,
                credential,
                message: input.as_bytes().to_vec(),
            });
        }
    }
    assert!(
        !cases.is_empty(),
        "no backend can sign: no benchmarks to run"
    );

    // The encoding steps encode exactly what the builder encodes: the parts of a real
    // PS256 assertion (RSA-2048), decoded back to bytes.
    let ps256 = cases
        .iter()
        .find(|case| case.credential.algorithm() == Algorithm::Ps256)
        .expect("some backend has PS256");
    let assertion = ps256.builder.build().expect("building a PS256 assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).expect("a base64url JWS part");
    let (claims, signature) = (decode(parts[1]), decode(parts[2]));
    assert_eq!(signature.len(), 256, "an RSA-2048 signature has 256 bytes");

    Fixture {
        cases,
        rsa_certificate: rsa_certificate.expect("an RSA-2048 certificate was generated"),
        claims,
        signature,
    }
}

fn signing(c: &mut Criterion) {
    let fixture = fixture();
    bench_sign(c, &fixture);
    bench_assertion(c, &fixture);
    bench_steps(c, &fixture);
}

/// `sign/{backend}/{alg}`: the raw signature over an assertion's signing input.
fn bench_sign(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("sign");
    group.sample_size(SLOW_SAMPLES);
    group.throughput(Throughput::Elements(1));
    for case in &fixture.cases {
        let key = case.credential.signing_key();
        group.bench_function(case.id.as_str(), |b| {
            b.iter(|| key.sign(black_box(&case.message)).expect("signing"));
        });
    }
    group.finish();
}

/// `assertion/{backend}/{alg}`: a complete signed assertion.
fn bench_assertion(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("assertion");
    group.sample_size(SLOW_SAMPLES);
    group.throughput(Throughput::Elements(1));
    for case in &fixture.cases {
        let builder = &case.builder;
        group.bench_function(case.id.as_str(), |b| {
            b.iter(|| builder.build().expect("building an assertion"));
        });
    }
    group.finish();
}

/// `steps/...`: the thumbprints and the base64url encoding, alone.
fn bench_steps(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("steps");

    let der = fixture.rsa_certificate.der();
    group.throughput(Throughput::Bytes(der.len() as u64));
    for thumbprint in [Thumbprint::X5t, Thumbprint::X5tS256] {
        let id = format!("thumbprint/{}", thumbprint.header_name());
        group.bench_function(id, |b| b.iter(|| thumbprint.of_der(black_box(der))));
    }

    // The builder appends to a String it has sized for the whole JWS; so does this.
    let mut out = String::with_capacity(1024);
    for (id, bytes) in [
        ("encode/claims", &fixture.claims),
        ("encode/signature", &fixture.signature),
    ] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(id, |b| {
            b.iter(|| {
                out.clear();
                URL_SAFE_NO_PAD.encode_string(black_box(bytes.as_slice()), &mut out);
                black_box(out.len())
            });
        });
    }

    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = signing
}
criterion_main!(benches);
