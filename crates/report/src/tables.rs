//! The report tables: the run's settings, one table per section of the metric catalog, and
//! the per-instance table. Markdown and HTML render the same tables.

use metrics::catalog::{Section, CATALOG};

use crate::{
    document::Report,
    format::{figure, int, num, opt, percent},
};

/// A table of figures: one row per figure, one cell per report.
pub(crate) struct Table {
    pub(crate) title: &'static str,
    pub(crate) rows: Vec<(&'static str, Vec<String>)>,
}

/// The tables of `reports` side by side: the run's settings, then every catalog section.
pub(crate) fn tables(reports: &[&Report]) -> Vec<Table> {
    let row = |label: &'static str, cell: &dyn Fn(&Report) -> String| {
        (label, reports.iter().map(|r| cell(r)).collect::<Vec<_>>())
    };
    let run = Table {
        title: "Run",
        rows: vec![
            row("mode", &|r| r.run.mode.as_str().to_owned()),
            row("policy", &|r| r.run.policy.clone()),
            row("backend", &|r| r.run.backend.clone()),
            row("algorithm", &|r| r.run.alg.clone()),
            row("signing cost charged", &|r| {
                opt(r.run.signing_cost_us, |us| format!("{} µs", int(us)))
            }),
            row("instances", &|r| int(r.metrics.instances as u64)),
            row("nominal rate", &|r| {
                opt(r.run.rate, |v| format!("{}/s", num(v)))
            }),
            row("duration", &|r| {
                format!("{} s", num(r.metrics.duration.as_secs_f64()))
            }),
        ],
    };
    let sections = Section::ALL.into_iter().map(|section| Table {
        title: section.title(),
        rows: CATALOG
            .iter()
            .filter(|m| m.section == section)
            .map(|m| row(m.label, &|r| figure(m.unit, (m.value)(&r.metrics))))
            .collect(),
    });
    std::iter::once(run).chain(sections).collect()
}

/// Each instance's token cache and fetches: the head and one row per instance.
pub(crate) fn instance_table(report: &Report) -> ([&'static str; 7], Vec<Vec<String>>) {
    let head = [
        "instance",
        "hits",
        "misses",
        "hit rate",
        "token requests",
        "episodes",
        "max herd",
    ];
    let rows = report
        .metrics
        .cache
        .instances
        .iter()
        .map(|i| {
            vec![
                i.instance.to_string(),
                int(i.hits),
                int(i.misses),
                opt(i.hit_rate, percent),
                int(i.token_requests),
                int(i.episodes),
                opt(i.max_herd, int),
            ]
        })
        .collect();
    (head, rows)
}
