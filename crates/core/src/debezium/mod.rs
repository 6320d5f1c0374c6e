//! Decoding of Debezium PostgreSQL change events (JSON, with or without the
//! `{"schema", "payload"}` envelope), Debezium 0.10 through 3.x.
//!
//! Shape differences tolerated: `source.sequence` absent (before ~1.4) or a
//! JSON string holding an array; `snapshot` a string (`"true"`, `"last"`,
//! ...) or a boolean; `ts_us`/`ts_ns` present or not. A record with a null
//! value is a Kafka tombstone (log compaction marker) and decodes to `None`.

mod declared;
mod schema;
mod values;

pub use declared::DeclaredColumns;
pub use values::{UNAVAILABLE_VALUE, unscaled_to_decimal};

use crate::change::{Change, Op, Row, TableId};
use crate::error::DecodeError;
use crate::version::{Version, VersionSource};
use schema::RowCodec;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// How records of one topic are turned into changes.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Where versions come from.
    pub version: VersionSource,
    /// Key columns per source table (`schema.table`), used instead of the
    /// Kafka key; `*` applies to every table without its own entry.
    pub key_columns: HashMap<String, Vec<String>>,
    /// Declared types of schema-less events' columns (see [`DeclaredColumns`]).
    pub columns: DeclaredColumns,
}

impl DecodeOptions {
    fn key_columns_for(&self, table: &TableId) -> Option<&[String]> {
        self.key_columns
            .get(&table.to_string())
            .or_else(|| self.key_columns.get("*"))
            .map(Vec::as_slice)
    }
}

/// Decodes one Kafka record with a throw-away [`Decoder`] (no schema
/// cache). See [`Decoder::decode`].
pub fn decode(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    offset: i64,
    opts: &DecodeOptions,
) -> Result<Option<Change>, DecodeError> {
    Decoder::new(opts.clone()).decode(key, value, offset)
}

/// Most distinct schemas kept; a stream rarely has more than a few per table.
const SCHEMA_CACHE_CAPACITY: usize = 1024;

/// A decoder with a cache of parsed Connect schemas.
///
/// With `schemas.enable=true` every record repeats its full schema, and
/// parsing it dominated decoding. The cache is keyed by the schema's raw
/// JSON text, so a changed schema (a new column) is simply a new entry.
#[derive(Debug, Default)]
pub struct Decoder {
    opts: DecodeOptions,
    cache: HashMap<Box<str>, Arc<RowCodec>>,
    /// Codecs of schema-less rows with declared columns, by table and
    /// column names: rows of one table mostly share one shape, so they
    /// share one `Arc<TableSchema>` as schema-carrying events do.
    declared: HashMap<Box<str>, Arc<RowCodec>>,
}

/// Top level of a record value, parsed lazily: field name → raw JSON.
type TopLevel<'a> =
    std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue>;

/// `(schema, payload)` of a `{"schema", "payload"}` envelope; `None` for a
/// bare payload. A JSON null stays a raw `null`.
fn envelope<'a>(top: &TopLevel<'a>) -> Option<(&'a str, &'a str)> {
    Some((top.get("schema")?.get(), top.get("payload")?.get()))
}

impl Decoder {
    /// Creates a decoder.
    pub fn new(opts: DecodeOptions) -> Self {
        Decoder {
            opts,
            cache: HashMap::new(),
            declared: HashMap::new(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &DecodeOptions {
        &self.opts
    }

    /// The row codec for a raw schema, parsed once per distinct schema.
    fn codec(
        &mut self,
        raw: &str,
        part: &str,
        pick: fn(&Json) -> Option<&Json>,
    ) -> Result<Arc<RowCodec>, DecodeError> {
        if let Some(codec) = self.cache.get(raw) {
            return Ok(Arc::clone(codec));
        }
        let json: Json = serde_json::from_str(raw).map_err(|e| DecodeError::Json {
            part: "schema",
            message: e.to_string(),
        })?;
        let codec = match pick(&json) {
            Some(s) => Arc::new(schema::parse_struct(s, part)?),
            None => Arc::new(RowCodec::default()),
        };
        if self.cache.len() >= SCHEMA_CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(raw.into(), Arc::clone(&codec));
        Ok(codec)
    }

    /// The codec of a schema-less payload: its table's declared columns
    /// (and inference for the rest), or inference throughout.
    fn schemaless_codec(&mut self, payload: &Json) -> Arc<RowCodec> {
        if self.opts.columns.is_empty() {
            return Arc::new(RowCodec::default());
        }
        let source = &payload["source"];
        let (Some(schema), Some(table)) = (source["schema"].as_str(), source["table"].as_str())
        else {
            // Decoding reports the missing field.
            return Arc::new(RowCodec::default());
        };
        let row = match &payload["after"] {
            Json::Object(row) => row,
            _ => match &payload["before"] {
                Json::Object(row) => row,
                _ => return Arc::new(RowCodec::default()),
            },
        };
        let table = format!("{schema}.{table}");
        let mut shape = table.clone();
        for name in row.keys() {
            shape.push('\u{0}');
            shape.push_str(name);
        }
        if let Some(codec) = self.declared.get(shape.as_str()) {
            return Arc::clone(codec);
        }
        let Some(codec) = self
            .opts
            .columns
            .row_codec(&table, row.keys().map(String::as_str))
        else {
            return Arc::new(RowCodec::default());
        };
        let codec = Arc::new(codec);
        if self.declared.len() >= SCHEMA_CACHE_CAPACITY {
            self.declared.clear();
        }
        self.declared.insert(shape.into(), Arc::clone(&codec));
        codec
    }

    /// Decodes one Kafka record. `offset` is the record's Kafka offset (used
    /// only by [`VersionSource::KafkaOffset`]). Returns `Ok(None)` for a
    /// tombstone (null value), which carries no change.
    pub fn decode(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
    ) -> Result<Option<Change>, DecodeError> {
        let Some(value) = value else { return Ok(None) };
        let json_err = |part, e: serde_json::Error| DecodeError::Json {
            part,
            message: e.to_string(),
        };
        let top: TopLevel<'_> = serde_json::from_slice(value).map_err(|e| json_err("value", e))?;
        let (payload, row_codec): (Json, Arc<RowCodec>) = match envelope(&top) {
            Some((_, "null")) => return Ok(None),
            Some(("null", payload)) => {
                let payload: Json =
                    serde_json::from_str(payload).map_err(|e| json_err("value", e))?;
                let codec = self.schemaless_codec(&payload);
                (payload, codec)
            }
            Some((schema, payload)) => (
                serde_json::from_str(payload).map_err(|e| json_err("value", e))?,
                self.codec(schema, "schema.after", value_row_schema)?,
            ),
            // A bare payload (schemas.enable=false).
            _ => {
                let payload: Json =
                    serde_json::from_slice(value).map_err(|e| json_err("value", e))?;
                let codec = self.schemaless_codec(&payload);
                (payload, codec)
            }
        };
        if payload.is_null() {
            return Ok(None);
        }
        let key_codec = match key {
            Some(raw) if raw.first() == Some(&b'{') => {
                let top: TopLevel<'_> =
                    serde_json::from_slice(raw).map_err(|e| json_err("key", e))?;
                match envelope(&top) {
                    Some((schema, _)) if schema != "null" => {
                        Some(self.codec(schema, "key.schema", whole)?)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        decode_payload(
            key,
            &payload,
            &row_codec,
            key_codec.as_deref(),
            offset,
            &self.opts,
        )
    }
}

/// A key schema is the row struct itself.
fn whole(schema: &Json) -> Option<&Json> {
    Some(schema)
}

/// The `after` (or `before`) struct of an envelope schema.
fn value_row_schema(schema: &Json) -> Option<&Json> {
    let fields = schema.get("fields")?.as_array()?;
    fields
        .iter()
        .find(|f| f.get("field").and_then(Json::as_str) == Some("after"))
        .or_else(|| {
            fields
                .iter()
                .find(|f| f.get("field").and_then(Json::as_str) == Some("before"))
        })
}

fn decode_payload(
    key: Option<&[u8]>,
    payload: &Json,
    row_codec: &RowCodec,
    key_codec: Option<&RowCodec>,
    offset: i64,
    opts: &DecodeOptions,
) -> Result<Option<Change>, DecodeError> {
    let payload = payload
        .as_object()
        .ok_or_else(|| field("payload", "expected an object"))?;

    let op = match payload.get("op").and_then(Json::as_str) {
        Some("c") => Op::Create,
        Some("r") => Op::Read,
        Some("u") => Op::Update,
        Some("d") => Op::Delete,
        Some("t") => Op::Truncate,
        Some(other) => return Err(DecodeError::UnknownOp(other.to_owned())),
        None => return Err(field("op", "missing")),
    };
    let source = payload
        .get("source")
        .ok_or_else(|| field("source", "missing"))?;
    let table = TableId::new(
        source
            .get("schema")
            .and_then(Json::as_str)
            .ok_or_else(|| field("source.schema", "missing"))?,
        source
            .get("table")
            .and_then(Json::as_str)
            .ok_or_else(|| field("source.table", "missing"))?,
    );

    // Columns carrying Debezium's unchanged-TOAST placeholder.
    let mut unchanged = Vec::new();
    let after = match payload.get("after") {
        Some(Json::Object(_)) if op.is_upsert() => Some(decode_row(
            &payload["after"],
            row_codec,
            "after",
            Some(&mut unchanged),
        )?),
        _ if op.is_upsert() => {
            return Err(field("after", "an insert/update/read needs an `after` row"));
        }
        _ => None,
    };

    let key = if op == Op::Truncate {
        Row::default()
    } else {
        decode_key(
            key,
            key_codec,
            payload,
            after.as_ref(),
            row_codec,
            &table,
            opts,
        )?
    };

    let version = match &opts.version {
        VersionSource::DebeziumLsn => lsn_version(source)?,
        VersionSource::KafkaOffset if op != Op::Truncate => Version::new(offset.max(0) as u64, 0),
        VersionSource::Field { field: name } if op != Op::Truncate => {
            let image = match &after {
                Some(row) => row.clone(),
                None => decode_row(
                    payload.get("before").unwrap_or(&Json::Null),
                    row_codec,
                    "before",
                    None,
                )?,
            };
            field_version(image.get(name), name)?
        }
        // Truncate spans every key: only an LSN orders it against rows of
        // other partitions. Anything else would truncate unordered.
        _ => {
            return Err(field(
                "op",
                "truncate events need `version.source: debezium_lsn`",
            ));
        }
    };

    Ok(Some(Change {
        table,
        op,
        key,
        row: after,
        version,
        schema: (!row_codec.schema.columns.is_empty()).then(|| Arc::clone(&row_codec.schema)),
        unchanged,
        source_ts_ms: source
            .get("ts_ms")
            .and_then(Json::as_i64)
            .or_else(|| payload.get("ts_ms").and_then(Json::as_i64)),
    }))
}

fn field(path: &str, message: &str) -> DecodeError {
    DecodeError::Field {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

/// Splits `{"schema": .., "payload": ..}` into (payload, schema); a bare
/// payload has no schema.
fn unwrap_envelope(value: &Json) -> (&Json, Option<&Json>) {
    match value.as_object() {
        Some(obj) if obj.contains_key("payload") && obj.contains_key("schema") => {
            (&obj["payload"], obj.get("schema").filter(|s| !s.is_null()))
        }
        _ => (value, None),
    }
}

/// Decodes a row image. Columns carrying the TOAST placeholder are left out:
/// they are not part of this change (their names go to `unchanged`).
fn decode_row(
    json: &Json,
    codec: &RowCodec,
    part: &str,
    mut unchanged: Option<&mut Vec<String>>,
) -> Result<Row, DecodeError> {
    let obj = json
        .as_object()
        .ok_or_else(|| field(part, "expected an object"))?;
    let mut row = Row {
        columns: Vec::with_capacity(obj.len()),
    };
    for (name, raw) in obj {
        if values::is_unavailable(raw) {
            if let Some(unchanged) = unchanged.as_deref_mut() {
                unchanged.push(name.clone());
            }
            continue;
        }
        let value =
            values::decode(raw, codec.codec(name)).map_err(|message| DecodeError::Field {
                path: format!("{part}.{name}"),
                message,
            })?;
        row.columns.push((name.clone(), value));
    }
    Ok(row)
}

/// The key: configured key columns taken from the row image (`after`, or
/// `before` for deletes) when configured for the table, else the Kafka key.
///
/// With the default replica identity a delete's `before` holds the key and
/// type-default fillers elsewhere; only key columns are ever read from it.
fn decode_key(
    kafka_key: Option<&[u8]>,
    key_codec: Option<&RowCodec>,
    payload: &serde_json::Map<String, Json>,
    after: Option<&Row>,
    row_codec: &RowCodec,
    table: &TableId,
    opts: &DecodeOptions,
) -> Result<Row, DecodeError> {
    if let Some(columns) = opts.key_columns_for(table) {
        let image = match after {
            Some(row) => std::borrow::Cow::Borrowed(row),
            None => std::borrow::Cow::Owned(decode_row(
                payload.get("before").unwrap_or(&Json::Null),
                row_codec,
                "before",
                None,
            )?),
        };
        let mut key = Row::default();
        for column in columns {
            let value = image.get(column).ok_or_else(|| {
                field(
                    &format!("key.{column}"),
                    "configured key column missing from the row",
                )
            })?;
            key.set(column.clone(), value.clone());
        }
        return Ok(key);
    }
    let raw = kafka_key.ok_or_else(|| DecodeError::MissingKey(table.to_string()))?;
    let json: Json = serde_json::from_slice(raw).map_err(|e| DecodeError::Json {
        part: "key",
        message: e.to_string(),
    })?;
    let (payload, _) = unwrap_envelope(&json);
    // Schema-less keys take the value schema's codec for the same column.
    let key = decode_row(payload, key_codec.unwrap_or(row_codec), "key", None)?;
    if key.columns.is_empty() {
        return Err(DecodeError::MissingKey(table.to_string()));
    }
    Ok(key)
}

/// `(commit_lsn, change_lsn)` from `source.sequence` where present, else
/// `(lsn, lsn)`: an event without a sequence (Debezium before ~1.4, or a
/// hand-made one) orders by its LSN alone, and against sequenced events by
/// that LSN as well. The sequence is a JSON string holding an array of two
/// strings; some producers send a real array.
///
/// Exact or refused: a null commit LSN (Debezium sends it before the first
/// commit it has seen, and on snapshot rows) counts as 0, but anything else
/// that is not an LSN, and a sequence that is not a pair, is an error. A
/// guessed version could lose to any other change of the key, or win over
/// newer ones.
fn lsn_version(source: &Json) -> Result<Version, DecodeError> {
    let sequence = match source.get("sequence") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(serde_json::from_str::<Json>(s).map_err(|_| {
            field(
                "source.sequence",
                &format!("expected a JSON array in the string, found {s:?}"),
            )
        })?),
        Some(other) => Some(other.clone()),
    };
    if let Some(sequence) = sequence {
        let parts = match &sequence {
            Json::Array(parts) if parts.len() == 2 => parts,
            other => {
                return Err(field(
                    "source.sequence",
                    &format!("expected a pair [commit_lsn, lsn], found {other}"),
                ));
            }
        };
        let commit = match &parts[0] {
            Json::Null => 0,
            v => lsn_of(v).ok_or_else(|| {
                field(
                    "source.sequence[0]",
                    &format!("expected a commit LSN or null, found {v}"),
                )
            })?,
        };
        let change = lsn_of(&parts[1]).ok_or_else(|| {
            field(
                "source.sequence[1]",
                &format!("expected an LSN, found {}", parts[1]),
            )
        })?;
        return Ok(Version::new(commit, change));
    }
    let lsn = match source.get("lsn") {
        None | Some(Json::Null) => {
            return Err(field("source.lsn", "missing: cannot version this event"));
        }
        Some(v) => {
            lsn_of(v).ok_or_else(|| field("source.lsn", &format!("expected an LSN, found {v}")))?
        }
    };
    Ok(Version::new(lsn, lsn))
}

/// An LSN as Debezium writes it: a decimal string or a JSON integer,
/// within `u64`.
fn lsn_of(v: &Json) -> Option<u64> {
    match v {
        Json::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        Json::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// A version from a configured column: integers, dates and timestamps keep
/// their order.
fn field_version(value: Option<&crate::Value>, name: &str) -> Result<Version, DecodeError> {
    use crate::Value as V;
    let path = format!("version.{name}");
    let micros = match value {
        Some(V::Int(i)) => *i,
        Some(V::Timestamp(t)) => t.and_utc().timestamp_micros(),
        Some(V::Date(d)) => d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or(0),
        Some(V::TimestampTz(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| field(&path, &format!("not an RFC 3339 timestamp: {e}")))?
            .timestamp_micros(),
        Some(V::Decimal(d)) => d
            .parse()
            .map_err(|_| field(&path, "decimal version must be an integer"))?,
        Some(other) => return Err(field(&path, &format!("cannot order by {other:?}"))),
        None => return Err(field(&path, "version column missing from the row image")),
    };
    Ok(Version::from_i64(micros))
}

#[cfg(test)]
mod tests;
