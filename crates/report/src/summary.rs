//! The summary that leads a report and a comparison: the handful of figures that answer the
//! scenario's question, chosen from what the run measured, and in a comparison each value
//! against the first.

use metrics::catalog::{MetricDescription, Unit, CATALOG};

use crate::{document::Report, format::figure};

/// One figure of the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Headline {
    /// The figure's dotted path in `report.json` (a catalog path: `idp.token_requests`;
    /// `requests.per_second` is `requests.sent / duration_s`).
    pub path: &'static str,
    /// What it answers, in words.
    pub label: &'static str,
    /// Its value in each report; `None` where the report has no data for it.
    pub values: Vec<Option<f64>>,
    /// Its text in each report, with its unit (`–` without data).
    pub texts: Vec<String>,
    /// In a comparison, how each value after the first compares with the first
    /// (`52× fewer`); `None` for the first, and where a ratio means nothing.
    pub ratios: Vec<Option<String>>,
}

impl Headline {
    /// The text of report `i` with its comparison: `4 (52× fewer)`.
    pub fn cell(&self, i: usize) -> String {
        match (self.texts.get(i), self.ratios.get(i)) {
            (Some(text), Some(Some(ratio))) => format!("{text} ({ratio})"),
            (Some(text), _) => text.clone(),
            (None, _) => String::new(),
        }
    }
}

/// Figures that lead when the backend refused requests outright (403): a token it will not
/// take whatever the gateway does (a missing role, a client that did not authenticate as
/// required), and the token requests each refusal costs.
const FORBIDDEN: &[(&str, &str)] = &[("requests.forbidden", "requests refused (403)")];
/// Figures that lead when requests came from users (on behalf of them): how many, what the
/// cache held of them, and what each cost the identity provider.
const USERS: &[(&str, &str)] = &[
    ("users.distinct", "distinct users served"),
    ("users.token_requests_per_user", "token requests per user"),
    ("users.evictions", "users' tokens evicted (cache full)"),
];
/// Figures that lead when a run had revocations: how fast the gateway recovered.
const RECOVERY: &[(&str, &str)] = &[
    (
        "invalidation.latency_ms.p99",
        "recovery after a revocation, p99",
    ),
    ("invalidation.latency_ms.max", "slowest recovery"),
    (
        "invalidation.failed_requests",
        "requests failed while recovering",
    ),
    ("invalidation.redundant_fetches", "redundant token fetches"),
];
/// Figures that lead when the identity provider refused token requests.
const REFUSALS: &[(&str, &str)] = &[
    ("idp.throttled", "token requests throttled (429)"),
    ("idp.errors", "token requests failed"),
    ("requests.errors", "requests failed"),
];
/// Figures that lead when misses came in herds: how large, and what the IdP saw at once.
const STAMPEDE: &[(&str, &str)] = &[
    (
        "stampede.max_herd",
        "largest herd (token requests for one miss)",
    ),
    ("stampede.p99_herd", "p99 herd"),
    (
        "idp.peak_concurrent",
        "peak concurrent token requests at the IdP",
    ),
];
/// The identity provider's load and what the token path costs the gateway's requests.
const ALWAYS: &[(&str, &str)] = &[
    (
        "idp.token_requests",
        "token requests to the identity provider",
    ),
    ("idp.peak_minute", "token requests in the busiest minute"),
    ("latency_us.p99", "p99 latency from intended start"),
    (
        "token_wait_us.p99",
        "p99 wait for a token (requests that waited)",
    ),
    (
        "requests.waited_for_token",
        "requests that waited for a token",
    ),
    ("cache.hit_rate", "token cache hit rate"),
    ("requests.per_second", "completed requests per second"),
];
/// Most figures a summary shows.
const MOST: usize = 8;

/// The summary of `reports` (one report, or the runs of a comparison in order): the figures
/// of the groups the runs call for — requests refused with 403 when there were any, users
/// when requests came from users, recovery
/// when there were revocations, refusals when the
/// identity provider refused token requests, herds when misses came in herds — then the
/// identity provider's load and the latency of the token path; figures no run has data for
/// are left out.
pub fn summary(reports: &[&Report]) -> Vec<Headline> {
    let any = |has: fn(&Report) -> bool| reports.iter().any(|r| has(r));
    let mut picks: Vec<(&str, &str)> = Vec::new();
    if any(|r| r.metrics.requests.forbidden > 0) {
        picks.extend_from_slice(FORBIDDEN);
    }
    if any(|r| r.metrics.users.is_some()) {
        picks.extend_from_slice(USERS);
    }
    if any(|r| r.metrics.invalidation.revocations > 0) {
        picks.extend_from_slice(RECOVERY);
    }
    if any(|r| r.metrics.idp.throttled > 0 || r.metrics.idp.errors > 0) {
        picks.extend_from_slice(REFUSALS);
    }
    if any(|r| r.metrics.stampede.max_herd.is_some_and(|h| h > 1)) {
        picks.extend_from_slice(STAMPEDE);
    }
    picks.extend_from_slice(ALWAYS);
    picks
        .into_iter()
        .filter_map(|(path, label)| {
            let metric = CATALOG.iter().find(|m| m.path == path)?;
            let values: Vec<Option<f64>> =
                reports.iter().map(|r| (metric.value)(&r.metrics)).collect();
            // A figure that is zero or absent everywhere answers nothing here (no refusals
            // in this run, no request waited), unless it is the IdP's load itself.
            let informative = values.iter().flatten().any(|v| *v != 0.0);
            (informative || path == "idp.token_requests").then(|| Headline {
                path,
                label,
                texts: values.iter().map(|v| figure(metric.unit, *v)).collect(),
                ratios: ratios(metric, &values),
                values,
            })
        })
        .take(MOST)
        .collect()
}

/// How each value after the first compares with the first.
fn ratios(metric: &MetricDescription, values: &[Option<f64>]) -> Vec<Option<String>> {
    let first = values.first().copied().flatten();
    values
        .iter()
        .enumerate()
        .map(|(i, value)| match (i, first, value) {
            (0, ..) | (_, None, _) | (_, _, None) => None,
            (_, Some(first), Some(value)) => ratio(metric.unit, first, *value),
        })
        .collect()
}

/// How `value` compares with `first`: `52× fewer`, `1.3× higher`, `same` (within 0.5 %); `None` when a
/// ratio means nothing (a zero, or a fraction such as the hit rate, compared as is).
fn ratio(unit: Unit, first: f64, value: f64) -> Option<String> {
    if matches!(unit, Unit::Fraction) || first <= 0.0 || value <= 0.0 {
        return None;
    }
    let (more, less) = match unit {
        Unit::Count(_) => ("more", "fewer"),
        _ => ("higher", "lower"),
    };
    let r = value / first;
    let (factor, word) = if r >= 1.0 { (r, more) } else { (1.0 / r, less) };
    // Two significant digits: 1.04×, 1.7×, 5×, 52×.
    let factor = if factor < 1.1 {
        format!("{factor:.2}")
    } else if factor < 10.0 {
        let text = format!("{factor:.1}");
        text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
    } else {
        format!("{factor:.0}")
    };
    Some(if factor == "1.00" {
        "same".to_owned()
    } else {
        format!("{factor}× {word}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_a_summary_may_show_is_in_the_catalog() {
        for (path, _) in [FORBIDDEN, USERS, RECOVERY, REFUSALS, STAMPEDE, ALWAYS].concat() {
            assert!(CATALOG.iter().any(|m| m.path == path), "{path}");
        }
    }

    #[test]
    fn ratios_say_how_many_times_and_which_way() {
        let requests = Unit::Count("requests");
        assert_eq!(ratio(requests, 208.0, 4.0).as_deref(), Some("52× fewer"));
        assert_eq!(ratio(requests, 4.0, 6.0).as_deref(), Some("1.5× more"));
        assert_eq!(ratio(requests, 102.0, 510.0).as_deref(), Some("5× more"));
        assert_eq!(
            ratio(Unit::Micros, 206.0, 154.0).as_deref(),
            Some("1.3× lower")
        );
        assert_eq!(
            ratio(Unit::Micros, 100.0, 104.0).as_deref(),
            Some("1.04× higher")
        );
        assert_eq!(ratio(Unit::Micros, 100.0, 100.2).as_deref(), Some("same"));
        assert_eq!(ratio(requests, 0.0, 5.0), None);
        assert_eq!(ratio(Unit::Fraction, 0.5, 0.9), None);
    }
}
