//! Recorded traffic traces, replayed by [`Traffic::Replay`](crate::Traffic::Replay).
//!
//! A trace is a CSV file with a header row, or JSON Lines (one object per line). Each entry
//! has a time and, optionally, an instance and a path:
//!
//! - **time**: either a timestamp column (`timestamp`, `time` or `TimeGenerated`), or an
//!   `offset` column. Timestamps are RFC 3339 / ISO 8601 (`2024-05-01T12:00:00.123Z`; without
//!   an offset they count as UTC), epoch milliseconds (`1714564800123`), or the US form Log
//!   Analytics writes in its CSV exports (`5/1/2024, 12:00:00.123 PM`). The first entry
//!   decides the form for the whole file. Offsets are seconds (`1.25`) or human durations
//!   (`1s 250ms`), from the start of the replay. Timestamps become offsets from the earliest
//!   one.
//! - **instance** (`instance`): a gateway instance number (0-based; the driver maps it onto
//!   its instances).
//! - **path** (`path`, or else `url`, whose scheme and host are dropped): the backend path of
//!   the request, query included.
//! - **api** (`api`, or `ApiId` as APIM's logs name it): the API the request called; a
//!   scenario with `[[apis]]` sends it to the API of that name (one without ignores it).
//!
//! Column and key names are case-insensitive, and a bracketed suffix such as
//! `TimeGenerated [UTC]` is ignored, so an export of Azure API Management's
//! `ApiManagementGatewayLogs` (`TimeGenerated`, `Method`, `Url`, … in any order, newest first
//! as the portal exports them) replays as it is. Other columns are ignored. Entries are
//! sorted by time (stable: equal times keep their order in the file).
//!
//! A trace is loaded into memory once (24 bytes per entry, paths and API names shared), so it is limited to
//! [`MAX_TRACE_ENTRIES`] entries and lines to [`MAX_LINE_BYTES`].

use std::{
    fmt,
    fs::File,
    io::{BufReader, Read},
    path::Path,
    sync::Arc,
    time::Duration,
};

mod builder;
mod csv;
mod error;
mod json_lines;
mod lines;
mod timestamp;

use builder::{Builder, Finished, Row, NONE};
pub use error::{TraceError, MAX_LINE_BYTES, MAX_TRACE_ENTRIES};
use lines::Lines;

/// The two trace formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    /// CSV with a header row.
    Csv,
    /// JSON Lines: one object per line.
    JsonLines,
}

impl TraceFormat {
    /// The format a file name implies: `.csv` is CSV; `.jsonl`, `.ndjson` and `.json` are JSON
    /// Lines; anything else is unknown (then the content decides).
    pub fn from_path(path: &Path) -> Option<TraceFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(TraceFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(TraceFormat::JsonLines),
            _ => None,
        }
    }
}

/// One entry of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Offset from the start of the trace.
    pub offset: Duration,
    /// The gateway instance, if the trace names one.
    pub instance: Option<u32>,
    /// The backend path (with its query), if the trace names one.
    pub path: Option<Arc<str>>,
    /// The API's name, if the trace names one.
    pub api: Option<Arc<str>>,
    /// The user, if the trace names one: the number of its name among
    /// [`Trace::user_names`] (in order of first appearance).
    pub user: Option<u32>,
}

/// A loaded trace: entries sorted by offset.
#[derive(Clone)]
pub struct Trace {
    origin: String,
    rows: Vec<Row>,
    paths: Vec<Arc<str>>,
    apis: Vec<Arc<str>>,
    users: Vec<Arc<str>>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("origin", &self.origin)
            .field("entries", &self.rows.len())
            .field("distinct_paths", &self.paths.len())
            .field("apis", &self.apis)
            .field("distinct_users", &self.users.len())
            .finish()
    }
}

impl Trace {
    /// Loads the trace at `path`; its extension, or else its first character (`{`: JSON
    /// Lines), tells the format.
    pub fn load(path: impl AsRef<Path>) -> Result<Trace, TraceError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let file = File::open(path).map_err(|source| TraceError::Read {
            origin: origin.clone(),
            source,
        })?;
        Trace::from_reader(file, origin, TraceFormat::from_path(path))
    }

    /// Reads a trace from `reader`; `origin` names it in errors. With no `format`, the first
    /// character decides (`{`: JSON Lines, anything else: CSV).
    pub fn from_reader(
        reader: impl Read,
        origin: impl Into<String>,
        format: Option<TraceFormat>,
    ) -> Result<Trace, TraceError> {
        Trace::read(reader, origin.into(), format, MAX_TRACE_ENTRIES)
    }

    fn read(
        reader: impl Read,
        origin: String,
        format: Option<TraceFormat>,
        max_entries: usize,
    ) -> Result<Trace, TraceError> {
        let mut lines = Lines::new(BufReader::new(reader), origin);
        let format = match format {
            Some(format) => format,
            None => lines.sniff()?,
        };
        let mut builder = Builder::new(max_entries);
        match format {
            TraceFormat::Csv => csv::read(&mut lines, &mut builder)?,
            TraceFormat::JsonLines => json_lines::read(&mut lines, &mut builder)?,
        }
        let Finished {
            rows,
            paths,
            apis,
            users,
        } = builder.finish(&lines.origin)?;
        Ok(Trace {
            origin: lines.origin,
            rows,
            paths,
            apis,
            users,
        })
    }

    /// Where the trace came from (as given to [`Trace::load`] or [`Trace::from_reader`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of entries (never 0).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Always false: an empty trace is an error.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The entry at `index` (in time order).
    pub fn get(&self, index: usize) -> Option<TraceEntry> {
        let row = self.rows.get(index)?;
        Some(TraceEntry {
            offset: Duration::from_nanos(row.t.unsigned_abs()),
            instance: (row.instance != NONE).then_some(row.instance),
            path: self.paths.get(row.path as usize).cloned(),
            api: self.apis.get(row.api as usize).cloned(),
            user: (row.user != NONE).then_some(row.user),
        })
    }

    /// The names of the users its entries name (`user` or `UserId` column), in order of
    /// first appearance: user `n` of an entry is the `n`th.
    pub fn user_names(&self) -> &[Arc<str>] {
        &self.users
    }

    /// The names of the APIs its entries name, in order of first appearance.
    pub fn api_names(&self) -> &[Arc<str>] {
        &self.apis
    }

    /// Every entry, in time order.
    pub fn entries(&self) -> impl Iterator<Item = TraceEntry> + '_ {
        (0..self.rows.len()).filter_map(|i| self.get(i))
    }

    /// The offset of the last entry.
    pub fn last_offset(&self) -> Duration {
        self.rows.last().map_or(Duration::ZERO, |row| {
            Duration::from_nanos(row.t.unsigned_abs())
        })
    }

    /// How many entries have an offset below `offset`.
    pub fn count_before(&self, offset: Duration) -> usize {
        let limit = i64::try_from(offset.as_nanos()).unwrap_or(i64::MAX);
        self.rows.partition_point(|row| row.t < limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_entries_names_the_line() {
        let text = "offset\n0\n1\n\n2\n";
        let err = Trace::read(text.as_bytes(), "t.csv".into(), None, 2).unwrap_err();
        assert!(matches!(err, TraceError::TooLarge { line: 5, .. }), "{err}");
        assert!(err.to_string().starts_with("t.csv:5: "), "{err}");
        assert!(Trace::read(text.as_bytes(), "t.csv".into(), None, 3).is_ok());
    }
}
