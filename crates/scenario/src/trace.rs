//! Recorded traffic traces, replayed by [`Traffic::Replay`](crate::scenario::Traffic::Replay).
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
//!
//! Column and key names are case-insensitive, and a bracketed suffix such as
//! `TimeGenerated [UTC]` is ignored, so an export of Azure API Management's
//! `ApiManagementGatewayLogs` (`TimeGenerated`, `Method`, `Url`, … in any order, newest first
//! as the portal exports them) replays as it is. Other columns are ignored. Entries are
//! sorted by time (stable: equal times keep their order in the file).
//!
//! A trace is loaded into memory once (16 bytes per entry, paths shared), so it is limited to
//! [`MAX_TRACE_ENTRIES`] entries and lines to [`MAX_LINE_BYTES`].

use std::{
    collections::HashMap,
    fmt,
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::Path,
    sync::Arc,
    time::Duration,
};

use time::{
    format_description::well_known::{Iso8601, Rfc3339},
    Date, Month, OffsetDateTime, PrimitiveDateTime, Time,
};

/// Most entries a trace may have (a trace is held in memory during the run).
pub const MAX_TRACE_ENTRIES: usize = 10_000_000;

/// Longest line a trace may have, in bytes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Most physical lines one CSV record may span (a quoted field with line breaks).
const MAX_RECORD_LINES: u64 = 1000;

/// Marks an absent instance or path in a [`Row`].
const NONE: u32 = u32::MAX;

/// Why a trace could not be loaded. Every message names the trace, and the line where there
/// is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("cannot read trace {origin}: {source}")]
    Read {
        /// The trace.
        origin: String,
        /// Why.
        source: io::Error,
    },
    /// A line of the trace is wrong.
    #[error("{origin}:{line}: {message}")]
    Invalid {
        /// The trace.
        origin: String,
        /// The line (1-based).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The trace has no entries.
    #[error("{origin}: the trace has no entries")]
    Empty {
        /// The trace.
        origin: String,
    },
    /// The trace has more than [`MAX_TRACE_ENTRIES`] entries.
    #[error(
        "{origin}:{line}: the trace has more than {max} entries; a trace is held in memory, \
         so sample it or split it",
        max = MAX_TRACE_ENTRIES
    )]
    TooLarge {
        /// The trace.
        origin: String,
        /// The line of the first entry beyond the limit.
        line: u64,
    },
}

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
}

/// One stored entry: 16 bytes.
#[derive(Clone, Copy)]
struct Row {
    /// Nanoseconds: while loading, since the Unix epoch (timestamps) or from the start
    /// (offsets); once loaded, from the start.
    t: i64,
    /// Instance, or [`NONE`].
    instance: u32,
    /// Index into the interned paths, or [`NONE`].
    path: u32,
}

/// A loaded trace: entries sorted by offset.
#[derive(Clone)]
pub struct Trace {
    origin: String,
    rows: Vec<Row>,
    paths: Vec<Arc<str>>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("origin", &self.origin)
            .field("entries", &self.rows.len())
            .field("distinct_paths", &self.paths.len())
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
            TraceFormat::Csv => read_csv(&mut lines, &mut builder)?,
            TraceFormat::JsonLines => read_json_lines(&mut lines, &mut builder)?,
        }
        builder.finish(lines.origin)
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
        })
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

/// Physical lines of a trace, with their numbers.
struct Lines<R> {
    reader: R,
    origin: String,
    /// The number of the current line.
    number: u64,
    /// The current line.
    line: String,
}

impl<R> Lines<R> {
    fn error(&self, line: u64, message: impl Into<String>) -> TraceError {
        TraceError::Invalid {
            origin: self.origin.clone(),
            line,
            message: message.into(),
        }
    }

    /// The current line, without its line break (and without a byte-order mark on line 1).
    fn line(&self) -> &str {
        &self.line
    }
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R, origin: String) -> Self {
        Lines {
            reader,
            origin,
            number: 0,
            line: String::new(),
        }
    }

    /// The format the first character implies, without consuming anything.
    fn sniff(&mut self) -> Result<TraceFormat, TraceError> {
        let head = match self.reader.fill_buf() {
            Ok(head) => head,
            Err(source) => {
                return Err(TraceError::Read {
                    origin: self.origin.clone(),
                    source,
                })
            }
        };
        let head = head.strip_prefix("\u{feff}".as_bytes()).unwrap_or(head);
        let first = head.iter().find(|b| !b.is_ascii_whitespace());
        Ok(if first == Some(&b'{') {
            TraceFormat::JsonLines
        } else {
            TraceFormat::Csv
        })
    }

    /// Reads the next line ([`Lines::line`]); false at the end.
    fn advance(&mut self) -> Result<bool, TraceError> {
        let mut buf = std::mem::take(&mut self.line).into_bytes();
        buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 2; // room for "\r\n"
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|source| TraceError::Read {
                origin: self.origin.clone(),
                source,
            })?;
        if read == 0 {
            return Ok(false);
        }
        self.number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(self.error(
                self.number,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        self.line =
            String::from_utf8(buf).map_err(|_| self.error(self.number, "not valid UTF-8"))?;
        if self.number == 1 && self.line.starts_with('\u{feff}') {
            self.line.drain(..'\u{feff}'.len_utf8());
        }
        Ok(true)
    }
}

/// What a trace's time column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// Offsets from the start.
    Offset,
    /// Absolute timestamps, in a form the first entry decides.
    Timestamp(Option<TimestampForm>),
}

/// The forms of timestamps a trace may use (one per file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimestampForm {
    EpochMillis,
    Iso8601,
    UsLocale,
}

impl TimestampForm {
    fn describe(self) -> &'static str {
        match self {
            TimestampForm::EpochMillis => "epoch milliseconds",
            TimestampForm::Iso8601 => "RFC 3339 / ISO 8601",
            TimestampForm::UsLocale => "M/D/YYYY, h:mm:ss.fff AM/PM",
        }
    }

    /// Nanoseconds since the Unix epoch.
    fn parse(self, text: &str) -> Option<i64> {
        match self {
            TimestampForm::EpochMillis => parse_epoch_millis(text),
            TimestampForm::Iso8601 => parse_iso8601(text),
            TimestampForm::UsLocale => parse_us_locale(text),
        }
    }
}

/// Collects rows, interning paths.
struct Builder {
    rows: Vec<Row>,
    paths: Vec<Arc<str>>,
    path_ids: HashMap<Arc<str>, u32>,
    clock: Option<Clock>,
    max_entries: usize,
}

/// One entry as read, before conversion.
struct RawEntry<'a> {
    line: u64,
    time: &'a str,
    instance: Option<&'a str>,
    path: Option<&'a str>,
    /// Whether `path` is a URL (its scheme and host are dropped).
    path_is_url: bool,
}

impl Builder {
    fn new(max_entries: usize) -> Self {
        Builder {
            rows: Vec::new(),
            paths: Vec::new(),
            path_ids: HashMap::new(),
            clock: None,
            max_entries,
        }
    }

    fn push<R>(&mut self, lines: &Lines<R>, entry: RawEntry<'_>) -> Result<(), TraceError> {
        let line = entry.line;
        if self.rows.len() >= self.max_entries {
            return Err(TraceError::TooLarge {
                origin: lines.origin.clone(),
                line,
            });
        }
        let time = entry.time.trim();
        let t = match self.clock {
            Some(Clock::Offset) => parse_offset(time).map_err(|m| lines.error(line, m))?,
            Some(Clock::Timestamp(form)) => {
                let form = match form {
                    Some(form) => form,
                    None => {
                        let form = detect_form(time).ok_or_else(|| {
                            lines.error(
                                line,
                                format!(
                                    "timestamp {time:?} is neither RFC 3339 / ISO 8601, \
                                     epoch milliseconds nor M/D/YYYY, h:mm:ss AM/PM"
                                ),
                            )
                        })?;
                        self.clock = Some(Clock::Timestamp(Some(form)));
                        form
                    }
                };
                form.parse(time).ok_or_else(|| {
                    lines.error(
                        line,
                        format!(
                            "timestamp {time:?} is not in this trace's form ({}, as its first \
                             entry) or out of range",
                            form.describe()
                        ),
                    )
                })?
            }
            None => return Err(lines.error(line, "the trace has no time column")),
        };
        let instance = match entry.instance.map(str::trim).filter(|s| !s.is_empty()) {
            None => NONE,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n != NONE => n,
                _ => {
                    return Err(lines.error(
                        line,
                        format!(
                            "instance {text:?} is not an instance number (0 to {})",
                            NONE - 1
                        ),
                    ))
                }
            },
        };
        let path = match entry.path.map(str::trim).filter(|s| !s.is_empty()) {
            None => NONE,
            Some(text) => {
                let path = if entry.path_is_url {
                    path_of_url(text)
                } else if text.starts_with('/') {
                    text.to_owned()
                } else {
                    format!("/{text}")
                };
                self.intern(path)
            }
        };
        self.rows.push(Row { t, instance, path });
        Ok(())
    }

    fn intern(&mut self, path: String) -> u32 {
        if let Some(&id) = self.path_ids.get(path.as_str()) {
            return id;
        }
        // At most MAX_TRACE_ENTRIES paths, far below NONE.
        let id = u32::try_from(self.paths.len()).unwrap_or(NONE);
        let path: Arc<str> = path.into();
        self.paths.push(path.clone());
        self.path_ids.insert(path, id);
        id
    }

    fn finish(mut self, origin: String) -> Result<Trace, TraceError> {
        if self.rows.is_empty() {
            return Err(TraceError::Empty { origin });
        }
        self.rows.sort_by_key(|row| row.t); // stable
        if let Some(Clock::Timestamp(_)) = self.clock {
            let start = self.rows[0].t;
            for row in &mut self.rows {
                // Both within i64 and row.t ≥ start: the difference fits.
                row.t = row.t.saturating_sub(start);
            }
        }
        self.rows.shrink_to_fit();
        Ok(Trace {
            origin,
            rows: self.rows,
            paths: self.paths,
        })
    }
}

/// The form of the first timestamp of a trace.
fn detect_form(text: &str) -> Option<TimestampForm> {
    [
        TimestampForm::EpochMillis,
        TimestampForm::Iso8601,
        TimestampForm::UsLocale,
    ]
    .into_iter()
    .find(|form| form.parse(text).is_some())
}

/// Normalised column or key name: trimmed, lower case, without a ` [UTC]`-like suffix.
fn normalise_name(name: &str) -> String {
    let name = name.trim();
    let name = match name.rfind('[') {
        Some(i) if name.ends_with(']') && i > 0 => name[..i].trim_end(),
        _ => name,
    };
    name.to_ascii_lowercase()
}

const TIMESTAMP_NAMES: [&str; 3] = ["timestamp", "time", "timegenerated"];

/// Where each known column is.
struct Columns {
    time: usize,
    clock: Clock,
    instance: Option<usize>,
    path: Option<(usize, bool)>,
}

impl Columns {
    /// Finds the columns among `names` (a CSV header, or a JSON object's keys).
    fn find<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Result<Columns, String> {
        let position = |wanted: &[&str]| {
            names
                .clone()
                .position(|name| wanted.contains(&normalise_name(name).as_str()))
        };
        let offset = position(&["offset"]);
        let timestamp = position(&TIMESTAMP_NAMES);
        let (time, clock) = match (offset, timestamp) {
            (Some(o), None) => (o, Clock::Offset),
            (None, Some(t)) => (t, Clock::Timestamp(None)),
            (Some(_), Some(_)) => {
                return Err("both an offset and a timestamp column; keep one of them".to_owned())
            }
            (None, None) => {
                return Err("no time column: expected `offset`, `timestamp`, `time` or \
                     `TimeGenerated`"
                    .to_owned())
            }
        };
        let path = position(&["path"])
            .map(|i| (i, false))
            .or_else(|| position(&["url"]).map(|i| (i, true)));
        Ok(Columns {
            time,
            clock,
            instance: position(&["instance"]),
            path,
        })
    }
}

fn read_csv<R: BufRead>(lines: &mut Lines<R>, builder: &mut Builder) -> Result<(), TraceError> {
    let mut fields = Vec::new();
    let mut columns: Option<(Columns, usize)> = None;
    let mut record = String::new();
    loop {
        // One logical record: physical lines joined while a quoted field is open.
        record.clear();
        if !lines.advance()? {
            break;
        }
        let start = lines.number;
        record.push_str(lines.line());
        while record.bytes().filter(|&b| b == b'"').count() % 2 == 1 {
            if !lines.advance()?
                || lines.number - start >= MAX_RECORD_LINES
                || record.len() > MAX_LINE_BYTES
            {
                return Err(lines.error(start, "unterminated quoted field"));
            }
            record.push('\n');
            record.push_str(lines.line());
        }
        if record.trim().is_empty() {
            continue;
        }
        split_csv_record(&record, &mut fields).map_err(|m| lines.error(start, m))?;
        match &columns {
            None => {
                let found = Columns::find(fields.iter().map(String::as_str))
                    .map_err(|m| lines.error(start, format!("header: {m}")))?;
                builder.clock = Some(found.clock);
                columns = Some((found, fields.len()));
            }
            Some((columns, width)) => {
                let field = |i: usize| fields.get(i).map(String::as_str);
                let Some(time) = field(columns.time) else {
                    return Err(lines.error(
                        start,
                        format!(
                            "{} fields where the header has {width}: no time",
                            fields.len()
                        ),
                    ));
                };
                let entry = RawEntry {
                    line: start,
                    time,
                    instance: columns.instance.and_then(field),
                    path: columns.path.and_then(|(i, _)| field(i)),
                    path_is_url: columns.path.is_some_and(|(_, url)| url),
                };
                builder.push(lines, entry)?;
            }
        }
    }
    if columns.is_none() {
        return Err(TraceError::Empty {
            origin: lines.origin.clone(),
        });
    }
    Ok(())
}

/// Splits one CSV record (RFC 4180: `,` separated, `"` quoted with `""` escapes); fields are
/// trimmed.
fn split_csv_record(record: &str, fields: &mut Vec<String>) -> Result<(), String> {
    fields.clear();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field".to_owned()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek().is_some_and(|c| *c != ',') {
                return Err(format!(
                    "field {} has text after its closing quote",
                    fields.len() + 1
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            field.truncate(field.trim_end().len());
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(());
        }
    }
}

fn read_json_lines<R: BufRead>(
    lines: &mut Lines<R>,
    builder: &mut Builder,
) -> Result<(), TraceError> {
    // The time key of the first entry: every entry uses the same kind of time.
    let mut first: Option<(String, Clock)> = None;
    while lines.advance()? {
        let text = lines.line();
        if text.trim().is_empty() {
            continue;
        }
        let line = lines.number;
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| lines.error(line, format!("not a JSON object: {e}")))?;
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        let found = Columns::find(keys.iter().copied()).map_err(|m| lines.error(line, m))?;
        match &first {
            None => {
                builder.clock = Some(found.clock);
                first = Some((keys[found.time].to_owned(), found.clock));
            }
            Some((key, clock)) if *clock != found.clock => {
                return Err(lines.error(
                    line,
                    format!(
                        "`{}` where the first entry has `{key}`; use one kind of time",
                        keys[found.time]
                    ),
                ));
            }
            Some(_) => {}
        }
        let value = |index: usize, what: &str| -> Result<Option<String>, TraceError> {
            match &object[keys[index]] {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::String(s) => Ok(Some(s.clone())),
                serde_json::Value::Number(n) => Ok(Some(n.to_string())),
                other => Err(lines.error(
                    line,
                    format!(
                        "`{}` ({what}) must be a string or a number, not {other}",
                        keys[index]
                    ),
                )),
            }
        };
        let Some(time) = value(found.time, "time")? else {
            return Err(lines.error(line, format!("`{}` is null", keys[found.time])));
        };
        let instance = found
            .instance
            .map(|i| value(i, "instance"))
            .transpose()?
            .flatten();
        let path = found
            .path
            .map(|(i, _)| value(i, "path"))
            .transpose()?
            .flatten();
        builder.push(
            lines,
            RawEntry {
                line,
                time: &time,
                instance: instance.as_deref(),
                path: path.as_deref(),
                path_is_url: found.path.is_some_and(|(_, url)| url),
            },
        )?;
    }
    Ok(())
}

/// An offset: seconds (`1.25`) or a human duration (`1s 250ms`), as nanoseconds.
fn parse_offset(text: &str) -> Result<i64, String> {
    let nanos = if let Ok(secs) = text.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!("offset {text:?} must be a number of seconds ≥ 0"));
        }
        Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("offset {text:?} is out of range"))?
            .as_nanos()
    } else {
        humantime::parse_duration(text)
            .map_err(|e| {
                format!("offset {text:?} is neither seconds nor a duration such as \"1.5s\": {e}")
            })?
            .as_nanos()
    };
    i64::try_from(nanos).map_err(|_| format!("offset {text:?} is out of range"))
}

/// Epoch milliseconds, possibly with a fraction (`1714564800123`, `1714564800123.5`).
fn parse_epoch_millis(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = whole.parse().ok()?;
    let mut sub = 0i64;
    for (i, digit) in fraction.bytes().take(6).enumerate() {
        sub += i64::from(digit - b'0') * 10i64.pow(5 - i as u32);
    }
    millis.checked_mul(1_000_000)?.checked_add(sub)
}

/// RFC 3339 or ISO 8601 (`T` or a space between date and time; UTC when no offset).
fn parse_iso8601(text: &str) -> Option<i64> {
    let nanos = OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp_nanos)
        .or_else(|_| {
            let with_t = text.replacen(' ', "T", 1);
            OffsetDateTime::parse(&with_t, &Rfc3339)
                .or_else(|_| OffsetDateTime::parse(&with_t, &Iso8601::DEFAULT))
                .map(OffsetDateTime::unix_timestamp_nanos)
                .or_else(|_| {
                    PrimitiveDateTime::parse(&with_t, &Iso8601::DEFAULT)
                        .map(|t| t.assume_utc().unix_timestamp_nanos())
                })
        })
        .ok()?;
    i64::try_from(nanos).ok()
}

/// `M/D/YYYY, h:mm:ss[.fff] AM|PM` as Log Analytics exports write it (UTC assumed), also
/// without the comma and, without AM/PM, as a 24-hour time.
fn parse_us_locale(text: &str) -> Option<i64> {
    let (date, rest) = text.trim().split_once([',', ' '])?;
    let mut date_parts = date.split('/');
    let month: u8 = date_parts.next()?.parse().ok()?;
    let day: u8 = date_parts.next()?.parse().ok()?;
    let year: i32 = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() || !(1000..=9999).contains(&year) {
        return None;
    }
    let rest = rest.trim_start_matches(',').trim();
    let (clock, period) = match rest.rsplit_once(' ') {
        Some((clock, period)) => (clock.trim(), Some(period.trim().to_ascii_uppercase())),
        None => (rest, None),
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms_parts = hms.split(':');
    let mut hour: u8 = hms_parts.next()?.parse().ok()?;
    let minute: u8 = hms_parts.next()?.parse().ok()?;
    let second: u8 = hms_parts.next()?.parse().ok()?;
    if hms_parts.next().is_some()
        || fraction.len() > 9
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut nanos = 0u32;
    for (i, digit) in fraction.bytes().enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    match period.as_deref() {
        None => {}
        Some(period @ ("AM" | "PM")) => {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour %= 12;
            if period == "PM" {
                hour += 12;
            }
        }
        Some(_) => return None,
    }
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    i64::try_from(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp_nanos(),
    )
    .ok()
}

/// The path and query of a URL (`https://host/a/b?c` → `/a/b?c`); a fragment is dropped.
fn path_of_url(url: &str) -> String {
    let url = url.split('#').next().unwrap_or(url);
    let rest = match url.split_once("://") {
        Some((_, after_scheme)) => match after_scheme.find(['/', '?']) {
            Some(i) => &after_scheme[i..],
            None => "",
        },
        None => url,
    };
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
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

    #[test]
    fn csv_records_split_as_rfc_4180() {
        let mut fields = Vec::new();
        split_csv_record(r#"a, "b,c" ,"say ""hi""",,  d  "#, &mut fields).unwrap();
        assert_eq!(fields, ["a", "b,c", "say \"hi\"", "", "d"]);
        split_csv_record("", &mut fields).unwrap();
        assert_eq!(fields, [""]);
        assert!(split_csv_record(r#""a"b"#, &mut fields).is_err());
    }

    #[test]
    fn timestamp_forms() {
        let noon = 1_714_564_800_000_000_000i64; // 2024-05-01T12:00:00Z
        assert_eq!(parse_iso8601("2024-05-01T12:00:00Z"), Some(noon));
        assert_eq!(
            parse_iso8601("2024-05-01 12:00:00.5"),
            Some(noon + 500_000_000)
        );
        assert_eq!(parse_iso8601("2024-05-01T14:00:00+02:00"), Some(noon));
        assert_eq!(
            parse_iso8601("2024-05-01T12:00:00.1234567Z"),
            Some(noon + 123_456_700)
        );
        assert_eq!(
            parse_us_locale("5/1/2024, 12:00:00.123 PM"),
            Some(noon + 123_000_000)
        );
        assert_eq!(
            parse_us_locale("5/1/2024, 12:00:00 AM"),
            Some(noon - 43_200 * 1_000_000_000)
        );
        assert_eq!(parse_us_locale("5/1/2024 12:00:00"), Some(noon));
        assert_eq!(
            parse_us_locale("5/1/2024, 1:30:00.000 pm"),
            Some(noon + 5_400 * 1_000_000_000)
        );
        assert_eq!(parse_us_locale("13/1/2024, 1:00:00 PM"), None);
        assert_eq!(parse_us_locale("5/1/2024, 13:00:00 PM"), None);
        assert_eq!(
            parse_epoch_millis("1714564800123"),
            Some(noon + 123_000_000)
        );
        assert_eq!(
            parse_epoch_millis("1714564800123.5"),
            Some(noon + 123_500_000)
        );
        assert_eq!(parse_epoch_millis("-1"), None);
        assert_eq!(parse_epoch_millis("99999999999999999999"), None);
        assert_eq!(
            detect_form("5/1/2024, 12:00:00 PM"),
            Some(TimestampForm::UsLocale)
        );
        assert_eq!(
            detect_form("2024-05-01T12:00:00Z"),
            Some(TimestampForm::Iso8601)
        );
        assert_eq!(
            detect_form("1714564800123"),
            Some(TimestampForm::EpochMillis)
        );
        assert_eq!(detect_form("yesterday"), None);
    }

    #[test]
    fn urls_become_paths() {
        assert_eq!(
            path_of_url("https://contoso.azure-api.net/api/orders?id=1#x"),
            "/api/orders?id=1"
        );
        assert_eq!(path_of_url("https://contoso.azure-api.net"), "/");
        assert_eq!(path_of_url("https://contoso.azure-api.net?x=1"), "/?x=1");
        assert_eq!(path_of_url("/api/a"), "/api/a");
        assert_eq!(path_of_url("api/a"), "/api/a");
    }

    #[test]
    fn header_names_ignore_case_and_suffixes() {
        assert_eq!(normalise_name(" TimeGenerated [UTC] "), "timegenerated");
        assert_eq!(normalise_name("Url"), "url");
        assert_eq!(normalise_name("[x]"), "[x]");
    }
}
