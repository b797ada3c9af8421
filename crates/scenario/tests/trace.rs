//! Traces: CSV and JSON Lines, offsets and every timestamp form, APIM exports as they are,
//! sorting, and errors naming file and line.

use std::{path::Path, time::Duration};

use scenario::{
    builtin_trace,
    trace::{Trace, TraceError, TraceFormat},
};

fn parse(text: &str, origin: &str) -> Result<Trace, TraceError> {
    Trace::from_reader(text.as_bytes(), origin, None)
}

/// (offset in ms, instance, path) of every entry.
fn summary(trace: &Trace) -> Vec<(u128, Option<u32>, Option<String>)> {
    trace
        .entries()
        .map(|e| {
            (
                e.offset.as_millis(),
                e.instance,
                e.path.map(|p| p.to_string()),
            )
        })
        .collect()
}

fn offsets(trace: &Trace) -> Vec<u128> {
    trace.entries().map(|e| e.offset.as_millis()).collect()
}

#[track_caller]
fn fails_at(text: &str, line: u64) -> String {
    let err = parse(text, "traces/bad.csv").expect_err("must fail");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("traces/bad.csv:{line}: ")),
        "expected line {line}: {message}"
    );
    message
}

#[test]
fn the_shipped_apim_export_replays_as_it_is() {
    let text = builtin_trace("traces/apim-gateway-logs.csv").unwrap();
    let from_text = parse(text, "apim.csv").unwrap();
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/traces/apim-gateway-logs.csv");
    let from_file = Trace::load(&path).unwrap();
    assert_eq!(summary(&from_text), summary(&from_file));
    assert_eq!(from_file.origin(), path.display().to_string());
    assert_eq!(from_file.len(), 300);
    let entries: Vec<_> = from_file.entries().collect();
    assert_eq!(entries[0].offset, Duration::ZERO);
    assert_eq!(from_file.last_offset(), Duration::from_millis(29_518));
    assert!(entries.windows(2).all(|w| w[0].offset <= w[1].offset));
    for entry in &entries {
        let path = entry.path.as_deref().unwrap();
        assert!(
            path.starts_with("/api/") && path.contains("api-version=2024-05-01"),
            "{path}"
        );
        assert_eq!(entry.instance, None);
        assert_eq!(entry.api.as_deref(), Some("orders-api"), "ApiId");
    }
    assert_eq!(
        from_file
            .api_names()
            .iter()
            .map(|name| &**name)
            .collect::<Vec<_>>(),
        ["orders-api"]
    );
    assert_eq!(from_file.count_before(Duration::from_secs(100)), 300);
    assert_eq!(from_file.count_before(Duration::ZERO), 0);
    assert_eq!(from_file.count_before(Duration::from_nanos(1)), 1);
    let debug = format!("{from_file:?}");
    assert!(
        debug.contains("entries: 300") && debug.len() < 300,
        "{debug}"
    );
}

#[test]
fn csv_offsets_in_seconds_or_human_durations() {
    let trace = parse(
        "offset,instance,path\n0,0,/api/a\n1.5,1,api/b\n\"2s 250ms\",,/api/c?x=1\n500ms,3,\n",
        "o.csv",
    )
    .unwrap();
    assert_eq!(
        summary(&trace),
        [
            (0, Some(0), Some("/api/a".into())),
            (500, Some(3), None),
            (1500, Some(1), Some("/api/b".into())),
            (2250, None, Some("/api/c?x=1".into())),
        ]
    );
    // Offsets are kept as given, not moved to start at 0.
    let trace = parse("offset\n3\n2\n", "o.csv").unwrap();
    assert_eq!(offsets(&trace), [2000, 3000]);
}

#[test]
fn csv_rfc3339_timestamps_are_sorted_and_relative_to_the_earliest() {
    let text = "time,path\n\
        2024-05-01T12:00:01.500Z,/api/b\n\
        2024-05-01T12:00:00Z,/api/a\n\
        2024-05-01T14:00:03+02:00,/api/d\n\
        2024-05-01T12:00:01.500Z,/api/c\n";
    let trace = parse(text, "t.csv").unwrap();
    assert_eq!(
        summary(&trace),
        [
            (0, None, Some("/api/a".into())),
            (1500, None, Some("/api/b".into())), // equal times keep file order
            (1500, None, Some("/api/c".into())),
            (3000, None, Some("/api/d".into())),
        ]
    );
    // ISO 8601 without an offset (UTC) and with a space.
    let trace = parse(
        "timestamp\n2024-05-01 12:00:00.250\n2024-05-01T12:00:00\n",
        "t.csv",
    )
    .unwrap();
    assert_eq!(offsets(&trace), [0, 250]);
}

#[test]
fn csv_epoch_millisecond_timestamps() {
    let trace = parse(
        "timestamp,instance\n1714564800123,1\n1714564800000,0\n1714564802000.5,2\n",
        "e.csv",
    )
    .unwrap();
    assert_eq!(
        summary(&trace),
        [
            (0, Some(0), None),
            (123, Some(1), None),
            (2000, Some(2), None)
        ]
    );
    assert_eq!(trace.last_offset(), Duration::from_micros(2_000_500));
}

#[test]
fn an_apim_export_with_any_columns_in_any_order() {
    // A BOM, CRLF, quoted fields with commas and a line break, columns in another order,
    // newest first.
    let text = "\u{feff}Url,ResponseCode,Method,TimeGenerated,CorrelationId,LastErrorMessage\r\n\
        https://contoso.azure-api.net/api/orders/2?api-version=1,200,GET,2024-05-01T12:00:02.000Z,c3,\r\n\
        \"https://contoso.azure-api.net/api/search?q=a,b\",200,GET,2024-05-01T12:00:01.250Z,c2,\"timeout,\r\nretried\"\r\n\
        https://contoso.azure-api.net/api/orders,201,POST,2024-05-01T12:00:00.123Z,c1,\r\n";
    let trace = parse(text, "apim.csv").unwrap();
    assert_eq!(
        summary(&trace),
        [
            (0, None, Some("/api/orders".into())),
            (1127, None, Some("/api/search?q=a,b".into())),
            (1877, None, Some("/api/orders/2?api-version=1".into())),
        ]
    );

    // The portal's Log Analytics CSV: "TimeGenerated [UTC]" in the US form.
    let text = "TenantId,TimeGenerated [UTC],Method,Url\n\
        t,\"5/1/2024, 1:00:00.500 PM\",GET,https://x.azure-api.net/api/b\n\
        t,\"5/1/2024, 12:59:59.000 PM\",GET,https://x.azure-api.net/api/a\n\
        t,\"5/2/2024, 12:00:00.000 AM\",GET,https://x.azure-api.net/api/c\n";
    let trace = parse(text, "la.csv").unwrap();
    assert_eq!(
        summary(&trace),
        [
            (0, None, Some("/api/a".into())),
            (1500, None, Some("/api/b".into())),
            (39_601_000, None, Some("/api/c".into())),
        ]
    );
}

#[test]
fn json_lines_with_timestamps_epochs_or_offsets() {
    let text = "{\"TimeGenerated\":\"2024-05-01T12:00:01Z\",\"Url\":\"https://h/api/b\",\"Method\":\"GET\"}\n\
        \n\
        {\"TimeGenerated\":\"2024-05-01T12:00:00Z\",\"Url\":\"https://h/api/a\",\"instance\":2}\n";
    let trace = parse(text, "t.jsonl").unwrap();
    assert_eq!(
        summary(&trace),
        [
            (0, Some(2), Some("/api/a".into())),
            (1000, None, Some("/api/b".into()))
        ]
    );
    let text = "{\"timestamp\": 1714564800500, \"path\": \"/api/x\", \"instance\": \"1\"}\n\
        {\"timestamp\": 1714564800000, \"path\": null}\n";
    let trace = parse(text, "t.jsonl").unwrap();
    assert_eq!(
        summary(&trace),
        [(0, None, None), (500, Some(1), Some("/api/x".into()))]
    );
    let text = "{\"offset\": 0.25}\n{\"offset\": \"1s\", \"instance\": 0}\n";
    let trace = parse(text, "t.jsonl").unwrap();
    assert_eq!(summary(&trace), [(250, None, None), (1000, Some(0), None)]);
}

#[test]
fn formats_by_extension_or_content() {
    assert_eq!(
        TraceFormat::from_path(Path::new("a.CSV")),
        Some(TraceFormat::Csv)
    );
    assert_eq!(
        TraceFormat::from_path(Path::new("a.jsonl")),
        Some(TraceFormat::JsonLines)
    );
    assert_eq!(
        TraceFormat::from_path(Path::new("a.ndjson")),
        Some(TraceFormat::JsonLines)
    );
    assert_eq!(TraceFormat::from_path(Path::new("a.log")), None);

    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("trace.log");
    std::fs::write(&jsonl, "  {\"offset\": 1}\n").unwrap();
    assert_eq!(offsets(&Trace::load(&jsonl).unwrap()), [1000]);
    let csv = dir.path().join("trace.txt");
    std::fs::write(&csv, "offset\n2\n").unwrap();
    assert_eq!(offsets(&Trace::load(&csv).unwrap()), [2000]);
    // An explicit format wins over the content.
    let err = Trace::from_reader("offset\n2\n".as_bytes(), "x", Some(TraceFormat::JsonLines))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("x:1: not a JSON object"),
        "{err}"
    );
}

#[test]
fn csv_errors_name_file_and_line() {
    // Line numbers count blank lines and the lines of multi-line quoted fields.
    let m = fails_at(
        "time,note\r\n2024-05-01T12:00:00Z,\"two\r\nlines\"\r\n\r\n2024-05-01T12:00:01Z,x\r\nyesterday,y\r\n",
        6,
    );
    assert!(m.contains("\"yesterday\""), "{m}");
    let m = fails_at("time\n2024-05-01T12:00:00Z\n5/1/2024, 12:00:01 PM\n", 3);
    assert!(m.contains("RFC 3339"), "{m}");
    let m = fails_at("time\n\"5/1/2024, 12:00:01 PM\"\n2024-05-01T12:00:00Z\n", 3);
    assert!(m.contains("M/D/YYYY"), "{m}");
    let m = fails_at("\n\nwhen,path\n1,/a\n", 3);
    assert!(m.contains("no time column"), "{m}");
    let m = fails_at("offset,timestamp\n1,2\n", 1);
    assert!(m.contains("both"), "{m}");
    let m = fails_at("offset,instance\n0,0\n1,gw-1\n", 3);
    assert!(m.contains("instance \"gw-1\""), "{m}");
    fails_at("offset\n0\n-1\n", 3);
    fails_at("offset\n0\nsoon\n", 3);
    fails_at("offset\n0\nNaN\n", 3);
    let m = fails_at("url,offset\n/a,0\n/b\n", 3);
    assert!(m.contains("1 fields where the header has 2"), "{m}");
    let m = fails_at("offset,path\n0,\"/a\n1,/b\n", 2);
    assert!(m.contains("unterminated"), "{m}");
    let m = fails_at("offset,path\n0,\"/a\"x\n", 2);
    assert!(m.contains("after its closing quote"), "{m}");
    let m = fails_at("time\n2024-13-01T00:00:00Z\n", 2);
    assert!(m.contains("neither"), "{m}");

    let err = parse("offset,path\n", "h.csv").unwrap_err();
    assert!(matches!(err, TraceError::Empty { .. }), "{err}");
    assert_eq!(err.to_string(), "h.csv: the trace has no entries");
    assert!(matches!(parse("", "e.csv"), Err(TraceError::Empty { .. })));
    assert!(matches!(
        parse("\n  \n", "e.csv"),
        Err(TraceError::Empty { .. })
    ));

    let err = Trace::from_reader(&b"offset\n0\n\xff\n"[..], "u.csv", None).unwrap_err();
    assert_eq!(err.to_string(), "u.csv:3: not valid UTF-8");

    let err = Trace::load("/nonexistent/trace.csv").unwrap_err();
    assert!(matches!(err, TraceError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/trace.csv"), "{err}");
}

#[test]
fn json_lines_errors_name_file_and_line() {
    let m = fails_at("{\"offset\": 0}\n\n[1, 2]\n", 3);
    assert!(m.contains("not a JSON object"), "{m}");
    let m = fails_at("{\"offset\": 0}\n{\"offset\": 1\n", 2);
    assert!(m.contains("not a JSON object"), "{m}");
    let m = fails_at(
        "{\"offset\": 0}\n{\"timestamp\": \"2024-05-01T12:00:00Z\"}\n",
        2,
    );
    assert!(m.contains("use one kind of time"), "{m}");
    let m = fails_at("{\"offset\": 0}\n{\"path\": \"/a\"}\n", 2);
    assert!(m.contains("no time column"), "{m}");
    let m = fails_at("{\"offset\": 0, \"path\": true}\n", 1);
    assert!(m.contains("must be a string or a number"), "{m}");
    let m = fails_at("{\"offset\": null}\n", 1);
    assert!(m.contains("null"), "{m}");
    fails_at("{\"offset\": 0, \"instance\": -1}\n", 1);
    fails_at("{\"offset\": 0, \"instance\": 4294967295}\n", 1);
}

#[test]
fn the_api_column_names_each_entry_api() {
    let csv = parse(
        "offset,api\n0,orders\n0.5,\n1,stock\n2,orders\n",
        "apis.csv",
    )
    .unwrap();
    let apis: Vec<Option<String>> = csv
        .entries()
        .map(|e| e.api.map(|a| a.to_string()))
        .collect();
    assert_eq!(
        apis,
        [
            Some("orders".into()),
            None,
            Some("stock".into()),
            Some("orders".into())
        ]
    );
    assert_eq!(csv.api_names().len(), 2);
    let json = parse(
        "{\"offset\": 0, \"ApiId\": \"orders\"}\n{\"offset\": 1}\n",
        "apis.jsonl",
    )
    .unwrap();
    let apis: Vec<Option<String>> = json
        .entries()
        .map(|e| e.api.map(|a| a.to_string()))
        .collect();
    assert_eq!(apis, [Some("orders".into()), None]);
}
