//! The measurement behind `tokenbench sign-bench`: per backend and algorithm, the raw
//! signature and the full assertion build, timed side by side in one process.
//!
//! Each pair is measured in interleaved rounds (sign, assertion, sign, assertion, …) so
//! that frequency scaling or a noisy neighbour affects both figures alike, which is what
//! makes their ratio (the assertion overhead) meaningful.

use std::{
    collections::{hash_map::Entry, HashMap},
    hint::black_box,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    keygen::{self, KeySpec},
    Algorithm, AssertionBuilder, Credential, CryptoBackend, Error, KeyKind,
};

/// Interleaved rounds per measurement.
const ROUNDS: u32 = 10;

/// Client id and audience of the benchmark assertions: Entra-sized values.
const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const AUDIENCE: &str =
    "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token";

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Backends to measure.
    pub backends: Vec<&'static dyn CryptoBackend>,
    /// Algorithms to measure on each backend.
    pub algorithms: Vec<Algorithm>,
    /// RSA modulus size for RS256 and PS256 (2048, 3072 or 4096).
    pub rsa_bits: usize,
    /// Time spent on each of the two figures (signature, assertion) per combination.
    pub measure_time: Duration,
}

/// One backend × algorithm result. Serialises to the `sign-bench --json` object.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Backend name.
    pub backend: &'static str,
    /// JWS algorithm name.
    #[serde(serialize_with = "serialize_alg")]
    pub alg: Algorithm,
    /// Key size in bits (RSA modulus; 256 for P-256 and Ed25519).
    pub key_bits: usize,
    /// Raw signatures per second over an assertion-sized message.
    pub signs_per_sec: f64,
    /// Nanoseconds per raw signature.
    pub ns_per_sign: f64,
    /// Full assertions (claims, encoding, signature) per second.
    pub assertions_per_sec: f64,
    /// Nanoseconds per full assertion.
    pub assertion_ns: f64,
}

fn serialize_alg<S: serde::Serializer>(alg: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(alg.as_str())
}

/// Progress of a run, for the caller to report as it sees fit.
#[derive(Debug)]
pub enum BenchEvent<'a> {
    /// A combination is about to be measured.
    Started {
        /// Backend name.
        backend: &'static str,
        /// Algorithm.
        alg: Algorithm,
    },
    /// A combination was measured.
    Finished(&'a BenchResult),
    /// A combination cannot be measured (the backend lacks the algorithm, or refuses the key).
    Skipped {
        /// Backend name.
        backend: &'static str,
        /// Algorithm.
        alg: Algorithm,
        /// Why.
        reason: Error,
    },
}

/// Runs the benchmark: one freshly generated key per key kind, shared by all backends.
pub fn run(
    config: &BenchConfig,
    mut on_event: impl FnMut(BenchEvent<'_>),
) -> Result<Vec<BenchResult>, Error> {
    let rsa_spec = KeySpec::rsa(config.rsa_bits)?;
    let mut keys: HashMap<KeySpec, keygen::Generated> = HashMap::new();
    let mut results = Vec::new();
    for &alg in &config.algorithms {
        let spec = match alg {
            Algorithm::Ps256 | Algorithm::Rs256 => rsa_spec,
            Algorithm::Es256 => KeySpec::P256,
            Algorithm::EdDsa => KeySpec::Ed25519,
        };
        if let Entry::Vacant(slot) = keys.entry(spec) {
            slot.insert(keygen::generate(spec, "tokenbench sign-bench", 1)?);
        }
        let generated = &keys[&spec];
        let key = generated.private_key(spec.as_str())?;
        let cert = generated.certificate(spec.as_str())?;
        for &backend in &config.backends {
            let credential = match Credential::new(backend, &key, cert.clone(), Some(alg)) {
                Ok(credential) => credential,
                Err(reason) => {
                    on_event(BenchEvent::Skipped {
                        backend: backend.name(),
                        alg,
                        reason,
                    });
                    continue;
                }
            };
            on_event(BenchEvent::Started {
                backend: backend.name(),
                alg,
            });
            let result = measure(&credential, key.kind(), config.measure_time)?;
            on_event(BenchEvent::Finished(&result));
            results.push(result);
        }
    }
    Ok(results)
}

fn measure(credential: &Credential, kind: KeyKind, budget: Duration) -> Result<BenchResult, Error> {
    let builder = AssertionBuilder::new(credential, CLIENT_ID, AUDIENCE);
    // The raw signature signs what an assertion signs: header.payload of a real one.
    let sample = builder.build()?;
    let message = sample
        .rsplit_once('.')
        .map_or(sample.as_str(), |(input, _)| input);
    let key = credential.signing_key();
    let sign = || {
        key.sign(black_box(message.as_bytes()))
            .map(|s| drop(black_box(s)))
    };
    let assert = || builder.build().map(|a| drop(black_box(a)));

    // Warm-up: caches, lazy initialisation, CPU frequency.
    let warm_up = (budget / 10).min(Duration::from_millis(300));
    run_for(warm_up, sign)?;
    run_for(warm_up, assert)?;

    let slice = budget / ROUNDS;
    let (mut signs, mut sign_time) = (0u64, Duration::ZERO);
    let (mut assertions, mut assertion_time) = (0u64, Duration::ZERO);
    for _ in 0..ROUNDS {
        let (n, t) = run_for(slice, sign)?;
        signs += n;
        sign_time += t;
        let (n, t) = run_for(slice, assert)?;
        assertions += n;
        assertion_time += t;
    }
    let ns_per_sign = sign_time.as_nanos() as f64 / signs as f64;
    let assertion_ns = assertion_time.as_nanos() as f64 / assertions as f64;
    Ok(BenchResult {
        backend: key.backend(),
        alg: key.algorithm(),
        key_bits: kind.bits(),
        signs_per_sec: 1e9 / ns_per_sign,
        ns_per_sign,
        assertions_per_sec: 1e9 / assertion_ns,
        assertion_ns,
    })
}

/// Calls `op` until `slice` has passed (at least once); returns the calls and the time taken.
fn run_for(
    slice: Duration,
    mut op: impl FnMut() -> Result<(), Error>,
) -> Result<(u64, Duration), Error> {
    let start = Instant::now();
    let mut calls = 0;
    loop {
        op()?;
        calls += 1;
        let elapsed = start.elapsed();
        if elapsed >= slice {
            return Ok((calls, elapsed));
        }
    }
}
