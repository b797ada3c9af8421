//! Numbers and text as reports write them.

use metrics::catalog::Unit;

/// A figure of `unit` as the report tables write it; `–` without data.
pub(crate) fn figure(unit: Unit, value: Option<f64>) -> String {
    opt(value, |v| match unit {
        Unit::Count(_) => int(v.round() as u64),
        Unit::Mean(_) => format!("{v:.2}"),
        Unit::PerSecond(_) => num(v),
        Unit::Fraction => percent(v),
        Unit::Micros => us(v.round() as u64),
        Unit::Millis => ms(v),
        Unit::Nanos => ns(v.round() as u64),
        Unit::Bytes => bytes(v.round() as u64),
    })
}

/// HTML-escapes text.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Makes text safe inside a Markdown table cell.
pub(crate) fn md_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

pub(crate) fn opt<T>(value: Option<T>, format: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "–".to_owned(), format)
}

/// `1,234,567`.
pub(crate) fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with up to 2 decimals and no trailing zeros.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return int_signed(v as i64);
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub(crate) fn int_signed(v: i64) -> String {
    if v < 0 {
        format!("-{}", int(v.unsigned_abs()))
    } else {
        int(v.unsigned_abs())
    }
}

/// µs as µs, ms or s.
pub(crate) fn us(v: u64) -> String {
    match v {
        0..=999 => format!("{v} µs"),
        1_000..=999_999 => format!("{:.2} ms", v as f64 / 1e3),
        _ => format!("{:.2} s", v as f64 / 1e6),
    }
}

/// ns as ns, µs or ms.
pub(crate) fn ns(v: u64) -> String {
    match v {
        0..=999 => format!("{v} ns"),
        1_000..=999_999 => format!("{:.1} µs", v as f64 / 1e3),
        _ => format!("{:.2} ms", v as f64 / 1e6),
    }
}

/// ms as ms or s.
pub(crate) fn ms(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", v / 1e3)
    }
}

/// A rate as a percentage with 2 decimals; just under 1 never shows as 100.00 %.
pub(crate) fn percent(rate: f64) -> String {
    let shown = format!("{:.2} %", rate * 100.0);
    if rate < 1.0 && shown == "100.00 %" {
        "> 99.99 %".to_owned()
    } else {
        shown
    }
}

pub(crate) fn bytes(v: u64) -> String {
    format!("{:.1} MiB", v as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(int(0), "0");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(1500.0), "1,500");
        assert_eq!(us(850), "850 µs");
        assert_eq!(us(12_345), "12.35 ms");
        assert_eq!(ns(271_124), "271.1 µs");
        assert_eq!(percent(0.99999), "> 99.99 %");
        assert_eq!(percent(1.0), "100.00 %");
        assert_eq!(md_text("a|b"), "a\\|b");
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
