//! Writing report files, each failure naming its file.

use std::{
    fs,
    io::{self, Read as _},
    path::Path,
};

use serde::Serialize;

use crate::{document::SCHEMA_VERSION, error::ReportError};

/// `value` as pretty JSON with a final newline.
pub(crate) fn to_json<T: Serialize>(value: &T, path: &Path) -> Result<String, ReportError> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|source| ReportError::Encode {
            path: path.to_owned(),
            source,
        })
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

pub(crate) fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    fs::write(path, contents).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The largest file a report, comparison, tally, interval log or benchmark document is read
/// from (the largest a day-long fleet run writes is a few MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 256 << 20;

/// The bytes of `path`, refusing a file (or a device, a pipe) that goes on past
/// [`MAX_DOCUMENT_BYTES`] before reading more.
pub(crate) fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is larger than {} MiB, more than any document tokenbench writes",
                MAX_DOCUMENT_BYTES >> 20
            ),
        ));
    }
    Ok(bytes)
}

/// A JSON document of this version read from `path` (bounded), its `schema_version` (given
/// by `version`) checked; each failure names the file.
pub(crate) fn read_document<T: serde::de::DeserializeOwned>(
    path: &Path,
    version: fn(&T) -> u32,
) -> Result<T, ReportError> {
    parse_document(path, &read_text(path)?, version)
}

/// The text of the document at `path`, refusing one past [`MAX_DOCUMENT_BYTES`] or not UTF-8.
pub fn read_text(path: &Path) -> Result<String, ReportError> {
    read_bounded_text(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })
}

/// [`read_document`] of `text`, read from `path`.
pub(crate) fn parse_document<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    version: fn(&T) -> u32,
) -> Result<T, ReportError> {
    let document: T = serde_json::from_str(text).map_err(|source| ReportError::Parse {
        path: path.to_owned(),
        source,
    })?;
    let found = version(&document);
    if found != SCHEMA_VERSION {
        return Err(ReportError::Schema {
            path: path.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        });
    }
    Ok(document)
}

/// [`read_bounded`] as UTF-8 text.
pub(crate) fn read_bounded_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_bounded(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}
