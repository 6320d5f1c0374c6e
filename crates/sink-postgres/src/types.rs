//! Column types and values in Postgres terms.
//!
//! Every value is first [`prepare`]d for its target column (converted and
//! checked), then travels as a Postgres *text* literal (inside `text[]`
//! parameters) or, on the COPY path, in its type's binary form where it has
//! an exact one ([`crate::binary`]), and is cast to the target column's
//! type in SQL. Text is the one representation every Postgres type accepts,
//! which keeps the sink independent of the target's exact types (domains,
//! enums, varchar(n)...).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta};
use sinkfleet_core::{ColumnType, Value};
use std::borrow::Cow;
use std::fmt::Write;

/// The Postgres type a new column gets for a declared (or inferred) type.
pub fn pg_type(ty: &ColumnType, sample: Option<&Value>) -> String {
    match ty {
        ColumnType::Int16 => "smallint".into(),
        ColumnType::Int32 => "integer".into(),
        ColumnType::Int64 => "bigint".into(),
        ColumnType::Float32 => "real".into(),
        ColumnType::Float64 => "double precision".into(),
        ColumnType::Bool => "boolean".into(),
        ColumnType::Text | ColumnType::Enum => "text".into(),
        ColumnType::Bytes => "bytea".into(),
        ColumnType::Decimal {
            precision: Some(p),
            scale,
        } if *p >= *scale && *p > 0 && *p <= 1000 => format!("numeric({p},{scale})"),
        ColumnType::Decimal { .. } | ColumnType::VariableDecimal => "numeric".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Time => "time".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::TimestampTz => "timestamptz".into(),
        ColumnType::TimeTz => "timetz".into(),
        ColumnType::Interval => "interval".into(),
        ColumnType::Bits { length } => format!("bit varying({length})"),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Json => "jsonb".into(),
        ColumnType::Array(item) => {
            let first = match sample {
                Some(Value::Array(items)) => items.iter().find(|v| !v.is_null()),
                _ => None,
            };
            let inner = pg_type(item, first);
            if inner.ends_with("[]") || inner == "jsonb" {
                "jsonb".into()
            } else {
                format!("{inner}[]")
            }
        }
        ColumnType::Inferred => match sample {
            Some(Value::Bool(_)) => "boolean".into(),
            Some(Value::Int(_)) => "bigint".into(),
            Some(Value::Float(_)) => "double precision".into(),
            Some(Value::Decimal(_)) => "numeric".into(),
            Some(Value::Json(_)) => "jsonb".into(),
            Some(Value::Array(items)) => {
                let first = items.iter().find(|v| !v.is_null());
                match first {
                    Some(Value::Array(_)) | Some(Value::Json(_)) => "jsonb".into(),
                    other => format!("{}[]", pg_type(&ColumnType::Inferred, other)),
                }
            }
            _ => "text".into(),
        },
    }
}

/// Postgres' types for the column plan ([`sinkfleet_core::table::plan`]).
pub struct PgTypes;

impl sinkfleet_core::table::plan::TypeSystem for PgTypes {
    fn map(&self, ty: &ColumnType, sample: Option<&Value>) -> String {
        pg_type(ty, sample)
    }

    fn widen(&self, current: &str, wanted: &str) -> Option<String> {
        widening(current, wanted)
    }

    fn fallback(&self) -> String {
        "text".into()
    }
}

/// Widening that keeps every stored value, as the type to alter the
/// column to (`format_type` names). Anything else is an incompatible change.
pub fn widening(current: &str, wanted: &str) -> Option<String> {
    match (current, wanted) {
        ("smallint", "integer") => Some("integer".into()),
        ("smallint" | "integer", "bigint") => Some("bigint".into()),
        ("real", "double precision") => Some("double precision".into()),
        (c, "text") if c.starts_with("character varying") => Some("text".into()),
        (c, "numeric") if c.starts_with("numeric(") => Some("numeric".into()),
        (c, w) if c.starts_with("bit varying(") && w.starts_with("bit varying(") => {
            let length = |t: &str| {
                t.strip_prefix("bit varying(")?
                    .strip_suffix(')')?
                    .parse::<u32>()
                    .ok()
            };
            (length(w)? > length(c)?).then(|| w.to_owned())
        }
        (c, w) => {
            // numeric(p,s) -> numeric(p',s'): only if neither the integer
            // digits (p-s) nor the scale shrink; else values would round.
            let (p, s) = numeric_typmod(c)?;
            let (wp, ws) = numeric_typmod(w)?;
            (ws >= s && wp - ws >= p - s && (wp, ws) != (p, s))
                .then(|| format!("numeric({wp},{ws})"))
        }
    }
}

/// `numeric(p,s)` → `(p, s)`.
fn numeric_typmod(t: &str) -> Option<(u32, u32)> {
    let inner = t.strip_prefix("numeric(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// A schema-less epoch integer (Debezium's encoding of a temporal column
/// sent without its schema) as the calendar value a pre-created temporal
/// column holds; `Ok(None)` for anything else.
///
/// The unit follows Debezium's default (`adaptive`) encoding of the
/// column's own precision, which is what a schema-less event of such a
/// column carries: `date` days; `time(0..3)`/`timestamp(0..3)`
/// milliseconds; `time(4..6)`/`timestamp(4..6)` (and no precision, which
/// is 6) microseconds. Debezium never sends integers for zoned types, so
/// an integer for a `timestamptz`/`timetz` column is refused, as is one
/// out of range: the unit is then declared in `decode.columns`.
fn epoch_value(target_type: &str, value: &Value) -> Result<Option<Value>, String> {
    if let Value::Array(items) = value {
        let Some(element) = target_type.strip_suffix("[]") else {
            return Ok(None);
        };
        if !items.iter().any(|v| matches!(v, Value::Int(_))) {
            return Ok(None);
        }
        let converted = items
            .iter()
            .map(|item| Ok(epoch_value(element, item)?.unwrap_or_else(|| item.clone())))
            .collect::<Result<Vec<_>, String>>()?;
        return Ok(Some(Value::Array(converted)));
    }
    let Value::Int(n) = *value else {
        return Ok(None);
    };
    let out_of_range = |unit: &str| {
        format!(
            "{n} is out of range as {unit} for a {target_type} column; declare the column's encoding in decode.columns"
        )
    };
    if target_type == "date" {
        return NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(TimeDelta::try_days(n)?))
            .map(|d| Some(Value::Date(d)))
            .ok_or_else(|| out_of_range("days since 1970-01-01"));
    }
    if !target_type.starts_with("time") {
        return Ok(None);
    }
    if target_type.contains("with time zone") {
        return Err(format!(
            "the schema-less integer {n} has no time zone for a {target_type} column (Debezium sends zoned values as ISO-8601 text); \
             declare the column's encoding in decode.columns"
        ));
    }
    let precision = fraction_digits_held(target_type).unwrap_or(6);
    let (unit, per_second) = if precision <= 3 {
        ("milliseconds", 1_000)
    } else {
        ("microseconds", 1_000_000)
    };
    let (seconds, fraction) = (n.div_euclid(per_second), n.rem_euclid(per_second));
    let nanos = (fraction * (1_000_000_000 / per_second)) as u32;
    if target_type.starts_with("timestamp") {
        DateTime::from_timestamp(seconds, nanos)
            .map(|t| Some(Value::Timestamp(t.naive_utc())))
            .ok_or_else(|| out_of_range(&format!("{unit} since 1970-01-01")))
    } else {
        u32::try_from(seconds)
            .ok()
            .and_then(|s| chrono::NaiveTime::from_num_seconds_from_midnight_opt(s, nanos))
            .map(|t| Some(Value::Time(t)))
            .ok_or_else(|| out_of_range(&format!("{unit} since midnight")))
    }
}

/// A date as Postgres reads it: years before 1 AD as `… BC` (chrono's ISO
/// form `-0043-03-15` means 44 BC, which Postgres refuses), years past 9999
/// without ISO's `+` sign.
fn pg_date(d: NaiveDate) -> String {
    let (ce, year) = d.year_ce();
    let era = if ce { "" } else { " BC" };
    format!("{year:04}-{:02}-{:02}{era}", d.month(), d.day())
}

/// A timestamp as Postgres reads it (see [`pg_date`]).
fn pg_timestamp(t: chrono::NaiveDateTime) -> String {
    let (ce, year) = t.year_ce();
    let era = if ce { "" } else { " BC" };
    format!("{year:04}-{}{era}", t.format("%m-%d %H:%M:%S%.f"))
}

/// An ISO 8601 timestamp as Postgres reads it: Debezium's years outside
/// 0001-9999 are signed (`-0043` is 44 BC, year `0000` is 1 BC, `+21016`),
/// which Postgres refuses; it takes `0044-… BC` and `21016-…`.
fn pg_zoned_timestamp(text: &str) -> std::borrow::Cow<'_, str> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ if text.starts_with("0000-") => (true, text),
        _ => return text.into(),
    };
    let Some((year, tail)) = rest.split_once('-') else {
        return text.into();
    };
    let Ok(year) = year.parse::<u32>() else {
        return text.into();
    };
    if negative {
        format!("{:04}-{tail} BC", year + 1).into()
    } else {
        format!("{year}-{tail}").into()
    }
}

/// The Postgres text literal of `value` for a column of `target_type`
/// (`Ok(None)` is SQL NULL); `Err` says why the value cannot be stored as
/// the source had it.
pub fn to_text(value: &Value, target_type: &str) -> Result<Option<String>, String> {
    Ok(prepare(value, target_type)?.map(|v| render(&v)))
}

/// `value` as a column of `target_type` stores it (`Ok(None)` is SQL
/// NULL): schema-less epoch integers become the calendar value the column
/// holds, schema-less base64 text the bytes it encodes. `Err` says why the
/// value cannot be stored as the source had it. Every write path renders
/// or encodes values from this, so all of them refuse the same values.
pub fn prepare<'a>(value: &'a Value, target_type: &str) -> Result<Option<Cow<'a, Value>>, String> {
    if value.is_null() {
        return Ok(None);
    }
    // Converted first, so the checks below see the value as stored.
    let value = match epoch_value(target_type, value)? {
        Some(converted) => Cow::Owned(converted),
        None => Cow::Borrowed(value),
    };
    if let (Some(digits), Some(held)) = (value.fraction_digits(), fraction_digits_held(target_type))
        && digits > held
    {
        return Err(format!(
            "{value:?} has {digits} fractional second digits; a {target_type} column holds {held} (Postgres would round it)"
        ));
    }
    if let Value::Int(n) = *value {
        // A schema-less integer into a floating-point column: the server
        // would round one its type cannot hold (above 2^53 for a double).
        let exact = match target_type {
            "double precision" => (n as f64) as i128 == i128::from(n),
            "real" => (n as f32) as i128 == i128::from(n),
            _ => true,
        };
        if !exact {
            return Err(format!(
                "{n} cannot be held exactly by a {target_type} column (it would be rounded)"
            ));
        }
    }
    if let (Value::Decimal(text), Some((precision, scale))) = (&*value, numeric_typmod(target_type))
    {
        sinkfleet_core::value::check_decimal_fits(text, precision, scale)?;
    }
    if contains_nul(&value) {
        return Err(format!(
            "{value:?} contains U+0000, which Postgres text cannot hold"
        ));
    }
    // Schema-less events carry bytes as Debezium's base64 text. Cast to
    // bytea as it is, the text would be stored as its own ASCII bytes.
    if let (Value::Text(encoded), "bytea") = (&*value, target_type) {
        let bytes = BASE64.decode(encoded).map_err(|e| {
            format!("`{encoded}` is not base64 (schema-less bytes for a bytea column): {e}")
        })?;
        return Ok(Some(Cow::Owned(Value::Bytes(bytes))));
    }
    Ok(Some(value))
}

/// The Postgres text literal of a prepared, non-null value.
pub(crate) fn render(value: &Value) -> String {
    let mut out = String::new();
    write_text(value, &mut out);
    out
}

/// Text with a NUL character (valid in Debezium's JSON and in UTF-8, but
/// not in any Postgres text value).
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(contains_nul),
        _ => value.text().is_some_and(|s| s.contains('\0')),
    }
}

/// Fractional second digits a `time`/`timestamp` column (or array) holds:
/// its declared precision (`timestamp(3) without time zone`), else 6.
fn fraction_digits_held(target_type: &str) -> Option<u32> {
    if !target_type.starts_with("time") {
        return None;
    }
    let precision = target_type
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(p, _)| p.trim().parse().ok());
    Some(precision.unwrap_or(6))
}

fn write_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
        }
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
        Value::TimestampTz(s) => out.push_str(&pg_zoned_timestamp(s)),
        Value::Decimal(s) | Value::Text(s) | Value::TimeTz(s) | Value::Uuid(s) | Value::Json(s) => {
            out.push_str(s)
        }
        Value::Bytes(b) => {
            out.push_str("\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        Value::Date(d) => out.push_str(&pg_date(*d)),
        Value::Time(t) => {
            let _ = write!(out, "{}", t.format("%H:%M:%S%.f"));
        }
        Value::Timestamp(t) => out.push_str(&pg_timestamp(*t)),
        Value::Array(items) => write_array(items, out),
    }
}

/// Postgres array literal: `{"a","b",NULL}`; every element quoted so that
/// commas, braces and spaces inside elements are data.
pub(crate) fn write_array(items: &[Value], out: &mut String) {
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) => write_array(inner, out),
            other => {
                let mut text = String::new();
                write_text(other, &mut text);
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
}

/// Appends `text` escaped for COPY's text format (`\N` is NULL).
pub fn write_copy_field(text: Option<&str>, out: &mut String) {
    let Some(text) = text else {
        out.push_str("\\N");
        return;
    };
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_quote_every_element() {
        let v = Value::Array(vec![
            Value::Text("a,b".into()),
            Value::Null,
            Value::Text("q\"\\".into()),
        ]);
        assert_eq!(
            to_text(&v, "text[]").unwrap().unwrap(),
            r#"{"a,b",NULL,"q\"\\"}"#
        );
    }

    #[test]
    fn schemaless_epoch_integers_become_calendar_values() {
        assert_eq!(
            to_text(&Value::Int(13693), "date").unwrap().unwrap(),
            "2007-06-29"
        );
        assert_eq!(
            to_text(&Value::Int(13693), "bigint").unwrap().unwrap(),
            "13693"
        );
        assert_eq!(
            to_text(
                &Value::Int(1_665_791_731_989_360),
                "timestamp without time zone"
            )
            .unwrap()
            .unwrap(),
            "2022-10-14 23:55:31.989360"
        );
    }

    /// Debezium's adaptive encoding by the column's precision: a
    /// `timestamp(0..3)` gets milliseconds, `(4..6)` microseconds; a value
    /// the column would round is refused after the conversion too.
    #[test]
    fn schemaless_epoch_units_follow_the_column_precision() {
        let int = Value::Int;
        assert_eq!(
            to_text(&int(1_321_009_871_000), "timestamp(0) without time zone"),
            Ok(Some("2011-11-11 11:11:11".into()))
        );
        assert_eq!(
            to_text(&int(1_321_009_871_123), "timestamp(3) without time zone"),
            Ok(Some("2011-11-11 11:11:11.123".into()))
        );
        let rounded = to_text(&int(1_321_009_871_871), "timestamp(0) without time zone");
        assert!(rounded.is_err_and(|e| e.contains("would round")));
        assert_eq!(
            to_text(&int(49_890_123), "time(3) without time zone"),
            Ok(Some("13:51:30.123".into()))
        );
        assert_eq!(
            to_text(&int(49_890_123_456), "time without time zone"),
            Ok(Some("13:51:30.123456".into()))
        );
        for zoned in ["timestamp with time zone", "time(3) with time zone"] {
            let refused = to_text(&int(1_321_009_871_000), zoned);
            assert!(
                refused.is_err_and(|e| e.contains("decode.columns")),
                "{zoned}"
            );
        }
        let out_of_range = to_text(&int(86_400_000_000), "time without time zone");
        assert!(out_of_range.is_err_and(|e| e.contains("decode.columns")));
        assert_eq!(
            to_text(
                &Value::Array(vec![int(0), Value::Null]),
                "timestamp(3) without time zone[]"
            ),
            Ok(Some(r#"{"1970-01-01 00:00:00",NULL}"#.into()))
        );
    }

    #[test]
    fn fractions_a_column_cannot_hold_are_refused_not_rounded() {
        let ts = |nanos| {
            Value::Timestamp(
                chrono::DateTime::from_timestamp(0, nanos)
                    .unwrap()
                    .naive_utc(),
            )
        };
        assert!(to_text(&ts(1), "timestamp without time zone").is_err());
        assert!(to_text(&ts(1_000), "timestamp without time zone").is_ok());
        assert!(to_text(&ts(1_000), "timestamp(3) without time zone").is_err());
        assert!(to_text(&ts(1_000_000), "timestamp(3) without time zone").is_ok());
        let zoned = Value::TimestampTz("2007-05-14T13:44:29.9965771Z".into());
        assert!(to_text(&zoned, "timestamp with time zone").is_err());
        assert!(to_text(&zoned, "text").is_ok());
        assert!(to_text(&Value::Array(vec![ts(1)]), "timestamp without time zone[]").is_err());
    }

    #[test]
    fn dates_before_1_ad_and_after_9999_in_postgres_form() {
        let date = |y, m, d| Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(
            to_text(&date(-43, 3, 15), "date"),
            Ok(Some("0044-03-15 BC".into()))
        );
        assert_eq!(
            to_text(&date(10000, 1, 1), "date"),
            Ok(Some("10000-01-01".into()))
        );
        assert_eq!(
            to_text(&date(7, 1, 2), "date"),
            Ok(Some("0007-01-02".into()))
        );
        let ts = NaiveDate::from_ymd_opt(0, 12, 31)
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 5))
            .unwrap();
        assert_eq!(
            to_text(&Value::Timestamp(ts), "timestamp without time zone"),
            Ok(Some("0001-12-31 23:59:59.000005 BC".into()))
        );
        // A schema-less day count into a date column: 44 BC.
        assert_eq!(
            to_text(&Value::Int(-735_160), "date"),
            Ok(Some("0044-03-15 BC".into()))
        );
    }

    /// Debezium writes years before 1 AD and after 9999 signed (ISO 8601);
    /// Postgres reads them in its own form.
    #[test]
    fn zoned_timestamps_before_1_ad_and_after_9999() {
        let tz = |s: &str| to_text(&Value::TimestampTz(s.into()), "timestamp with time zone");
        assert_eq!(
            tz("-0043-03-15T10:00:00.000000Z"),
            Ok(Some("0044-03-15T10:00:00.000000Z BC".into()))
        );
        assert_eq!(
            tz("0000-12-31T23:30:00Z"),
            Ok(Some("0001-12-31T23:30:00Z BC".into()))
        );
        assert_eq!(
            tz("+21016-11-04T06:51:30.000000Z"),
            Ok(Some("21016-11-04T06:51:30.000000Z".into()))
        );
        assert_eq!(
            tz("2016-11-04T11:51:30Z"),
            Ok(Some("2016-11-04T11:51:30Z".into()))
        );
        assert_eq!(tz("infinity"), Ok(Some("infinity".into())));
    }

    #[test]
    fn decimals_a_numeric_column_would_round_are_refused() {
        let d = |t: &str| Value::Decimal(t.into());
        assert!(to_text(&d("1.234"), "numeric(10,2)").is_err());
        assert_eq!(
            to_text(&d("1.230"), "numeric(10,2)"),
            Ok(Some("1.230".into()))
        );
        assert!(to_text(&d("123456789.1"), "numeric(10,2)").is_err());
        assert!(to_text(&d("1.234"), "numeric").is_ok());
    }

    #[test]
    fn schemaless_base64_becomes_the_bytes_it_encodes() {
        assert_eq!(
            to_text(&Value::Text("3q2+7w==".into()), "bytea"),
            Ok(Some("\\xdeadbeef".into()))
        );
        assert!(to_text(&Value::Text("not base64!".into()), "bytea").is_err());
        assert_eq!(
            to_text(&Value::Text("3q2+7w==".into()), "text"),
            Ok(Some("3q2+7w==".into())),
            "only a bytea column decodes it"
        );
    }

    #[test]
    fn special_floats_and_bytes() {
        assert_eq!(
            to_text(&Value::Float(f64::NAN), "double precision")
                .unwrap()
                .unwrap(),
            "NaN"
        );
        assert_eq!(
            to_text(&Value::Float(f64::NEG_INFINITY), "real")
                .unwrap()
                .unwrap(),
            "-Infinity"
        );
        assert_eq!(
            to_text(&Value::Bytes(vec![0, 255]), "bytea")
                .unwrap()
                .unwrap(),
            "\\x00ff"
        );
        assert_eq!(to_text(&Value::Null, "text"), Ok(None));
    }

    #[test]
    fn copy_escaping() {
        let mut out = String::new();
        write_copy_field(Some("a\tb\\c\nd"), &mut out);
        assert_eq!(out, "a\\tb\\\\c\\nd");
        out.clear();
        write_copy_field(None, &mut out);
        assert_eq!(out, "\\N");
    }

    #[test]
    fn type_mapping_and_widening() {
        assert_eq!(
            pg_type(
                &ColumnType::Decimal {
                    precision: Some(5),
                    scale: 2
                },
                None
            ),
            "numeric(5,2)"
        );
        assert_eq!(
            pg_type(&ColumnType::Array(Box::new(ColumnType::Text)), None),
            "text[]"
        );
        assert_eq!(
            pg_type(&ColumnType::Inferred, Some(&Value::Int(1))),
            "bigint"
        );
        assert_eq!(widening("integer", "bigint").as_deref(), Some("bigint"));
        assert_eq!(widening("bigint", "integer"), None);
        assert_eq!(widening("text", "bigint"), None);
        assert_eq!(
            widening("numeric(12,2)", "numeric(14,3)").as_deref(),
            Some("numeric(14,3)")
        );
        assert_eq!(
            widening("numeric(12,2)", "numeric(12,3)"),
            None,
            "integer digits would shrink"
        );
        assert_eq!(
            widening("numeric(12,2)", "numeric(14,1)"),
            None,
            "scale would shrink"
        );
        assert_eq!(widening("numeric(12,2)", "numeric(12,2)"), None);
    }
}
