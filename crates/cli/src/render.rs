//! `tokenbench report`: a report's or a comparison's pages rendered again from its JSON.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use report::{
    ComparisonReport, Report, COMPARISON_HTML, COMPARISON_JSON, COMPARISON_MD, REPORT_HTML,
    REPORT_JSON, REPORT_MD,
};

use crate::usage;

#[derive(Args)]
pub struct ReportArgs {
    /// A report.json or comparison.json, or a folder holding one (a comparison's folder:
    /// its comparison.json).
    path: PathBuf,
    /// Which pages to write.
    #[arg(long, value_enum, default_value = "all")]
    format: Format,
    /// Where to write them [default: beside the JSON].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Html,
    Md,
    All,
}

/// `tokenbench report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let json = document_path(&args.path)?;
    let dir = match &args.out {
        Some(out) => out.clone(),
        None => json.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let text = report::read_text(&json).map_err(usage)?;
    let is_comparison = json.file_name().is_some_and(|name| name == COMPARISON_JSON)
        || serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v.get("runs").is_some_and(serde_json::Value::is_array));
    let (pages, [md_name, html_name]) = if is_comparison {
        let comparison = ComparisonReport::parse(&json, &text).map_err(usage)?;
        (
            [comparison.markdown(), comparison.html()],
            [COMPARISON_MD, COMPARISON_HTML],
        )
    } else {
        let report = Report::parse(&json, &text).map_err(usage)?;
        ([report.markdown(), report.html()], [REPORT_MD, REPORT_HTML])
    };
    let [md, html] = pages;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = Vec::new();
    if args.format != Format::Html {
        pages.push((dir.join(md_name), md));
    }
    if args.format != Format::Md {
        pages.push((dir.join(html_name), html));
    }
    for (path, text) in pages {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// The JSON document `path` names: itself, or the comparison.json or report.json in it.
fn document_path(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    [COMPARISON_JSON, REPORT_JSON]
        .into_iter()
        .map(|name| path.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            usage(format!(
                "{}: no {COMPARISON_JSON} or {REPORT_JSON} in this folder",
                path.display()
            ))
        })
}
