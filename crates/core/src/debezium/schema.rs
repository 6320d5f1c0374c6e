//! Kafka Connect schemas (`schemas.enable=true`) → column types and codecs.

use crate::change::{ColumnSchema, ColumnType, TableSchema};
use crate::error::DecodeError;
use serde_json::Value as Json;
use std::sync::Arc;

/// How a column's JSON value is decoded. Unlike [`ColumnType`] it keeps the
/// wire unit (millis/micros/nanos), which targets do not care about.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Codec {
    Int,
    Float,
    Bool,
    Text,
    Bytes,
    /// Big-endian two's-complement unscaled value, base64, fixed scale.
    Decimal {
        scale: u32,
    },
    /// `{"scale": s, "value": base64}`.
    VariableDecimal,
    /// `io.debezium.data.Bits`: little-endian bytes (bit 0 is the last
    /// character), read as `length` bits.
    Bits {
        length: u32,
    },
    /// Days since 1970-01-01.
    Date,
    TimeMillis,
    TimeMicros,
    TimeNanos,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    ZonedTimestamp,
    ZonedTime,
    Uuid,
    Json,
    Array(Box<Codec>),
    /// No schema: infer from the JSON value.
    Infer,
}

/// A parsed row schema: target-facing types plus wire codecs, by column.
/// Shared (`Arc`) between every record that carries the same schema.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowCodec {
    pub schema: Arc<TableSchema>,
    pub codecs: Vec<Codec>,
}

impl RowCodec {
    /// The codec of `column`, trying schema index `hint` first, and the
    /// hint for the next column. A row lists its columns in schema order,
    /// so the next column is almost always the one after the last; an
    /// undeclared column gets [`Codec::Infer`] and keeps the hint.
    pub fn codec_near(&self, column: &str, hint: usize) -> (usize, &Codec) {
        let columns = &self.schema.columns;
        if columns.get(hint).is_some_and(|c| c.name == column) {
            return (hint + 1, &self.codecs[hint]);
        }
        match columns.iter().position(|c| c.name == column) {
            Some(i) => (i + 1, &self.codecs[i]),
            None => (hint, &Codec::Infer),
        }
    }
}

/// Parses a struct schema (`{"type":"struct","fields":[...]}`).
pub(crate) fn parse_struct(schema: &Json, path: &str) -> Result<RowCodec, DecodeError> {
    let fields = schema
        .get("fields")
        .and_then(Json::as_array)
        .ok_or_else(|| DecodeError::Field {
            path: format!("{path}.fields"),
            message: "expected an array of fields".into(),
        })?;
    let mut schema = TableSchema::default();
    let mut codecs = Vec::with_capacity(fields.len());
    for field in fields {
        let name = field
            .get("field")
            .and_then(Json::as_str)
            .ok_or_else(|| DecodeError::Field {
                path: format!("{path}.fields[].field"),
                message: "expected a field name".into(),
            })?;
        let (ty, codec) = parse_field_type(field);
        schema.columns.push(ColumnSchema {
            name: name.to_owned(),
            ty,
            optional: field
                .get("optional")
                .and_then(Json::as_bool)
                .unwrap_or(true),
        });
        codecs.push(codec);
    }
    Ok(RowCodec {
        schema: Arc::new(schema),
        codecs,
    })
}

/// The logical type names [`parse_field_type`] knows.
const KNOWN_LOGICAL: [&str; 20] = [
    "io.debezium.time.Interval",
    "io.debezium.data.Bits",
    "org.apache.kafka.connect.data.Decimal",
    "io.debezium.data.VariableScaleDecimal",
    "io.debezium.time.Date",
    "org.apache.kafka.connect.data.Date",
    "io.debezium.time.Time",
    "org.apache.kafka.connect.data.Time",
    "io.debezium.time.MicroTime",
    "io.debezium.time.NanoTime",
    "io.debezium.time.Timestamp",
    "org.apache.kafka.connect.data.Timestamp",
    "io.debezium.time.MicroTimestamp",
    "io.debezium.time.NanoTimestamp",
    "io.debezium.time.ZonedTimestamp",
    "io.debezium.time.ZonedTime",
    "io.debezium.data.Uuid",
    "io.debezium.data.Json",
    "io.debezium.data.Enum",
    "io.debezium.data.EnumSet",
];

/// True for a logical type name with its own decoding.
pub(crate) fn is_known_logical(name: &str) -> bool {
    KNOWN_LOGICAL.contains(&name)
}

/// Maps one field schema to its column type and codec. Unknown logical
/// names fall back to the physical type, so a new Debezium logical type
/// degrades to its carrier instead of failing the record.
pub(crate) fn parse_field_type(field: &Json) -> (ColumnType, Codec) {
    let physical = field.get("type").and_then(Json::as_str).unwrap_or("");
    let logical = field.get("name").and_then(Json::as_str).unwrap_or("");
    match logical {
        "org.apache.kafka.connect.data.Decimal" => {
            let params = field.get("parameters");
            let param = |k: &str| {
                params.and_then(|p| p.get(k)).and_then(|v| {
                    v.as_str()
                        .and_then(|s| s.parse::<u32>().ok())
                        .or(v.as_u64().map(|n| n as u32))
                })
            };
            let scale = param("scale").unwrap_or(0);
            let precision = param("connect.decimal.precision");
            return (
                ColumnType::Decimal { precision, scale },
                Codec::Decimal { scale },
            );
        }
        "io.debezium.data.VariableScaleDecimal" => {
            return (ColumnType::VariableDecimal, Codec::VariableDecimal);
        }
        "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => {
            return (ColumnType::Date, Codec::Date);
        }
        "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => {
            return (ColumnType::Time, Codec::TimeMillis);
        }
        "io.debezium.time.MicroTime" => return (ColumnType::Time, Codec::TimeMicros),
        "io.debezium.time.NanoTime" => return (ColumnType::Time, Codec::TimeNanos),
        "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => {
            return (ColumnType::Timestamp, Codec::TimestampMillis);
        }
        "io.debezium.time.MicroTimestamp" => {
            return (ColumnType::Timestamp, Codec::TimestampMicros);
        }
        "io.debezium.time.NanoTimestamp" => return (ColumnType::Timestamp, Codec::TimestampNanos),
        "io.debezium.time.ZonedTimestamp" => {
            return (ColumnType::TimestampTz, Codec::ZonedTimestamp);
        }
        "io.debezium.time.ZonedTime" => return (ColumnType::TimeTz, Codec::ZonedTime),
        "io.debezium.data.Uuid" => return (ColumnType::Uuid, Codec::Uuid),
        "io.debezium.data.Json" => return (ColumnType::Json, Codec::Json),
        "io.debezium.data.Enum" | "io.debezium.data.EnumSet" => {
            return (ColumnType::Enum, Codec::Text);
        }
        "io.debezium.time.Interval" => return (ColumnType::Interval, Codec::Text),
        "io.debezium.data.Bits" => {
            let length = field
                .get("parameters")
                .and_then(|p| p.get("length"))
                .and_then(|v| {
                    v.as_str()
                        .and_then(|s| s.parse::<u32>().ok())
                        .or(v.as_u64().map(|n| n as u32))
                });
            if let Some(length) = length {
                return (ColumnType::Bits { length }, Codec::Bits { length });
            }
        }
        _ => {}
    }
    match physical {
        "int8" | "int16" => (ColumnType::Int16, Codec::Int),
        "int32" => (ColumnType::Int32, Codec::Int),
        "int64" => (ColumnType::Int64, Codec::Int),
        // JsonConverter writes Connect's FLOAT32/FLOAT64 as `float`/`double`.
        "float" | "float32" => (ColumnType::Float32, Codec::Float),
        "double" | "float64" => (ColumnType::Float64, Codec::Float),
        "boolean" => (ColumnType::Bool, Codec::Bool),
        "bytes" => (ColumnType::Bytes, Codec::Bytes),
        "array" => {
            let (ty, codec) = field
                .get("items")
                .map(parse_field_type)
                .unwrap_or((ColumnType::Inferred, Codec::Infer));
            (
                ColumnType::Array(Box::new(ty)),
                Codec::Array(Box::new(codec)),
            )
        }
        // Nested structs and maps have no column mapping: keep them as JSON.
        "struct" | "map" => (ColumnType::Json, Codec::Json),
        "string" => (ColumnType::Text, Codec::Text),
        _ => (ColumnType::Inferred, Codec::Infer),
    }
}
