//! Successful requests gathered outside the recorder's lock and recorded an interval at a
//! time: what a simulation's fast path records its cache hits into.
//!
//! Recording a request locks the recorder's window and touches its counters; at hundreds of
//! millions of hits that lock is a tenth of a simulation's time. A [`Batch`] keeps its own
//! histograms per timeline interval and hands each interval over whole.

use std::{collections::VecDeque, time::Duration};

use hdrhistogram::Histogram;

use crate::{
    error::MetricsError,
    histogram::{new_histogram, MAX_LATENCY_US},
    recorder::micros,
    window::second,
};

/// Intervals a batch keeps before handing the oldest over (it holds one more while adding).
const KEPT: usize = 3;

/// 2xx completions of one or more timeline intervals, not yet recorded. Make one with
/// [`Metrics::batch`](crate::Metrics::batch), add with
/// [`Metrics::record_ok_batched`](crate::Metrics::record_ok_batched), and hand it over with
/// [`Metrics::flush_batch`](crate::Metrics::flush_batch) before taking a snapshot.
pub struct Batch {
    /// Seconds per timeline interval.
    pub(crate) interval: u64,
    /// Kept intervals, oldest first.
    pub(crate) kept: VecDeque<Kept>,
    /// Emptied histograms, for reuse.
    spare: Vec<Kept>,
}

/// One interval's completions.
pub(crate) struct Kept {
    /// The interval's index (its first second / the interval).
    pub(crate) index: u64,
    pub(crate) count: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) service: Histogram<u64>,
}

impl Batch {
    pub(crate) fn new(interval: u64) -> Result<Self, MetricsError> {
        let spare = (0..=KEPT)
            .map(|_| {
                Ok(Kept {
                    index: 0,
                    count: 0,
                    latency: new_histogram(MAX_LATENCY_US, "batched latency")?,
                    service: new_histogram(MAX_LATENCY_US, "batched service time")?,
                })
            })
            .collect::<Result<_, MetricsError>>()?;
        Ok(Batch {
            interval: interval.max(1),
            kept: VecDeque::with_capacity(KEPT + 1),
            spare,
        })
    }

    /// Adds a 2xx completion at `finished_at` that took `latency` from its intended start
    /// and `service` from its actual start; returns an interval to hand over when this one
    /// pushed the oldest out (hand it over, then give it back with [`Batch::reuse`]).
    pub(crate) fn add(
        &mut self,
        finished_at: Duration,
        latency: Duration,
        service: Duration,
    ) -> Option<Kept> {
        let index = second(finished_at) / self.interval;
        let position = match self.kept.iter().rposition(|kept| kept.index == index) {
            Some(position) => position,
            None => {
                // At most KEPT are kept and one more is being added: KEPT + 1 made at start.
                let mut kept = self.spare.pop()?;
                kept.index = index;
                let position = self.kept.partition_point(|k| k.index < index);
                self.kept.insert(position, kept);
                position
            }
        };
        let kept = &mut self.kept[position];
        kept.count += 1;
        kept.latency.saturating_record(micros(latency));
        kept.service.saturating_record(micros(service));
        if self.kept.len() > KEPT {
            self.kept.pop_front()
        } else {
            None
        }
    }

    /// Seconds per timeline interval.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// Takes the kept intervals before the one of `second` out, oldest first.
    pub(crate) fn take_before(&mut self, second: u64) -> Vec<Kept> {
        let index = second / self.interval;
        let count = self.kept.partition_point(|kept| kept.index < index);
        self.kept.drain(..count).collect()
    }

    /// Takes back a handed-over interval's histograms for reuse.
    pub(crate) fn reuse(&mut self, mut kept: Kept) {
        kept.count = 0;
        kept.latency.reset();
        kept.service.reset();
        self.spare.push(kept);
    }
}
