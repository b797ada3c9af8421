//! `tokenbench-afl TARGET`: one fuzz target under AFL++ (built by `cargo afl build` with the
//! feature `afl`; `scripts/fuzz.sh` builds and runs it).
//! `tokenbench-afl --write-seeds TARGET DIR`: writes the target's seeds (committed corpus and
//! [`fuzz::Target::seeds`]) into DIR, AFL++'s input folder.
//! `tokenbench-afl --list`: the targets, one per line, with what each feeds.

use std::{fs, path::Path, process::ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names = || {
        fuzz::TARGETS
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let find = |name: &str| {
        let found = fuzz::target(name);
        if found.is_none() {
            eprintln!("tokenbench-afl: no target {name:?} (targets: {})", names());
        }
        found
    };
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for target in fuzz::TARGETS {
                println!("{}\t{}", target.name, target.about);
            }
            ExitCode::SUCCESS
        }
        [flag, name, dir] if flag == "--write-seeds" => {
            let Some(target) = find(name) else {
                return ExitCode::from(2);
            };
            match write_seeds(target, Path::new(dir)) {
                Ok(count) => {
                    println!("{count} seeds of {name} in {dir}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tokenbench-afl: cannot write the seeds into {dir}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        [name] => {
            let Some(target) = find(name) else {
                return ExitCode::from(2);
            };
            afl::fuzz!(|data: &[u8]| {
                (target.run)(data);
            });
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: tokenbench-afl TARGET | --write-seeds TARGET DIR | --list\n\
                 targets: {}",
                names()
            );
            ExitCode::from(2)
        }
    }
}

fn write_seeds(target: &fuzz::Target, dir: &Path) -> std::io::Result<usize> {
    fs::create_dir_all(dir)?;
    let mut count = 0;
    if let Ok(entries) = fs::read_dir(fuzz::corpus_dir(target.name)) {
        for entry in entries {
            let entry = entry?;
            fs::copy(entry.path(), dir.join(entry.file_name()))?;
            count += 1;
        }
    }
    for (name, bytes) in (target.seeds)() {
        fs::write(dir.join(name), bytes)?;
        count += 1;
    }
    Ok(count)
}
