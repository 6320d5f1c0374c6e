//! Rows as ClickHouse's `JSONEachRow` input: the body of an `INSERT`.
//!
//! Values are written for the target column's type; exact digits stay
//! exact (a Decimal is a JSON number only for a Decimal column). The
//! server parses them and refuses what the column cannot hold, which the
//! sink turns into a dead-lettered record, never a rounded value.

use crate::client::ServerFeatures;
use crate::config::ClickHouseSinkConfig;
use crate::encode_version;
use crate::schema::quote;
use sinkfleet_core::{Change, Value};
use std::fmt::Write;

/// The quoted column list and the `JSONEachRow` body inserting `changes`
/// into a table with `table_columns` (name, type): the data columns some
/// change carries, then the version and the deleted flag.
pub(crate) fn insert_body(
    table_columns: &[(String, String)],
    changes: &[Change],
    cfg: &ClickHouseSinkConfig,
    features: &ServerFeatures,
) -> (Vec<String>, String) {
    let column_type = |name: &str| {
        table_columns
            .iter()
            .find(|(n, _)| n == name)
            .map_or("String", |(_, t)| t.as_str())
    };
    let mut columns: Vec<&str> = Vec::new();
    for (n, _) in table_columns {
        if *n == cfg.version_column || *n == cfg.deleted_column {
            continue;
        }
        if changes
            .iter()
            .any(|c| c.row.as_ref().is_some_and(|r| r.contains(n)) || c.key.contains(n))
        {
            columns.push(n);
        }
    }
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
            write_value(&mut body, value, column_type(n));
        }
        if !first {
            body.push(',');
        }
        let deleted = u8::from(!change.op.is_upsert());
        let _ = write!(
            body,
            "{}:{},{}:{}}}",
            serde_json::Value::String(cfg.version_column.clone()),
            quote_number(
                &encode_version(change.version, features),
                features.uint128()
            ),
            serde_json::Value::String(cfg.deleted_column.clone()),
            deleted
        );
        body.push('\n');
    }
    let mut names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    names.push(quote(&cfg.version_column));
    names.push(quote(&cfg.deleted_column));
    (names, body)
}

fn quote_number(n: &str, quoted: bool) -> String {
    if quoted {
        format!("\"{n}\"")
    } else {
        n.to_owned()
    }
}

/// Writes one value of JSONEachRow for a column of type `ch_type`.
pub(crate) fn write_value(out: &mut String, value: &Value, ch_type: &str) {
    let string = |out: &mut String, s: &str| {
        let _ = write!(out, "{}", serde_json::Value::String(s.to_owned()));
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::Float(_) => out.push_str("null"),
        // Exact digits: a JSON number for Decimal columns, text otherwise.
        Value::Decimal(d) if ch_type.contains("Decimal") => out.push_str(d),
        Value::Decimal(d) => string(out, d),
        Value::Text(s) | Value::Uuid(s) | Value::TimeTz(s) => string(out, s),
        Value::Json(s) => string(out, s),
        Value::TimestampTz(s) => string(out, s.replace('T', " ").trim_end_matches('Z')),
        Value::Bytes(b) => string(out, &String::from_utf8_lossy(b)),
        Value::Date(d) => string(out, &d.to_string()),
        Value::Time(t) => string(out, &t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) if ch_type.contains("DateTime64") => {
            string(out, &t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
        }
        Value::Timestamp(t) => string(out, &t.format("%Y-%m-%d %H:%M:%S").to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, ch_type);
            }
            out.push(']');
        }
    }
}
