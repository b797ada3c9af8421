//! Replayed traces: CSV (header names, quoting, timestamps in every accepted form) and JSON
//! Lines, read into arrivals.
//!
//! Input: the trace file. Seeds: the shipped trace and the committed corpus.
//!
//! Promise checked: entries come sorted by offset, the last at [`Trace::last_offset`].

use std::time::Duration;

use scenario::trace::Trace;

use crate::{Outcome, Target};

pub(crate) const TARGET: Target = Target {
    name: "trace",
    about: "replayed traces (CSV and JSON Lines)",
    run,
    seeds,
};

fn run(data: &[u8]) -> Outcome {
    let result = Trace::from_reader(data, "fuzz-trace", None);
    if let Ok(trace) = &result {
        let last = trace.last_offset();
        let counted = trace.count_before(last + Duration::from_nanos(1));
        assert_eq!(
            counted,
            trace.len(),
            "every entry lies at or before the last offset"
        );
        let mut previous = Duration::ZERO;
        for entry in trace.entries() {
            assert!(entry.offset >= previous, "entries out of order");
            previous = entry.offset;
        }
        assert_eq!(previous, last, "the last entry is not at the last offset");
    }
    Outcome::of(&result)
}

/// Lines of the shipped trace kept as a seed: its header and a few records are what the
/// fuzzer needs; all 124 KB of it made every execution parse a thousand records.
const SHIPPED_LINES: usize = 12;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let path = "traces/apim-gateway-logs.csv";
    scenario::builtin_trace(path)
        .map(|text| {
            let head: String = text.split_inclusive('\n').take(SHIPPED_LINES).collect();
            vec![(path.replace('/', "-"), head.into_bytes())]
        })
        .unwrap_or_default()
}
