//! The self-contained HTML pages of reports and comparisons: tables and inline SVG charts,
//! no scripts or external assets.

use metrics::SpectrumPoint;

use crate::{
    comparison::ComparisonReport,
    document::{Report, LATENCY_HLOG, REPORT_JSON},
    format::esc,
    summary::{summary, Headline},
    svg::{spectrum_svg, timeline_extent, timeline_svg},
    tables::{breakdowns, tables, Table},
};

impl Report {
    /// The self-contained HTML page: tables, the timeline and the latency percentile
    /// spectrum as inline SVG.
    pub fn html(&self) -> String {
        let title = format!("tokenbench report: {}", self.run.scenario);
        let mut body = format!(
            "<h1>{}</h1>\n<p class=\"sub\">{}</p>\n",
            esc(&title),
            esc(&self.subtitle())
        );
        body.push_str(&summary_table(&summary(&[self]), &[]));
        body.push_str("<h2>Timeline</h2>\n<figure>\n");
        let (x_max, y_max) = timeline_extent(&[self]);
        body.push_str(&timeline_svg(&self.metrics, x_max, y_max, 880.0, 300.0));
        body.push_str(&format!(
            "<figcaption>{}: completed requests, backend 401s and token requests \
             (log scale).</figcaption>\n</figure>\n",
            per_second(self.metrics.timeline_interval_s)
        ));
        body.push_str("<h2>Latency percentile spectrum</h2>\n<figure>\n");
        body.push_str(&spectrum_svg(&[(
            "latency",
            &self.metrics.latency_spectrum,
        )]));
        body.push_str(
            "<figcaption>Latency from the intended start (corrected for coordinated \
             omission) by percentile.</figcaption>\n</figure>\n",
        );
        body.push_str("<div class=\"tables\">\n");
        for table in tables(&[self]) {
            body.push_str(&html_table(&table, &[]));
        }
        body.push_str("</div>\n");
        for breakdown in breakdowns(self) {
            body.push_str(&format!(
                "<h2>{}</h2>\n<table>\n<thead><tr>",
                esc(breakdown.title)
            ));
            for cell in breakdown.head {
                body.push_str(&format!("<th>{}</th>", esc(cell)));
            }
            body.push_str("</tr></thead>\n<tbody>\n");
            for row in breakdown.rows {
                body.push_str("<tr>");
                for cell in row {
                    body.push_str(&format!("<td>{}</td>", esc(&cell)));
                }
                body.push_str("</tr>\n");
            }
            body.push_str("</tbody>\n</table>\n");
        }
        body.push_str(&format!(
            "<p class=\"note\">All figures and the timeline are in \
             <code>{REPORT_JSON}</code>; the latency histograms of each timeline interval in \
             <code>{LATENCY_HLOG}</code>.</p>\n"
        ));
        page(&title, &body)
    }
}

impl ComparisonReport {
    /// The comparison's page: tables, the timelines side by side (same scales) and the
    /// latency spectra overlaid.
    pub fn html(&self) -> String {
        let reports = self.reports();
        let title = format!("tokenbench comparison: {} by {}", self.scenario(), self.key);
        let mut body = format!("<h1>{}</h1>\n", esc(&title));
        let head: Vec<&str> = self.values.iter().map(|(v, _)| v.as_str()).collect();
        body.push_str(&summary_table(&summary(&reports), &head));
        body.push_str("<h2>Latency percentile spectrum</h2>\n<figure>\n");
        let series: Vec<(&str, &[SpectrumPoint])> = self
            .values
            .iter()
            .map(|(value, report)| (value.as_str(), report.metrics.latency_spectrum.as_slice()))
            .collect();
        body.push_str(&spectrum_svg(&series));
        body.push_str(
            "<figcaption>Latency from the intended start by percentile, one line per \
             value.</figcaption>\n</figure>\n",
        );
        body.push_str("<h2>Timelines</h2>\n<div class=\"multiples\">\n");
        let (x_max, y_max) = timeline_extent(&reports);
        for (value, report) in &self.values {
            body.push_str(&format!(
                "<figure>\n<figcaption class=\"head\">{} = {}</figcaption>\n",
                esc(&self.key),
                esc(value)
            ));
            body.push_str(&timeline_svg(&report.metrics, x_max, y_max, 540.0, 260.0));
            body.push_str("</figure>\n");
        }
        let interval = reports.first().map_or(1, |r| r.metrics.timeline_interval_s);
        body.push_str(&format!(
            "</div>\n<p class=\"note\">{}: completed requests, backend 401s and \
             token requests (log scale, same axes for every value).</p>\n",
            per_second(interval)
        ));
        body.push_str("<div class=\"tables wide\">\n");
        for table in tables(&reports) {
            body.push_str(&html_table(&table, &head));
        }
        body.push_str("</div>\n");
        page(&title, &body)
    }
}

/// The summary as the page's first table: one row per figure, one column per report (`head`
/// names them in a comparison).
fn summary_table(headlines: &[Headline], head: &[&str]) -> String {
    let mut out = String::from("<section class=\"summary\">\n<h2>Summary</h2>\n<table>\n");
    out.push_str(&thead(head));
    out.push_str("<tbody>\n");
    for headline in headlines {
        out.push_str(&format!(
            "<tr><th scope=\"row\">{}</th>",
            esc(headline.label)
        ));
        for (text, ratio) in headline.texts.iter().zip(&headline.ratios) {
            out.push_str(&format!("<td><span class=\"value\">{}</span>", esc(text)));
            if let Some(ratio) = ratio {
                out.push_str(&format!(" <span class=\"ratio\">({})</span>", esc(ratio)));
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}

/// A table's head naming each report's column (none for a single report).
fn thead(head: &[&str]) -> String {
    if head.is_empty() {
        return String::new();
    }
    let cells: String = head
        .iter()
        .map(|cell| format!("<th>{}</th>", esc(cell)))
        .collect();
    format!("<thead><tr><th></th>{cells}</tr></thead>\n")
}

fn html_table(table: &Table, head: &[&str]) -> String {
    let mut out = format!("<section>\n<h2>{}</h2>\n<table>\n", esc(table.title));
    out.push_str(&thead(head));
    out.push_str("<tbody>\n");
    for (label, cells) in &table.rows {
        out.push_str(&format!("<tr><th scope=\"row\">{}</th>", esc(label)));
        for cell in cells {
            out.push_str(&format!("<td>{}</td>", esc(cell)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}

const STYLE: &str = "\
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif;
  font-size: 16px; line-height: 1.5; color: #1f2937; background: #fff; margin: 0 auto;
  max-width: 1180px; padding: 2rem 1.5rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; }
section h2 { margin-top: 0; }
.sub, .note, figcaption { color: #4b5563; font-size: .92rem; }
figure { margin: 0 0 1rem; }
figcaption.head { color: #1f2937; font-weight: 600; font-size: 1rem; }
svg { max-width: 100%; height: auto; display: block; }
svg text { font-family: inherit; }
.tables { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr));
  gap: 1.5rem 2.5rem; margin-top: 2rem; }
.tables.wide { grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr)); }
section { min-width: 0; overflow-x: auto; }
.summary { margin: 1.25rem 0 .5rem; padding: .75rem 1rem 1rem; background: #f3f6fb;
  border: 1px solid #dbe3ef; border-radius: 6px; }
.summary h2 { margin: 0 0 .4rem; }
.summary table { font-size: 1.05rem; width: auto; min-width: min(100%, 640px); }
.summary td { font-weight: 600; white-space: normal; }
.summary .value { white-space: nowrap; }
.summary .ratio { font-weight: 400; color: #4b5563; white-space: nowrap; }
.summary tbody tr:nth-child(even) { background: transparent; }
.multiples { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 440px), 1fr));
  gap: 1rem 2rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e5e7eb; }
td { text-align: right; white-space: nowrap; }
th { text-align: left; font-weight: 500; overflow-wrap: break-word; }
thead th { font-weight: 600; text-align: right; border-bottom: 2px solid #d1d5db;
  white-space: nowrap; }
thead th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #f9fafb; }
code { font-size: .9em; }
@media (max-width: 640px) { body { padding: 1rem .75rem 2rem; } td { white-space: normal; } }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; }
  section, figure, table, tr { break-inside: avoid; }
  .tables, .multiples { display: block; }
  .tables section, .multiples figure { margin-bottom: 1rem; }
  .summary { background: none; }
  tbody tr:nth-child(even) { background: none; }
}
";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// How the timeline's rates are taken: per second, or averaged over longer intervals.
fn per_second(interval: u64) -> String {
    let rate = if interval <= 1 {
        "Per second".to_owned()
    } else {
        format!("Per second, averaged over {interval} s intervals")
    };
    format!(
        "{rate} (the run's last, partial interval scaled to its length, or left out when \
         shorter than half an interval)"
    )
}
