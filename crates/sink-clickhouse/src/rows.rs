//! Rows as ClickHouse's `JSONEachRow` input: the body of an `INSERT`.
//!
//! Values are written for the target column's type; exact digits stay
//! exact (a Decimal is a JSON number only for a Decimal column). The
//! server parses them and refuses what the column cannot hold, which the
//! sink turns into a dead-lettered record, never a rounded value.

use crate::client::ServerFeatures;
use crate::config::ClickHouseSinkConfig;
use crate::ident::quote;
use crate::version_key;
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use sinkfleet_core::table::history::{OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN};
use sinkfleet_core::value::push_padded;
use sinkfleet_core::{Change, Row, SinkError, Value};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// The quoted column list and the `JSONEachRow` body inserting `changes`
/// into a table with `table_columns` (name, type): the data columns some
/// change carries, then the version and the deleted flag (and, into a
/// history table, the op, source commit time and unchanged columns).
/// A value a column cannot hold exactly fails the whole body, naming the
/// column (the runtime isolates the record and dead-letters it).
///
/// This runs for every record: each column's `"name":` is escaped once
/// per body, and a value is looked up first where it was in the row
/// before (rows of one table carry their columns in the same order).
pub(crate) fn insert_body(
    table_columns: &[(String, String)],
    changes: &[&Change],
    cfg: &ClickHouseSinkConfig,
    features: &ServerFeatures,
) -> Result<(Vec<String>, String), SinkError> {
    let mut columns: Vec<BodyColumn<'_>> = carried_columns(table_columns, changes, cfg)
        .into_iter()
        .map(|i| {
            let (name, ch_type) = &table_columns[i];
            BodyColumn {
                name,
                field: field(name),
                ch_type,
                row_at: 0,
                key_at: 0,
            }
        })
        .collect();
    // Tables on servers without UInt128 keep the version's minor part apart.
    let minor =
        Some(cfg.minor_version_column()).filter(|m| table_columns.iter().any(|(n, _)| n == m));
    // A history table: every change also names its op, source commit time
    // and unchanged columns.
    let history = table_columns.iter().any(|(n, _)| n == OP_COLUMN);
    let version_field = field(&cfg.version_column);
    let minor_field = minor.as_deref().map(field);
    let deleted_field = field(&cfg.deleted_column);
    let history_fields = [OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN].map(field);
    let mut body = String::with_capacity(changes.len() * 128);
    for change in changes {
        body.push('{');
        let mut first = true;
        for column in &mut columns {
            let value = change
                .row
                .as_ref()
                .and_then(|r| find(r, column.name, &mut column.row_at))
                .or_else(|| find(&change.key, column.name, &mut column.key_at));
            let Some(value) = value else { continue };
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(&column.field);
            write_value(&mut body, value, column.ch_type)
                .map_err(|e| SinkError::apply(format!("column `{}`: {e}", column.name)))?;
        }
        if !first {
            body.push(',');
        }
        body.push_str(&version_field);
        let mut digits = itoa::Buffer::new();
        let version = digits.format(version_key(change.version, features));
        if features.uint128() {
            // Quoted: a UInt128 is past what JSON readers take as a number.
            body.push('"');
            body.push_str(version);
            body.push('"');
        } else {
            body.push_str(version);
        }
        body.push(',');
        if let Some(minor_field) = &minor_field {
            body.push_str(minor_field);
            body.push_str(digits.format(change.version.minor));
            body.push(',');
        }
        body.push_str(&deleted_field);
        body.push(if change.op.is_upsert() { '0' } else { '1' });
        if history {
            let [op, source_ts, unchanged] = &history_fields;
            body.push(',');
            body.push_str(op);
            push_json_str(&mut body, change.op.code());
            body.push(',');
            body.push_str(source_ts);
            match change.source_ts_ms {
                Some(t) => body.push_str(digits.format(t)),
                None => body.push_str("null"),
            }
            body.push(',');
            body.push_str(unchanged);
            body.push('[');
            for (n, column) in change.unchanged.iter().enumerate() {
                if n > 0 {
                    body.push(',');
                }
                push_json_str(&mut body, column);
            }
            body.push(']');
        }
        body.push_str("}\n");
    }
    let mut names: Vec<String> = columns.iter().map(|c| quote(c.name)).collect();
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

/// A data column of an insert body.
struct BodyColumn<'a> {
    name: &'a str,
    /// `"name":`, escaped.
    field: String,
    ch_type: &'a str,
    /// Where the column was last found in a change's row, and in its key.
    row_at: usize,
    key_at: usize,
}

/// The indexes of `table_columns` that some change carries (in its row or
/// its key), bookkeeping columns left out. Each change's names are looked
/// up once, and not at all when they are the previous change's (the
/// decoder hands the rows of a table the same shared names).
fn carried_columns(
    table_columns: &[(String, String)],
    changes: &[&Change],
    cfg: &ClickHouseSinkConfig,
) -> Vec<usize> {
    let position: HashMap<&str, usize> = table_columns
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| !cfg.is_bookkeeping(n))
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let mut carried = vec![false; table_columns.len()];
    let mut previous: Option<&Change> = None;
    for &change in changes {
        if previous.is_some_and(|p| same_names(p, change)) {
            continue;
        }
        previous = Some(change);
        let names = change
            .row
            .iter()
            .flat_map(|r| r.columns.iter())
            .chain(change.key.columns.iter());
        for (name, _) in names {
            if let Some(&i) = position.get(&**name) {
                carried[i] = true;
            }
        }
    }
    (0..table_columns.len()).filter(|&i| carried[i]).collect()
}

/// Whether two changes carry the same shared column names in the same
/// order (then they carry the same columns).
fn same_names(a: &Change, b: &Change) -> bool {
    let same = |x: &Row, y: &Row| {
        x.columns.len() == y.columns.len()
            && x.columns
                .iter()
                .zip(&y.columns)
                .all(|((m, _), (n, _))| Arc::ptr_eq(m, n))
    };
    same(&a.key, &b.key)
        && match (&a.row, &b.row) {
            (Some(x), Some(y)) => same(x, y),
            (None, None) => true,
            _ => false,
        }
}

/// The value of column `name` in `row`, looked up first at `*at` (where
/// it was in the previous row); remembers where it was found.
fn find<'r>(row: &'r Row, name: &str, at: &mut usize) -> Option<&'r Value> {
    if let Some((n, v)) = row.columns.get(*at)
        && **n == *name
    {
        return Some(v);
    }
    let i = row.columns.iter().position(|(n, _)| **n == *name)?;
    *at = i;
    Some(&row.columns[i].1)
}

/// Lowercase hex digits, for `\u00XX` escapes and `bytea` as hex.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// `"name":`, escaped.
fn field(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 3);
    push_json_str(&mut out, name);
    out.push(':');
    out
}

/// Appends `s` as a JSON string, escaped exactly as `serde_json` escapes
/// it (bodies stay byte for byte what they were when values went through
/// `serde_json`), without allocating.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Writes one value of JSONEachRow for a column of type `ch_type`: exactly
/// as the source had it, or an error saying why the column cannot hold it
/// (the record is then dead-lettered). ClickHouse itself would not refuse
/// these: it wraps an out-of-range date to `0000-00-00` and an oversized
/// integer around, and the old `DateTime` has no sub-second digits.
pub(crate) fn write_value(out: &mut String, value: &Value, ch_type: &str) -> Result<(), String> {
    let string = push_json_str;
    let base = base_type(ch_type);
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Value::Int(i) => {
            check_int(*i, base)?;
            out.push_str(itoa::Buffer::new().format(*i));
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
        // `2023-11-14T22:51:08.006804Z` as `2023-11-14 22:51:08.006804`.
        Value::TimestampTz(s) => {
            if base.starts_with("DateTime") {
                let t = sinkfleet_core::value::parse_zoned_timestamp(s)?.naive_utc();
                check_timestamp(&t, base)?;
            }
            let utc = s.replace('T', " ");
            string(out, utc.trim_end_matches('Z'));
        }
        // Bytes as lowercase hex (`unhex()` reads them back): a JSON string
        // carries text, and arbitrary bytes are not text.
        Value::Bytes(b) => {
            out.reserve(b.len() * 2 + 2);
            out.push('"');
            for byte in b {
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
            out.push('"');
        }
        Value::Date(d) => {
            if base == "Date" && !(DATE_MIN..=DATE_MAX).contains(d) {
                return Err(format!(
                    "{d} is outside ClickHouse's Date range ({DATE_MIN} to {DATE_MAX})"
                ));
            }
            // Digits, `-` and `+`: nothing to escape.
            let _ = write!(out, "\"{d}\"");
        }
        Value::Time(t) => string(out, &t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) => {
            check_timestamp(t, base)?;
            // A `DateTime` (seconds) column reads no fraction at all.
            let seconds = base.starts_with("DateTime(") || base == "DateTime";
            let digits = if seconds {
                0
            } else if base.starts_with("DateTime64") || t.nanosecond().is_multiple_of(1_000) {
                6
            } else {
                9
            };
            if push_timestamp(out, t, digits) {
                return Ok(());
            }
            let text = match digits {
                0 => t.format("%Y-%m-%d %H:%M:%S"),
                6 => t.format("%Y-%m-%d %H:%M:%S%.6f"),
                _ => t.format("%Y-%m-%d %H:%M:%S%.9f"),
            };
            string(out, &text.to_string());
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

/// Appends `"YYYY-MM-DD HH:MM:SS"` and `digits` (0, 6 or 9) fraction
/// digits, as chrono's `%Y-%m-%d %H:%M:%S%.6f` (or `%.9f`) writes it,
/// without parsing that format per value. Returns false, writing nothing,
/// where chrono's output takes another shape (a year outside 0 to 9999, a
/// leap second): the caller formats those with chrono.
fn push_timestamp(out: &mut String, t: &NaiveDateTime, digits: u32) -> bool {
    let nanos = t.nanosecond();
    let Ok(year) = u64::try_from(t.year()) else {
        return false;
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return false;
    }
    out.push('"');
    push_padded(out, year, 4);
    for (separator, part) in [
        ('-', t.month()),
        ('-', t.day()),
        (' ', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        out.push(separator);
        push_padded(out, u64::from(part), 2);
    }
    match digits {
        0 => {}
        6 => {
            out.push('.');
            push_padded(out, u64::from(nanos / 1_000), 6);
        }
        _ => {
            out.push('.');
            push_padded(out, u64::from(nanos), 9);
        }
    }
    out.push('"');
    true
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

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
        every_ascii.push_str("é€😀\u{2028}");
        for text in [every_ascii.as_str(), "", "plain", "a\"b\\c", "\u{7f}"] {
            let mut out = String::new();
            push_json_str(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn timestamps_are_written_as_chrono_formats_them() {
        let at = |y, nanos| {
            NaiveDate::from_ymd_opt(y, 2, 3)
                .and_then(|d| d.and_hms_nano_opt(4, 5, 6, nanos))
                .expect("valid")
        };
        let cases = [
            at(2023, 0),
            at(2023, 6_000),
            at(1, 123_456_789),
            at(9999, 999_999_999),
            at(0, 1_000),
        ];
        for t in cases {
            for (digits, format) in [
                (0, "%Y-%m-%d %H:%M:%S"),
                (6, "%Y-%m-%d %H:%M:%S%.6f"),
                (9, "%Y-%m-%d %H:%M:%S%.9f"),
            ] {
                let mut out = String::new();
                assert!(push_timestamp(&mut out, &t, digits));
                assert_eq!(out, format!("\"{}\"", t.format(format)), "{t} {digits}");
            }
        }
        // Chrono writes these in other shapes: they are left to it.
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("valid");
        for t in [at(-1, 0), at(10_000, 0), leap] {
            let mut out = String::new();
            assert!(!push_timestamp(&mut out, &t, 6) && out.is_empty(), "{t}");
        }
        assert_eq!(
            written(&Value::Timestamp(at(12_345, 0)), "String").unwrap(),
            format!("\"{}\"", at(12_345, 0).format("%Y-%m-%d %H:%M:%S%.6f"))
        );
    }
}
