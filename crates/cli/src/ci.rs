//! `tokenbench ci`: a short seeded regression suite, compared with a committed baseline.
//!
//! Each shipped scenario runs for a few seconds at a low rate (its events moved into the
//! shortened run in proportion), some as comparisons of cache policies; `fleet-day` is
//! simulated, two hours of a smaller fleet; then a quick sign-bench. Each result is compared with `BASELINE/<member>.json` by the same code as
//! `tokenbench compare`, with the class defaults plus [`SUITE_RULES`], tolerances measured on
//! this suite's run-to-run spread. A member that shows a regression runs once more, and only
//! the regressions both runs show count.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use report::regression::{self, Document, Outcome, Rule, Verdict};
use scenario::{Comparison, Overrides, Scenario};
use signer::{
    backend,
    bench::{self, BenchConfig},
    Algorithm,
};
use tokio::sync::watch;

use crate::{
    compare::{self, Format, ToleranceArgs},
    run, runtime, usage, Regressed,
};

#[derive(Args)]
pub struct CiArgs {
    /// Folder of the baseline files (<member>.json).
    #[arg(long, default_value = "reports/baseline")]
    baseline: PathBuf,
    /// Write this run's results as the new baseline instead of comparing.
    #[arg(long)]
    update: bool,
    /// Folder for this run's reports and verdicts [default: reports/ci-<UTC time>/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these members (comma-separated): default, stampede, revocation,
    /// throttled-idp, key-rotation, replay, backends, fleet-day, require-certificate,
    /// obo-users, credential-manager, sign-bench.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    only: Vec<String>,
    #[command(flatten)]
    tolerance: ToleranceArgs,
    /// Print every metric, not only those that are not ok.
    #[arg(long)]
    verbose: bool,
}

/// What a member of the suite runs.
enum Job {
    /// A shipped scenario, shortened.
    Scenario {
        /// Run length.
        duration: Duration,
        /// Mean arrival rate; `None`: the scenario's.
        rate: Option<f64>,
        /// `KEY=V1,V2,…`; `None`: the scenario's own comparison, if any.
        compare: Option<&'static str>,
        /// Gateway instances; `None`: the scenario's.
        instances: Option<u32>,
        /// Simulated (`tokenbench simulate`) rather than run in real time.
        simulated: bool,
    },
    /// sign-bench over every backend and algorithm.
    SignBench {
        /// Time per figure (signature, assertion) per combination.
        seconds: f64,
    },
}

struct Member {
    name: &'static str,
    job: Job,
}

const fn scenario(
    name: &'static str,
    millis: u64,
    rate: Option<f64>,
    compare: Option<&'static str>,
) -> Member {
    Member {
        name,
        job: Job::Scenario {
            duration: Duration::from_millis(millis),
            rate,
            compare,
            instances: None,
            simulated: false,
        },
    }
}

/// A shipped scenario simulated for `seconds` at the mean `rate` on `instances` instances.
const fn simulated(name: &'static str, seconds: u64, rate: f64, instances: u32) -> Member {
    Member {
        name,
        job: Job::Scenario {
            duration: Duration::from_secs(seconds),
            rate: Some(rate),
            compare: None,
            instances: Some(instances),
            simulated: true,
        },
    }
}

/// The suite, in running order.
///
/// - `stampede` compares the three policies: apim's herd is about the arrivals of one token
///   round trip (11–12 at 50 req/s per instance and 200 ms), the other two's is 1.
/// - `revocation` compares apim with single-flight: two revocations, each costing each
///   instance one failed request; apim refetches redundantly, single-flight never.
/// - `backends` (apim, 3 s tokens, 2 fetches per instance in 3.5 s at the default
///   `cache_fraction` 0.95, 3 at 0.5) runs once per signer backend.
/// - `fleet-day`, simulated: its first two hours (the outage moved to 70 min, 25 s long) on
///   100 instances at 500 req/s: 3.6 million requests, every count deterministic.
/// - `require-certificate`: every request refused with 403 (the gateway's secret where the
///   backend requires a certificate), each refusal costing a token request.
/// - `obo-users`, simulated: 45 s of 10,000 Zipf users through on-behalf-of on 2 instances
///   caching 2,000 users each: distinct users, evictions and token requests per user, every
///   count deterministic.
/// - `credential-manager`, simulated: 20 instances' own refresh-ahead caches against one
///   managed store for the fleet (260 token requests against 13 in 2 minutes of 10 s
///   tokens), and the latency its lookups add.
const SUITE: [Member; 12] = [
    scenario("default", 3_000, Some(60.0), None),
    scenario(
        "stampede",
        2_000,
        Some(100.0),
        Some("policy=apim,single-flight,refresh-ahead"),
    ),
    scenario(
        "revocation",
        3_000,
        Some(60.0),
        Some("policy=apim,single-flight"),
    ),
    scenario("throttled-idp", 3_000, Some(60.0), None),
    scenario("key-rotation", 3_000, Some(60.0), None),
    scenario("replay", 3_000, None, None),
    scenario("backends", 3_500, Some(30.0), None),
    simulated("fleet-day", 2 * 3600, 500.0, 100),
    scenario("require-certificate", 2_000, Some(50.0), None),
    simulated("obo-users", 45, 500.0, 2),
    simulated("credential-manager", 120, 200.0, 20),
    Member {
        name: "sign-bench",
        job: Job::SignBench { seconds: 0.2 },
    },
];

/// Tolerances of this suite beyond the class defaults (the last match wins), from its
/// run-to-run spread over 18 runs on this project's shared 2-vCPU machine, some with a
/// neighbour loading both cores (a load test, a compile); the figures in the comments are the
/// ranges seen (measured before the mock's draws were seeded: in real time which request
/// draws which still depends on the scheduler). Counts that depend on when a token request
/// returns vary; the counts that decide the policies' behaviour (token
/// requests, herds and redundant fetches of single-flight and refresh-ahead, the backends'
/// fetches per token lifetime, failed requests after a revocation) never moved and keep the
/// count default, 2%+1.
const SUITE_RULES: &[&str] = &[
    // A simulation's counts are deterministic: they guard exactly.
    "fleet-day/requests.*:0",
    "fleet-day/cache.hits:0",
    "fleet-day/cache.misses:0",
    "fleet-day/idp.token_requests:0",
    "fleet-day/idp.peak_*:0",
    "fleet-day/stampede.*:0",
    // Latency tails of a few-second run are a handful of samples at the scheduler's mercy
    // (p99 up to 3.8× between runs, signing p99 up to 7×): shown, never judged.
    "*_us.p90:off",
    "*_us.p99:off",
    "*_us.p999:off",
    "*_us.max:off",
    "signing.mean_ns:off",
    "signing.p99_ns:off",
    "invalidation.latency_ms.p99:off",
    // New connections are each instance's pools filling up: how many depends on how many
    // requests overlapped (a stampede under apim opens one per concurrent fetch).
    "connections.*.opened:off",
    "invalidation.latency_ms.max:off",
    // Raw medians, rates and sizes: up to 1.9× between quiet runs and 3.4× (sign-bench rates)
    // with a compile on both cores. Only a 5× slowdown fails; tighten on a quiet runner.
    "*_us.p50:400%",
    // But a new connection's open time is a median of each pool's few connections: 21 →
    // 596 µs between two runs with a compile on both cores (after the rule above: the last
    // match wins).
    "connections.*.open_us.p50:off",
    "signing.p50_ns:400%",
    "invalidation.latency_ms.p50:400%",
    "memory.peak_rss_bytes:400%",
    "signs_per_s:400%",
    "assertions_per_s:400%",
    // Ratios side by side: sign-bench's backends interleaved round by round move by up to
    // 17 % with a steady neighbour and 32 % with a compile starting mid-run; the assertion
    // overhead by up to 31 %; the backends comparison's signing medians (a few signatures
    // per run) by 23 %.
    "signs_per_s_vs_*:40%",
    "assertion_overhead:40%",
    "signing.p50_ns_vs_*:50%",
    // How many token requests overlap at the identity provider is timing (1–2 … 21–27).
    "idp.peak_concurrent*:50%+3",
    // Lookups that miss while a token is being fetched: default 3–8, revocation 12–18,
    // key-rotation 16–18, stampede/apim 22–27; hits and hit rates move with them.
    "cache.misses:50%+5",
    "cache.hits:5%",
    "cache.hit_rate:0.05",
    "replay/cache.hit_rate:0.1",
    // require-certificate: the few requests that find a refetched token before the next
    // 403 removes it (6–8 of 109).
    "require-certificate/cache.hits:100%+4",
    // apim's herd is the arrivals of one token round trip: stampede 11–14 (token requests
    // 22–27), revocation 12–17 token requests and 2–6 redundant fetches, replay 3–4.
    "stampede/apim/idp.token_requests:50%+2",
    "stampede/apim/signing.count:50%+2",
    "stampede/apim/stampede.*_herd:50%+2",
    "revocation/apim/idp.token_requests:50%+4",
    "revocation/apim/signing.count:50%+4",
    "revocation/apim/stampede.mean_herd:50%+1",
    "revocation/apim/invalidation.redundant_fetches:100%+4",
    "replay/idp.token_requests:50%+2",
    "replay/signing.count:50%+2",
    "replay/stampede.*_herd:50%+1",
    // throttled-idp: 2 % of token requests fail at random (0–2 failed requests), Poisson
    // arrivals, log-normal token latency (5–10 token requests, herds 2–3).
    "throttled-idp/requests.ok:5%",
    "throttled-idp/*.errors:5",
    "throttled-idp/idp.token_requests:100%+4",
    "throttled-idp/signing.count:100%+4",
    "throttled-idp/stampede.*:100%+2",
    // obo-users is simulated: its counts are deterministic (after the rules above: the last
    // match wins).
    "obo-users/requests.*:0",
    "obo-users/cache.hits:0",
    "obo-users/cache.misses:0",
    "obo-users/idp.token_requests:0",
    "obo-users/users.*:0",
    "credential-manager/*/requests.*:0",
    "credential-manager/*/cache.hits:0",
    "credential-manager/*/cache.misses:0",
    "credential-manager/*/idp.token_requests:0",
];

pub fn run(args: CiArgs) -> anyhow::Result<()> {
    let members = select(&args.only)?;
    let suite_rules = SUITE_RULES
        .iter()
        .map(|text| text.parse::<Rule>())
        .collect::<Result<Vec<_>, _>>()
        .context("a built-in suite rule does not parse")?;
    let tolerances = args.tolerance.tolerances(&suite_rules);

    // Read the baseline first: a missing or broken one fails before minutes of running.
    let mut baselines = Vec::new();
    if !args.update {
        for member in &members {
            let path = args.baseline.join(format!("{}.json", member.name));
            if !path.is_file() {
                return Err(usage(format!(
                    "no baseline {}; record one with `tokenbench ci --update{}`",
                    path.display(),
                    if args.baseline == Path::new("reports/baseline") {
                        String::new()
                    } else {
                        format!(" --baseline {}", args.baseline.display())
                    }
                )));
            }
            baselines.push(Document::read(&path)?);
        }
        args.tolerance.check_rules_match(
            baselines
                .iter()
                .flat_map(|d| &d.metrics)
                .map(|m| m.name.as_str()),
            &format!("the baseline in {}", args.baseline.display()),
        )?;
    }

    let out = args.out.clone().unwrap_or_else(|| run::default_out("ci"));
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let started = Instant::now();
    let runner = Runner::new(&out)?;
    let mut currents = Vec::new();
    for member in &members {
        currents.push(runner.run(member, "")?);
    }

    if args.update {
        fs::create_dir_all(&args.baseline)
            .with_context(|| format!("cannot create {}", args.baseline.display()))?;
        for (member, current) in members.iter().zip(&currents) {
            let target = args.baseline.join(format!("{}.json", member.name));
            fs::copy(current, &target).with_context(|| {
                format!("cannot copy {} to {}", current.display(), target.display())
            })?;
            println!("{}", target.display());
        }
        println!(
            "ci: baseline of {} member(s) written to {} ({:.1} s; reports in {})",
            members.len(),
            args.baseline.display(),
            started.elapsed().as_secs_f64(),
            out.display()
        );
        return Ok(());
    }

    let mut outcomes: Vec<Outcome> = Vec::new();
    for ((member, baseline), current) in members.iter().zip(&baselines).zip(&currents) {
        let first = regression::compare(baseline, &Document::read(current)?, &tolerances)?;
        let regressed = first.count(Verdict::Regression);
        if regressed == 0 {
            outcomes.push(first);
            continue;
        }
        // A regression must show in a second run too: noise rarely hits the same metric twice.
        eprintln!(
            "ci: {regressed} regression(s) in {}: running it again to confirm",
            member.name
        );
        let again = runner.run(member, "-confirm")?;
        let second = regression::compare(baseline, &Document::read(&again)?, &tolerances)?;
        let (outcome, unconfirmed) = regression::confirmed(&first, second);
        if !unconfirmed.is_empty() {
            eprintln!(
                "note: {}: not confirmed by the second run, so not regressions: {}",
                member.name,
                unconfirmed.join(", ")
            );
        }
        outcomes.push(outcome);
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (format, file) in [
        (Format::Json, "verdicts.json"),
        (Format::Bmf, "bmf.json"),
        (Format::GithubSmaller, "github-smaller.json"),
        (Format::GithubBigger, "github-bigger.json"),
    ] {
        let path = out.join(file);
        fs::write(&path, compare::render(format, &outcomes))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    for (member, outcome) in members.iter().zip(&outcomes) {
        print!("{}: {}", member.name, compare::summary(outcome));
        let shown: Vec<_> = outcome
            .rows
            .iter()
            .filter(|row| args.verbose || row.verdict != Verdict::Ok)
            .collect();
        if !shown.is_empty() {
            print!("{}", compare::table(shown.into_iter()));
        }
        compare::report_to_stderr(outcome);
    }
    let regressions: usize = outcomes.iter().map(|o| o.count(Verdict::Regression)).sum();
    let metrics: usize = outcomes.iter().map(|o| o.rows.len()).sum();
    println!(
        "ci: {} in {metrics} metrics of {} member(s) ({elapsed:.1} s); verdicts, BMF and \
         github-action-benchmark files in {}",
        if regressions == 0 {
            "no regression".to_owned()
        } else {
            format!("{regressions} regression(s)")
        },
        members.len(),
        out.display()
    );
    match regressions {
        0 => Ok(()),
        n => Err(Regressed(n).into()),
    }
}

/// Runs members, writing into one output folder.
struct Runner<'a> {
    out: &'a Path,
    runtime: tokio::runtime::Runtime,
    stop_rx: watch::Receiver<bool>,
    _stop_tx: watch::Sender<bool>,
}

impl<'a> Runner<'a> {
    fn new(out: &'a Path) -> anyhow::Result<Self> {
        let (stop_tx, stop_rx) = watch::channel(false);
        Ok(Runner {
            out,
            runtime: runtime()?,
            stop_rx,
            _stop_tx: stop_tx,
        })
    }

    /// Runs `member` into `OUT/<name><suffix>` (`OUT/sign-bench<suffix>.json`); returns the
    /// document to compare.
    fn run(&self, member: &Member, suffix: &str) -> anyhow::Result<PathBuf> {
        let started = Instant::now();
        let path = match &member.job {
            Job::Scenario {
                duration,
                rate,
                compare,
                instances,
                simulated,
            } => {
                let scenario = Scenario::from_builtin(member.name)
                    .and_then(|scenario| scenario.shortened(*duration, *rate))
                    .and_then(|scenario| {
                        scenario.with_overrides(&Overrides {
                            instances: *instances,
                            ..Overrides::default()
                        })
                    })
                    .map_err(usage)?;
                let comparison = match compare {
                    Some(spec) => Some(Comparison::parse(spec).map_err(usage)?),
                    None => scenario.compare.clone(),
                };
                eprintln!(
                    "ci: {} ({}{}{} s{})",
                    member.name,
                    if *simulated { "simulated, " } else { "" },
                    comparison.as_ref().map_or(String::new(), |c| format!(
                        "{}={}, ",
                        c.key,
                        c.values.join(",")
                    )),
                    duration.as_secs_f64(),
                    rate.map_or(String::new(), |r| format!(" at {r} req/s"))
                );
                let dir = self.out.join(format!("{}{suffix}", member.name));
                if *simulated {
                    driver::simulate_and_report(
                        &scenario,
                        comparison.as_ref(),
                        true,
                        &dir,
                        &self.stop_rx,
                        &(),
                    )?
                } else {
                    self.runtime.block_on(driver::run_and_report(
                        &scenario,
                        comparison.as_ref(),
                        driver::Mode::RealTime,
                        &dir,
                        &self.stop_rx,
                        &(),
                    ))?
                }
            }
            Job::SignBench { seconds } => {
                eprintln!("ci: sign-bench ({seconds} s per figure)");
                sign_bench(
                    *seconds,
                    &self.out.join(format!("{}{suffix}.json", member.name)),
                )?
            }
        };
        eprintln!(
            "ci: {} done in {:.1} s",
            member.name,
            started.elapsed().as_secs_f64()
        );
        Ok(path)
    }
}

/// The members `only` names (all if empty), in suite order.
fn select(only: &[String]) -> anyhow::Result<Vec<&'static Member>> {
    for name in only {
        if !SUITE.iter().any(|m| m.name == name.trim()) {
            return Err(usage(format!(
                "--only: no suite member {name:?} (members: {})",
                SUITE.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(SUITE
        .iter()
        .filter(|m| only.is_empty() || only.iter().any(|n| n.trim() == m.name))
        .collect())
}

/// sign-bench over every backend and algorithm (RSA 2048), written as `sign-bench --json`
/// prints it.
fn sign_bench(seconds: f64, path: &Path) -> anyhow::Result<PathBuf> {
    let config = BenchConfig {
        backends: backend::all().to_vec(),
        algorithms: Algorithm::ALL.to_vec(),
        rsa_bits: 2048,
        measure_time: Duration::from_secs_f64(seconds),
        threads: 1,
    };
    let results = bench::run(&config, |_| {})?;
    let mut text = serde_json::to_string_pretty(&results)?;
    text.push('\n');
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.to_owned())
}
