//! Records → Arrow record batches, column by column.
//!
//! A value that does not fit its column (a decimal with more digits than
//! declared, text in an integer column) is an error naming the column: the
//! runtime isolates the record and dead-letters it, instead of writing a
//! rounded or empty value.

use crate::schema;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch};
use arrow_buffer::{NullBuffer, OffsetBuffer, i256};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use chrono::{Datelike, NaiveDate, Timelike};
use sinkfleet_core::{Op, SinkRecord, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// Builds the rows of `records` in the layout of `schema` (a file schema
/// from [`schema::file_schema`]).
pub fn record_batch(schema: &SchemaRef, records: &[&SinkRecord]) -> Result<RecordBatch, String> {
    let data_columns = schema.fields().len() - schema::BOOKKEEPING.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (position, field) in schema.fields()[..data_columns].iter().enumerate() {
        let name = field.name();
        let values: Vec<Option<&Value>> = records
            .iter()
            .map(|r| {
                let c = &r.change;
                c.row
                    .as_ref()
                    .and_then(|row| row.get_at(name, position))
                    .or_else(|| c.key.get(name))
                    .filter(|v| !v.is_null())
            })
            .collect();
        columns
            .push(array(field.data_type(), &values).map_err(|e| format!("column `{name}`: {e}"))?);
    }

    let mut op = StringBuilder::new();
    let mut deleted = BooleanBuilder::new();
    let mut commit = UInt64Builder::new();
    let mut change = UInt64Builder::new();
    let mut source_ts = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    let mut unchanged = ListBuilder::new(StringBuilder::new());
    for r in records {
        let c = &r.change;
        op.append_value(c.op.code());
        deleted.append_value(matches!(c.op, Op::Delete | Op::Truncate));
        commit.append_value(c.version.major);
        change.append_value(c.version.minor);
        source_ts.append_option(c.source_ts_ms);
        topic.append_value(&r.position.topic);
        partition.append_value(r.position.partition);
        offset.append_value(r.position.offset);
        // The columns that carried the TOAST placeholder: with or without
        // a declared schema, a reader tells "unchanged" from NULL.
        if c.unchanged.is_empty() {
            unchanged.append(false);
        } else {
            for name in &c.unchanged {
                unchanged.values().append_value(name);
            }
            unchanged.append(true);
        }
    }
    columns.extend([
        Arc::new(op.finish()) as ArrayRef,
        Arc::new(deleted.finish()),
        Arc::new(commit.finish()),
        Arc::new(change.finish()),
        Arc::new(source_ts.finish()),
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(unchanged.finish()),
    ]);
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())
}

fn mismatch(expected: &str, got: &Value) -> String {
    format!("expected {expected}, got {got:?}")
}

/// One column of values (None = null) as an array of `ty`.
fn array(ty: &DataType, values: &[Option<&Value>]) -> Result<ArrayRef, String> {
    // Times and timestamps are stored in microseconds: finer digits would
    // be truncated, so such a value is refused.
    if matches!(ty, DataType::Time64(_) | DataType::Timestamp(..)) {
        for value in values.iter().flatten() {
            if let Some(digits) = value.fraction_digits().filter(|d| *d > 6) {
                return Err(format!(
                    "{value:?} has {digits} fractional second digits; the column holds microseconds"
                ));
            }
        }
    }
    macro_rules! build {
        ($builder:expr, |$v:ident| $convert:expr) => {{
            let mut b = $builder;
            for value in values {
                match value {
                    None => b.append_null(),
                    Some($v) => b.append_value($convert),
                }
            }
            Ok(Arc::new(b.finish()) as ArrayRef)
        }};
    }
    let int = |v: &Value| match v {
        Value::Int(i) => Ok(*i),
        other => Err(mismatch("an integer", other)),
    };
    match ty {
        DataType::Int16 => build!(Int16Builder::new(), |v| i16::try_from(int(v)?)
            .map_err(|_| format!("{v:?} does not fit smallint"))?),
        DataType::Int32 => build!(Int32Builder::new(), |v| i32::try_from(int(v)?)
            .map_err(|_| format!("{v:?} does not fit int"))?),
        DataType::Int64 => build!(Int64Builder::new(), |v| int(v)?),
        DataType::Float32 => build!(Float32Builder::new(), |v| float(v)? as f32),
        DataType::Float64 => build!(Float64Builder::new(), |v| float(v)?),
        DataType::Boolean => build!(BooleanBuilder::new(), |v| match v {
            Value::Bool(b) => *b,
            other => return Err(mismatch("a boolean", other)),
        }),
        DataType::Binary => build!(BinaryBuilder::new(), |v| match v {
            Value::Bytes(b) => b.as_slice(),
            other => return Err(mismatch("bytes", other)),
        }),
        DataType::Decimal128(p, s) => build!(
            Decimal128Builder::new()
                .with_precision_and_scale(*p, *s)
                .map_err(|e| e.to_string())?,
            |v| decimal(&decimal_text(v)?, *p, *s)?
        ),
        DataType::Decimal256(p, s) => build!(
            Decimal256Builder::new()
                .with_precision_and_scale(*p, *s)
                .map_err(|e| e.to_string())?,
            |v| decimal256(&decimal_text(v)?, *p, *s)?
        ),
        DataType::Date32 => build!(Date32Builder::new(), |v| match v {
            Value::Date(d) => days(*d),
            other => return Err(mismatch("a date", other)),
        }),
        DataType::Time64(TimeUnit::Microsecond) => {
            build!(Time64MicrosecondBuilder::new(), |v| match v {
                Value::Time(t) =>
                    i64::from(t.num_seconds_from_midnight()) * 1_000_000
                        + i64::from(t.nanosecond() / 1_000),
                other => return Err(mismatch("a time", other)),
            })
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            build!(TimestampMicrosecondBuilder::new(), |v| match v {
                Value::Timestamp(ts) => ts.and_utc().timestamp_micros(),
                other => return Err(mismatch("a timestamp", other)),
            })
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => build!(
            TimestampMicrosecondBuilder::new().with_timezone(tz.as_ref()),
            |v| match v {
                Value::TimestampTz(text) => {
                    sinkfleet_core::value::parse_zoned_timestamp(text)?.timestamp_micros()
                }
                other => return Err(mismatch("a zoned timestamp", other)),
            }
        ),
        DataType::Utf8 => build!(StringBuilder::new(), |v| text(v).as_ref()),
        DataType::List(item) => {
            let mut lengths = Vec::with_capacity(values.len());
            let mut valid = Vec::with_capacity(values.len());
            let mut items: Vec<Option<&Value>> = Vec::new();
            for value in values {
                match value {
                    None => {
                        lengths.push(0);
                        valid.push(false);
                    }
                    Some(Value::Array(elements)) => {
                        lengths.push(elements.len());
                        valid.push(true);
                        items.extend(elements.iter().map(|e| Some(e).filter(|e| !e.is_null())));
                    }
                    Some(other) => return Err(mismatch("an array", other)),
                }
            }
            let child = array(item.data_type(), &items)?;
            let list = ListArray::try_new(
                Arc::clone(item),
                OffsetBuffer::from_lengths(lengths),
                child,
                Some(NullBuffer::from(valid)),
            )
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(list))
        }
        other => Err(format!("no encoder for {other}")),
    }
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        other => Err(mismatch("a number", other)),
    }
}

fn days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// The digits of a value for a decimal column (an integer counts too).
fn decimal_text(v: &Value) -> Result<Cow<'_, str>, String> {
    match v {
        Value::Decimal(text) => Ok(Cow::Borrowed(text)),
        Value::Int(i) => Ok(Cow::Owned(i.to_string())),
        other => Err(mismatch("a decimal", other)),
    }
}

/// The unscaled value of `text` as a decimal(`precision`, `scale`), folded
/// digit by digit into `T` (starting at `zero`, `push(acc, digit)`), and its
/// sign. Exact or refused: fractional digits beyond the scale (unless
/// zeros) or more significant digits than the precision are errors.
fn unscaled<T>(
    text: &str,
    precision: u8,
    scale: i8,
    zero: T,
    push: impl Fn(T, u8) -> T,
) -> Result<(bool, T), String> {
    let bad = || format!("`{text}` is not a decimal({precision},{scale})");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let scale = usize::try_from(scale).map_err(|_| bad())?;
    let (kept, dropped) = frac.split_at(frac.len().min(scale));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(format!("{}: more fractional digits than the scale", bad()));
    }
    // The unscaled digits: integer part, kept fraction, zeros up to the
    // scale. Counting from the first non-zero digit gives the precision
    // used, so the accumulator never holds more than `precision` digits.
    let padding = std::iter::repeat_n(b'0', scale - kept.len());
    let (mut acc, mut significant) = (zero, 0usize);
    for b in int.bytes().chain(kept.bytes()).chain(padding) {
        if significant == 0 && b == b'0' {
            continue;
        }
        significant += 1;
        if significant > usize::from(precision) {
            return Err(format!("{}: too many digits", bad()));
        }
        acc = push(acc, b - b'0');
    }
    Ok((negative, acc))
}

/// A decimal of at most 38 digits as Decimal128's unscaled `i128`.
fn decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let (negative, magnitude) =
        unscaled(text, precision, scale, 0i128, |m, d| m * 10 + i128::from(d))?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// A decimal of at most 76 digits as Decimal256's unscaled `i256`.
fn decimal256(text: &str, precision: u8, scale: i8) -> Result<i256, String> {
    let ten = i256::from_i128(10);
    let (negative, magnitude) = unscaled(text, precision, scale, i256::ZERO, |m, d| {
        // At most 76 digits: below 2^255, no overflow.
        m.wrapping_mul(ten)
            .wrapping_add(i256::from_i128(i128::from(d)))
    })?;
    Ok(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

/// The text form of a value stored in a text column (borrowed when the
/// value already is text: most are).
fn text(v: &Value) -> Cow<'_, str> {
    Cow::Owned(match v {
        Value::Decimal(s)
        | Value::Text(s)
        | Value::TimestampTz(s)
        | Value::TimeTz(s)
        | Value::Uuid(s)
        | Value::Json(s) => return Cow::Borrowed(s),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(b) => {
            let mut out = String::with_capacity(2 + b.len() * 2);
            out.push_str("\\x");
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        Value::Date(d) => d.to_string(),
        Value::Time(t) => t.format("%H:%M:%S%.f").to_string(),
        Value::Timestamp(ts) => ts.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(json).collect()).to_string()
        }
    })
}

fn json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| text(v).into_owned().into(), Into::into)
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(json).collect()),
        other => text(other).into_owned().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_decimals_keep_every_digit_or_fail() {
        let max76 = "9".repeat(76);
        let got = decimal256(&max76, 76, 0).unwrap();
        assert_eq!(got.to_string(), max76);
        let negative = format!("-0.{}", "1".repeat(40));
        assert_eq!(
            decimal256(&negative, 41, 40).unwrap().to_string(),
            format!("-{}", "1".repeat(40))
        );
        assert!(decimal256(&"9".repeat(77), 76, 0).is_err());
        assert!(decimal256("1.5", 39, 0).is_err(), "never rounded");
        // numeric(5,6): a scale above the precision.
        assert_eq!(decimal("0.012345", 6, 6), Ok(12_345));
    }

    #[test]
    fn decimals_keep_every_digit_or_fail() {
        assert_eq!(decimal("-12.5", 10, 2), Ok(-1250));
        assert_eq!(decimal("0.10", 4, 2), Ok(10));
        assert_eq!(decimal("7", 4, 2), Ok(700));
        assert_eq!(decimal("1.2300", 4, 2), Ok(123));
        assert!(decimal("1.234", 4, 2).is_err());
        assert!(decimal("123.45", 4, 2).is_err());
        assert!(decimal("NaN", 10, 2).is_err());
        assert!(decimal("", 10, 2).is_err());
    }

    #[test]
    fn dates_count_days_from_the_unix_epoch() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 2).expect("date");
        assert_eq!(days(epoch), 1);
    }

    #[test]
    fn mismatched_values_name_the_problem() {
        let v = Value::Text("x".into());
        let err = array(&DataType::Int32, &[Some(&v)]).expect_err("text is not an int");
        assert!(err.contains("expected an integer"), "{err}");
        let big = Value::Int(1 << 40);
        assert!(array(&DataType::Int32, &[Some(&big)]).is_err());
    }
}
