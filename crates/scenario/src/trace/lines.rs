//! The physical lines of a trace, numbered, each at most [`MAX_LINE_BYTES`] of UTF-8.

use std::io::{BufRead, Read};

use crate::trace::{
    error::{TraceError, MAX_LINE_BYTES},
    TraceFormat,
};

/// Physical lines of a trace, with their numbers.
pub(crate) struct Lines<R> {
    reader: R,
    pub(crate) origin: String,
    /// The number of the current line.
    pub(crate) number: u64,
    /// The current line.
    line: String,
}

impl<R> Lines<R> {
    pub(crate) fn error(&self, line: u64, message: impl Into<String>) -> TraceError {
        TraceError::Invalid {
            origin: self.origin.clone(),
            line,
            message: message.into(),
        }
    }

    /// The current line, without its line break (and without a byte-order mark on line 1).
    pub(crate) fn line(&self) -> &str {
        &self.line
    }
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(reader: R, origin: String) -> Self {
        Lines {
            reader,
            origin,
            number: 0,
            line: String::new(),
        }
    }

    /// The format the first character implies, without consuming anything.
    pub(crate) fn sniff(&mut self) -> Result<TraceFormat, TraceError> {
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
    pub(crate) fn advance(&mut self) -> Result<bool, TraceError> {
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
