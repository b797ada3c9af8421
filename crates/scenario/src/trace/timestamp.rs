//! The times a trace may hold: offsets from its start, or timestamps in one of three forms.

use std::time::Duration;

use time::{
    format_description::well_known::{Iso8601, Rfc3339},
    Date, Month, OffsetDateTime, PrimitiveDateTime, Time,
};

/// The forms of timestamps a trace may use (one per file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimestampForm {
    EpochMillis,
    Iso8601,
    UsLocale,
}

impl TimestampForm {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TimestampForm::EpochMillis => "epoch milliseconds",
            TimestampForm::Iso8601 => "RFC 3339 / ISO 8601",
            TimestampForm::UsLocale => "M/D/YYYY, h:mm:ss.fff AM/PM",
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub(crate) fn parse(self, text: &str) -> Option<i64> {
        match self {
            TimestampForm::EpochMillis => parse_epoch_millis(text),
            TimestampForm::Iso8601 => parse_iso8601(text),
            TimestampForm::UsLocale => parse_us_locale(text),
        }
    }
}

/// The form of the first timestamp of a trace.
pub(crate) fn detect_form(text: &str) -> Option<TimestampForm> {
    [
        TimestampForm::EpochMillis,
        TimestampForm::Iso8601,
        TimestampForm::UsLocale,
    ]
    .into_iter()
    .find(|form| form.parse(text).is_some())
}

/// An offset: seconds (`1.25`) or a human duration (`1s 250ms`), as nanoseconds.
pub(crate) fn parse_offset(text: &str) -> Result<i64, String> {
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
pub(crate) fn parse_epoch_millis(text: &str) -> Option<i64> {
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
pub(crate) fn parse_iso8601(text: &str) -> Option<i64> {
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
pub(crate) fn parse_us_locale(text: &str) -> Option<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
