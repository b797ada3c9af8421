//! The arrival process of a run: its kinds, their checks, mean rate and scaling.

use std::{sync::Arc, time::Duration};

use crate::{limits::MAX_RATE, trace::Trace, values::human};

/// The arrival process of a run. Rates are requests per second.
#[derive(Clone, Debug)]
pub enum Traffic {
    /// Evenly spaced arrivals.
    Constant {
        /// Arrivals per second.
        rate: f64,
    },
    /// A Poisson process: exponential gaps with this mean rate.
    Poisson {
        /// Mean arrivals per second.
        rate: f64,
    },
    /// A rate changing linearly from `from` at the start to `to` at the end of the run.
    Ramp {
        /// Rate at the start.
        from: f64,
        /// Rate at the end.
        to: f64,
    },
    /// A piecewise-constant rate: each step holds until the next one (or the end). Before
    /// the first step, nothing arrives.
    Step {
        /// The steps, by time.
        steps: Vec<RateStep>,
    },
    /// `size` simultaneous arrivals at `every`, 2 × `every`, … (before the end), on top of
    /// evenly spaced arrivals at `rate` (which may be 0).
    Burst {
        /// Time between bursts.
        every: Duration,
        /// Arrivals per burst.
        size: u32,
        /// Base rate between bursts.
        rate: f64,
    },
    /// A day's profile: the rate at the start of each hour of the day (the run starts at
    /// midnight), changing linearly to the next hour's and repeating every 24 hours.
    Daily {
        /// 24 rates, midnight first.
        rates: Vec<f64>,
        /// Poisson arrivals along the profile (the default), or evenly spaced ones.
        poisson: bool,
    },
    /// A recorded trace, its offsets divided by `speed`, cut at the end of the run.
    Replay {
        /// The trace.
        trace: Arc<Trace>,
        /// Playback speed (2.0: twice as fast).
        speed: f64,
    },
}

/// One step of [`Traffic::Step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateStep {
    /// When it starts.
    pub at: Duration,
    /// The rate from then on.
    pub rate: f64,
}

/// Traffic that cannot be scheduled. `key` is relative to the `traffic` section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("traffic.{key}: {message}")]
pub struct TrafficError {
    /// The key at fault (`rate`, `steps[1].at`, …).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl TrafficError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        TrafficError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Checks a rate: finite, within `[0, MAX_RATE]`, and above 0 unless `zero_ok`.
pub(crate) fn check_rate(
    key: impl Into<String>,
    rate: f64,
    zero_ok: bool,
) -> Result<(), TrafficError> {
    let low_ok = if zero_ok { rate >= 0.0 } else { rate > 0.0 };
    if rate.is_finite() && low_ok && rate <= MAX_RATE {
        Ok(())
    } else {
        let low = if zero_ok { "≥ 0" } else { "above 0" };
        Err(TrafficError::new(
            key,
            format!("rate must be a number {low} and at most {MAX_RATE} per second, not {rate}"),
        ))
    }
}

impl Traffic {
    /// Its kind, as the scenario file names it (`constant`, `poisson`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Traffic::Constant { .. } => "constant",
            Traffic::Poisson { .. } => "poisson",
            Traffic::Ramp { .. } => "ramp",
            Traffic::Step { .. } => "step",
            Traffic::Burst { .. } => "burst",
            Traffic::Daily { .. } => "daily",
            Traffic::Replay { .. } => "replay",
        }
    }

    /// Checks every parameter for a run of `duration`.
    pub fn validate(&self, duration: Duration) -> Result<(), TrafficError> {
        match self {
            Traffic::Constant { rate } | Traffic::Poisson { rate } => {
                check_rate("rate", *rate, false)
            }
            Traffic::Ramp { from, to } => {
                check_rate("from", *from, true)?;
                check_rate("to", *to, true)?;
                if *from == 0.0 && *to == 0.0 {
                    return Err(TrafficError::new(
                        "to",
                        "a ramp from 0 to 0 has no arrivals",
                    ));
                }
                Ok(())
            }
            Traffic::Step { steps } => {
                if steps.is_empty() {
                    return Err(TrafficError::new("steps", "at least one step is needed"));
                }
                for (i, step) in steps.iter().enumerate() {
                    check_rate(format!("steps[{i}].rate"), step.rate, true)?;
                    if step.at >= duration {
                        return Err(TrafficError::new(
                            format!("steps[{i}].at"),
                            format!(
                                "step at {} is not before the end of the run ({})",
                                human(step.at),
                                human(duration)
                            ),
                        ));
                    }
                    if i > 0 && step.at <= steps[i - 1].at {
                        return Err(TrafficError::new(
                            format!("steps[{i}].at"),
                            format!(
                                "steps must be in increasing time order: {} is not after {}",
                                human(step.at),
                                human(steps[i - 1].at)
                            ),
                        ));
                    }
                }
                if steps.iter().all(|step| step.rate == 0.0) {
                    return Err(TrafficError::new("steps", "every step has rate 0"));
                }
                Ok(())
            }
            Traffic::Burst { every, size, rate } => {
                check_rate("rate", *rate, true)?;
                if every.is_zero() {
                    return Err(TrafficError::new("every", "must be above 0"));
                }
                if *size == 0 {
                    return Err(TrafficError::new("size", "must be at least 1"));
                }
                let burst_rate = f64::from(*size) / every.as_secs_f64();
                if burst_rate > MAX_RATE {
                    return Err(TrafficError::new(
                        "size",
                        format!(
                            "{size} arrivals every {} is {burst_rate:.0} per second, above \
                             {MAX_RATE}",
                            human(*every)
                        ),
                    ));
                }
                Ok(())
            }
            Traffic::Daily { rates, .. } => {
                if rates.len() != HOURS_PER_DAY {
                    return Err(TrafficError::new(
                        "rates",
                        format!(
                            "needs one rate per hour of the day ({HOURS_PER_DAY}), not {}",
                            rates.len()
                        ),
                    ));
                }
                for (hour, rate) in rates.iter().enumerate() {
                    check_rate(format!("rates[{hour}]"), *rate, true)?;
                }
                if rates.iter().all(|rate| *rate == 0.0) {
                    return Err(TrafficError::new("rates", "every rate is 0"));
                }
                Ok(())
            }
            Traffic::Replay { speed, .. } => {
                if speed.is_finite() && *speed > 0.0 {
                    Ok(())
                } else {
                    Err(TrafficError::new(
                        "speed",
                        format!("must be a number above 0, not {speed}"),
                    ))
                }
            }
        }
    }

    /// The mean arrival rate over a run of `duration` (arrivals per second).
    pub fn mean_rate(&self, duration: Duration) -> f64 {
        let secs = duration.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        match self {
            Traffic::Constant { rate } | Traffic::Poisson { rate } => *rate,
            Traffic::Ramp { from, to } => (from + to) / 2.0,
            Traffic::Step { steps } => {
                let mut total = 0.0;
                for (i, step) in steps.iter().enumerate() {
                    let end = steps
                        .get(i + 1)
                        .map_or(duration, |next| next.at)
                        .min(duration);
                    total += step.rate * end.saturating_sub(step.at).as_secs_f64();
                }
                total / secs
            }
            Traffic::Burst { every, size, rate } => {
                let bursts = burst_count(*every, duration);
                rate + bursts as f64 * f64::from(*size) / secs
            }
            Traffic::Daily { rates, .. } => {
                daily_segments(rates, secs)
                    .iter()
                    .map(RateSegment::area)
                    .sum::<f64>()
                    / secs
            }
            Traffic::Replay { trace, speed } => {
                let limit = duration.as_secs_f64() * speed;
                let count = Duration::try_from_secs_f64(limit)
                    .map_or(trace.len(), |limit| trace.count_before(limit));
                count as f64 / secs
            }
        }
    }

    /// The same traffic with every rate multiplied by `factor` (a replay plays `factor` times
    /// faster; a burst's size is rounded, at least 1).
    pub fn scaled(&self, factor: f64) -> Traffic {
        match self {
            Traffic::Constant { rate } => Traffic::Constant {
                rate: rate * factor,
            },
            Traffic::Poisson { rate } => Traffic::Poisson {
                rate: rate * factor,
            },
            Traffic::Ramp { from, to } => Traffic::Ramp {
                from: from * factor,
                to: to * factor,
            },
            Traffic::Step { steps } => Traffic::Step {
                steps: steps
                    .iter()
                    .map(|step| RateStep {
                        at: step.at,
                        rate: step.rate * factor,
                    })
                    .collect(),
            },
            Traffic::Burst { every, size, rate } => Traffic::Burst {
                every: *every,
                // `as` saturates; validation refuses an absurd size.
                size: ((f64::from(*size) * factor).round() as u32).max(1),
                rate: rate * factor,
            },
            Traffic::Daily { rates, poisson } => Traffic::Daily {
                rates: rates.iter().map(|rate| rate * factor).collect(),
                poisson: *poisson,
            },
            Traffic::Replay { trace, speed } => Traffic::Replay {
                trace: trace.clone(),
                speed: speed * factor,
            },
        }
    }
}

/// Hours in a [`Traffic::Daily`] profile.
pub const HOURS_PER_DAY: usize = 24;

/// A piece of a rate curve: `rate + slope × τ` requests per second for τ in `[0, len)`
/// seconds from `start`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateSegment {
    pub(crate) start: f64,
    pub(crate) len: f64,
    pub(crate) rate: f64,
    pub(crate) slope: f64,
}

impl RateSegment {
    pub(crate) fn flat(start: f64, len: f64, rate: f64) -> Self {
        RateSegment {
            start,
            len: len.max(0.0),
            rate,
            slope: 0.0,
        }
    }

    /// Arrivals owed over the whole segment: the integral of its rate.
    pub(crate) fn area(&self) -> f64 {
        self.rate * self.len + self.slope * self.len * self.len / 2.0
    }
}

/// The hourly segments of a daily profile over a run of `end` seconds: each hour's rate
/// changes linearly to the next hour's (after 23:00 comes midnight's).
pub(crate) fn daily_segments(rates: &[f64], end: f64) -> Vec<RateSegment> {
    const HOUR: f64 = 3600.0;
    let hours = (end / HOUR).ceil().max(0.0) as usize;
    (0..hours)
        .map(|h| {
            let (rate, next) = (rates[h % HOURS_PER_DAY], rates[(h + 1) % HOURS_PER_DAY]);
            let start = h as f64 * HOUR;
            let len = HOUR.min(end - start);
            RateSegment {
                start,
                len,
                rate,
                slope: (next - rate) / HOUR,
            }
        })
        .collect()
}

/// The number of bursts in a run: at `every`, 2 × `every`, … strictly before `duration`.
pub(crate) fn burst_count(every: Duration, duration: Duration) -> u64 {
    let every = every.as_nanos();
    if every == 0 {
        return 0;
    }
    let count = duration.as_nanos().saturating_sub(1) / every;
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// The default run length of a replay: just past its last entry at `speed`.
pub(crate) fn replay_duration(trace: &Trace, speed: f64) -> Duration {
    let secs = trace.last_offset().as_secs_f64() / speed;
    Duration::try_from_secs_f64(secs.floor() + 1.0).unwrap_or(Duration::MAX)
}
