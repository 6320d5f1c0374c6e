//! The decoder's side of a Schema Registry: the schemas it holds by id,
//! and the decoding of registry-framed records.
//!
//! Fetching is the caller's (it is I/O, and an unreachable registry is an
//! outage to wait out, not bad data): [`Decoder::missing_schemas`] names
//! the ids a record needs that the decoder does not hold, and
//! [`Decoder::add_schema`] hands one over. A schema never changes under its
//! id, so what is held is kept.

use super::avro::{self, AvroSchema};
use super::format::{Format, Formats};
use super::json_schema::JsonSchema;
use super::protobuf::{self, ProtobufSchema};
use super::schema::RowCodec;
use super::{Decoder, field, field_version, key_from_columns, lsn_pair};
use crate::change::{Change, Op, Row, TableId};
use crate::error::DecodeError;
use crate::version::{Version, VersionSource};
use apache_avro::types::Value as Avro;
use serde_json::Value as Json;
use std::sync::Arc;

/// What the registry answered for one schema id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrySchema {
    /// The schema: its type (`AVRO`, `PROTOBUF`, `JSON`) and text.
    Found {
        /// `schemaType`, `AVRO` when the registry omits it.
        schema_type: String,
        /// The schema's text.
        text: String,
    },
    /// The registry says no schema has this id.
    NotFound,
}

/// A held schema: parsed for its `schemaType`, or why records naming it
/// are refused.
#[derive(Debug)]
pub(super) enum Held {
    Avro(Arc<AvroSchema>),
    Protobuf(Arc<ProtobufSchema>),
    JsonSchema(Arc<JsonSchema>),
    Refused(String),
}

impl Held {
    /// The `schemaType` of the schema.
    pub(super) fn schema_type(&self) -> &'static str {
        match self {
            Held::Avro(_) => "AVRO",
            Held::Protobuf(_) => "PROTOBUF",
            Held::JsonSchema(_) => "JSON",
            Held::Refused(_) => "refused",
        }
    }
}

impl Decoder {
    /// The formats of `topic` (cached: topics are few, rules may be regexes).
    fn formats(&mut self, topic: &str) -> Formats {
        if let Some(f) = self.topic_formats.get(topic) {
            return *f;
        }
        let f = self.opts.formats.of(topic);
        self.topic_formats.insert(topic.to_owned(), f);
        f
    }

    /// The registry schema ids a record of `topic` names that this decoder
    /// does not hold yet (at most one for the key, one for the value). A
    /// record that is not framed needs none: decoding refuses it.
    pub fn missing_schemas(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u32> {
        let formats = self.formats(topic);
        let mut missing = Vec::new();
        for (format, record) in [(formats.key, key), (formats.value, value)] {
            if format.uses_registry()
                && let Some(record) = record
                && let Ok((id, _)) = avro::frame("value", record)
                && !self.schemas.contains_key(&id)
                && !missing.contains(&id)
            {
                missing.push(id);
            }
        }
        missing
    }

    /// Holds what the registry answered for `id`, parsed for its
    /// `schemaType` (a topic's format is checked against it when a record
    /// names it).
    pub fn add_schema(&mut self, id: u32, answer: RegistrySchema) {
        let held = match answer {
            RegistrySchema::NotFound => Held::Refused(format!(
                "schema id {id} does not exist in the registry (it answered 404)"
            )),
            RegistrySchema::Found { schema_type, text } => match schema_type.as_str() {
                "AVRO" => match AvroSchema::parse(&text) {
                    Ok(schema) => Held::Avro(Arc::new(schema)),
                    Err(e) => {
                        Held::Refused(format!("schema id {id} is no usable Avro schema: {e}"))
                    }
                },
                "PROTOBUF" => match ProtobufSchema::parse(&text) {
                    Ok(schema) => Held::Protobuf(Arc::new(schema)),
                    Err(e) => {
                        Held::Refused(format!("schema id {id} is no usable Protobuf schema: {e}"))
                    }
                },
                "JSON" => match JsonSchema::parse(&text) {
                    Ok(schema) => Held::JsonSchema(Arc::new(schema)),
                    Err(e) => Held::Refused(format!(
                        "schema id {id} is no JSON Schema a Kafka Connect schema maps from: {e}"
                    )),
                },
                other => Held::Refused(format!(
                    "schema id {id} has schemaType {other}, which no format reads"
                )),
            },
        };
        self.schemas.insert(id, held);
    }

    /// Decodes one Kafka record of `topic` in its configured formats. The
    /// registry schemas it names must be held (see
    /// [`Decoder::missing_schemas`]); one that is not is refused.
    pub fn decode_record(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
    ) -> Result<Option<Change>, DecodeError> {
        let formats = self.formats(topic);
        match (formats.value, self.flat.clone()) {
            // Flattened records are JSON or Avro (keys too): checked at start.
            (Format::Json, Some(flat)) => self.decode_flat(key, value, offset, &flat),
            (Format::Json, None) => self.decode_with_key_format(key, value, offset, formats.key),
            (Format::Avro, Some(flat)) => {
                self.decode_avro_flat(key, value, offset, formats.key, &flat)
            }
            (Format::Avro, None) => self.decode_avro(key, value, offset, formats.key),
            (Format::Protobuf, _) => self.decode_protobuf(key, value, offset, formats.key),
            (Format::JsonSchema, _) => self.decode_json_schema(key, value, offset, formats.key),
        }
    }

    /// The held schema of a framed record, checked against the format
    /// the topic is read in.
    pub(super) fn held(
        &self,
        part: &'static str,
        format: Format,
        record: &[u8],
    ) -> Result<(u32, &Held), DecodeError> {
        let (id, _) = avro::frame(part, record)?;
        let refused = |message| DecodeError::UnusableSchema { part, id, message };
        match self.schemas.get(&id) {
            Some(Held::Refused(reason)) => Err(refused(reason.clone())),
            Some(held) if held.schema_type() != format.schema_type() => Err(refused(format!(
                "schema id {id} is a {} schema; the topic's {part} format is {}",
                held.schema_type(),
                format.name()
            ))),
            Some(held) => Ok((id, held)),
            None => Err(refused(format!(
                "schema id {id} was not fetched from the registry"
            ))),
        }
    }

    /// The held Avro schema of a framed record.
    pub(super) fn avro_held(
        &self,
        part: &'static str,
        record: &[u8],
    ) -> Result<(u32, Arc<AvroSchema>), DecodeError> {
        match self.held(part, Format::Avro, record)? {
            (id, Held::Avro(schema)) => Ok((id, Arc::clone(schema))),
            (id, other) => Err(DecodeError::UnusableSchema {
                part,
                id,
                message: format!("schema id {id} is a {} schema", other.schema_type()),
            }),
        }
    }

    /// An Avro key as a row.
    pub(super) fn avro_key(&self, raw: &[u8]) -> Result<Row, DecodeError> {
        let (id, schema) = self.avro_held("key", raw)?;
        let names = schema.names();
        let (_, body) = avro::frame("key", raw)?;
        let fields = schema.datum("key", id, body)?;
        avro::row(Avro::Record(fields), schema.row_codec(), names, "key", None)
    }

    /// A Debezium envelope in Avro.
    fn decode_avro(
        &mut self,
        kafka_key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
        key_format: Format,
    ) -> Result<Option<Change>, DecodeError> {
        // A Kafka tombstone carries no change.
        let Some(value) = value else { return Ok(None) };
        let (id, schema) = self.avro_held("value", value)?;
        let names = schema.names();
        if !schema.is_envelope() {
            return Err(DecodeError::UnusableSchema {
                part: "value",
                id,
                message: "the schema is no Debezium change event envelope \
                          (fields `op`, `source`, `before`, `after`)"
                    .into(),
            });
        }
        let (_, body) = avro::frame("value", value)?;
        let fields = schema.datum("value", id, body)?;
        let codec = Arc::clone(schema.row_codec());
        self.envelope_change(kafka_key, fields, &codec, names, offset, key_format)
    }

    /// The change of a Debezium envelope's top-level fields, decoded from
    /// Avro, or from Protobuf into the same values.
    fn envelope_change(
        &mut self,
        kafka_key: Option<&[u8]>,
        mut fields: Vec<(String, Avro)>,
        codec: &Arc<RowCodec>,
        names: &[Arc<str>],
        offset: i64,
        key_format: Format,
    ) -> Result<Option<Change>, DecodeError> {
        let op = match avro::take(&mut fields, "op") {
            Some(Avro::String(op)) => super::op_of(&op)?,
            Some(other) => return Err(field("op", &format!("expected a string, found {other:?}"))),
            None => return Err(field("op", "missing")),
        };
        let Some(Avro::Record(mut source)) = avro::take(&mut fields, "source") else {
            return Err(field("source", "missing"));
        };
        let text = |source: &mut Vec<(String, Avro)>, name: &str| match avro::take(source, name) {
            Some(Avro::String(s)) => Ok(s),
            _ => Err(field(&format!("source.{name}"), "missing")),
        };
        let table = TableId {
            schema: text(&mut source, "schema")?,
            table: text(&mut source, "table")?,
        };
        let mut unchanged = Vec::new();
        let after = match avro::take(&mut fields, "after") {
            Some(after) if op.is_upsert() => Some(avro::row(
                after,
                codec,
                names,
                "after",
                Some(&mut unchanged),
            )?),
            _ if op.is_upsert() => {
                return Err(field("after", "an insert/update/read needs an `after` row"));
            }
            _ => None,
        };
        // The image keys and field versions are read from on a delete.
        let before = match (&after, avro::take(&mut fields, "before")) {
            (None, Some(before)) => Some(avro::row(before, codec, names, "before", None)?),
            _ => None,
        };
        let image = || {
            after
                .as_ref()
                .or(before.as_ref())
                .ok_or_else(|| field("before", "expected a record"))
        };

        let key = if op == Op::Truncate {
            Row::default()
        } else if let Some(columns) = self.opts.key_columns_for(&table) {
            key_from_columns(columns, image()?)?
        } else {
            self.kafka_key(kafka_key, key_format, codec, &table)?
        };

        let version = match &self.opts.version {
            VersionSource::DebeziumLsn => {
                let sequence = avro::take(&mut source, "sequence").map(json_of);
                let lsn = avro::take(&mut source, "lsn").map(json_of);
                lsn_pair(
                    sequence.as_ref(),
                    lsn.as_ref(),
                    "source.sequence",
                    "source.lsn",
                )?
                .ok_or_else(|| field("source.lsn", "missing: cannot version this event"))?
            }
            VersionSource::KafkaOffset if op != Op::Truncate => {
                Version::new(offset.max(0) as u64, 0)
            }
            VersionSource::Field { field: name } if op != Op::Truncate => {
                field_version(image()?.get(name), name)?
            }
            _ => {
                return Err(field(
                    "op",
                    "truncate events need `version.source: debezium_lsn`",
                ));
            }
        };
        let long = |v: Option<Avro>| match v {
            Some(Avro::Long(ms)) => Some(ms),
            _ => None,
        };
        let source_ts_ms =
            long(avro::take(&mut source, "ts_ms")).or(long(avro::take(&mut fields, "ts_ms")));
        let transaction = match avro::take(&mut fields, "transaction") {
            Some(Avro::Record(mut t)) => match avro::take(&mut t, "id") {
                Some(Avro::String(id)) => Some(Arc::from(id.as_str())),
                _ => None,
            },
            _ => None,
        };
        Ok(Some(Change {
            table,
            op,
            key,
            row: after,
            version,
            schema: (!codec.schema.columns.is_empty()).then(|| Arc::clone(&codec.schema)),
            unchanged,
            source_ts_ms,
            transaction,
        }))
    }
}

impl Decoder {
    /// The held Protobuf schema of a framed record, its message indexes
    /// and body.
    fn protobuf_held<'r>(
        &self,
        part: &'static str,
        record: &'r [u8],
    ) -> Result<(u32, Arc<protobuf::Message>, &'r [u8]), DecodeError> {
        let (id, indexes, body) = protobuf::frame(part, record)?;
        let refused = |message| DecodeError::UnusableSchema { part, id, message };
        match self.held(part, Format::Protobuf, record)? {
            (_, Held::Protobuf(schema)) => {
                let message = schema.message(&indexes).map_err(refused)?;
                Ok((id, message, body))
            }
            (_, other) => Err(refused(format!(
                "schema id {id} is a {} schema",
                other.schema_type()
            ))),
        }
    }

    /// A Protobuf key as a row.
    pub(super) fn protobuf_key(&self, raw: &[u8]) -> Result<Row, DecodeError> {
        let (id, message, body) = self.protobuf_held("key", raw)?;
        let fields = message.datum("key", id, body)?;
        avro::row(
            Avro::Record(fields),
            message.row_codec(),
            message.names(),
            "key",
            None,
        )
    }

    /// A Debezium envelope in Protobuf.
    fn decode_protobuf(
        &mut self,
        kafka_key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
        key_format: Format,
    ) -> Result<Option<Change>, DecodeError> {
        // A Kafka tombstone carries no change.
        let Some(value) = value else { return Ok(None) };
        let (id, message, body) = self.protobuf_held("value", value)?;
        if !message.is_envelope() {
            return Err(DecodeError::UnusableSchema {
                part: "value",
                id,
                message: "the schema is no Debezium change event envelope \
                          (fields `op`, `source`, `before`, `after`)"
                    .into(),
            });
        }
        let mut fields = message.datum("value", id, body)?;
        // proto3 writes no empty string: an absent `source` string (say
        // `sequence`) reads as "", which Debezium never sends for one.
        for (name, v) in &mut fields {
            if name == "source"
                && let Avro::Record(source) = v
            {
                for (_, s) in source.iter_mut() {
                    if matches!(s, Avro::String(t) if t.is_empty()) {
                        *s = Avro::Null;
                    }
                }
            }
        }
        let declared = !self.opts.columns.is_empty();
        let codec = match declared.then(|| source_table(&fields)).flatten() {
            Some(table) => message.row_codec_for(&table, &self.opts.columns),
            // Nothing declared, or no table (decoding reports it).
            _ => Arc::clone(message.row_codec()),
        };
        self.envelope_change(
            kafka_key,
            fields,
            &codec,
            message.names(),
            offset,
            key_format,
        )
    }
}

/// `schema.table` of an envelope's `source`.
fn source_table(fields: &[(String, Avro)]) -> Option<String> {
    let source = fields.iter().find_map(|(n, v)| match v {
        Avro::Record(source) if n == "source" => Some(source),
        _ => None,
    })?;
    let text = |name: &str| {
        source.iter().find_map(|(n, v)| match v {
            Avro::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    };
    Some(format!("{}.{}", text("schema")?, text("table")?))
}

/// A `source` field's value as JSON, for the version's parser (the same
/// one, with the same refusals, as for JSON events).
fn json_of(v: Avro) -> Json {
    match v {
        Avro::String(s) => Json::String(s),
        Avro::Long(i) => Json::from(i),
        Avro::Int(i) => Json::from(i),
        other => Json::String(format!("{other:?}")),
    }
}
