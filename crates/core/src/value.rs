//! Typed column values, decoded from Debezium's JSON encodings.
//!
//! Decimals keep their exact decimal text (never a float); temporal values
//! are decoded from Debezium's epoch-based integers into calendar types so a
//! sink never has to know about `io.debezium.time.*`.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use std::fmt::Write;

/// One column value of a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Any integer up to 64 bits.
    Int(i64),
    /// Floating point (float4 / float8).
    Float(f64),
    /// Exact decimal in plain notation, e.g. `-12.50` (also `NaN`, `Infinity`).
    Decimal(String),
    /// Text, enums, and any type carried as a string.
    Text(String),
    /// Raw bytes (bytea).
    Bytes(Vec<u8>),
    /// Calendar date.
    Date(NaiveDate),
    /// Time of day without zone.
    Time(NaiveTime),
    /// Timestamp without zone.
    Timestamp(NaiveDateTime),
    /// Timestamp with zone, ISO-8601 text as Debezium sends it (`ZonedTimestamp`).
    TimestampTz(String),
    /// Time with zone, ISO-8601 text (`ZonedTime`).
    TimeTz(String),
    /// UUID in canonical text form.
    Uuid(String),
    /// JSON document text (json / jsonb).
    Json(String),
    /// Array of values (Postgres arrays).
    Array(Vec<Value>),
}

/// Appends `n` in decimal with at least `width` digits, zeros in front:
/// the fields of dates and times, written per value without a formatter.
pub fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(n);
    for _ in text.len()..width {
        out.push('0');
    }
    out.push_str(text);
}

/// Parses a `ZonedTimestamp`'s ISO 8601 text. RFC 3339 has four-digit
/// years only; Debezium writes years before 1 AD and after 9999 signed
/// (`-0043-03-15T10:00:00Z` is 44 BC, `+21016-…`), as ISO 8601 does.
pub fn parse_zoned_timestamp(text: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    chrono::DateTime::parse_from_rfc3339(text).or_else(|e| {
        let signed = text.starts_with(['+', '-']);
        let utc = text.strip_suffix('Z').map(|t| format!("{t}+00:00"));
        match (signed, utc) {
            (true, Some(t)) => chrono::DateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f%:z")
                .map_err(|e| format!("`{text}` is not an ISO-8601 timestamp: {e}")),
            _ => Err(format!("`{text}` is not an ISO-8601 timestamp: {e}")),
        }
    })
}

/// Checks that exact decimal text fits a `(precision, scale)` column
/// without rounding: at most `precision - scale` integer digits, and no
/// non-zero digit past `scale` fraction digits (a target would round it).
/// `NaN`, infinities and exponent notation are left to the target.
pub fn check_decimal_fits(text: &str, precision: u32, scale: u32) -> Result<(), String> {
    let digits = text.trim_start_matches(['-', '+']);
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok(());
    }
    let (int, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let int_digits = int.trim_start_matches('0').len() as u32;
    let fraction_digits = fraction.trim_end_matches('0').len() as u32;
    if fraction_digits > scale {
        return Err(format!(
            "{text} has {fraction_digits} digits after the point; the column holds {scale} (it would be rounded)"
        ));
    }
    if int_digits > precision.saturating_sub(scale) {
        return Err(format!(
            "{text} has {int_digits} integer digits; a ({precision}, {scale}) decimal holds {}",
            precision.saturating_sub(scale)
        ));
    }
    Ok(())
}

impl Value {
    /// The text of a value carried as text (text, JSON, decimal, UUID and
    /// the zoned time types); `None` for the others.
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Decimal(s)
            | Value::Text(s)
            | Value::TimestampTz(s)
            | Value::TimeTz(s)
            | Value::Uuid(s)
            | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// Heap bytes this value owns (its text, bytes or items), for memory
    /// budgets: an estimate that counts payloads, not allocator slack.
    pub fn heap_bytes(&self) -> usize {
        if let Some(text) = self.text() {
            return text.len();
        }
        match self {
            Value::Bytes(b) => b.len(),
            Value::Array(items) => items
                .iter()
                .map(|v| std::mem::size_of::<Value>() + v.heap_bytes())
                .sum(),
            _ => 0,
        }
    }

    /// Significant digits of a time or timestamp's fraction of a second
    /// (trailing zeros do not count; the widest element of an array); `None`
    /// for other values. A target column holding fewer digits (Postgres
    /// and Parquet hold microseconds, 6) would round or truncate the value,
    /// so sinks refuse it instead.
    pub fn fraction_digits(&self) -> Option<u32> {
        fn of_nanos(nanos: u32) -> u32 {
            let mut digits = 9;
            let mut n = nanos % 1_000_000_000;
            if n == 0 {
                return 0;
            }
            while n.is_multiple_of(10) {
                n /= 10;
                digits -= 1;
            }
            digits
        }
        fn of_text(text: &str) -> u32 {
            // `13:44:29.996577Z`, `2007-05-14T13:44:29.1+02:00`.
            let Some((_, after)) = text.split_once('.') else {
                return 0;
            };
            let fraction = after
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or("");
            fraction.trim_end_matches('0').len() as u32
        }
        use chrono::Timelike;
        match self {
            Value::Time(t) => Some(of_nanos(t.nanosecond())),
            Value::Timestamp(t) => Some(of_nanos(t.nanosecond())),
            Value::TimestampTz(s) | Value::TimeTz(s) => Some(of_text(s)),
            Value::Array(items) => items.iter().filter_map(Value::fraction_digits).max(),
            _ => None,
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends a canonical, unambiguous text form used to identify keys
    /// (equal keys produce equal text, different keys different text).
    pub fn write_canonical(&self, out: &mut String) {
        // Each value is tagged so that Int(1) and Text("1") differ.
        match self {
            Value::Null => out.push('N'),
            Value::Bool(b) => {
                let _ = write!(out, "b{b}");
            }
            Value::Int(i) => {
                let _ = write!(out, "i{i}");
            }
            Value::Float(f) => {
                let _ = write!(out, "f{f:?}");
            }
            Value::Decimal(d) => {
                let _ = write!(out, "d{d}");
            }
            Value::Date(d) => {
                let _ = write!(out, "D{d}");
            }
            Value::Time(t) => {
                let _ = write!(out, "T{t}");
            }
            Value::Timestamp(t) => {
                let _ = write!(out, "S{t}");
            }
            Value::Bytes(b) => {
                out.push('x');
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            Value::Text(s)
            | Value::TimestampTz(s)
            | Value::TimeTz(s)
            | Value::Uuid(s)
            | Value::Json(s) => {
                // Length-prefixed so that embedded separators cannot collide.
                let _ = write!(out, "s{}:{s}", s.len());
            }
            Value::Array(items) => {
                let _ = write!(out, "[{}", items.len());
                for item in items {
                    out.push(',');
                    item.write_canonical(out);
                }
                out.push(']');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoned_timestamps_with_signed_years() {
        let micros = |t: &str| parse_zoned_timestamp(t).map(|d| d.timestamp_micros());
        assert_eq!(micros("1970-01-01T00:00:00.000001Z"), Ok(1));
        assert_eq!(
            micros("-0043-03-15T10:00:00.000000Z"),
            Ok(-63_517_788_000_000_000)
        );
        assert!(micros("+21016-11-04T06:51:30Z").is_ok_and(|m| m > 0));
        assert!(micros("infinity").is_err());
    }

    #[test]
    fn decimals_fit_or_say_why() {
        assert!(check_decimal_fits("123.45", 5, 2).is_ok());
        assert!(check_decimal_fits("-0.10", 1, 1).is_ok());
        assert!(check_decimal_fits("00123.450", 5, 2).is_ok());
        assert!(check_decimal_fits("12345.67", 5, 2).is_err());
        assert!(check_decimal_fits("1.234", 5, 2).is_err());
        assert!(check_decimal_fits("0.012345", 5, 6).is_ok());
        assert!(check_decimal_fits("NaN", 5, 2).is_ok());
    }

    #[test]
    fn fraction_digits_of_times() {
        let ts = |nanos| {
            Value::Timestamp(
                chrono::DateTime::from_timestamp(0, nanos)
                    .map(|t| t.naive_utc())
                    .unwrap_or_default(),
            )
        };
        assert_eq!(ts(0).fraction_digits(), Some(0));
        assert_eq!(ts(500_000_000).fraction_digits(), Some(1));
        assert_eq!(ts(1_000).fraction_digits(), Some(6));
        assert_eq!(ts(1).fraction_digits(), Some(9));
        let zoned = Value::TimestampTz("2024-01-01T00:00:00.1234560+02:00".into());
        assert_eq!(zoned.fraction_digits(), Some(6));
        assert_eq!(Value::Int(1).fraction_digits(), None);
    }
}
