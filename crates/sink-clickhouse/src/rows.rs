//! Rows as ClickHouse's `JSONEachRow` input: the body of an `INSERT`.
//!
//! Values are written for the target column's type; exact digits stay
//! exact (a Decimal is a JSON number only for a Decimal column). The
//! server parses them and refuses what the column cannot hold, which the
//! sink turns into a dead-lettered record, never a rounded value.

use crate::client::ServerFeatures;
use crate::config::ClickHouseSinkConfig;
use crate::encode_version;
use crate::ident::quote;
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use sinkfleet_core::table::history::{OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN};
use sinkfleet_core::{Change, SinkError, Value};
use std::fmt::Write;

/// The quoted column list and the `JSONEachRow` body inserting `changes`
/// into a table with `table_columns` (name, type): the data columns some
/// change carries, then the version and the deleted flag (and, into a
/// history table, the op, source commit time and unchanged columns).
/// A value a column cannot hold exactly fails the whole body, naming the
/// column (the runtime isolates the record and dead-letters it).
pub(crate) fn insert_body(
    table_columns: &[(String, String)],
    changes: &[&Change],
    cfg: &ClickHouseSinkConfig,
    features: &ServerFeatures,
) -> Result<(Vec<String>, String), SinkError> {
    let column_type = |name: &str| {
        table_columns
            .iter()
            .find(|(n, _)| n == name)
            .map_or("String", |(_, t)| t.as_str())
    };
    let mut columns: Vec<&str> = Vec::new();
    for (n, _) in table_columns {
        if cfg.is_bookkeeping(n) {
            continue;
        }
        if changes
            .iter()
            .any(|c| c.row.as_ref().is_some_and(|r| r.contains(n)) || c.key.contains(n))
        {
            columns.push(n);
        }
    }
    // Tables on servers without UInt128 keep the version's minor part apart.
    let minor =
        Some(cfg.minor_version_column()).filter(|m| table_columns.iter().any(|(n, _)| n == m));
    // A history table: every change also names its op, source commit time
    // and unchanged columns.
    let history = table_columns.iter().any(|(n, _)| n == OP_COLUMN);
    let mut body = String::with_capacity(changes.len() * 128);
    for change in changes {
        body.push('{');
        let mut first = true;
        for n in &columns {
            let value = change
                .row
                .as_ref()
                .and_then(|r| r.get(n))
                .or_else(|| change.key.get(n));
            let Some(value) = value else { continue };
            if !first {
                body.push(',');
            }
            first = false;
            let _ = write!(body, "{}:", serde_json::Value::String((*n).to_owned()));
            write_value(&mut body, value, column_type(n))
                .map_err(|e| SinkError::apply(format!("column `{n}`: {e}")))?;
        }
        if !first {
            body.push(',');
        }
        let deleted = u8::from(!change.op.is_upsert());
        let _ = write!(
            body,
            "{}:{},",
            serde_json::Value::String(cfg.version_column.clone()),
            quote_number(
                &encode_version(change.version, features),
                features.uint128()
            )
        );
        if let Some(minor) = &minor {
            let _ = write!(
                body,
                "{}:{},",
                serde_json::Value::String(minor.clone()),
                change.version.minor
            );
        }
        let _ = write!(
            body,
            "{}:{}",
            serde_json::Value::String(cfg.deleted_column.clone()),
            deleted
        );
        if history {
            let unchanged: Vec<serde_json::Value> = change
                .unchanged
                .iter()
                .map(|c| serde_json::Value::String(c.clone()))
                .collect();
            let _ = write!(
                body,
                ",{}:{},{}:{},{}:{}",
                serde_json::Value::String(OP_COLUMN.to_owned()),
                serde_json::Value::String(change.op.code().to_owned()),
                serde_json::Value::String(SOURCE_TS_COLUMN.to_owned()),
                change
                    .source_ts_ms
                    .map_or("null".to_owned(), |t| t.to_string()),
                serde_json::Value::String(UNCHANGED_COLUMN.to_owned()),
                serde_json::Value::Array(unchanged),
            );
        }
        body.push_str("}\n");
    }
    let mut names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    names.push(quote(&cfg.version_column));
    if let Some(minor) = &minor {
        names.push(quote(minor));
    }
    names.push(quote(&cfg.deleted_column));
    if history {
        names.extend([OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN].map(quote));
    }
    Ok((names, body))
}

fn quote_number(n: &str, quoted: bool) -> String {
    if quoted {
        format!("\"{n}\"")
    } else {
        n.to_owned()
    }
}

/// Writes one value of JSONEachRow for a column of type `ch_type`: exactly
/// as the source had it, or an error saying why the column cannot hold it
/// (the record is then dead-lettered). ClickHouse itself would not refuse
/// these: it wraps an out-of-range date to `0000-00-00` and an oversized
/// integer around, and the old `DateTime` has no sub-second digits.
pub(crate) fn write_value(out: &mut String, value: &Value, ch_type: &str) -> Result<(), String> {
    let string = |out: &mut String, s: &str| {
        let _ = write!(out, "{}", serde_json::Value::String(s.to_owned()));
    };
    let base = base_type(ch_type);
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Value::Int(i) => {
            check_int(*i, base)?;
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        // Quoted, ClickHouse reads these (unquoted, it refuses them).
        Value::Float(f) if f.is_nan() => out.push_str("\"nan\""),
        Value::Float(f) if *f > 0.0 => out.push_str("\"inf\""),
        Value::Float(_) => out.push_str("\"-inf\""),
        // Exact digits: a JSON number for Decimal columns, text otherwise.
        Value::Decimal(d) if base.starts_with("Decimal") => {
            if let Some((precision, scale)) = crate::schema::decimal_typmod(base) {
                sinkfleet_core::value::check_decimal_fits(d, precision, scale)?;
            }
            out.push_str(d)
        }
        Value::Decimal(d) => string(out, d),
        // Text in a date or time column is Postgres' `infinity` (or
        // `24:00:00`): ClickHouse's calendar types have no such value.
        Value::Text(s) if base.starts_with("Date") => {
            return Err(format!("`{s}` has no value in ClickHouse's {base}"));
        }
        Value::Text(s) | Value::Uuid(s) | Value::TimeTz(s) => string(out, s),
        Value::Json(s) => string(out, s),
        Value::TimestampTz(s) => {
            let utc = s.replace('T', " ");
            let utc = utc.trim_end_matches('Z');
            if base.starts_with("DateTime") {
                let t = sinkfleet_core::value::parse_zoned_timestamp(s)?.naive_utc();
                check_timestamp(&t, base)?;
            }
            string(out, utc);
        }
        // Bytes as lowercase hex (`unhex()` reads them back): a JSON string
        // carries text, and arbitrary bytes are not text.
        Value::Bytes(b) => {
            let mut hex = String::with_capacity(b.len() * 2);
            for byte in b {
                let _ = write!(hex, "{byte:02x}");
            }
            string(out, &hex);
        }
        Value::Date(d) => {
            if base == "Date" && !(DATE_MIN..=DATE_MAX).contains(d) {
                return Err(format!(
                    "{d} is outside ClickHouse's Date range ({DATE_MIN} to {DATE_MAX})"
                ));
            }
            string(out, &d.to_string());
        }
        Value::Time(t) => string(out, &t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) => {
            check_timestamp(t, base)?;
            let text = if base.starts_with("DateTime64") || t.nanosecond().is_multiple_of(1_000) {
                t.format("%Y-%m-%d %H:%M:%S%.6f")
            } else {
                t.format("%Y-%m-%d %H:%M:%S%.9f")
            };
            let text = text.to_string();
            // A `DateTime` (seconds) column reads no fraction at all.
            let text = if base.starts_with("DateTime(") || base == "DateTime" {
                text.split('.').next().unwrap_or_default().to_owned()
            } else {
                text
            };
            string(out, &text);
        }
        Value::Array(items) => {
            let item_type = ch_type
                .strip_prefix("Array(")
                .and_then(|t| t.strip_suffix(')'))
                .unwrap_or(ch_type);
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, item_type)?;
            }
            out.push(']');
        }
    }
    Ok(())
}

/// `Date` on 18.16 (its calendar table ends in 2105; newer servers go to
/// 2149-06-06, refused here all the same).
const DATE_MIN: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
const DATE_MAX: NaiveDate = NaiveDate::from_ymd_opt(2105, 12, 31).expect("valid date");

/// The type without `Nullable(..)`/`LowCardinality(..)` wrappers.
fn base_type(ch_type: &str) -> &str {
    let mut t = ch_type;
    for wrapper in ["Nullable(", "LowCardinality("] {
        if let Some(inner) = t.strip_prefix(wrapper).and_then(|i| i.strip_suffix(')')) {
            t = inner;
        }
    }
    t
}

/// An integer the column holds without wrapping or rounding. Schema-less
/// epoch integers (Debezium's dates and timestamps) are refused for date
/// and time columns: their unit is unknown without a schema.
fn check_int(i: i64, base: &str) -> Result<(), String> {
    let fits = match base {
        "Int8" => i8::try_from(i).is_ok(),
        "Int16" => i16::try_from(i).is_ok(),
        "Int32" => i32::try_from(i).is_ok(),
        "UInt8" => u8::try_from(i).is_ok(),
        "UInt16" => u16::try_from(i).is_ok(),
        "UInt32" => u32::try_from(i).is_ok(),
        "UInt64" => i >= 0,
        // Integers beyond 2^53 are not exact in a double.
        "Float64" => i.unsigned_abs() <= 1 << 53,
        "Float32" => i.unsigned_abs() <= 1 << 24,
        t if t.starts_with("Date") => {
            return Err(format!(
                "integer {i} for a {t} column: a schema-less epoch value has no unit; declare the type (schema envelope)"
            ));
        }
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!("{i} does not fit {base}"))
    }
}

/// A timestamp the column holds exactly: `DateTime` has seconds from 1970
/// to 2105, `DateTime64(6)` microseconds from 1900 to 2299.
fn check_timestamp(t: &NaiveDateTime, base: &str) -> Result<(), String> {
    let year = t.year();
    if base.starts_with("DateTime64") {
        if !(1900..=2299).contains(&year) {
            return Err(format!(
                "{t} is outside ClickHouse's DateTime64 range (1900 to 2299)"
            ));
        }
        if !t.nanosecond().is_multiple_of(1_000) {
            return Err(format!("{t} has more than microsecond precision"));
        }
    } else if base.starts_with("DateTime") {
        if !(1970..=2105).contains(&year) {
            return Err(format!(
                "{t} is outside ClickHouse's DateTime range (1970 to 2105)"
            ));
        }
        if t.nanosecond() != 0 {
            return Err(format!(
                "{t} has sub-second digits and the column is DateTime (seconds): change it to String to keep them"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn written(value: &Value, ch_type: &str) -> Result<String, String> {
        let mut out = String::new();
        write_value(&mut out, value, ch_type).map(|()| out)
    }

    fn ts(y: i32, nanos: u32) -> Value {
        Value::Timestamp(
            NaiveDate::from_ymd_opt(y, 1, 2)
                .and_then(|d| d.and_hms_nano_opt(10, 47, 58, nanos))
                .expect("valid"),
        )
    }

    /// The body of one upsert and one delete, as each server generation
    /// gets it: modern servers a quoted UInt128 version and DateTime64
    /// text, 18.16 the commit LSN, the change LSN apart, and String text.
    #[test]
    fn insert_bodies_per_server() {
        use sinkfleet_core::{Op, Row, TableId, Version};
        let change = |op: Op, at: Option<Value>| {
            let mut key = Row::default();
            key.set("id", Value::Int(7));
            Change {
                table: TableId::new("s", "t"),
                op,
                row: at.map(|v| {
                    let mut row = key.clone();
                    row.set("at", v);
                    row
                }),
                key,
                version: Version::new(5, 9),
                schema: None,
                unchanged: Vec::new(),
                source_ts_ms: None,
                transaction: None,
            }
        };
        let changes = [
            change(Op::Update, Some(ts(2024, 945_635_000))),
            change(Op::Delete, None),
        ];
        let cfg = ClickHouseSinkConfig::with_url("http://x");
        let col = |n: &str, t: &str| (n.to_owned(), t.to_owned());
        let modern = ServerFeatures { version: (24, 8) };
        let columns = [
            col("id", "Int64"),
            col("at", "Nullable(DateTime64(6, 'UTC'))"),
            col("__sinkfleet_version", "UInt128"),
            col("__sinkfleet_deleted", "UInt8"),
        ];
        let (names, body) =
            insert_body(&columns, &changes.iter().collect::<Vec<_>>(), &cfg, &modern).unwrap();
        assert_eq!(
            names.join(","),
            "`id`,`at`,`__sinkfleet_version`,`__sinkfleet_deleted`"
        );
        let version = ((5u128 << 64) | 9).to_string();
        assert_eq!(
            body,
            format!(
                "{{\"id\":7,\"at\":\"2024-01-02 10:47:58.945635\",\"__sinkfleet_version\":\"{version}\",\"__sinkfleet_deleted\":0}}\n\
                 {{\"id\":7,\"__sinkfleet_version\":\"{version}\",\"__sinkfleet_deleted\":1}}\n"
            )
        );
        let old = ServerFeatures { version: (18, 16) };
        let columns = [
            col("id", "Int64"),
            col("at", "Nullable(String)"),
            col("__sinkfleet_version", "UInt64"),
            col("__sinkfleet_version_minor", "UInt64"),
            col("__sinkfleet_deleted", "UInt8"),
        ];
        let (names, body) =
            insert_body(&columns, &changes.iter().collect::<Vec<_>>(), &cfg, &old).unwrap();
        assert_eq!(
            names.join(","),
            "`id`,`at`,`__sinkfleet_version`,`__sinkfleet_version_minor`,`__sinkfleet_deleted`"
        );
        assert_eq!(
            body,
            "{\"id\":7,\"at\":\"2024-01-02 10:47:58.945635\",\"__sinkfleet_version\":5,\"__sinkfleet_version_minor\":9,\"__sinkfleet_deleted\":0}\n\
             {\"id\":7,\"__sinkfleet_version\":5,\"__sinkfleet_version_minor\":9,\"__sinkfleet_deleted\":1}\n"
        );
    }

    #[test]
    fn timestamps_are_exact_or_refused() {
        assert_eq!(
            written(&ts(2024, 945_635_000), "String").unwrap(),
            r#""2024-01-02 10:47:58.945635""#
        );
        assert_eq!(
            written(&ts(2024, 945_635_001), "String").unwrap(),
            r#""2024-01-02 10:47:58.945635001""#
        );
        assert_eq!(
            written(&ts(2024, 0), "DateTime('UTC')").unwrap(),
            r#""2024-01-02 10:47:58""#
        );
        assert!(written(&ts(2024, 945_635_000), "DateTime('UTC')").is_err());
        assert!(written(&ts(1969, 0), "Nullable(DateTime('UTC'))").is_err());
        assert_eq!(
            written(&ts(1969, 945_635_000), "DateTime64(6, 'UTC')").unwrap(),
            r#""1969-01-02 10:47:58.945635""#
        );
        assert!(written(&ts(2024, 1), "DateTime64(6, 'UTC')").is_err());
        assert!(written(&ts(1899, 0), "DateTime64(6, 'UTC')").is_err());
        let zoned = Value::TimestampTz("1960-01-01T00:00:00Z".into());
        assert!(written(&zoned, "DateTime('UTC')").is_err());
        assert_eq!(
            written(&zoned, "String").unwrap(),
            r#""1960-01-01 00:00:00""#
        );
    }

    #[test]
    fn dates_outside_the_date_range_are_refused() {
        let date = |y| Value::Date(NaiveDate::from_ymd_opt(y, 6, 1).expect("valid"));
        assert_eq!(written(&date(2024), "Date").unwrap(), r#""2024-06-01""#);
        assert!(written(&date(1969), "Nullable(Date)").is_err());
        assert!(written(&date(2200), "Date").is_err());
        assert_eq!(written(&date(1969), "String").unwrap(), r#""1969-06-01""#);
    }

    #[test]
    fn integers_never_wrap_and_epoch_integers_need_a_type() {
        assert_eq!(written(&Value::Int(-5), "Int16").unwrap(), "-5");
        assert!(written(&Value::Int(70_000), "Nullable(Int16)").is_err());
        assert!(written(&Value::Int(-1), "UInt8").is_err());
        assert!(written(&Value::Int(1 << 54), "Float64").is_err());
        assert!(written(&Value::Int(13_693), "Date").is_err());
        assert!(written(&Value::Int(1), "DateTime('UTC')").is_err());
        assert_eq!(
            written(&Value::Int(i64::MAX), "Int64").unwrap(),
            i64::MAX.to_string()
        );
    }

    #[test]
    fn special_floats_and_bytes_keep_their_value() {
        assert_eq!(
            written(&Value::Float(f64::NAN), "Float64").unwrap(),
            r#""nan""#
        );
        assert_eq!(
            written(&Value::Float(f64::NEG_INFINITY), "Nullable(Float64)").unwrap(),
            r#""-inf""#
        );
        assert_eq!(
            written(&Value::Bytes(vec![0xde, 0xad, 0x00, 0xff]), "String").unwrap(),
            r#""dead00ff""#
        );
        assert_eq!(
            written(
                &Value::Array(vec![Value::Int(1), Value::Null, Value::Int(300)]),
                "Array(Nullable(Int16))"
            )
            .unwrap(),
            "[1,null,300]"
        );
        assert!(written(&Value::Array(vec![Value::Int(70_000)]), "Array(Int16)").is_err());
    }
}
