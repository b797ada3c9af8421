//! Arrival schedules: when each request of a run is due, lazily and deterministically.
//!
//! [`schedule`] turns a [`Traffic`] into an iterator of [`Arrival`]s in time order, each an
//! offset from the start of the run, all before its end. Nothing is materialised: memory is
//! constant whatever the number of arrivals (a replay reads its already loaded trace).
//!
//! - **constant**, **ramp**, **step**: the k-th arrival (k = 0, 1, …) is at the first time the
//!   integral of the rate exceeds k, so a run of duration D has exactly ⌈∫₀ᴰ rate⌉ arrivals
//!   (constant 100/s for 10 s: 1000, at 0, 10 ms, …, 9.99 s). A ramp's rate changes linearly,
//!   not in steps. Before the first step of a step traffic, nothing arrives.
//! - **poisson**: exponential gaps with mean 1/rate drawn from a `StdRng` seeded with the
//!   seed: the same seed gives the same arrivals.
//! - **daily**: along the day's piecewise-linear rate curve, Poisson (a unit-rate Poisson
//!   process in cumulated-rate time, mapped back through the curve, seeded) or, with
//!   `poisson = false`, deterministic as **constant**.
//! - **burst**: `size` arrivals at once at `every`, 2 × `every`, … before the end, merged
//!   with evenly spaced arrivals at the base rate (as constant traffic).
//! - **replay**: the trace's entries, offsets divided by the speed, up to the end; with their
//!   instance and path.

use std::{sync::Arc, time::Duration};

use rand::{
    rngs::{SmallRng, StdRng},
    SeedableRng,
};
use rand_distr::{Distribution, Exp, Exp1};

use crate::{
    trace::Trace,
    traffic::{burst_count, daily_segments, RateSegment as Segment, Traffic, TrafficError},
};

/// One request due in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When, as an offset from the start of the run (its intended start).
    pub at: Duration,
    /// The gateway instance a trace assigns it to (0-based; the driver maps it onto its
    /// instances, e.g. modulo their number); `None`: the driver chooses.
    pub instance: Option<u32>,
    /// The backend path (with query) a trace gives it; `None`: the driver's default path.
    pub path: Option<Arc<str>>,
    /// The API a trace names (a name of the scenario's `[[apis]]`); `None`: the driver
    /// picks one by weight.
    pub api: Option<Arc<str>>,
    /// The user a trace names (a number among its [`Trace::user_names`]); `None`: the
    /// driver draws one from `[traffic] users` in an on-behalf-of run.
    pub user: Option<u32>,
}

impl Arrival {
    fn at(at: Duration) -> Self {
        Arrival {
            at,
            instance: None,
            path: None,
            api: None,
            user: None,
        }
    }
}

/// The arrivals of a run, in time order (an iterator; see [`schedule`]).
pub struct Schedule(Kind);

enum Kind {
    Curve(Curve),
    Poisson(Box<Poisson>),
    PoissonCurve(Box<PoissonCurve>),
    Burst(Burst),
    Replay(Replay),
}

impl Iterator for Schedule {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        match &mut self.0 {
            Kind::Curve(curve) => curve.next().map(Arrival::at),
            Kind::Poisson(poisson) => poisson.next().map(Arrival::at),
            Kind::PoissonCurve(poisson) => poisson.next().map(Arrival::at),
            Kind::Burst(burst) => burst.next().map(Arrival::at),
            Kind::Replay(replay) => replay.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Kind::Curve(curve) => exact(curve.remaining()),
            Kind::Poisson(_) | Kind::PoissonCurve(_) => (0, None),
            Kind::Burst(burst) => exact(burst.remaining()),
            Kind::Replay(replay) => (0, Some(replay.trace.len().saturating_sub(replay.next))),
        }
    }
}

fn exact(remaining: u64) -> (usize, Option<usize>) {
    match usize::try_from(remaining) {
        Ok(n) => (n, Some(n)),
        Err(_) => (usize::MAX, None),
    }
}

/// The arrivals of `traffic` during a run of `duration`, deterministic for `seed` (only
/// Poisson arrivals use it). Fails if the traffic is invalid ([`Traffic::validate`]).
pub fn schedule(
    traffic: &Traffic,
    duration: Duration,
    seed: u64,
) -> Result<Schedule, TrafficError> {
    traffic.validate(duration)?;
    let end = duration.as_secs_f64();
    let kind = match traffic {
        Traffic::Constant { rate } => {
            Kind::Curve(Curve::new(vec![Segment::flat(0.0, end, *rate)], duration))
        }
        Traffic::Ramp { from, to } => Kind::Curve(Curve::new(
            vec![Segment {
                start: 0.0,
                len: end,
                rate: *from,
                slope: if end > 0.0 { (to - from) / end } else { 0.0 },
            }],
            duration,
        )),
        Traffic::Step { steps } => {
            let segments = steps
                .iter()
                .enumerate()
                .map(|(i, step)| {
                    let start = step.at.as_secs_f64();
                    let stop = steps.get(i + 1).map_or(end, |next| next.at.as_secs_f64());
                    Segment::flat(start, stop.min(end) - start, step.rate)
                })
                .collect();
            Kind::Curve(Curve::new(segments, duration))
        }
        Traffic::Poisson { rate } => Kind::Poisson(Box::new(Poisson {
            rng: StdRng::seed_from_u64(seed),
            gaps: Exp::new(*rate).map_err(|e| TrafficError {
                key: "rate".to_owned(),
                message: e.to_string(),
            })?,
            t: 0.0,
            end,
            duration,
            done: false,
        })),
        Traffic::Daily { rates, poisson } => {
            let curve = Curve::new(daily_segments(rates, end), duration);
            if *poisson {
                Kind::PoissonCurve(Box::new(PoissonCurve {
                    rng: SmallRng::seed_from_u64(seed),
                    owed: curve.owed,
                    curve,
                    m: 0.0,
                }))
            } else {
                Kind::Curve(curve)
            }
        }
        Traffic::Burst { every, size, rate } => Kind::Burst(Burst {
            base: Curve::new(vec![Segment::flat(0.0, end, *rate)], duration),
            pending_base: None,
            every: *every,
            size: *size,
            bursts: burst_count(*every, duration),
            burst: 1,
            left_in_burst: *size,
        }),
        Traffic::Replay { trace, speed } => Kind::Replay(Replay {
            trace: trace.clone(),
            speed: *speed,
            duration,
            next: 0,
        }),
    };
    Ok(Schedule(kind))
}

/// A duration from seconds, clamped below `limit` (arrivals are strictly before the end).
fn clamp_before(secs: f64, limit: Duration) -> Duration {
    let at = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(limit);
    if at >= limit {
        limit.saturating_sub(Duration::from_nanos(1))
    } else {
        at
    }
}

impl Segment {
    /// The τ at which the integral from the segment's start reaches `m` (0 ≤ m ≤ area).
    fn solve(&self, m: f64) -> f64 {
        if m <= 0.0 {
            return 0.0;
        }
        let (a, s) = (self.rate, self.slope);
        let tau = if s.abs() < 1e-12 {
            m / a
        } else {
            // a·τ + s·τ²/2 = m, in the form that is stable for both signs of s.
            let root = (a * a + 2.0 * s * m).max(0.0).sqrt();
            2.0 * m / (a + root)
        };
        if tau.is_finite() {
            tau.clamp(0.0, self.len)
        } else {
            self.len
        }
    }
}

/// Deterministic arrivals along a piecewise-linear rate curve: the k-th is at the first
/// time the cumulated rate exceeds k.
struct Curve {
    segments: Vec<Segment>,
    /// Cumulated arrivals owed at the start of each segment.
    owed_before: Vec<f64>,
    duration: Duration,
    /// Arrivals owed over the whole curve.
    owed: f64,
    total: u64,
    k: u64,
    segment: usize,
}

impl Curve {
    fn new(segments: Vec<Segment>, duration: Duration) -> Self {
        let mut owed_before = Vec::with_capacity(segments.len());
        let mut owed = 0.0;
        for segment in &segments {
            owed_before.push(owed);
            owed += segment.area();
        }
        // ⌈owed⌉, forgiving rounding noise (1000.0000000001 owed is 1000 arrivals), never by
        // as much as a whole arrival.
        let tolerance = (owed * 1e-12).clamp(1e-9, 1e-3);
        let total = (owed - tolerance).ceil().max(0.0);
        Curve {
            segments,
            owed_before,
            duration,
            owed,
            // `as` saturates; rates and durations are bounded by validation.
            total: total as u64,
            k: 0,
            segment: 0,
        }
    }

    fn remaining(&self) -> u64 {
        self.total - self.k
    }

    /// Seconds since the start at which the cumulated rate reaches `k` (calls with `k` in
    /// increasing order).
    fn time_of(&mut self, k: f64) -> f64 {
        // The segment where the cumulated rate goes past k (k < owed at its end).
        while self.segment + 1 < self.segments.len()
            && k >= self.owed_before[self.segment] + self.segments[self.segment].area()
        {
            self.segment += 1;
        }
        let segment = self.segments[self.segment];
        segment.start + segment.solve(k - self.owed_before[self.segment])
    }
}

impl Iterator for Curve {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.k >= self.total || self.segments.is_empty() {
            return None;
        }
        let t = self.time_of(self.k as f64);
        self.k += 1;
        Some(clamp_before(t, self.duration))
    }
}

/// A Poisson process: exponential gaps.
struct Poisson {
    rng: StdRng,
    gaps: Exp<f64>,
    /// Seconds since the start of the last arrival.
    t: f64,
    end: f64,
    duration: Duration,
    done: bool,
}

impl Iterator for Poisson {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.done {
            return None;
        }
        self.t += self.gaps.sample(&mut self.rng);
        if self.t >= self.end || !self.t.is_finite() {
            self.done = true;
            return None;
        }
        Some(clamp_before(self.t, self.duration))
    }
}

/// A Poisson process along a rate curve: exponential gaps of mean 1 in cumulated-rate time,
/// each mapped back to a time through the curve.
struct PoissonCurve {
    /// Xoshiro, not ChaCha: a fleet's day draws hundreds of millions of gaps.
    rng: SmallRng,
    curve: Curve,
    owed: f64,
    /// Cumulated rate at the last arrival.
    m: f64,
}

impl Iterator for PoissonCurve {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let gap: f64 = Exp1.sample(&mut self.rng);
        self.m += gap;
        if self.m >= self.owed || !self.m.is_finite() {
            self.m = f64::INFINITY;
            return None;
        }
        // Seconds to nanoseconds by a saturating cast, three times cheaper than
        // `clamp_before`'s exact conversion: a fleet's day has hundreds of millions of gaps,
        // and a nanosecond of rounding changes no count.
        let nanos = (self.curve.time_of(self.m) * 1e9) as u64;
        let end = u64::try_from(self.curve.duration.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(nanos.min(end.saturating_sub(1))))
    }
}

/// Bursts at `every`, 2 × `every`, … merged with a constant base rate.
struct Burst {
    base: Curve,
    pending_base: Option<Duration>,
    every: Duration,
    size: u32,
    bursts: u64,
    /// The number of the next burst (from 1).
    burst: u64,
    left_in_burst: u32,
}

impl Burst {
    fn remaining(&self) -> u64 {
        let base = self.base.remaining() + u64::from(self.pending_base.is_some());
        let bursts = if self.burst > self.bursts {
            0
        } else {
            u64::from(self.left_in_burst)
                + (self.bursts - self.burst).saturating_mul(u64::from(self.size))
        };
        base.saturating_add(bursts)
    }

    fn burst_time(&self) -> Option<Duration> {
        if self.burst > self.bursts {
            return None;
        }
        let nanos = self.every.as_nanos() * u128::from(self.burst);
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        Some(Duration::new(secs, (nanos % 1_000_000_000) as u32))
    }
}

impl Iterator for Burst {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.pending_base.is_none() {
            self.pending_base = self.base.next();
        }
        match (self.pending_base, self.burst_time()) {
            (Some(base), Some(burst)) if burst < base => {}
            (Some(base), _) => {
                self.pending_base = None;
                return Some(base);
            }
            (None, None) => return None,
            (None, Some(_)) => {}
        }
        let at = self.burst_time()?;
        self.left_in_burst -= 1;
        if self.left_in_burst == 0 {
            self.burst += 1;
            self.left_in_burst = self.size;
        }
        Some(at)
    }
}

/// A trace played back at a speed.
struct Replay {
    trace: Arc<Trace>,
    speed: f64,
    duration: Duration,
    next: usize,
}

impl Iterator for Replay {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        let entry = self.trace.get(self.next)?;
        let at = if self.speed == 1.0 {
            Some(entry.offset)
        } else {
            Duration::try_from_secs_f64(entry.offset.as_secs_f64() / self.speed).ok()
        };
        match at {
            Some(at) if at < self.duration => {
                self.next += 1;
                Some(Arrival {
                    at,
                    instance: entry.instance,
                    path: entry.path,
                    api: entry.api,
                    user: entry.user,
                })
            }
            _ => {
                self.next = self.trace.len();
                None
            }
        }
    }
}
