//! Tolerances: how much worse a metric may get, per class or by rules naming metrics.

use std::{fmt, str::FromStr};

use metrics::catalog::Class;
use serde::Serialize;

use crate::regression::{document::Metric, error::RegressionError};

/// Default tolerance of counts: 2 % and one unit (a herd of 11 against 12 passes; 1 against
/// 2 fails only under a tighter rule).
pub const COUNT_TOLERANCE: Tolerance = Tolerance {
    relative: 0.02,
    absolute: 1.0,
};
/// Default tolerance of fractions of counts (the cache hit rate): 1 %.
pub const FRACTION_TOLERANCE: Tolerance = Tolerance {
    relative: 0.01,
    absolute: 0.0,
};
/// Default tolerance of ratios taken side by side in one run: 15 %.
pub const RATIO_TOLERANCE: Tolerance = Tolerance {
    relative: 0.15,
    absolute: 0.0,
};
/// Default tolerance of raw timings: 50 % (1.5 times slower).
pub const TIMING_TOLERANCE: Tolerance = Tolerance {
    relative: 0.50,
    absolute: 0.0,
};

/// The unit of fractions (the hit rate); their default tolerance is [`FRACTION_TOLERANCE`].
pub const FRACTION: &str = "fraction";

impl Metric {
    /// The tolerance of its class: [`COUNT_TOLERANCE`] ([`FRACTION_TOLERANCE`] for a
    /// fraction), [`RATIO_TOLERANCE`] or [`TIMING_TOLERANCE`].
    pub fn default_tolerance(&self) -> Tolerance {
        match self.class {
            Class::Count if self.unit == FRACTION => FRACTION_TOLERANCE,
            Class::Count => COUNT_TOLERANCE,
            Class::Ratio => RATIO_TOLERANCE,
            Class::Timing => TIMING_TOLERANCE,
        }
    }
}

/// How much worse a metric may get: by a factor of `1 + relative`, then by `absolute` in its
/// unit. Written `10%`, `3`, `10%+3`, `0` (exact) or `off` (shown, never judged).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tolerance {
    /// The factor part: 0.1 for 10 %.
    pub relative: f64,
    /// The absolute part, in the metric's unit.
    pub absolute: f64,
}

impl Tolerance {
    /// No change allowed.
    pub const EXACT: Tolerance = Tolerance {
        relative: 0.0,
        absolute: 0.0,
    };

    /// Any change: the metric is shown but never judged.
    pub const OFF: Tolerance = Tolerance {
        relative: f64::INFINITY,
        absolute: 0.0,
    };

    /// Whether this is [`Tolerance::OFF`].
    pub fn is_off(&self) -> bool {
        self.relative.is_infinite()
    }

    /// The band around `value` within which another value counts as unchanged:
    /// `(value / (1 + relative) − absolute, value × (1 + relative) + absolute)`.
    pub fn band(&self, value: f64) -> (f64, f64) {
        let factor = 1.0 + self.relative;
        (
            value / factor - self.absolute,
            value * factor + self.absolute,
        )
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let relative = (self.relative != 0.0).then(|| format!("{}%", trim(self.relative * 100.0)));
        let absolute = (self.absolute != 0.0).then(|| trim(self.absolute));
        match (relative, absolute) {
            (Some(r), Some(a)) => write!(f, "{r}+{a}"),
            (Some(r), None) => f.write_str(&r),
            (None, Some(a)) => f.write_str(&a),
            (None, None) => f.write_str("0"),
        }
    }
}

/// A number without trailing zeros (at most six decimals).
fn trim(v: f64) -> String {
    let text = format!("{v:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl FromStr for Tolerance {
    type Err = RegressionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |message: &str| RegressionError::Tolerance {
            text: text.to_owned(),
            message: message.to_owned(),
        };
        let mut tolerance = Tolerance::EXACT;
        let (mut relative_seen, mut absolute_seen) = (false, false);
        let terms = text.trim();
        if terms.eq_ignore_ascii_case("off") {
            return Ok(Tolerance::OFF);
        }
        if terms.is_empty() {
            return Err(fail("expected N%, N or N%+N (e.g. 10%, 2, 5%+1, 0)"));
        }
        for term in terms.split('+').map(str::trim) {
            let (number, relative) = match term.strip_suffix('%') {
                Some(number) => (number.trim(), true),
                None => (term, false),
            };
            let value: f64 = number
                .parse()
                .map_err(|_| fail("expected N%, N or N%+N (e.g. 10%, 2, 5%+1, 0)"))?;
            if !(value.is_finite() && value >= 0.0) {
                return Err(fail("must be a number of at least 0"));
            }
            let seen = if relative {
                &mut relative_seen
            } else {
                &mut absolute_seen
            };
            if std::mem::replace(seen, true) {
                return Err(fail("has two relative or two absolute parts"));
            }
            if relative {
                tolerance.relative = value / 100.0;
            } else {
                tolerance.absolute = value;
            }
        }
        Ok(tolerance)
    }
}

/// `PATTERN[:TOLERANCE]`: the tolerance of the metrics that `PATTERN` names.
///
/// A pattern matches a metric name if it matches the whole name or a tail of it that starts
/// after a `/` or a `.`; `*` stands for any characters and `?` for one. So `max_herd`,
/// `stampede.max_herd` and `apim/*` all match `stampede/apim/stampede.max_herd`. Without a
/// tolerance the metrics keep their class's default.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The pattern.
    pub pattern: String,
    /// The tolerance; `None`: the class default.
    pub tolerance: Option<Tolerance>,
}

impl Rule {
    /// Whether the rule names the metric `name`.
    pub fn matches(&self, name: &str) -> bool {
        let pattern: Vec<char> = self.pattern.chars().collect();
        let chars: Vec<char> = name.chars().collect();
        (0..chars.len()).any(|start| {
            (start == 0 || matches!(chars[start - 1], '/' | '.')) && glob(&pattern, &chars[start..])
        })
    }
}

/// Whether `pattern` (`*` any run of characters, `?` one) matches all of `text`.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl FromStr for Rule {
    type Err = RegressionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |message: String| RegressionError::Rule {
            text: text.to_owned(),
            message,
        };
        let (pattern, tolerance) = match text.rsplit_once(':') {
            Some((pattern, tolerance)) => (
                pattern,
                Some(
                    tolerance
                        .parse::<Tolerance>()
                        .map_err(|e| fail(e.to_string()))?,
                ),
            ),
            None => (text, None),
        };
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(fail("expected NAME or NAME:TOLERANCE".to_owned()));
        }
        Ok(Rule {
            pattern: pattern.to_owned(),
            tolerance,
        })
    }
}

/// The tolerance of each metric: its class default, or `default` for every metric if set,
/// then the last of `rules` that matches it.
#[derive(Clone, Debug, Default)]
pub struct Tolerances {
    /// Replaces every class default (`--max-regression`).
    pub default: Option<Tolerance>,
    /// Per-metric rules, the last match winning (`--metric`).
    pub rules: Vec<Rule>,
}

impl Tolerances {
    /// The tolerance `metric` is judged with.
    pub fn for_metric(&self, metric: &Metric) -> Tolerance {
        let mut tolerance = self.default.unwrap_or_else(|| metric.default_tolerance());
        for rule in &self.rules {
            if rule.matches(&metric.name) {
                tolerance = rule.tolerance.unwrap_or_else(|| metric.default_tolerance());
            }
        }
        tolerance
    }
}
