//! Merging the measurements of a run's shards into the measurements of the whole run.

use std::time::{Duration, SystemTime};

use crate::{
    error::MetricsError,
    histogram::{merge, new_histogram, p99, MAX_LATENCY_US},
    latency_log::{decode, encode, read_intervals, LatencyLog, LogInterval},
    snapshot::MetricsSnapshot,
    tally::Tally,
};

/// One shard's measurements: its tally (`tally.json`) and its interval log (the bytes of
/// `latency.hlog`).
#[derive(Debug)]
pub struct ShardMeasurements {
    /// The shard's tally.
    pub tally: Tally,
    /// Its latency interval log, as written.
    pub hlog: Vec<u8>,
}

/// What merging shards gives: the whole run's figures and tally, and how far apart the shards
/// started.
#[derive(Debug)]
pub struct Merged {
    /// The figures of the whole run (its latency log included).
    pub snapshot: MetricsSnapshot,
    /// The whole run's tally.
    pub tally: Tally,
    /// The latest shard's start after the earliest's.
    pub start_spread: Duration,
}

/// Merges the measurements of the shards of one run, exactly: counts are summed, every
/// histogram (each timeline interval's latency and service time, signing times, token waits,
/// herd sizes) is the sum of the shards', every recovery after a revocation is kept, and each
/// figure is then derived from the merged data as a single run's is.
///
/// Shards' clocks are aligned on their wall-clock starts, rounded to whole timeline
/// intervals (shards started together with `--start-at` are less than a millisecond apart).
/// Errors when the shards measured different fleets or the same instance twice, or when a
/// log cannot be read.
pub fn merge_shards(shards: Vec<ShardMeasurements>) -> Result<Merged, MetricsError> {
    let Some(first_start) = shards.iter().filter_map(|s| s.tally.started_at()).min() else {
        return Err(MetricsError::Mismatch(if shards.is_empty() {
            "no shards to merge".to_owned()
        } else {
            "no shard says when it started".to_owned()
        }));
    };
    let interval = shards[0].tally.interval_s().max(1);
    // Whole intervals after the earliest start, for each shard.
    let shift = |start: Option<SystemTime>| {
        let behind = start
            .and_then(|s| s.duration_since(first_start).ok())
            .unwrap_or_default();
        (behind.as_secs_f64() / interval as f64).round() as u64 * interval
    };
    let last_start = shards
        .iter()
        .filter_map(|s| s.tally.started_at())
        .max()
        .unwrap_or(first_start);

    let mut logs = Vec::with_capacity(shards.len());
    let mut merged: Option<Tally> = None;
    let mut ordered: Vec<_> = shards
        .into_iter()
        .map(|s| (shift(s.tally.started_at()), s))
        .collect();
    // The earliest first: its clock is the merged run's.
    ordered.sort_by_key(|(shift, _)| *shift);
    for (shift_s, shard) in ordered {
        shard.tally.check()?;
        let (_, intervals) = read_intervals(&shard.hlog)?;
        logs.push((shift_s, intervals));
        match &mut merged {
            None => merged = Some(shard.tally),
            Some(tally) => tally.add(&shard.tally, shift_s)?,
        }
    }
    let mut tally = merged.expect("at least one shard");

    // One interval at a time, so that memory holds one interval's histograms per shard.
    let mut latency = new_histogram(MAX_LATENCY_US, "merged latency")?;
    let mut service = new_histogram(MAX_LATENCY_US, "merged service time")?;
    let mut cursors = vec![0usize; logs.len()];
    let mut intervals = Vec::new();
    let mut unencodable = 0;
    loop {
        let next = logs
            .iter()
            .zip(&cursors)
            .filter_map(|((shift, log), &at)| log.get(at).map(|i| i.second + shift))
            .min();
        let Some(second) = next else { break };
        let mut at_second = new_histogram(MAX_LATENCY_US, "interval latency")?;
        let mut service_at_second = new_histogram(MAX_LATENCY_US, "interval service time")?;
        for ((shift, log), at) in logs.iter().zip(&mut cursors) {
            while let Some(interval) = log.get(*at).filter(|i| i.second + shift == second) {
                merge(&mut at_second, &decode(&interval.latency, interval.second)?);
                merge(
                    &mut service_at_second,
                    &decode(&interval.service, interval.second)?,
                );
                *at += 1;
            }
        }
        merge(&mut latency, &at_second);
        merge(&mut service, &service_at_second);
        if let Some(row) = usize::try_from(second / interval)
            .ok()
            .and_then(|row| tally.timeline.get_mut(row))
        {
            row.p99_us = p99(&at_second);
        }
        match (encode(&at_second), encode(&service_at_second)) {
            (Some(latency), Some(service)) => intervals.push(LogInterval {
                second,
                latency,
                service,
            }),
            _ => unencodable += 1,
        }
    }
    let log = LatencyLog {
        start_time: Some(first_start),
        duration: tally.duration(),
        interval: Duration::from_secs(interval),
        intervals,
        unencodable,
    };
    let snapshot = tally.snapshot(
        (!latency.is_empty()).then_some(&latency),
        (!service.is_empty()).then_some(&service),
        log,
    );
    Ok(Merged {
        snapshot,
        tally,
        start_spread: last_start.duration_since(first_start).unwrap_or_default(),
    })
}
