//! The latency and service-time histograms of each timeline interval of a run, as an
//! HdrHistogram interval log.

use std::{
    io::Write,
    time::{Duration, SystemTime},
};

use hdrhistogram::{
    serialization::{
        interval_log::{IntervalLogWriterBuilder, Tag},
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
                    Encoded::V2Deflate(bytes) => {
                        decoded = Deserializer::new()
                            .deserialize::<u64, _>(&mut bytes.as_slice())
                            .map_err(|e| MetricsError::LogEncode {
                                second: interval.second,
                                reason: format!("{e:?}"),
                            })?;
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
