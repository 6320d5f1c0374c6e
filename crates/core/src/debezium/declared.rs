//! Declared column types for schema-less events (`decode.columns`).
//!
//! With `value.converter.schemas.enable=false` an event says nothing about
//! its types: a `date` arrives as a day count, a timestamp as an epoch
//! integer, `bytea` as base64 text. Every sink would have to guess, and a
//! guess is a silent reinterpretation. Declaring the Debezium encoding of
//! such columns once, in the decoder, makes a schema-less event decode
//! exactly as if it had carried its schema: every sink then sees the same
//! typed values and the same declared column types.
//!
//! Only schema-less events use declarations; an event that carries its
//! schema is described by it.

use super::schema::{Codec, RowCodec, parse_field_type};
use crate::change::{ColumnSchema, ColumnType, TableSchema};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Declared `(column type, wire codec)` per column, per source table
/// (`schema.table`, or `*` for every table without its own entry).
#[derive(Debug, Clone, Default)]
pub struct DeclaredColumns {
    tables: HashMap<String, HashMap<String, (ColumnType, Codec)>>,
}

impl DeclaredColumns {
    /// Parses `table → column → type name`. Errors name the entry
    /// (`"public.orders".created_at: unknown type "timestmp"`), so a typo
    /// stops the process at start instead of decoding a column wrongly.
    ///
    /// Type names: the Connect/Debezium encodings as the connector emits
    /// them. Short names `int16`, `int32`, `int64`, `float32`, `float64`,
    /// `boolean`, `string`, `bytes`, `json`, `uuid`, `enum`, `date`,
    /// `time_millis`, `time_micros`, `time_nanos`, `timestamp_millis`,
    /// `timestamp_micros`, `timestamp_nanos`, `zoned_timestamp`,
    /// `zoned_time`, `interval` (ISO 8601), `bits(N)`, `decimal(P,S)` (Connect `Decimal`, base64 or
    /// `decimal.format=NUMERIC`), `variable_decimal`; or a logical name
    /// such as `io.debezium.time.MicroTimestamp`. A `[]` suffix declares an
    /// array of that type.
    pub fn parse(
        tables: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<DeclaredColumns, String> {
        let mut out = DeclaredColumns::default();
        for (table, columns) in tables {
            let mut parsed = HashMap::new();
            for (column, name) in columns {
                let field = connect_field(name.trim()).ok_or_else(|| {
                    format!("{table:?}.{column}: unknown type {name:?} (see docs/types.md)")
                })?;
                parsed.insert(column.clone(), parse_field_type(&field));
            }
            out.tables.insert(table.clone(), parsed);
        }
        Ok(out)
    }

    /// True when nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The row codec for a schema-less row of `table` with `columns` (in
    /// the row's order): declared columns decode with their declared
    /// codec, the others are inferred from their JSON values. `None` when
    /// the table declares nothing.
    pub(crate) fn row_codec<'a>(
        &self,
        table: &str,
        columns: impl Iterator<Item = &'a str>,
    ) -> Option<RowCodec> {
        let declared = self.tables.get(table).or_else(|| self.tables.get("*"))?;
        let mut schema = TableSchema::default();
        let mut codecs = Vec::new();
        for name in columns {
            let (ty, codec) = declared
                .get(name)
                .cloned()
                .unwrap_or((ColumnType::Inferred, Codec::Infer));
            schema.columns.push(ColumnSchema {
                name: name.to_owned(),
                ty,
                optional: true,
            });
            codecs.push(codec);
        }
        Some(RowCodec {
            schema: Arc::new(schema),
            codecs,
        })
    }
}

/// A type name → the Connect field schema the connector would have sent.
fn connect_field(name: &str) -> Option<Json> {
    if let Some(item) = name.strip_suffix("[]") {
        return Some(json!({"type": "array", "items": connect_field(item.trim())?}));
    }
    if let Some(params) = name
        .strip_prefix("decimal(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (precision, scale) = params.split_once(',')?;
        let precision: u32 = precision.trim().parse().ok()?;
        let scale: u32 = scale.trim().parse().ok()?;
        if precision == 0 {
            return None;
        }
        return Some(json!({
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()},
        }));
    }
    if let Some(length) = name
        .strip_prefix("bits(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let length: u32 = length.trim().parse().ok().filter(|l| *l > 0)?;
        return Some(json!({
            "type": "bytes",
            "name": "io.debezium.data.Bits",
            "parameters": {"length": length.to_string()},
        }));
    }
    let (physical, logical) = match name {
        "int16" | "int32" | "int64" | "float32" | "float64" | "boolean" | "string" | "bytes" => {
            (name, None)
        }
        "json" => ("string", Some("io.debezium.data.Json")),
        "uuid" => ("string", Some("io.debezium.data.Uuid")),
        "enum" => ("string", Some("io.debezium.data.Enum")),
        "date" => ("int32", Some("io.debezium.time.Date")),
        "time_millis" => ("int32", Some("io.debezium.time.Time")),
        "time_micros" => ("int64", Some("io.debezium.time.MicroTime")),
        "time_nanos" => ("int64", Some("io.debezium.time.NanoTime")),
        "timestamp_millis" => ("int64", Some("io.debezium.time.Timestamp")),
        "timestamp_micros" => ("int64", Some("io.debezium.time.MicroTimestamp")),
        "timestamp_nanos" => ("int64", Some("io.debezium.time.NanoTimestamp")),
        "zoned_timestamp" => ("string", Some("io.debezium.time.ZonedTimestamp")),
        "zoned_time" => ("string", Some("io.debezium.time.ZonedTime")),
        "interval" => ("string", Some("io.debezium.time.Interval")),
        "variable_decimal" => ("struct", Some("io.debezium.data.VariableScaleDecimal")),
        logical if super::schema::is_known_logical(logical) => ("", Some(logical)),
        _ => return None,
    };
    Some(match logical {
        Some(logical) => json!({"type": physical, "name": logical}),
        None => json!({"type": physical}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(pairs: &[(&str, &str)]) -> Result<DeclaredColumns, String> {
        let columns = pairs
            .iter()
            .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
            .collect();
        DeclaredColumns::parse(&BTreeMap::from([("public.t".to_owned(), columns)]))
    }

    #[test]
    fn short_and_logical_names_declare_the_same_types() {
        let d = declared(&[
            ("a", "timestamp_micros"),
            ("b", "io.debezium.time.MicroTimestamp"),
            ("c", "decimal(39, 2)"),
            ("d", "date[]"),
            ("e", "bytes"),
        ])
        .unwrap();
        let codec = d
            .row_codec("public.t", ["a", "b", "c", "d", "e", "f"].into_iter())
            .unwrap();
        let types: Vec<&ColumnType> = codec.schema.columns.iter().map(|c| &c.ty).collect();
        assert_eq!(
            types,
            vec![
                &ColumnType::Timestamp,
                &ColumnType::Timestamp,
                &ColumnType::Decimal {
                    precision: Some(39),
                    scale: 2
                },
                &ColumnType::Array(Box::new(ColumnType::Date)),
                &ColumnType::Bytes,
                &ColumnType::Inferred,
            ]
        );
        assert!(d.row_codec("public.other", ["a"].into_iter()).is_none());
    }

    #[test]
    fn unknown_type_names_are_refused_with_their_entry() {
        for bad in [
            "timestmp",
            "decimal(0,1)",
            "decimal(x,1)",
            "io.debezium.time.Nope",
        ] {
            let err = declared(&[("created_at", bad)]).unwrap_err();
            assert!(
                err.contains("\"public.t\".created_at") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn the_wildcard_applies_to_tables_without_their_own_entry() {
        let d = DeclaredColumns::parse(&BTreeMap::from([(
            "*".to_owned(),
            BTreeMap::from([("day".to_owned(), "date".to_owned())]),
        )]))
        .unwrap();
        let codec = d.row_codec("any.table", ["day"].into_iter()).unwrap();
        assert_eq!(codec.schema.columns[0].ty, ColumnType::Date);
    }
}
