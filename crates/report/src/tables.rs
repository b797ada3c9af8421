//! The report tables: the run's settings, one table per section of the metric catalog, and
//! the breakdowns per region, per API and per instance. Markdown and HTML render the same tables.

use metrics::{
    catalog::{Section, CATALOG},
    GroupStats,
};

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
    // Only on-behalf-of runs have users.
    let has_users = reports.iter().any(|r| r.metrics.users.is_some());
    let sections = Section::ALL
        .into_iter()
        .filter(|section| *section != Section::Users || has_users)
        .map(|section| Table {
            title: section.title(),
            rows: CATALOG
                .iter()
                .filter(|m| m.section == section)
                .map(|m| row(m.label, &|r| figure(m.unit, (m.value)(&r.metrics))))
                .collect(),
        });
    std::iter::once(run).chain(sections).collect()
}

/// A breakdown of the token figures: per region, per API or per instance.
pub(crate) struct Breakdown {
    pub(crate) title: &'static str,
    pub(crate) head: [&'static str; 7],
    pub(crate) rows: Vec<Vec<String>>,
}

/// The breakdowns `report` has: per region and per API when there are several, per
/// instance when it has instances.
pub(crate) fn breakdowns(report: &Report) -> Vec<Breakdown> {
    let m = &report.metrics;
    let group = |title, first, groups: &[GroupStats]| Breakdown {
        title,
        head: [
            first,
            "instances",
            "hit rate",
            "token requests",
            "episodes",
            "max herd",
            "mean herd",
        ],
        rows: groups
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    int(g.instances as u64),
                    opt(g.hit_rate, percent),
                    int(g.token_requests),
                    int(g.episodes),
                    opt(g.max_herd, int),
                    opt(g.mean_herd, |h| format!("{h:.1}")),
                ]
            })
            .collect(),
    };
    let mut out = Vec::new();
    if m.regions.len() > 1 {
        out.push(group("Per region", "region", &m.regions));
    }
    if m.apis.len() > 1 {
        out.push(group("Per API", "API", &m.apis));
    }
    if !m.cache.instances.is_empty() {
        out.push(Breakdown {
            title: "Per instance",
            head: [
                "instance",
                "hits",
                "misses",
                "hit rate",
                "token requests",
                "episodes",
                "max herd",
            ],
            rows: m
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
                .collect(),
        });
    }
    out
}
