//! Arrival schedules: exact counts for the deterministic kinds, reproducible Poisson
//! arrivals, replay offsets, and laziness.

use std::{sync::Arc, time::Duration};

use scenario::{
    arrivals::{schedule, Arrival},
    trace::Trace,
    RateStep, Scenario, Traffic,
};

const SEED: u64 = 42;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn times(traffic: &Traffic, duration: Duration) -> Vec<Duration> {
    let arrivals: Vec<Arrival> = schedule(traffic, duration, SEED).unwrap().collect();
    for pair in arrivals.windows(2) {
        assert!(pair[0].at <= pair[1].at, "in time order");
    }
    for a in &arrivals {
        assert!(a.at < duration, "{:?} before the end", a.at);
        assert_eq!((a.instance, a.path.as_ref()), (None, None));
    }
    arrivals.into_iter().map(|a| a.at).collect()
}

fn before(times: &[Duration], limit: f64) -> usize {
    times.iter().filter(|t| **t < secs(limit)).count()
}

#[test]
fn constant_is_evenly_spaced_and_exact() {
    let t = times(&Traffic::Constant { rate: 100.0 }, secs(10.0));
    assert_eq!(t.len(), 1000);
    assert_eq!(t[0], Duration::ZERO);
    assert_eq!(t[1], Duration::from_millis(10));
    assert_eq!(t[999], Duration::from_millis(9990));
    assert_eq!(before(&t, 5.0), 500);

    // ⌈rate × duration⌉ when it is not whole.
    let t = times(&Traffic::Constant { rate: 2.5 }, secs(1.0));
    assert_eq!(t, [Duration::ZERO, secs(0.4), secs(0.8)]);
    let t = times(&Traffic::Constant { rate: 3.0 }, secs(1.0));
    assert_eq!(t.len(), 3);
    // A duration shorter than one gap still has the arrival at 0.
    assert_eq!(times(&Traffic::Constant { rate: 1.0 }, secs(0.5)).len(), 1);
}

#[test]
fn ramp_integrates_the_rate() {
    // 0 → 200 over 10 s: ∫ = 1000; the first half has a quarter of it.
    let t = times(
        &Traffic::Ramp {
            from: 0.0,
            to: 200.0,
        },
        secs(10.0),
    );
    assert_eq!(t.len(), 1000);
    assert_eq!(before(&t, 5.0), 250);
    assert_eq!(t[0], Duration::ZERO);
    // Gaps shrink as the rate grows.
    assert!(t[1] - t[0] > t[999] - t[998]);

    // 200 → 0: three quarters in the first half.
    let t = times(
        &Traffic::Ramp {
            from: 200.0,
            to: 0.0,
        },
        secs(10.0),
    );
    assert_eq!(t.len(), 1000);
    assert_eq!(before(&t, 5.0), 750);

    // A flat ramp is constant traffic.
    let flat = times(
        &Traffic::Ramp {
            from: 50.0,
            to: 50.0,
        },
        secs(4.0),
    );
    assert_eq!(flat, times(&Traffic::Constant { rate: 50.0 }, secs(4.0)));

    // 100 → 300 over 10 s: ∫ = 2000, the first 5 s owe 100·5 + 20·25/2 = 750.
    let t = times(
        &Traffic::Ramp {
            from: 100.0,
            to: 300.0,
        },
        secs(10.0),
    );
    assert_eq!((t.len(), before(&t, 5.0)), (2000, 750));
}

#[test]
fn step_is_piecewise_constant() {
    let steps = vec![
        RateStep {
            at: secs(0.0),
            rate: 100.0,
        },
        RateStep {
            at: secs(5.0),
            rate: 300.0,
        },
    ];
    let t = times(&Traffic::Step { steps }, secs(10.0));
    assert_eq!(t.len(), 2000);
    assert_eq!(before(&t, 5.0), 500);
    assert_eq!(t[500], secs(5.0));
    assert_eq!(t[501] - t[500], Duration::from_nanos(3_333_333));

    // Nothing before the first step; a zero step pauses the traffic.
    let steps = vec![
        RateStep {
            at: secs(2.0),
            rate: 10.0,
        },
        RateStep {
            at: secs(4.0),
            rate: 0.0,
        },
        RateStep {
            at: secs(6.0),
            rate: 20.0,
        },
    ];
    let t = times(&Traffic::Step { steps }, secs(8.0));
    assert_eq!(t.len(), 20 + 40);
    assert_eq!(t[0], secs(2.0));
    assert_eq!(before(&t, 4.0), 20);
    assert_eq!(before(&t, 6.0), 20);
    assert_eq!(t[20], secs(6.0));
}

#[test]
fn burst_adds_simultaneous_arrivals_to_the_base_rate() {
    let traffic = Traffic::Burst {
        every: secs(5.0),
        size: 100,
        rate: 10.0,
    };
    let t = times(&traffic, secs(20.0));
    // Base 10/s × 20 s, and bursts at 5, 10 and 15 s (not at 0, not at the end).
    assert_eq!(t.len(), 200 + 300);
    for at in [5.0, 10.0, 15.0] {
        // The burst, and the base arrival due at the same instant.
        assert_eq!(t.iter().filter(|x| **x == secs(at)).count(), 101, "at {at}");
    }
    assert_eq!(before(&t, 5.0), 50);
    assert_eq!(
        schedule(&traffic, secs(20.0), SEED).unwrap().size_hint(),
        (500, Some(500))
    );

    // Without a base rate: only the bursts.
    let t = times(
        &Traffic::Burst {
            every: secs(1.0),
            size: 10,
            rate: 0.0,
        },
        secs(3.5),
    );
    assert_eq!(t.len(), 30);
    assert_eq!(t[0], secs(1.0));
    assert_eq!(t[29], secs(3.0));
}

#[test]
fn poisson_is_reproducible_for_a_seed() {
    let traffic = Traffic::Poisson { rate: 100.0 };
    let d = secs(10.0);
    let a = times(&traffic, d);
    let b = times(&traffic, d);
    assert_eq!(a, b, "same seed, same arrivals");
    let other: Vec<Duration> = schedule(&traffic, d, SEED + 1)
        .unwrap()
        .map(|x| x.at)
        .collect();
    assert_ne!(a, other, "another seed, other arrivals");
    // Mean 1000, standard deviation ≈ 32: a fixed seed lands well inside ±5σ.
    assert!((840..=1160).contains(&a.len()), "{}", a.len());
    assert!((840..=1160).contains(&other.len()), "{}", other.len());
    // Exponential gaps: far from evenly spaced.
    let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let max = gaps.iter().cloned().fold(0.0, f64::max);
    assert!((0.008..0.012).contains(&mean), "{mean}");
    assert!(max > 3.0 * mean, "{max}");
}

/// A day quiet at night and busy from 09:00 to 17:00: 1 req/s from 00:00 to 06:00, rising
/// to 9 req/s at 09:00, 9 until 17:00, falling to 1 by 20:00.
fn office_day() -> Vec<f64> {
    let mut rates = vec![1.0; 24];
    for (hour, rate) in [(7, 3.67), (8, 6.33), (18, 6.33), (19, 3.67)] {
        rates[hour] = rate;
    }
    for rate in &mut rates[9..=17] {
        *rate = 9.0;
    }
    rates
}

#[test]
fn daily_follows_the_hourly_profile_linearly_and_repeats() {
    let rates = office_day();
    let even = Traffic::Daily {
        rates: rates.clone(),
        poisson: false,
    };
    let day = secs(86_400.0);
    let arrivals = times(&even, day);
    // The integral of the piecewise-linear profile, exactly (trapezoids, 23:00 → midnight).
    let owed: f64 = (0..24)
        .map(|h| (rates[h] + rates[(h + 1) % 24]) / 2.0 * 3600.0)
        .sum();
    assert_eq!(arrivals.len() as f64, owed.ceil());
    assert!((even.mean_rate(day) - owed / 86_400.0).abs() < 1e-9);
    // Hour by hour: 3,600 at 1 req/s at night, 32,400 at 9 req/s mid-day, and 06:00–07:00
    // rising linearly from 1 to 3.67 req/s: (1 + 3.67) / 2 × 3600 = 8,406.
    let in_hour = |h: f64| before(&arrivals, (h + 1.0) * 3600.0) - before(&arrivals, h * 3600.0);
    assert_eq!(in_hour(2.0), 3600);
    assert_eq!(in_hour(12.0), 32_400);
    assert!((8_405..=8_407).contains(&in_hour(6.0)), "{}", in_hour(6.0));
    // The second day repeats the first.
    let two_days = times(&even, secs(2.0 * 86_400.0));
    assert_eq!(two_days.len(), 2 * arrivals.len());

    let poisson = Traffic::Daily {
        rates,
        poisson: true,
    };
    let a = times(&poisson, day);
    assert_eq!(a, times(&poisson, day), "same seed, same arrivals");
    // Mean 411,000 (the integral), σ ≈ 640.
    assert!(
        (a.len() as f64 - owed).abs() < 5.0 * owed.sqrt(),
        "{}",
        a.len()
    );
    let night = before(&a, 6.0 * 3600.0);
    assert!((21_000..22_200).contains(&night), "{night}");
}

fn inline_trace() -> Arc<Trace> {
    let csv = "offset,instance,path\n0,0,/api/a\n0.5,1,/api/b\n1,,/api/c\n2.5,2,\n4,0,/api/a\n";
    Arc::new(Trace::from_reader(csv.as_bytes(), "inline.csv", None).unwrap())
}

#[test]
fn replay_divides_offsets_by_the_speed_and_cuts_at_the_end() {
    let trace = inline_trace();
    let run = |speed: f64, duration: f64| -> Vec<Arrival> {
        schedule(
            &Traffic::Replay {
                trace: trace.clone(),
                speed,
            },
            secs(duration),
            SEED,
        )
        .unwrap()
        .collect()
    };
    let all = run(1.0, 10.0);
    let summary: Vec<_> = all
        .iter()
        .map(|a| {
            (
                a.at.as_millis(),
                a.instance,
                a.path.as_deref().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, Some(0), Some("/api/a".to_owned())),
            (500, Some(1), Some("/api/b".to_owned())),
            (1000, None, Some("/api/c".to_owned())),
            (2500, Some(2), None),
            (4000, Some(0), Some("/api/a".to_owned())),
        ]
    );
    // Equal paths share one allocation.
    assert!(Arc::ptr_eq(
        all[0].path.as_ref().unwrap(),
        all[4].path.as_ref().unwrap()
    ));
    let at = |arrivals: Vec<Arrival>| -> Vec<u128> {
        arrivals.iter().map(|a| a.at.as_millis()).collect()
    };
    assert_eq!(at(run(2.0, 10.0)), [0, 250, 500, 1250, 2000]);
    assert_eq!(at(run(0.5, 10.0)), [0, 1000, 2000, 5000, 8000]);
    // Cut at the end: 2.5 s is not before 2.5 s.
    assert_eq!(at(run(1.0, 2.5)), [0, 500, 1000]);
    assert_eq!(at(run(2.0, 2.5)), [0, 250, 500, 1250, 2000]);
    // A speed so low that offsets overflow ends the replay instead of panicking.
    assert_eq!(at(run(1e-300, 10.0)), [0]);
}

#[test]
fn replay_of_the_shipped_trace() {
    let s = Scenario::from_builtin("replay").unwrap();
    let arrivals: Vec<Arrival> = s.arrivals().unwrap().collect();
    assert_eq!(arrivals.len(), 300);
    assert_eq!(arrivals[0].at, Duration::ZERO);
    assert_eq!(arrivals[299].at, Duration::from_millis(29_518));
    // The spike: 120 requests between 12 s and 14 s after the first (which was at 0.378 s).
    let spike = arrivals
        .iter()
        .filter(|a| a.at >= secs(11.622) && a.at < secs(13.622))
        .count();
    assert!(spike >= 120, "{spike}");
    assert!(arrivals
        .iter()
        .all(|a| a.instance.is_none() && a.path.as_deref().unwrap().starts_with("/api/")));
}

#[test]
fn shipped_stampede_has_exactly_rate_times_duration_arrivals() {
    let s = Scenario::from_builtin("stampede").unwrap();
    let Traffic::Constant { rate } = s.traffic else {
        panic!("constant")
    };
    let expected = (rate * s.duration.as_secs_f64()) as usize;
    assert_eq!(s.arrivals().unwrap().count(), expected);
    assert_eq!(
        s.arrivals().unwrap().size_hint(),
        (expected, Some(expected))
    );
}

#[test]
fn schedules_are_lazy() {
    // A day at the highest rate: 86.4 billion arrivals, never materialised.
    let day = Duration::from_secs(86_400);
    let mut constant = schedule(&Traffic::Constant { rate: 1e6 }, day, SEED).unwrap();
    assert_eq!(constant.size_hint(), (86_400_000_000, Some(86_400_000_000)));
    let first: Vec<_> = constant.by_ref().take(3).map(|a| a.at).collect();
    assert_eq!(
        first,
        [
            Duration::ZERO,
            Duration::from_micros(1),
            Duration::from_micros(2)
        ]
    );
    assert_eq!(constant.size_hint().0, 86_400_000_000 - 3);
    let mut poisson = schedule(&Traffic::Poisson { rate: 1e6 }, day, SEED).unwrap();
    assert!(poisson.nth(1000).unwrap().at < Duration::from_millis(10));
    let ramp = schedule(&Traffic::Ramp { from: 0.0, to: 1e6 }, day, SEED).unwrap();
    assert_eq!(ramp.skip(10).take(10).count(), 10);
}

#[test]
fn invalid_traffic_is_refused_with_its_key() {
    let d = secs(10.0);
    let cases = [
        (Traffic::Constant { rate: -1.0 }, "rate"),
        (Traffic::Constant { rate: f64::NAN }, "rate"),
        (Traffic::Poisson { rate: 0.0 }, "rate"),
        (
            Traffic::Poisson {
                rate: f64::INFINITY,
            },
            "rate",
        ),
        (Traffic::Ramp { from: 0.0, to: 0.0 }, "to"),
        (
            Traffic::Ramp {
                from: -1.0,
                to: 5.0,
            },
            "from",
        ),
        (Traffic::Step { steps: vec![] }, "steps"),
        (
            Traffic::Daily {
                rates: vec![1.0; 23],
                poisson: true,
            },
            "rates",
        ),
        (
            Traffic::Daily {
                rates: vec![0.0; 24],
                poisson: true,
            },
            "rates",
        ),
        (
            Traffic::Daily {
                rates: [vec![1.0; 23], vec![-2.0]].concat(),
                poisson: false,
            },
            "rates[23]",
        ),
        (
            Traffic::Step {
                steps: vec![RateStep {
                    at: secs(11.0),
                    rate: 1.0,
                }],
            },
            "steps[0].at",
        ),
        (
            Traffic::Burst {
                every: Duration::ZERO,
                size: 1,
                rate: 0.0,
            },
            "every",
        ),
        (
            Traffic::Burst {
                every: secs(1.0),
                size: 0,
                rate: 0.0,
            },
            "size",
        ),
        (
            Traffic::Burst {
                every: Duration::from_nanos(1),
                size: 1000,
                rate: 0.0,
            },
            "size",
        ),
        (
            Traffic::Replay {
                trace: inline_trace(),
                speed: 0.0,
            },
            "speed",
        ),
    ];
    for (traffic, key) in cases {
        let err = schedule(&traffic, d, SEED).err().expect("invalid");
        assert_eq!(err.key, key, "{err}");
        assert!(
            err.to_string().starts_with(&format!("traffic.{key}: ")),
            "{err}"
        );
    }
}

#[test]
fn mean_rate_and_scaling() {
    let d = secs(10.0);
    let burst = Traffic::Burst {
        every: secs(5.0),
        size: 100,
        rate: 10.0,
    };
    assert_eq!(burst.mean_rate(d), 10.0 + 100.0 / 10.0);
    let Traffic::Burst { size, rate, .. } = burst.scaled(2.0) else {
        panic!("burst")
    };
    assert_eq!((size, rate), (200, 20.0));
    let Traffic::Burst { size, .. } = burst.scaled(0.001) else {
        panic!("burst")
    };
    assert_eq!(size, 1);
    assert_eq!(
        Traffic::Poisson { rate: 7.0 }.scaled(3.0).mean_rate(d),
        21.0
    );
    assert_eq!(
        Traffic::Ramp {
            from: 0.0,
            to: 10.0
        }
        .mean_rate(d),
        5.0
    );
    let replay = Traffic::Replay {
        trace: inline_trace(),
        speed: 1.0,
    };
    assert_eq!(replay.mean_rate(secs(2.0)), 1.5); // 3 entries before 2 s
    assert_eq!(replay.kind(), "replay");
}

#[test]
fn a_schedule_can_move_to_another_task() {
    fn send<T: Send + 'static>(_: &T) {}
    let s = Scenario::from_builtin("replay").unwrap();
    send(&s.arrivals().unwrap());
    send(&s);
}
