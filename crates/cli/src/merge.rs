//! `tokenbench merge`: the shards of a run merged into the whole run's reports.

use std::path::PathBuf;

use clap::Args;

use crate::run::print_summary;

#[derive(Args)]
pub struct MergeArgs {
    /// Shard report folders, or folders whose folders are (e.g. the shared results folder
    /// of a Kubernetes Indexed Job).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where to write the merged report.json, report.md, report.html and latency.hlog.
    #[arg(long)]
    out: PathBuf,
    /// No summary.
    #[arg(long)]
    quiet: bool,
}

/// `tokenbench merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    let report = report::merge_dirs(&args.dirs)?;
    report.write_all(&args.out)?;
    if let Some(merged) = &report.run.merged {
        if !merged.interrupted_shards.is_empty() {
            let shards: Vec<String> = merged
                .interrupted_shards
                .iter()
                .map(u32::to_string)
                .collect();
            eprintln!(
                "interrupted: shard(s) {} stopped early; the merged report holds what they measured",
                shards.join(", ")
            );
        }
    }
    if !args.quiet {
        print_summary(&report, &args.out);
    }
    Ok(())
}
