//! The Markdown of reports and comparisons: the same tables as the HTML pages.

use crate::{
    comparison::ComparisonReport,
    document::{Report, LATENCY_HLOG, REPORT_HTML, REPORT_JSON},
    format::md_text,
    summary::{summary, Headline},
    tables::{breakdowns, tables},
};

/// The summary as a Markdown table: one row per figure, one column per report (`head`
/// names them in a comparison).
fn summary_table(headlines: &[Headline], head: &[&str]) -> String {
    let mut out = String::from("## Summary\n\n| |");
    if head.is_empty() {
        out.push_str(" value |");
    }
    for cell in head {
        out.push_str(&format!(" {} |", md_text(cell)));
    }
    out.push_str(&format!("\n|---|{}\n", "---:|".repeat(head.len().max(1))));
    for headline in headlines {
        out.push_str(&format!("| {} |", md_text(headline.label)));
        for i in 0..headline.texts.len() {
            out.push_str(&format!(" {} |", md_text(&headline.cell(i))));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

impl Report {
    /// The summary tables as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("# tokenbench report: {}\n\n", md_text(&self.run.scenario));
        out.push_str(&format!("{}\n\n", md_text(&self.subtitle())));
        out.push_str(&summary_table(&summary(&[self]), &[]));
        for table in tables(&[self]) {
            out.push_str(&format!(
                "## {}\n\n| metric | value |\n|---|---:|\n",
                table.title
            ));
            for (label, cells) in &table.rows {
                out.push_str(&format!("| {label} | {} |\n", md_text(&cells.join(""))));
            }
            out.push('\n');
        }
        for breakdown in breakdowns(self) {
            out.push_str(&format!("## {}\n\n", breakdown.title));
            out.push_str(&format!("| {} |\n", breakdown.head.join(" | ")));
            out.push_str(&format!("|{}\n", "---:|".repeat(breakdown.head.len())));
            for row in breakdown.rows {
                let row: Vec<String> = row.iter().map(|cell| md_text(cell)).collect();
                out.push_str(&format!("| {} |\n", row.join(" | ")));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "The timeline is in `{REPORT_JSON}` (`timeline`, one row per \
             `timeline_interval_s` seconds) and charted in `{REPORT_HTML}`; the latency \
             histograms of each timeline interval are in `{LATENCY_HLOG}`.\n"
        ));
        out
    }
}

impl ComparisonReport {
    /// The comparison's tables as Markdown: one table per metric group, one column per
    /// value.
    pub fn markdown(&self) -> String {
        let reports = self.reports();
        let mut out = format!(
            "# tokenbench comparison: {} by {}\n\n",
            md_text(&self.scenario()),
            md_text(&self.key)
        );
        let head: Vec<&str> = self.values.iter().map(|(v, _)| v.as_str()).collect();
        out.push_str(&summary_table(&summary(&reports), &head));
        for table in tables(&reports) {
            out.push_str(&format!("## {}\n\n| metric |", table.title));
            for (value, _) in &self.values {
                out.push_str(&format!(" {} |", md_text(value)));
            }
            out.push_str(&format!("\n|---|{}\n", "---:|".repeat(self.values.len())));
            for (label, cells) in &table.rows {
                out.push_str(&format!("| {label} |"));
                for cell in cells {
                    out.push_str(&format!(" {} |", md_text(cell)));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }
}
