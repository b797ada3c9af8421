//! Every target over its seeds, its kept crashes, and a fixed number of seeded mutations of
//! the seeds: the bounded fuzz run of `.ci/run`. `TOKENBENCH_FUZZ_MUTATIONS` changes the
//! number of mutations per target (default 2,000).

use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
};

use fuzz::{mutate::Mutator, Outcome, Target};

const DEFAULT_MUTATIONS: usize = 2_000;

/// The files of `dir`, sorted by name (none if it does not exist).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let entry = entry.unwrap();
            let bytes = fs::read(entry.path()).unwrap();
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// Runs `input`; on a panic, keeps the input under the tests' temporary folder and fails
/// naming it.
fn run_kept(target: &Target, what: &str, input: &[u8]) -> Outcome {
    match panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        Ok(outcome) => outcome,
        Err(_) => {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{}-{what}", target.name));
            fs::write(&path, input).unwrap();
            panic!(
                "{} panicked on {what}; the input is in {} (copy it to {} once fixed)",
                target.name,
                path.display(),
                fuzz::regressions_dir(target.name).display()
            );
        }
    }
}

fn check(name: &str) {
    let target = fuzz::target(name).unwrap();
    let mut seeds = files(&fuzz::corpus_dir(name));
    seeds.extend((target.seeds)());
    assert!(!seeds.is_empty(), "{name} has no seeds");
    // Valid inputs stay valid: a seed that stops being accepted has rotted (or the parser
    // has regressed); `refused-` seeds sit next to refusals on purpose.
    for (file, seed) in &seeds {
        let expected = if file.starts_with("refused-") {
            Outcome::Refused
        } else {
            Outcome::Accepted
        };
        assert_eq!(run_kept(target, file, seed), expected, "{name} seed {file}");
    }
    for (file, input) in files(&fuzz::regressions_dir(name)) {
        run_kept(target, &file, &input);
    }
    let mutations = std::env::var("TOKENBENCH_FUZZ_MUTATIONS")
        .ok()
        .map_or(DEFAULT_MUTATIONS, |n| n.parse().unwrap());
    let seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut mutator = Mutator::new(seed);
    let mut accepted = 0;
    for i in 0..mutations {
        let (_, input) = &seeds[i % seeds.len()];
        let (_, other) = &seeds[(i / seeds.len()) % seeds.len()];
        let mutated = mutator.mutate(input, other);
        if run_kept(target, &format!("mutation-{i}"), &mutated) == Outcome::Accepted {
            accepted += 1;
        }
    }
    eprintln!(
        "{name}: {} seeds, {mutations} mutations, {accepted} accepted",
        seeds.len()
    );
}

/// A test per target, and one that the list is every target (a target added to
/// `fuzz::TARGETS` fails it until it is listed here, which gives it its test).
macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_tested_here() {
            let names: Vec<&str> = fuzz::TARGETS.iter().map(|t| t.name).collect();
            assert_eq!(names, [$(stringify!($name)),*]);
        }
    };
}

targets!(
    token_endpoint,
    backend_bearer,
    token_response,
    scenario_toml,
    trace,
    documents,
    keys,
);
