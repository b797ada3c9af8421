//! The `tokenbench` command line. Thin: parsing and printing; the work is in the libraries.
#![forbid(unsafe_code)]
// The doc comments of the argument structs are the `--help` text, written for a terminal
// (`<value>`, `NAME[:TOLERANCE]`), not rustdoc markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

mod ci;
mod compare;
mod merge;
mod mock;
mod render;
mod run;

// glibc's malloc serialises the driver's and the embedded servers' threads on its arena locks
// (futex wake-ups were the largest kernel cost in a profile at 40,000 req/s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod token;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use signer::{
    backend,
    bench::{self, BenchConfig, BenchEvent, BenchResult},
    keygen, Algorithm, AssertionBuilder, Credential, KeySpec, Thumbprint,
};

/// Benchmarks and load-tests the certificate-signed client-assertion path of an API gateway.
#[derive(Parser)]
#[command(name = "tokenbench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (default: the shipped `default`) against the embedded mock identity
    /// provider and backend, and write its reports.
    Run(run::RealTimeArgs),
    /// Simulate a scenario on a virtual clock (the same gateway, cache, identity provider and
    /// backend code, in-process, without sockets or waiting) and write its reports.
    Simulate(run::SimulateArgs),
    /// Generate a private key (PKCS#8 PEM) and a self-signed certificate.
    Keygen(KeygenArgs),
    /// Sign one client assertion (Entra ID profile) and print the compact JWS.
    Assertion(AssertionArgs),
    /// Measure signatures and full assertions per second, per backend and algorithm.
    SignBench(SignBenchArgs),
    /// Serve the mock identity provider and protected backend on loopback until SIGINT/SIGTERM.
    Mock(mock::MockArgs),
    /// Get one access token from a token endpoint (certificate assertion or client secret).
    Token(token::TokenArgs),
    /// Merge the reports of a sharded run's shards (`run --shard I/N`) into the whole run's:
    /// counts summed, histograms merged exactly; exit 2 if a shard is missing, duplicated or
    /// of another run.
    Merge(merge::MergeArgs),
    /// Render a report's or a comparison's pages (report.html/.md, comparison.html/.md)
    /// again from its report.json or comparison.json.
    Report(render::ReportArgs),
    /// Compare two report.json, comparison.json or sign-bench --json files metric by metric;
    /// exit 3 if a metric got worse beyond its tolerance.
    Compare(compare::CompareArgs),
    /// Run the short seeded regression suite and compare it with the committed baseline
    /// (exit 3 on a regression), or record a new baseline with --update.
    Ci(ci::CiArgs),
}

#[derive(Args)]
struct KeygenArgs {
    /// Directory to write key.pem and cert.pem into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Key kind: rsa2048, rsa3072, rsa4096, p256 or ed25519.
    #[arg(long, default_value = "rsa2048")]
    kind: KeySpec,
    /// Certificate subject common name.
    #[arg(long, default_value = "tokenbench")]
    subject: String,
    /// Certificate validity in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Overwrite key.pem and cert.pem if they exist.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct AssertionArgs {
    /// Private key: PEM or DER (PKCS#8, PKCS#1, SEC1), or a PKCS#12 .pfx with --password.
    #[arg(long)]
    key: PathBuf,
    /// Certificate, PEM or DER (optional when --key is a .pfx).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Password of an encrypted key or .pfx.
    #[arg(long, env = "TOKENBENCH_KEY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Client id: the assertion's iss and sub.
    #[arg(long)]
    client_id: String,
    /// Audience: the token endpoint URL (or the issuer, for providers that want it).
    #[arg(long)]
    audience: String,
    /// PS256, RS256, ES256 or EdDSA [default: PS256 for RSA keys, else the key's one algorithm].
    #[arg(long)]
    alg: Option<Algorithm>,
    /// Crypto backend: rsa, ring or aws-lc-rs [default: aws-lc-rs].
    #[arg(long)]
    backend: Option<String>,
    /// Assertion lifetime (exp - nbf), e.g. 600s or 10m.
    #[arg(long, default_value = "600s", value_parser = parse_lifetime)]
    lifetime: Duration,
}

#[derive(Args)]
struct SignBenchArgs {
    /// Backends: all, or a comma-separated list of rsa, ring, aws-lc-rs.
    #[arg(long, default_value = "all")]
    backend: String,
    /// Algorithms: all, or a comma-separated list of PS256, RS256, ES256, EdDSA.
    #[arg(long, default_value = "all")]
    alg: String,
    /// RSA modulus size for PS256 and RS256.
    #[arg(long, default_value = "2048", value_parser = ["2048", "3072", "4096"])]
    key_bits: String,
    /// Seconds spent on each figure (signature, assertion) per backend and algorithm.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Threads signing at once with each key (1 to 1024): the rates are their sum, a
    /// gateway's signing capacity on that many cores.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Simulate(args) => run::simulate(args),
        Command::Keygen(args) => keygen_command(args),
        Command::Assertion(args) => assertion_command(args),
        Command::SignBench(args) => sign_bench_command(args),
        Command::Mock(args) => mock::run(args),
        Command::Token(args) => token::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Report(args) => render::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Ci(args) => ci::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", message(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// `error` and its causes, `: `-separated, each said once: the library errors name their
/// cause in their own message, so a cause that message already holds is not repeated.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// 3 for a regression, 2 for bad input (files, keys, certificates, names, benchmark
/// documents, a scenario that cannot be simulated), 1 for anything else.
fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<Regressed>()) {
        return 3;
    }
    let bad_input = error.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<report::regression::RegressionError>()
            || cause.is::<scenario::ScenarioError>()
            || cause.is::<report::MergeError>()
            || matches!(
                cause.downcast_ref::<driver::RunError>(),
                Some(driver::RunError::NotSimulable(_))
            )
            || cause.downcast_ref::<signer::Error>().is_some_and(|e| {
                !matches!(
                    e,
                    signer::Error::Signing { .. } | signer::Error::KeyGeneration { .. }
                )
            })
    });
    if bad_input {
        2
    } else {
        1
    }
}

/// A command-line value that parsed but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// `error` as bad input (exit code 2), with its message alone.
fn usage(error: impl std::fmt::Display) -> anyhow::Error {
    UsageError(error.to_string()).into()
}

/// The multi-threaded runtime every async command runs on.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Metrics that got worse beyond their tolerance (exit code 3); each is named on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0} metric(s) regressed beyond tolerance")]
struct Regressed(usize);

/// A human duration (`600s`, `10m`, `20ms`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let lifetime = parse_duration(text)?;
    let most = ::mock::MAX_ASSERTION_LIFETIME;
    if lifetime < Duration::from_secs(1) || lifetime > most {
        return Err(format!(
            "must be from 1s to {} (the longest the mock identity provider accepts; Entra \
             wants short-lived assertions, 10 minutes by convention)",
            humantime::format_duration(most)
        ));
    }
    Ok(lifetime)
}

fn keygen_command(args: KeygenArgs) -> anyhow::Result<()> {
    let key_path = args.out.join("key.pem");
    let cert_path = args.out.join("cert.pem");
    if !args.force {
        for path in [&key_path, &cert_path] {
            if path.exists() {
                return Err(usage(format!(
                    "{} exists; pass --force to overwrite it",
                    path.display()
                )));
            }
        }
    }
    let generated = keygen::generate(args.kind, &args.subject, args.days)?;
    // Parse what we are about to write: the thumbprints printed are those of these bytes.
    let cert = generated.certificate(&cert_path.display().to_string())?;
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    write_private(&key_path, generated.key_pem.as_bytes())?;
    fs::write(&cert_path, &generated.cert_pem)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    let summary = serde_json::json!({
        "key": key_path,
        "cert": cert_path,
        "x5t": cert.thumbprint(Thumbprint::X5t),
        "x5t#S256": cert.thumbprint(Thumbprint::X5tS256),
    });
    println!("{summary}");
    Ok(())
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // `mode` applies only when creating: an existing file (with --force) keeps its mode.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot restrict the permissions of {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn assertion_command(args: AssertionArgs) -> anyhow::Result<()> {
    let backend = match &args.backend {
        Some(name) => backend::by_name(name)?,
        None => backend::default_backend(),
    };
    let credential = Credential::load(
        backend,
        &args.key,
        args.cert.as_deref(),
        args.password.as_deref(),
        args.alg,
    )?;
    let assertion = AssertionBuilder::new(&credential, args.client_id, args.audience)
        .with_lifetime(args.lifetime)
        .build()?;
    println!("{assertion}");
    Ok(())
}

fn sign_bench_command(args: SignBenchArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(usage(format!(
            "--seconds must be above 0 and at most 3600, not {}",
            args.seconds
        )));
    }
    let config = BenchConfig {
        backends: parse_list(&args.backend, backend::all(), backend::by_name)?,
        algorithms: parse_list(&args.alg, &Algorithm::ALL, |name| name.parse())?,
        rsa_bits: args.key_bits.parse()?,
        measure_time: Duration::from_secs_f64(args.seconds),
        threads: args.threads,
    };
    let results = bench::run(&config, |event| match event {
        BenchEvent::Started { backend, alg } => {
            eprintln!("measuring {backend} {alg} ...");
        }
        BenchEvent::Finished(_) => {}
        BenchEvent::Skipped {
            backend,
            alg,
            reason,
        } => eprintln!("note: skipping {backend} {alg}: {reason}"),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_table(&results);
    }
    Ok(())
}

/// `all`, or a comma-separated list of names (repeats dropped), each parsed by `parse`.
fn parse_list<T: Copy>(
    text: &str,
    all: &[T],
    parse: impl Fn(&str) -> Result<T, signer::Error>,
) -> anyhow::Result<Vec<T>> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(all.to_vec());
    }
    let mut names: Vec<&str> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|seen| seen.eq_ignore_ascii_case(name)) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(usage(format!("empty list {text:?}")));
    }
    Ok(names.into_iter().map(parse).collect::<Result<_, _>>()?)
}

fn print_table(results: &[BenchResult]) {
    println!(
        "{:<10} {:<6} {:>5} {:>7} {:>12} {:>12} {:>14} {:>14} {:>9}",
        "backend",
        "alg",
        "bits",
        "threads",
        "signs/s",
        "ns/sign",
        "assertions/s",
        "ns/assertion",
        "overhead"
    );
    for r in results {
        println!(
            "{:<10} {:<6} {:>5} {:>7} {:>12.0} {:>12.0} {:>14.0} {:>14.0} {:>8.2}%",
            r.backend,
            r.alg.as_str(),
            r.key_bits,
            r.threads,
            r.signs_per_sec,
            r.ns_per_sign,
            r.assertions_per_sec,
            r.assertion_ns,
            (r.assertion_ns / r.ns_per_sign - 1.0) * 100.0
        );
    }
}
