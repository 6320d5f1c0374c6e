//! Kafka Connect's `io.confluent.connect.avro.AvroConverter`, for records
//! the publisher has written in JsonConverter's envelope form
//! (`{"schema", "payload"}`):
//!
//! 1. the Connect schema → the Avro schema Confluent's
//!    `AvroData.fromConnectSchema` makes with default settings (a port of
//!    the schema part of `scripts/testdata/connect_avro.py`, which was
//!    checked against Confluent's serializer);
//! 2. the schema is registered under `<topic>-key` / `<topic>-value`
//!    (TopicNameStrategy), once per (subject, schema text) per process;
//! 3. the payload is written as Avro binary for that schema, framed as
//!    Confluent's wire format: magic byte 0, the schema id (4 bytes, big
//!    endian), the Avro body.
//!
//! Going through the JSON form keeps one source of truth for the events'
//! content: the Avro records carry exactly what the JSON ones would.

use serde_json::{Value, json};
use sinkfleet_schema_registry::RegistryClient;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "io.confluent.connect.avro";
const PRECISION_PARAM: &str = "connect.decimal.precision";
const PRECISION_DEFAULT: i64 = 64;

/// A record the converter cannot write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvroError {
    /// The Connect schema has no Avro (JSON Schema) form, or one Avro
    /// rejects.
    #[error("{format} schema for topic {topic}: {message}")]
    Schema {
        /// `Avro`, `JSON Schema` or `Protobuf`.
        format: &'static str,
        /// The record's topic.
        topic: String,
        /// Why.
        message: String,
    },
    /// The payload does not fit its schema.
    #[error("{format} value for topic {topic}: {message}")]
    Value {
        /// `Avro`, `JSON Schema` or `Protobuf`.
        format: &'static str,
        /// The record's topic.
        topic: String,
        /// Why.
        message: String,
    },
    /// The record is not a JsonConverter envelope (a publisher bug).
    #[error("record for topic {topic} is not a JSON envelope with a schema: {message}")]
    Envelope {
        /// The record's topic.
        topic: String,
        /// Why.
        message: String,
    },
    /// The registry did not give the schema an id: the record is not
    /// produced (the publisher stops before confirming its LSN).
    #[error(transparent)]
    Register(#[from] sinkfleet_schema_registry::RegisterError),
}

mod encode;
pub(crate) mod schema;

pub use encode::write_value;
pub use schema::{avro_schema, java_bytes};

// ------------------------------------------------------------ the converter

/// Which part of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The record key (subject `<topic>-key`).
    Key,
    /// The record value (subject `<topic>-value`).
    Value,
}

/// How long an unreachable registry is waited for, in all, before the
/// publisher stops (unconfirmed: the events are produced again after a
/// restart). The registry client already retries each request.
const REGISTRY_PATIENCE: Duration = Duration::from_secs(120);

/// A schema's registry id and the Connect schema it was made from.
type Registered = (u32, Arc<Value>);

/// Which Schema Registry converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `io.confluent.connect.avro.AvroConverter`.
    Avro,
    /// `io.confluent.connect.json.JsonSchemaConverter` ([`crate::json_schema`]).
    JsonSchema,
    /// `io.confluent.connect.protobuf.ProtobufConverter` ([`crate::protobuf`]).
    Protobuf(crate::protobuf::Options),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Avro => "Avro",
            Kind::JsonSchema => "JSON Schema",
            Kind::Protobuf(_) => "Protobuf",
        }
    }

    /// The registry's `schemaType`.
    fn schema_type(self) -> &'static str {
        match self {
            Kind::Avro => "AVRO",
            Kind::JsonSchema => "JSON",
            Kind::Protobuf(_) => "PROTOBUF",
        }
    }
}

/// AvroConverter (or JsonSchemaConverter, ProtobufConverter) for one part of the records,
/// with its registry.
#[derive(Debug)]
pub struct AvroConverter {
    kind: Kind,
    part: Part,
    registry: RegistryClient,
    /// (subject, Connect schema text as written) → schema id and the
    /// parsed Connect schema.
    ids: Mutex<HashMap<(String, String), Registered>>,
}

impl AvroConverter {
    /// An AvroConverter for `part` through `registry`.
    pub fn new(part: Part, registry: RegistryClient) -> Self {
        Self::of(Kind::Avro, part, registry)
    }

    /// A `kind` converter for `part` through `registry`.
    pub fn of(kind: Kind, part: Part, registry: RegistryClient) -> Self {
        AvroConverter {
            kind,
            part,
            registry,
            ids: Mutex::default(),
        }
    }

    /// `<topic>-key` or `<topic>-value` (TopicNameStrategy).
    fn subject(&self, topic: &str) -> String {
        match self.part {
            Part::Key => format!("{topic}-key"),
            Part::Value => format!("{topic}-value"),
        }
    }

    /// A JsonConverter envelope → a Confluent-framed Avro record.
    pub async fn convert(&self, topic: &str, json_record: &[u8]) -> Result<Vec<u8>, AvroError> {
        /// The schema kept as its text: the cache key, parsed only once.
        #[derive(serde::Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            schema: Option<&'a serde_json::value::RawValue>,
            payload: Value,
        }
        let bad = |message: String| AvroError::Envelope {
            topic: topic.to_owned(),
            message,
        };
        let envelope: Envelope<'_> =
            serde_json::from_slice(json_record).map_err(|e| bad(e.to_string()))?;
        let raw = envelope
            .schema
            .map(|r| r.get())
            .filter(|r| *r != "null")
            .ok_or_else(|| bad("no schema".into()))?;
        let key = (self.subject(topic), raw.to_owned());
        let cached = self.ids.lock().ok().and_then(|ids| ids.get(&key).cloned());
        let (id, schema) = match cached {
            Some(hit) => hit,
            None => {
                let schema: Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
                let text = match self.kind {
                    Kind::Avro => avro_schema(&schema),
                    Kind::JsonSchema => crate::json_schema::json_schema(&schema),
                    Kind::Protobuf(options) => crate::protobuf::proto_schema(&schema, options),
                }
                .map_err(|message| AvroError::Schema {
                    format: self.kind.name(),
                    topic: topic.to_owned(),
                    message,
                })?;
                let id = self.register(&key.0, &text).await?;
                let hit = (id, Arc::new(schema));
                if let Ok(mut ids) = self.ids.lock() {
                    ids.insert(key, hit.clone());
                }
                hit
            }
        };
        let mut out = Vec::with_capacity(json_record.len() / 2 + 5);
        out.push(0);
        out.extend_from_slice(&id.to_be_bytes());
        let written = match self.kind {
            Kind::Avro => write_value(&schema, &envelope.payload, "", &mut out),
            Kind::JsonSchema => crate::json_schema::json_text(&schema, &envelope.payload)
                .map(|text| out.extend_from_slice(text.as_bytes())),
            // Message indexes [0] (the file's first message) are written
            // as the single byte 0.
            Kind::Protobuf(options) => {
                out.push(0);
                crate::protobuf::write_message(&schema, &envelope.payload, options, &mut out)
            }
        };
        written.map_err(|message| AvroError::Value {
            format: self.kind.name(),
            topic: topic.to_owned(),
            message,
        })?;
        Ok(out)
    }

    /// Registers, waiting out an unreachable registry for up to
    /// [`REGISTRY_PATIENCE`]: no record is produced without its id.
    async fn register(&self, subject: &str, text: &str) -> Result<u32, AvroError> {
        let deadline = Instant::now() + REGISTRY_PATIENCE;
        loop {
            match self
                .registry
                .register_typed(subject, text, self.kind.schema_type())
                .await
            {
                Ok(id) => {
                    tracing::info!(subject, id, format = self.kind.name(), "schema registered");
                    return Ok(id);
                }
                Err(e) if e.retryable && Instant::now() < deadline => {
                    tracing::warn!(error = %e, "schema registry unavailable: waiting (nothing is produced meanwhile)");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// What the producer does to each record's key and value bytes (which the
/// publisher writes as JsonConverter envelopes whenever an Avro part or
/// `schemas.enable` asks for a schema).
#[derive(Debug)]
pub enum PartFormat {
    /// JsonConverter: the bytes as written.
    Json,
    /// JsonConverter with `schemas.enable=false` while the other part is
    /// Avro (so the writer puts schemas in): the envelope's payload only.
    JsonPayloadOnly,
    /// AvroConverter, JsonSchemaConverter or ProtobufConverter (the converter's [`Kind`]).
    Avro(AvroConverter),
}

impl PartFormat {
    /// The bytes to produce for `record` on `topic`.
    pub async fn apply(&self, topic: &str, record: &[u8]) -> Result<Vec<u8>, AvroError> {
        match self {
            PartFormat::Json => Ok(record.to_vec()),
            PartFormat::JsonPayloadOnly => {
                let envelope: Value =
                    serde_json::from_slice(record).map_err(|e| AvroError::Envelope {
                        topic: topic.to_owned(),
                        message: e.to_string(),
                    })?;
                let payload = envelope.get("payload").unwrap_or(&Value::Null);
                serde_json::to_vec(payload).map_err(|e| AvroError::Envelope {
                    topic: topic.to_owned(),
                    message: e.to_string(),
                })
            }
            PartFormat::Avro(c) => c.convert(topic, record).await,
        }
    }
}

#[cfg(test)]
mod tests;
