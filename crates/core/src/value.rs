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

impl Value {
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
