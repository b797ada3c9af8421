//! The measurement behind `tokenbench sign-bench`: per backend and algorithm, the raw
//! signature and the full assertion build, timed side by side in one process.
//!
//! Each pair is measured in interleaved rounds (sign, assertion, sign, assertion, …) so
//! that frequency scaling or a noisy neighbour affects both figures alike, which is what
//! makes their ratio (the assertion overhead) meaningful. The backends of one algorithm take
//! their turns within each round too, so the ratio of two backends is measured side by side
//! as well.
//!
//! With [`BenchConfig::threads`] above one, every slice runs on that many threads at once,
//! started together, each signing with the same loaded key as a gateway's request threads
//! do: the rates are their sum (a gateway's signing capacity on that many cores), the times
//! what one signature takes each thread meanwhile.

use std::{
    collections::{hash_map::Entry, HashMap},
    hint::black_box,
    sync::Barrier,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

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
    /// Threads signing at once (at least 1).
    pub threads: u32,
}

/// One backend × algorithm result: an object of the `sign-bench --json` array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Backend name.
    pub backend: String,
    /// The algorithm, as its JWS name.
    pub alg: Algorithm,
    /// Key size in bits (RSA modulus; 256 for P-256 and Ed25519).
    pub key_bits: usize,
    /// Threads that signed at once (1 in documents written before threads were measured).
    #[serde(default = "one_thread")]
    pub threads: u32,
    /// Raw signatures per second over an assertion-sized message, all threads together.
    pub signs_per_sec: f64,
    /// Nanoseconds one raw signature takes a thread.
    pub ns_per_sign: f64,
    /// Full assertions (claims, encoding, signature) per second, all threads together.
    pub assertions_per_sec: f64,
    /// Nanoseconds one full assertion takes a thread.
    pub assertion_ns: f64,
}

fn one_thread() -> u32 {
    1
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
        let mut credentials = Vec::new();
        for &backend in &config.backends {
            match Credential::new(backend, &key, cert.clone(), Some(alg)) {
                Ok(credential) => credentials.push(credential),
                Err(reason) => on_event(BenchEvent::Skipped {
                    backend: backend.name(),
                    alg,
                    reason,
                }),
            }
        }
        for credential in &credentials {
            on_event(BenchEvent::Started {
                backend: credential.signing_key().backend(),
                alg,
            });
        }
        for result in measure(
            &credentials,
            key.kind(),
            config.measure_time,
            config.threads.max(1),
        )? {
            on_event(BenchEvent::Finished(&result));
            results.push(result);
        }
    }
    Ok(results)
}

/// One algorithm on several backends: each backend's signature and assertion take their
/// turns in every round, so all figures see the same machine state.
fn measure(
    credentials: &[Credential],
    kind: KeyKind,
    budget: Duration,
    threads: u32,
) -> Result<Vec<BenchResult>, Error> {
    struct Subject<'a> {
        credential: &'a Credential,
        builder: AssertionBuilder,
        /// What a raw signature signs: header.payload of a real assertion.
        message: String,
        signs: (u64, Duration),
        assertions: (u64, Duration),
    }
    let mut subjects = Vec::new();
    for credential in credentials {
        let builder = AssertionBuilder::new(credential, CLIENT_ID, AUDIENCE);
        let sample = builder.build()?;
        let message = sample
            .rsplit_once('.')
            .map_or(sample.as_str(), |(input, _)| input)
            .to_owned();
        subjects.push(Subject {
            credential,
            builder,
            message,
            signs: (0, Duration::ZERO),
            assertions: (0, Duration::ZERO),
        });
    }
    let sign = |s: &Subject<'_>| {
        s.credential
            .signing_key()
            .sign(black_box(s.message.as_bytes()))
            .map(|signature| drop(black_box(signature)))
    };
    let assert = |s: &Subject<'_>| s.builder.build().map(|a| drop(black_box(a)));

    // Warm-up: caches, lazy initialisation, CPU frequency.
    let warm_up = (budget / 10).min(Duration::from_millis(300));
    for subject in &subjects {
        run_on(threads, warm_up, || sign(subject))?;
        run_on(threads, warm_up, || assert(subject))?;
    }

    let slice = budget / ROUNDS;
    for _ in 0..ROUNDS {
        for subject in &mut subjects {
            let (n, t) = run_on(threads, slice, || sign(subject))?;
            subject.signs.0 += n;
            subject.signs.1 += t;
            let (n, t) = run_on(threads, slice, || assert(subject))?;
            subject.assertions.0 += n;
            subject.assertions.1 += t;
        }
    }
    Ok(subjects
        .iter()
        .map(|s| {
            let key = s.credential.signing_key();
            let ns_per_sign = s.signs.1.as_nanos() as f64 / s.signs.0 as f64;
            let assertion_ns = s.assertions.1.as_nanos() as f64 / s.assertions.0 as f64;
            BenchResult {
                backend: key.backend().to_owned(),
                alg: key.algorithm(),
                key_bits: kind.bits(),
                threads,
                signs_per_sec: f64::from(threads) * 1e9 / ns_per_sign,
                ns_per_sign,
                assertions_per_sec: f64::from(threads) * 1e9 / assertion_ns,
                assertion_ns,
            }
        })
        .collect())
}

/// The median time one assertion takes to build with `credential`, over `samples` builds
/// (at least one) after one unmeasured build: what a simulation charges per signature.
pub fn assertion_cost(credential: &Credential, samples: u32) -> Result<Duration, Error> {
    let builder = AssertionBuilder::new(credential, CLIENT_ID, AUDIENCE);
    drop(black_box(builder.build()?));
    let mut times = Vec::with_capacity(samples.max(1) as usize);
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        drop(black_box(builder.build()?));
        times.push(start.elapsed());
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

/// [`run_for`] on `threads` threads released together; returns the calls and the time taken,
/// each summed over the threads (so time ÷ calls is what one call takes a thread).
fn run_on(
    threads: u32,
    slice: Duration,
    op: impl Fn() -> Result<(), Error> + Sync,
) -> Result<(u64, Duration), Error> {
    if threads <= 1 {
        return run_for(slice, &op);
    }
    let start = Barrier::new(threads as usize);
    let per_thread: Vec<Result<(u64, Duration), Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    run_for(slice, &op)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut total = (0, Duration::ZERO);
    for result in per_thread {
        let (calls, time) = result?;
        total.0 += calls;
        total.1 += time;
    }
    Ok(total)
}

/// Calls `op` until `slice` has passed (at least once); returns the calls and the time taken.
fn run_for(slice: Duration, op: impl Fn() -> Result<(), Error>) -> Result<(u64, Duration), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_round_trips_through_json() {
        let result = BenchResult {
            backend: "aws-lc-rs".to_owned(),
            alg: Algorithm::EdDsa,
            key_bits: 256,
            threads: 2,
            signs_per_sec: 40_000.0,
            ns_per_sign: 25_000.0,
            assertions_per_sec: 32_000.0,
            assertion_ns: 31_250.0,
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "backend": "aws-lc-rs", "alg": "EdDSA", "key_bits": 256, "threads": 2,
                "signs_per_sec": 40_000.0, "ns_per_sign": 25_000.0,
                "assertions_per_sec": 32_000.0, "assertion_ns": 31_250.0,
            })
        );
        assert_eq!(serde_json::from_value::<BenchResult>(json).unwrap(), result);
    }

    #[test]
    fn a_result_written_before_threads_were_measured_was_one_thread() {
        let json = r#"{"backend": "ring", "alg": "ES256", "key_bits": 256,
            "signs_per_sec": 1.0, "ns_per_sign": 1.0, "assertions_per_sec": 1.0, "assertion_ns": 1.0}"#;
        assert_eq!(
            serde_json::from_str::<BenchResult>(json).unwrap().threads,
            1
        );
    }

    #[test]
    fn every_thread_runs_its_slice_and_every_call_is_counted() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let calls = AtomicU64::new(0);
        let slice = Duration::from_millis(20);
        let (counted, time) = run_on(3, slice, || {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(counted, calls.load(Ordering::Relaxed));
        assert!(counted >= 3);
        assert!(time >= slice * 3, "{time:?}");
        let failed = run_on(2, slice, || {
            Err(Error::UnknownAlgorithm {
                name: "x".to_owned(),
            })
        });
        assert!(matches!(failed, Err(Error::UnknownAlgorithm { .. })));
    }

    #[test]
    fn unknown_algorithm_is_named() {
        let json = r#"{"backend": "ring", "alg": "HS256", "key_bits": 2048,
            "signs_per_sec": 1.0, "ns_per_sign": 1.0, "assertions_per_sec": 1.0, "assertion_ns": 1.0}"#;
        let err = serde_json::from_str::<BenchResult>(json).unwrap_err();
        assert!(err.to_string().contains("\"HS256\""), "{err}");
    }
}
