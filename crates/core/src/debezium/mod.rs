//! Decoding of Debezium PostgreSQL change events (JSON, with or without the
//! `{"schema", "payload"}` envelope), Debezium 0.10 through 3.x.
//!
//! Shape differences tolerated: `source.sequence` absent (before ~1.4) or a
//! JSON string holding an array; `snapshot` a string (`"true"`, `"last"`,
//! ...) or a boolean; `ts_us`/`ts_ns` present or not. A record with a null
//! value is a Kafka tombstone (log compaction marker) and decodes to `None`.

mod avro;
mod declared;
mod flat_avro;
mod flat_json;
pub mod flattened;
pub mod format;
mod json_decimal;
mod json_schema;
mod json_schema_check;
mod prefix;
mod protobuf;
mod registry;
mod schema;
pub mod transaction;
mod values;
mod wire;

pub use declared::DeclaredColumns;
pub use flattened::{FlatDeletes, FlattenedOptions, RecordShape};
pub use format::{Format, Formats, TopicFormats};
pub use registry::RegistrySchema;
pub use values::{UNAVAILABLE_VALUE, unscaled_to_decimal};

use crate::change::{Change, Op, Row, TableId};
use crate::error::DecodeError;
use crate::version::{Version, VersionSource};
use schema::RowCodec;
use serde_json::Value as Json;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use wire::Event;

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
    /// Key and value formats by topic (JSON where no rule matches).
    pub formats: TopicFormats,
    /// Debezium envelopes, or rows flattened by `ExtractNewRecordState`.
    pub record: RecordShape,
}

impl DecodeOptions {
    /// Runs once per record: without `key_columns` (the usual case) no
    /// table name is built to look up.
    fn key_columns_for(&self, table: &TableId) -> Option<&[String]> {
        if self.key_columns.is_empty() {
            return None;
        }
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
    /// Recent value and key envelope prefixes (see [`prefix`]).
    value_prefixes: prefix::Prefixes,
    key_prefixes: prefix::Prefixes,
    /// Column names of recent value and key rows (see [`wire::RecentNames`]).
    value_names: wire::RecentNames,
    key_names: wire::RecentNames,
    /// Registry schemas by id (see [`registry`]).
    schemas: HashMap<u32, registry::Held>,
    /// Formats by topic, resolved once per topic.
    topic_formats: HashMap<String, Formats>,
    /// Stripped schemas of flattened records (see [`flattened`]).
    flattener: flattened::Flattener,
    /// `opts.record`'s flattened options, shared with the `&mut self`
    /// calls that decode a flattened record.
    flat: Option<Arc<flattened::FlattenedOptions>>,
}

impl Decoder {
    /// Creates a decoder.
    pub fn new(opts: DecodeOptions) -> Self {
        let flat = match &opts.record {
            RecordShape::Debezium => None,
            RecordShape::Flattened(flat) => Some(Arc::new(flat.clone())),
        };
        Decoder {
            flat,
            opts,
            cache: HashMap::new(),
            declared: HashMap::new(),
            value_prefixes: prefix::Prefixes::default(),
            key_prefixes: prefix::Prefixes::default(),
            value_names: wire::RecentNames::default(),
            key_names: wire::RecentNames::default(),
            schemas: HashMap::new(),
            topic_formats: HashMap::new(),
            flattener: flattened::Flattener::default(),
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

    /// The codec of a schema-less event: its table's declared columns
    /// (and inference for the rest), or inference throughout.
    fn schemaless_codec(&mut self, event: &Event<'_>) -> Result<Arc<RowCodec>, DecodeError> {
        if self.opts.columns.is_empty() {
            return Ok(Arc::new(RowCodec::default()));
        }
        let (Some(schema), Some(table)) = (
            event.source.as_ref().and_then(|s| s.schema.as_deref()),
            event.source.as_ref().and_then(|s| s.table.as_deref()),
        ) else {
            // Decoding reports the missing field.
            return Ok(Arc::new(RowCodec::default()));
        };
        let Some(row) = [event.after, event.before]
            .into_iter()
            .flatten()
            .find(|raw| raw.get().starts_with('{'))
        else {
            return Ok(Arc::new(RowCodec::default()));
        };
        let names = wire::column_names(row).map_err(|e| json_err("value", e))?;
        let table = format!("{schema}.{table}");
        let mut shape = table.clone();
        for name in &names {
            shape.push('\u{0}');
            shape.push_str(name);
        }
        if let Some(codec) = self.declared.get(shape.as_str()) {
            return Ok(Arc::clone(codec));
        }
        let Some(codec) = self
            .opts
            .columns
            .row_codec(&table, names.iter().map(String::as_str))
        else {
            return Ok(Arc::new(RowCodec::default()));
        };
        let codec = Arc::new(codec);
        if self.declared.len() >= SCHEMA_CACHE_CAPACITY {
            self.declared.clear();
        }
        self.declared.insert(shape.into(), Arc::clone(&codec));
        Ok(codec)
    }

    /// The raw row and codec of a Kafka key: an envelope's payload with its
    /// schema's codec, or the bare key with none (the caller then uses the
    /// value schema's codec for the same columns).
    fn key_row<'k>(
        &mut self,
        raw: &'k [u8],
    ) -> Result<(&'k RawValue, Option<Arc<RowCodec>>), DecodeError> {
        if let Some((codec, rest)) = self.key_prefixes.find(raw)
            && let Some(payload) = prefix::payload::<&RawValue>(rest)
        {
            return Ok((payload, Some(codec)));
        }
        let envelope: wire::KeyEnvelope<'k> = match raw.first() {
            Some(b'{') => serde_json::from_slice(raw).map_err(|e| json_err("key", e))?,
            _ => wire::KeyEnvelope {
                schema: None,
                payload: None,
            },
        };
        match (envelope.schema, envelope.payload) {
            (Some(schema), Some(payload)) if schema.get() != "null" => {
                let codec = self.codec(schema.get(), "key.schema", whole)?;
                self.key_prefixes.remember(raw, schema.get(), &codec);
                Ok((payload, Some(codec)))
            }
            (Some(_), Some(payload)) => Ok((payload, None)),
            _ => Ok((
                serde_json::from_slice(raw).map_err(|e| json_err("key", e))?,
                None,
            )),
        }
    }

    /// The key row of a Kafka key in `key_format`; a missing or empty key
    /// is refused. `row_codec` types a schema-less JSON key's columns.
    fn kafka_key(
        &mut self,
        kafka_key: Option<&[u8]>,
        key_format: Format,
        row_codec: &RowCodec,
        table: &TableId,
    ) -> Result<Row, DecodeError> {
        let raw = kafka_key.ok_or_else(|| DecodeError::MissingKey(table.to_string()))?;
        let key = match key_format {
            Format::Json => self.json_key(raw, row_codec)?,
            Format::Avro => self.avro_key(raw)?,
            Format::Protobuf => self.protobuf_key(raw)?,
            Format::JsonSchema => self.json_schema_key(raw)?,
        };
        if key.columns.is_empty() {
            return Err(DecodeError::MissingKey(table.to_string()));
        }
        Ok(key)
    }

    /// A JSON Kafka key as a row. Schema-less keys take the value schema's
    /// codec (`row_codec`) for the same column.
    fn json_key(&mut self, raw: &[u8], row_codec: &RowCodec) -> Result<Row, DecodeError> {
        let (raw, key_codec) = self.key_row(raw)?;
        let codec = key_codec.as_deref().unwrap_or(row_codec);
        wire::decode_row(raw, codec, "key", None, &mut self.key_names)
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
        if let Some(flat) = &self.flat {
            let flat = Arc::clone(flat);
            return self.decode_flat(key, value, offset, &flat);
        }
        self.decode_with_key_format(key, value, offset, Format::Json)
    }

    /// [`Decoder::decode`] of a JSON value whose key is in `key_format`.
    fn decode_with_key_format(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
        key_format: Format,
    ) -> Result<Option<Change>, DecodeError> {
        let Some(value) = value else { return Ok(None) };
        if let Some((codec, rest)) = self.value_prefixes.find(value)
            && let Some(event) = prefix::payload::<Event<'_>>(rest)
        {
            return self.decode_event(key, key_format, &event, &codec, offset);
        }
        let top: Event<'_> = serde_json::from_slice(value).map_err(|e| json_err("value", e))?;
        let (event, row_codec) = match (top.schema, top.payload) {
            (Some(_), Some(payload)) if payload.get() == "null" => return Ok(None),
            (Some(schema), Some(payload)) => {
                if !payload.get().starts_with('{') {
                    return Err(field("payload", "expected an object"));
                }
                let event: Event<'_> =
                    serde_json::from_str(payload.get()).map_err(|e| json_err("value", e))?;
                if event.op.is_none() {
                    return Err(not_an_event("payload", payload.get().as_bytes()));
                }
                // Its schema has no row to build a codec from.
                if event.op.map(RawValue::get) == Some(r#""m""#) {
                    return Err(DecodeError::LogicalMessage);
                }
                let codec = match schema.get() {
                    "null" => self.schemaless_codec(&event)?,
                    schema => {
                        let codec = self.codec(schema, "schema.after", value_row_schema)?;
                        self.value_prefixes.remember(value, schema, &codec);
                        codec
                    }
                };
                (event, codec)
            }
            // A bare payload (schemas.enable=false).
            _ => {
                if top.op.is_none() {
                    return Err(not_an_event("value", value));
                }
                let codec = self.schemaless_codec(&top)?;
                (top, codec)
            }
        };
        self.decode_event(key, key_format, &event, &row_codec, offset)
    }

    /// Turns a parsed event into a change.
    fn decode_event(
        &mut self,
        kafka_key: Option<&[u8]>,
        key_format: Format,
        event: &Event<'_>,
        row_codec: &Arc<RowCodec>,
        offset: i64,
    ) -> Result<Option<Change>, DecodeError> {
        let op = match event.op.map(RawValue::get) {
            None | Some("null") => return Err(field("op", "missing")),
            Some(raw) => match serde_json::from_str::<&str>(raw) {
                Ok(op) => op_of(op)?,
                // A string with escapes cannot be borrowed.
                Err(_) => match serde_json::from_str::<String>(raw) {
                    Ok(op) => op_of(&op)?,
                    Err(_) => return Err(field("op", &format!("expected a string, found {raw}"))),
                },
            },
        };
        let source = event
            .source
            .as_ref()
            .ok_or_else(|| field("source", "missing"))?;
        let name = |text: &Option<std::borrow::Cow<'_, str>>, path: &str| {
            text.as_deref()
                .map(str::to_owned)
                .ok_or_else(|| field(path, "missing"))
        };
        let table = TableId {
            schema: name(&source.schema, "source.schema")?,
            table: name(&source.table, "source.table")?,
        };

        // Columns carrying Debezium's unchanged-TOAST placeholder.
        let mut unchanged = Vec::new();
        let after = match event.after {
            Some(raw) if op.is_upsert() && raw.get().starts_with('{') => Some(wire::decode_row(
                raw,
                row_codec,
                "after",
                Some(&mut unchanged),
                &mut self.value_names,
            )?),
            _ if op.is_upsert() => {
                return Err(field("after", "an insert/update/read needs an `after` row"));
            }
            _ => None,
        };
        let key = if op == Op::Truncate {
            Row::default()
        } else if let Some(columns) = self.opts.key_columns_for(&table) {
            key_from_columns(
                columns,
                image(&after, event, row_codec, &mut self.value_names)?.as_ref(),
            )?
        } else {
            self.kafka_key(kafka_key, key_format, row_codec, &table)?
        };

        let version = match &self.opts.version {
            VersionSource::DebeziumLsn => lsn_version(source)?,
            VersionSource::KafkaOffset if op != Op::Truncate => {
                Version::new(offset.max(0) as u64, 0)
            }
            VersionSource::Field { field: name } if op != Op::Truncate => field_version(
                image(&after, event, row_codec, &mut self.value_names)?.get(name),
                name,
            )?,
            // Truncate spans every key: only an LSN orders it against rows
            // of other partitions. Anything else would truncate unordered.
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
                .ts_ms
                .as_ref()
                .and_then(Json::as_i64)
                .or_else(|| event.ts_ms.as_ref().and_then(Json::as_i64)),
            transaction: event
                .transaction
                .as_ref()
                .and_then(|t| t.id.as_deref())
                .map(Arc::from),
        }))
    }
}

/// The row image keys and field versions are read from: `after`, or
/// `before` for deletes.
fn image<'r>(
    after: &'r Option<Row>,
    event: &Event<'_>,
    codec: &RowCodec,
    names: &mut wire::RecentNames,
) -> Result<Cow<'r, Row>, DecodeError> {
    if let Some(row) = after {
        return Ok(Cow::Borrowed(row));
    }
    let before = event
        .before
        .filter(|raw| raw.get() != "null")
        .ok_or_else(|| field("before", "expected an object"))?;
    Ok(Cow::Owned(wire::decode_row(
        before, codec, "before", None, names,
    )?))
}

/// An `op` code.
fn op_of(op: &str) -> Result<Op, DecodeError> {
    Ok(match op {
        "c" => Op::Create,
        "r" => Op::Read,
        "u" => Op::Update,
        "d" => Op::Delete,
        "t" => Op::Truncate,
        "m" => return Err(DecodeError::LogicalMessage),
        other => return Err(DecodeError::UnknownOp(other.to_owned())),
    })
}

/// The key from configured key columns of the row image.
fn key_from_columns(columns: &[String], image: &Row) -> Result<Row, DecodeError> {
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
    Ok(key)
}

fn json_err(part: &'static str, e: serde_json::Error) -> DecodeError {
    DecodeError::Json {
        part,
        message: e.to_string(),
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

/// The refusal of a JSON record that is no change event, naming its
/// top-level keys (an operator sees what arrived, not a missing `op`).
fn not_an_event(part: &'static str, raw: &[u8]) -> DecodeError {
    const SHOWN: usize = 12;
    let found = match serde_json::from_slice::<serde_json::Map<String, Json>>(raw) {
        Ok(object) if object.is_empty() => "an empty object".to_owned(),
        Ok(object) => {
            let mut keys: Vec<String> = object
                .keys()
                .take(SHOWN)
                .map(|k| format!("`{k}`"))
                .collect();
            if object.len() > SHOWN {
                keys.push(format!("and {} more", object.len() - SHOWN));
            }
            let mut found = format!("its top-level keys are {}", keys.join(", "));
            if object.contains_key("payload") && !object.contains_key("schema") {
                found.push_str(" (a `payload` without `schema` is no JsonConverter envelope)");
            }
            found
        }
        Err(_) => "not a JSON object".to_owned(),
    };
    DecodeError::NotAnEvent { part, found }
}

fn field(path: &str, message: &str) -> DecodeError {
    DecodeError::Field {
        path: path.to_owned(),
        message: message.to_owned(),
    }
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
fn lsn_version(source: &wire::Source<'_>) -> Result<Version, DecodeError> {
    if let Some((commit, change)) = wire::fast_lsn_version(source) {
        return Ok(Version::new(commit, change));
    }
    // The slow way, for the reason: the fields as JSON values.
    let json = |raw: Option<&serde_json::value::RawValue>| {
        raw.and_then(|r| serde_json::from_str::<Json>(r.get()).ok())
    };
    let (sequence, lsn) = (json(source.sequence), json(source.lsn));
    lsn_pair(
        sequence.as_ref(),
        lsn.as_ref(),
        "source.sequence",
        "source.lsn",
    )?
    .ok_or_else(|| field("source.lsn", "missing: cannot version this event"))
}

/// The version from a sequence (`[commit_lsn, lsn]`, as an array or a
/// JSON string holding one) where present, else `(lsn, lsn)`; `None` when
/// neither is there (the caller says what to add). Shared with flattened
/// records ([`flattened`]), whose `__source_sequence` and `__lsn` are the
/// same fields under other names: a flattened record must order exactly
/// as its unflattened twin. `sequence_path` and `lsn_path` name the fields
/// in errors.
pub(super) fn lsn_pair(
    sequence: Option<&Json>,
    lsn: Option<&Json>,
    sequence_path: &str,
    lsn_path: &str,
) -> Result<Option<Version>, DecodeError> {
    let sequence = match sequence {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(serde_json::from_str::<Json>(s).map_err(|_| {
            field(
                sequence_path,
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
                    sequence_path,
                    &format!("expected a pair [commit_lsn, lsn], found {other}"),
                ));
            }
        };
        let commit = match &parts[0] {
            Json::Null => 0,
            v => lsn_of(v).ok_or_else(|| {
                field(
                    &format!("{sequence_path}[0]"),
                    &format!("expected a commit LSN or null, found {v}"),
                )
            })?,
        };
        let change = lsn_of(&parts[1]).ok_or_else(|| {
            field(
                &format!("{sequence_path}[1]"),
                &format!("expected an LSN, found {}", parts[1]),
            )
        })?;
        return Ok(Some(Version::new(commit, change)));
    }
    match lsn {
        None | Some(Json::Null) => Ok(None),
        Some(v) => {
            let lsn =
                lsn_of(v).ok_or_else(|| field(lsn_path, &format!("expected an LSN, found {v}")))?;
            Ok(Some(Version::new(lsn, lsn)))
        }
    }
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
        Some(V::TimestampTz(s)) => crate::value::parse_zoned_timestamp(s)
            .map_err(|e| field(&path, &e))?
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

#[cfg(test)]
mod avro_tests;

#[cfg(test)]
mod json_schema_tests;
