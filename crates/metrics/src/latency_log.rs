//! The latency and service-time histograms of each timeline interval of a run, as an
//! HdrHistogram interval log.

use std::{
    io::Write,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hdrhistogram::{
    serialization::{
        interval_log::{
            IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, LogIteratorError, Tag,
        },
        Deserializer, Serializer as _, V2DeflateSerializer,
    },
    Histogram,
};

use crate::{
    error::MetricsError,
    histogram::{new_histogram, MAX_LATENCY_US},
};

/// The tag of service-time intervals in the interval log (latency intervals are untagged).
pub const SERVICE_TIME_TAG: &str = "service_time";

/// The latency and service-time histograms of each timeline interval of a run, written as an
/// HdrHistogram interval log (`latency.hlog`).
///
/// Values are µs. Each timeline interval has one untagged interval of latency from the intended start
/// and one interval tagged [`SERVICE_TIME_TAG`] of service time. Timestamps are seconds since
/// the run's start, which the log's `StartTime` and `BaseTime` headers give. Histograms are
/// V2-serialized and DEFLATE-compressed, the encoding the Java `HistogramLogReader` (and so
/// HistogramLogAnalyzer) reads. Held compressed in memory.
#[derive(Clone, Debug, Default)]
pub struct LatencyLog {
    pub(crate) start_time: Option<SystemTime>,
    /// The run's length: the last interval ends there.
    pub(crate) duration: Duration,
    /// Each interval's length (the last one's may be shorter).
    pub(crate) interval: Duration,
    pub(crate) intervals: Vec<LogInterval>,
    /// Intervals left out because their histograms could not be encoded.
    pub(crate) unencodable: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct LogInterval {
    pub(crate) second: u64,
    pub(crate) latency: Encoded,
    pub(crate) service: Encoded,
}

#[derive(Clone, Debug)]
pub(crate) enum Encoded {
    Empty,
    V2Deflate(Vec<u8>),
}

impl LatencyLog {
    /// Intervals (seconds) in the log.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// Whether the log has no interval (a report read back from JSON has none).
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Writes the interval log to `out`.
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<(), MetricsError> {
        let empty = new_histogram(MAX_LATENCY_US, "empty interval")?;
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment("tokenbench latency log: values in microseconds")
            .add_comment(
                "untagged intervals: latency from the intended start (corrected for \
                 coordinated omission)",
            )
            .add_comment(&format!(
                "intervals tagged {SERVICE_TIME_TAG}: service time from the actual start"
            ))
            .with_max_value_divisor(1000.0);
        if self.unencodable > 0 {
            builder.add_comment(&format!(
                "{} intervals left out: their histograms could not be encoded",
                self.unencodable
            ));
        }
        if let Some(start) = self.start_time {
            builder.with_start_time(start).with_base_time(start);
        }
        let mut writer = builder
            .begin_log_with(out, &mut serializer)
            .map_err(MetricsError::LogWrite)?;
        for interval in &self.intervals {
            let start = Duration::from_secs(interval.second);
            let end = start + self.interval;
            let length = if self.duration > start && self.duration < end {
                self.duration - start
            } else {
                self.interval
            };
            for (encoded, tag) in [
                (&interval.latency, None),
                (&interval.service, Tag::new(SERVICE_TIME_TAG)),
            ] {
                let decoded;
                let histogram = match encoded {
                    Encoded::Empty => &empty,
                    Encoded::V2Deflate(_) => {
                        decoded = decode(encoded, interval.second)?;
                        &decoded
                    }
                };
                writer
                    .write_histogram(histogram, start, length, tag)
                    .map_err(|e| match e {
                        hdrhistogram::serialization::interval_log::IntervalLogWriterError::IoError(io) => {
                            MetricsError::LogWrite(io)
                        }
                        hdrhistogram::serialization::interval_log::IntervalLogWriterError::SerializeError(s) => {
                            MetricsError::LogEncode { second: interval.second, reason: s.to_string() }
                        }
                    })?;
            }
        }
        Ok(())
    }
}

/// The intervals of an interval log written by [`LatencyLog::write_to`], in order, with the
/// log's `StartTime`: what merging shards reads back.
pub(crate) fn read_intervals(
    log: &[u8],
) -> Result<(Option<SystemTime>, Vec<LogInterval>), MetricsError> {
    let mut start_time = None;
    let mut intervals: Vec<LogInterval> = Vec::new();
    for entry in IntervalLogIterator::new(log) {
        let interval = match entry {
            Ok(LogEntry::StartTime(since_epoch)) => {
                start_time = Some(UNIX_EPOCH + since_epoch);
                continue;
            }
            Ok(LogEntry::BaseTime(_)) => continue,
            Ok(LogEntry::Interval(interval)) => interval,
            Err(LogIteratorError::ParseError { offset }) => {
                return Err(MetricsError::LogRead(format!(
                    "line {} is not an interval log line",
                    log[..offset.min(log.len())]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count()
                        + 1
                )))
            }
        };
        let second = interval.start_timestamp().as_secs_f64().round() as u64;
        let bytes = STANDARD.decode(interval.encoded_histogram()).map_err(|e| {
            MetricsError::LogRead(format!("the interval at {second} s is not base64: {e}"))
        })?;
        let tag = interval.tag().map(|t| t.as_str());
        let service = match tag {
            None => false,
            Some(SERVICE_TIME_TAG) => true,
            Some(other) => {
                return Err(MetricsError::LogRead(format!(
                    "the interval at {second} s has the unknown tag {other:?}"
                )))
            }
        };
        // Latency and service time of one interval are written one after the other.
        match intervals.last_mut() {
            Some(last) if last.second == second => {
                let slot = if service {
                    &mut last.service
                } else {
                    &mut last.latency
                };
                *slot = Encoded::V2Deflate(bytes);
            }
            _ => {
                let (latency, service) = if service {
                    (Encoded::Empty, Encoded::V2Deflate(bytes))
                } else {
                    (Encoded::V2Deflate(bytes), Encoded::Empty)
                };
                intervals.push(LogInterval {
                    second,
                    latency,
                    service,
                });
            }
        }
    }
    Ok((start_time, intervals))
}

/// `encoded` decoded (an empty histogram for [`Encoded::Empty`]).
pub(crate) fn decode(encoded: &Encoded, second: u64) -> Result<Histogram<u64>, MetricsError> {
    match encoded {
        Encoded::Empty => new_histogram(MAX_LATENCY_US, "empty interval"),
        Encoded::V2Deflate(bytes) => Deserializer::new()
            .deserialize::<u64, _>(&mut bytes.as_slice())
            .map_err(|e| MetricsError::LogEncode {
                second,
                reason: format!("{e:?}"),
            }),
    }
}

pub(crate) fn encode(histogram: &Histogram<u64>) -> Option<Encoded> {
    if histogram.is_empty() {
        return Some(Encoded::Empty);
    }
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .ok()?;
    Some(Encoded::V2Deflate(bytes))
}
