//! CSV traces: a header row, then one entry per record (RFC 4180 quoting, strictly checked).
//!
//! Split here rather than with the `csv` crate: that crate accepts malformed quoting silently
//! (`"a"b` reads as `ab`, and an unterminated quote swallows the rest of the file into one
//! field, entries and all), where a trace with bad quoting must fail at its line.

use std::io::BufRead;

use crate::trace::{
    builder::{Builder, Columns, RawEntry},
    error::{TraceError, MAX_LINE_BYTES},
    lines::Lines,
};

/// Most physical lines one CSV record may span (a quoted field with line breaks).
const MAX_RECORD_LINES: u64 = 1000;

pub(crate) fn read<R: BufRead>(
    lines: &mut Lines<R>,
    builder: &mut Builder,
) -> Result<(), TraceError> {
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
                    api: columns.api.and_then(field),
                    user: columns.user.and_then(field),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_split_as_rfc_4180() {
        let mut fields = Vec::new();
        split_csv_record(r#"a, "b,c" ,"say ""hi""",,  d  "#, &mut fields).unwrap();
        assert_eq!(fields, ["a", "b,c", "say \"hi\"", "", "d"]);
        split_csv_record("", &mut fields).unwrap();
        assert_eq!(fields, [""]);
        assert!(split_csv_record(r#""a"b"#, &mut fields).is_err());
    }
}
