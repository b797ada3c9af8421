//! The current figures of a comparison in dashboards' formats: Bencher Metric Format and
//! github-action-benchmark.

use metrics::catalog::Direction;
use serde_json::Value;

use crate::regression::compare::Row;

/// Bencher Metric Format of the current figures of `rows`:
/// `{"BENCHMARK": {"MEASURE": {"value", "lower_value", "upper_value"}}}`, where the benchmark is
/// the metric name up to its last `/`, the measure what follows, and the lower and upper values
/// the tolerance band around the value (not below 0; left out for an `off` tolerance).
pub fn bmf<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Value {
    let mut out = serde_json::Map::new();
    for row in rows {
        let Some(value) = row.new else { continue };
        let (benchmark, measure) = row
            .name
            .rsplit_once('/')
            .unwrap_or(("tokenbench", &row.name));
        let figures = if row.tolerance.is_off() {
            serde_json::json!({ "value": value })
        } else {
            let (low, high) = row.tolerance.band(value);
            serde_json::json!({
                "value": value,
                "lower_value": low.max(0.0),
                "upper_value": high,
            })
        };
        let entry = out
            .entry(benchmark.to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(measures) = entry {
            measures.insert(measure.to_owned(), figures);
        }
    }
    Value::Object(out)
}

/// github-action-benchmark's `customSmallerIsBetter` (`Direction::Lower`) or
/// `customBiggerIsBetter` (`Direction::Higher`) array of the current figures of `rows` in
/// that direction: `[{"name", "unit", "value"}]`.
pub fn github<'a>(rows: impl IntoIterator<Item = &'a Row>, direction: Direction) -> Value {
    Value::Array(
        rows.into_iter()
            .filter(|row| row.direction == direction)
            .filter_map(|row| {
                row.new.map(
                    |value| serde_json::json!({"name": row.name, "unit": row.unit, "value": value}),
                )
            })
            .collect(),
    )
}
