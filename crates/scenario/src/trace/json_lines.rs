//! JSON Lines traces: one object per line, keys named as CSV columns are.

use std::io::BufRead;

use crate::trace::{
    builder::{Builder, Clock, Columns, RawEntry},
    error::TraceError,
    lines::Lines,
};

pub(crate) fn read<R: BufRead>(
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
        let api = found.api.map(|i| value(i, "api")).transpose()?.flatten();
        let user = found.user.map(|i| value(i, "user")).transpose()?.flatten();
        builder.push(
            lines,
            RawEntry {
                line,
                time: &time,
                instance: instance.as_deref(),
                path: path.as_deref(),
                path_is_url: found.path.is_some_and(|(_, url)| url),
                api: api.as_deref(),
                user: user.as_deref(),
            },
        )?;
    }
    Ok(())
}
