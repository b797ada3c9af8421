//! Entries as read, checked and converted into the compact rows of a [`Trace`](super::Trace).

use std::{collections::HashMap, sync::Arc};

use crate::trace::{
    error::TraceError,
    lines::Lines,
    timestamp::{detect_form, parse_offset, TimestampForm},
};

/// Marks an absent instance, path, API or user in a [`Row`].
pub(crate) const NONE: u32 = u32::MAX;

/// One stored entry: 24 bytes.
#[derive(Clone, Copy)]
pub(crate) struct Row {
    /// Nanoseconds: while loading, since the Unix epoch (timestamps) or from the start
    /// (offsets); once loaded, from the start.
    pub(crate) t: i64,
    /// Instance, or [`NONE`].
    pub(crate) instance: u32,
    /// Index into the interned paths, or [`NONE`].
    pub(crate) path: u32,
    /// Index into the interned API names, or [`NONE`].
    pub(crate) api: u32,
    /// Index into the interned user names, or [`NONE`].
    pub(crate) user: u32,
}

/// Distinct texts, each stored once and numbered in order of appearance.
#[derive(Default)]
pub(crate) struct Interned {
    pub(crate) texts: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Interned {
    fn id(&mut self, text: String) -> u32 {
        if let Some(&id) = self.ids.get(text.as_str()) {
            return id;
        }
        // At most MAX_TRACE_ENTRIES texts, far below NONE.
        let id = u32::try_from(self.texts.len()).unwrap_or(NONE);
        let text: Arc<str> = text.into();
        self.texts.push(text.clone());
        self.ids.insert(text, id);
        id
    }
}

/// A loaded trace's rows and interned texts.
pub(crate) struct Finished {
    pub(crate) rows: Vec<Row>,
    pub(crate) paths: Vec<Arc<str>>,
    pub(crate) apis: Vec<Arc<str>>,
    pub(crate) users: Vec<Arc<str>>,
}

/// What a trace's time column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clock {
    /// Offsets from the start.
    Offset,
    /// Absolute timestamps, in a form the first entry decides.
    Timestamp(Option<TimestampForm>),
}

/// Collects rows, interning paths, API names and user names.
pub(crate) struct Builder {
    pub(crate) rows: Vec<Row>,
    paths: Interned,
    apis: Interned,
    users: Interned,
    pub(crate) clock: Option<Clock>,
    pub(crate) max_entries: usize,
}

/// One entry as read, before conversion.
pub(crate) struct RawEntry<'a> {
    pub(crate) line: u64,
    pub(crate) time: &'a str,
    pub(crate) instance: Option<&'a str>,
    pub(crate) path: Option<&'a str>,
    /// Whether `path` is a URL (its scheme and host are dropped).
    pub(crate) path_is_url: bool,
    pub(crate) api: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
}

impl Builder {
    pub(crate) fn new(max_entries: usize) -> Self {
        Builder {
            rows: Vec::new(),
            paths: Interned::default(),
            apis: Interned::default(),
            users: Interned::default(),
            clock: None,
            max_entries,
        }
    }

    pub(crate) fn push<R>(
        &mut self,
        lines: &Lines<R>,
        entry: RawEntry<'_>,
    ) -> Result<(), TraceError> {
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
                self.paths.id(path)
            }
        };
        let api = match entry.api.map(str::trim).filter(|s| !s.is_empty()) {
            None => NONE,
            Some(name) => self.apis.id(name.to_owned()),
        };
        let user = match entry.user.map(str::trim).filter(|s| !s.is_empty()) {
            None => NONE,
            Some(name) => self.users.id(name.to_owned()),
        };
        self.rows.push(Row {
            t,
            instance,
            path,
            api,
            user,
        });
        Ok(())
    }

    /// The rows sorted by time (as offsets from the start), with the interned texts.
    pub(crate) fn finish(mut self, origin: &str) -> Result<Finished, TraceError> {
        if self.rows.is_empty() {
            return Err(TraceError::Empty {
                origin: origin.to_owned(),
            });
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
        Ok(Finished {
            rows: self.rows,
            paths: self.paths.texts,
            apis: self.apis.texts,
            users: self.users.texts,
        })
    }
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
pub(crate) struct Columns {
    pub(crate) time: usize,
    pub(crate) clock: Clock,
    pub(crate) instance: Option<usize>,
    pub(crate) path: Option<(usize, bool)>,
    pub(crate) api: Option<usize>,
    pub(crate) user: Option<usize>,
}

impl Columns {
    /// Finds the columns among `names` (a CSV header, or a JSON object's keys).
    pub(crate) fn find<'a>(
        names: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Columns, String> {
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
            api: position(&["api", "apiid"]),
            user: position(&["user", "userid"]),
        })
    }
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
