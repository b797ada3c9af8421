//! The charts of the HTML pages, as inline SVG: the timeline and the latency
//! percentile spectrum.

use metrics::{MetricsSnapshot, SpectrumPoint, TimelineRow};

use crate::{
    document::Report,
    format::{esc, int, num},
};

const PALETTE: [&str; 8] = [
    "#2563eb", "#dc2626", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#4b5563",
];

/// A chart's plotting area inside its SVG.
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn new(width: f64, height: f64) -> Self {
        Frame {
            width,
            height,
            left: 64.0,
            right: 40.0,
            top: 36.0,
            bottom: 44.0,
        }
    }

    /// The x of `fraction` (0 to 1) of the plotting area.
    fn x(&self, fraction: f64) -> f64 {
        self.left + fraction.clamp(0.0, 1.0) * (self.width - self.left - self.right)
    }

    /// The y of `fraction` (0 bottom to 1 top) of the plotting area.
    fn y(&self, fraction: f64) -> f64 {
        self.height
            - self.bottom
            - fraction.clamp(0.0, 1.0) * (self.height - self.top - self.bottom)
    }

    fn open(&self, label: &str) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" \
             height=\"{h}\" role=\"img\" aria-label=\"{label}\">\n<title>{label}</title>\n\
             <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n",
            w = self.width,
            h = self.height,
            label = esc(label)
        )
    }

    /// Grid lines and labels: `x_ticks` and `y_ticks` as (fraction, label); axis titles.
    fn axes(
        &self,
        x_ticks: &[(f64, String)],
        y_ticks: &[(f64, String)],
        x_title: &str,
        y_title: &str,
    ) -> String {
        let mut out = String::new();
        for (f, label) in y_ticks {
            let y = self.y(*f);
            out.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#4b5563\" \
                 text-anchor=\"end\">{}</text>\n",
                self.x(0.0),
                self.x(1.0),
                self.x(0.0) - 6.0,
                y + 4.0,
                esc(label)
            ));
        }
        for (f, label) in x_ticks {
            let x = self.x(*f);
            out.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#f3f4f6\"/>\n\
                 <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#4b5563\" \
                 text-anchor=\"middle\">{}</text>\n",
                self.y(0.0),
                self.y(1.0),
                self.y(0.0) + 16.0,
                esc(label)
            ));
        }
        out.push_str(&format!(
            "<line x1=\"{l:.1}\" y1=\"{b:.1}\" x2=\"{r:.1}\" y2=\"{b:.1}\" stroke=\"#6b7280\"/>\n\
             <line x1=\"{l:.1}\" y1=\"{t:.1}\" x2=\"{l:.1}\" y2=\"{b:.1}\" stroke=\"#6b7280\"/>\n\
             <text x=\"{cx:.1}\" y=\"{xt:.1}\" font-size=\"12\" fill=\"#374151\" \
             text-anchor=\"middle\">{}</text>\n\
             <text x=\"14\" y=\"{cy:.1}\" font-size=\"12\" fill=\"#374151\" text-anchor=\"middle\" \
             transform=\"rotate(-90 14 {cy:.1})\">{}</text>\n",
            esc(x_title),
            esc(y_title),
            l = self.x(0.0),
            r = self.x(1.0),
            t = self.y(1.0),
            b = self.y(0.0),
            cx = (self.x(0.0) + self.x(1.0)) / 2.0,
            xt = self.height - 8.0,
            cy = (self.y(0.0) + self.y(1.0)) / 2.0,
        ));
        out
    }

    /// A legend along the top: (colour, label).
    fn legend(&self, entries: &[(&str, &str)]) -> String {
        let mut out = String::new();
        let mut x = self.left;
        for (colour, label) in entries {
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"12\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\n\
                 <text x=\"{:.1}\" y=\"18\" font-size=\"12\" fill=\"#374151\">{}</text>\n",
                x + 19.0,
                esc(label)
            ));
            x += 19.0 + 7.0 * label.chars().count() as f64 + 22.0;
        }
        out
    }

    /// A line through `points` (fractions), with dots when there are few.
    fn series(&self, points: &[(f64, f64)], colour: &str) -> String {
        let coords: Vec<String> = points
            .iter()
            .map(|(fx, fy)| format!("{:.1},{:.1}", self.x(*fx), self.y(*fy)))
            .collect();
        let mut out = format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" \
             stroke-linejoin=\"round\" points=\"{}\"/>\n",
            coords.join(" ")
        );
        if points.len() <= 60 {
            for (fx, fy) in points {
                out.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\" fill=\"{colour}\"/>\n",
                    self.x(*fx),
                    self.y(*fy)
                ));
            }
        }
        out
    }

    fn no_data(&self) -> String {
        format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#6b7280\" \
             text-anchor=\"middle\">no data</text>\n",
            (self.x(0.0) + self.x(1.0)) / 2.0,
            (self.y(0.0) + self.y(1.0)) / 2.0
        )
    }
}

/// The rows of a run's timeline that the chart plots, each with the seconds it covers: a
/// row covers its interval, or what the run had left of it. A last row covering less than
/// half its interval is left out (its rate from a fraction of a second would be noise, and
/// plotted as a full interval it would look like the load collapsed at the end); a longer one
/// is scaled to what it covers.
fn plotted(metrics: &MetricsSnapshot) -> impl Iterator<Item = (&TimelineRow, f64)> + '_ {
    let interval = metrics.timeline_interval_s.max(1) as f64;
    let duration = metrics.duration.as_secs_f64();
    let only = metrics.timeline.len() == 1;
    metrics.timeline.iter().filter_map(move |row| {
        let covered = (duration - row.t as f64).clamp(0.0, interval);
        (covered >= interval / 2.0 || (only && covered > 0.0)).then_some((row, covered))
    })
}

/// The seconds and the largest per-second rate over `reports`' timelines.
pub(crate) fn timeline_extent(reports: &[&Report]) -> (u64, f64) {
    let seconds = reports
        .iter()
        .map(|r| r.metrics.timeline.len() as u64 * r.metrics.timeline_interval_s.max(1))
        .max();
    let peak = reports
        .iter()
        .flat_map(|r| {
            plotted(&r.metrics).map(|(row, covered)| {
                row.requests.max(row.unauthorized).max(row.token_requests) as f64 / covered
            })
        })
        .fold(0.0, f64::max);
    (seconds.unwrap_or(0), peak)
}

/// A count of a timeline row.
type RowValue = fn(&TimelineRow) -> u64;

/// The timeline's series, in [`PALETTE`] order.
const TIMELINE_SERIES: [(&str, RowValue); 3] = [
    ("requests", |r| r.requests),
    ("401s", |r| r.unauthorized),
    ("token requests", |r| r.token_requests),
];

/// The timeline chart of a run: requests, 401s and token requests per second (each row's
/// counts over the seconds it covers, see [`plotted`]) on a log(1 + y) scale, over `seconds`
/// seconds with rates up to `peak`.
pub(crate) fn timeline_svg(
    metrics: &MetricsSnapshot,
    seconds: u64,
    peak: f64,
    width: f64,
    height: f64,
) -> String {
    let frame = Frame::new(width, height);
    let mut out = frame.open("Timeline: requests, 401s and token requests per second");
    let x_span = seconds.max(1) as f64;
    let decades = decades(peak.ceil() as u64);
    let y_top = (1.0 + 10f64.powi(decades)).log10();
    let fy = |v: f64| (1.0 + v).log10() / y_top;
    let x_ticks: Vec<(f64, String)> = ticks(x_span, 1.0)
        .into_iter()
        .map(|t| (t / x_span, num(t)))
        .collect();
    let mut y_ticks = vec![(0.0, "0".to_owned())];
    y_ticks.extend(
        (0..=decades)
            .filter_map(|d| 10u64.checked_pow(d as u32))
            .map(|v| (fy(v as f64), int(v))),
    );
    out.push_str(&frame.axes(
        &x_ticks,
        &y_ticks,
        "seconds since start",
        "per second (log scale)",
    ));
    if metrics.timeline.is_empty() {
        out.push_str(&frame.no_data());
    } else {
        for (i, (_, pick)) in TIMELINE_SERIES.iter().enumerate() {
            // Points sit at the middle of what their row covers.
            let points: Vec<(f64, f64)> = plotted(metrics)
                .map(|(row, covered)| {
                    let middle = row.t as f64 + covered / 2.0;
                    (middle / x_span, fy(pick(row) as f64 / covered))
                })
                .collect();
            out.push_str(&frame.series(&points, PALETTE[i]));
        }
    }
    let legend: Vec<(&str, &str)> = TIMELINE_SERIES
        .iter()
        .enumerate()
        .map(|(i, (label, _))| (PALETTE[i], *label))
        .collect();
    out.push_str(&frame.legend(&legend));
    out.push_str("</svg>\n");
    out
}

/// The latency percentile spectrum: latency against percentile on a `log10(1 / (1 - p))`
/// axis (0 %, 90 %, 99 %, 99.9 %, …), one line per series.
pub(crate) fn spectrum_svg(series: &[(&str, &[SpectrumPoint])]) -> String {
    let frame = Frame::new(880.0, 320.0);
    let mut out = frame.open("Latency percentile spectrum");
    let x_of = |p: f64| {
        let tail = (100.0 - p) / 100.0;
        if tail > 0.0 {
            (1.0 / tail).log10()
        } else {
            f64::INFINITY
        }
    };
    let points = || series.iter().flat_map(|(_, points)| points.iter());
    let x_max = points()
        .map(|p| x_of(p.percentile))
        .filter(|x| x.is_finite())
        .fold(1.0f64, f64::max)
        .ceil();
    let y_peak = points().map(|p| p.latency_us).max().unwrap_or(0);
    let (unit, divisor) = match y_peak {
        0..=999 => ("µs", 1.0),
        1_000..=999_999 => ("ms", 1_000.0),
        _ => ("s", 1_000_000.0),
    };
    let y_max = nice_ceiling(y_peak as f64 / divisor);
    let x_ticks: Vec<(f64, String)> = (0..=x_max as u32)
        .map(|k| (f64::from(k) / x_max, percentile_label(k)))
        .collect();
    let y_ticks: Vec<(f64, String)> = ticks(y_max, 0.0)
        .into_iter()
        .map(|v| (v / y_max, num(v)))
        .collect();
    out.push_str(&frame.axes(
        &x_ticks,
        &y_ticks,
        "percentile",
        &format!("latency ({unit})"),
    ));
    if points().next().is_none() {
        out.push_str(&frame.no_data());
    }
    let mut legend = Vec::new();
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|p| {
                let x = x_of(p.percentile);
                let fx = if x.is_finite() { x / x_max } else { 1.0 };
                (fx, p.latency_us as f64 / divisor / y_max)
            })
            .collect();
        if !line.is_empty() {
            out.push_str(&frame.series(&line, colour));
        }
        legend.push((colour, *name));
    }
    out.push_str(&frame.legend(&legend));
    out.push_str("</svg>\n");
    out
}

/// `0%`, `90%`, `99%`, `99.9%`, … for `k` = 0, 1, 2, 3, ….
fn percentile_label(k: u32) -> String {
    match k {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        _ => format!("99.{}%", "9".repeat(k as usize - 2)).replace(".%", "%"),
    }
}

/// Powers of ten needed to reach `peak` (at least 1).
fn decades(peak: u64) -> i32 {
    let mut d = 1;
    while 10u64.checked_pow(d as u32).is_some_and(|v| v < peak) {
        d += 1;
    }
    d
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * base)
}

/// Tick values from 0 to `max` at a 1, 2 or 5 × 10ⁿ step of at least `min_step`, at most
/// about 8.
fn ticks(max: f64, min_step: f64) -> Vec<f64> {
    if max.is_nan() || max <= 0.0 {
        return vec![0.0];
    }
    let step = nice_ceiling(max / 8.0).max(min_step);
    let count = (max / step + 1e-9).floor() as u32;
    (0..=count).map(|i| f64::from(i) * step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_labelled() {
        assert_eq!(percentile_label(0), "0%");
        assert_eq!(percentile_label(2), "99%");
        assert_eq!(percentile_label(4), "99.99%");
    }

    /// A run of `duration` at 500 requests per second, recorded by the real recorder.
    fn steady(duration: std::time::Duration) -> MetricsSnapshot {
        use std::time::Duration;
        let metrics = metrics::Metrics::new(1, tokio::time::Instant::now()).unwrap();
        let mut at = Duration::ZERO;
        while at < duration {
            metrics.record_request(&metrics::RequestRecord {
                instance: 0,
                intended_start: at,
                sent_at: at,
                finished_at: at,
                outcome: metrics::RequestOutcome::Status(200),
                token_obtained_at: Some(Duration::ZERO),
            });
            at += Duration::from_millis(2);
        }
        metrics.snapshot(duration)
    }

    #[test]
    fn the_last_partial_interval_is_scaled_or_left_out() {
        use std::time::Duration;
        // 2.3 s: the last row covers 0.3 s, under half a second: left out, not drawn as a
        // collapse to 150 requests per second.
        let short = steady(Duration::from_millis(2_300));
        assert_eq!(short.timeline.len(), 3);
        let rates: Vec<f64> = plotted(&short)
            .map(|(row, covered)| row.requests as f64 / covered)
            .collect();
        assert_eq!(rates, [500.0, 500.0]);
        // 2.7 s: the last row covers 0.7 s, and its 350 requests are 500 per second.
        let long = steady(Duration::from_millis(2_700));
        let rates: Vec<f64> = plotted(&long)
            .map(|(row, covered)| (row.requests as f64 / covered).round())
            .collect();
        assert_eq!(rates, [500.0, 500.0, 500.0]);
        let (_, peak) = timeline_extent(&[]);
        assert_eq!(peak, 0.0);
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(ticks(10.0, 0.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(3.0, 1.0), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(decades(0), 1);
        assert_eq!(decades(10), 1);
        assert_eq!(decades(11), 2);
    }
}
