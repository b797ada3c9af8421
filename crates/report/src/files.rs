//! Writing report files, each failure naming its file.

use std::{fs, path::Path};

use serde::Serialize;

use crate::error::ReportError;

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
