//! JSON Schema records as Confluent's serializer writes them
//! (`scripts/testdata/connect_json_schema.py`, Python `confluent-kafka`),
//! and decoding them through the test registry.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use sinkfleet_core::debezium::{DecodeOptions, Decoder, Format, Formats, TopicFormats};
use sinkfleet_testkit::kafka::Record;

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// See [`sinkfleet_testkit::json_schema::try_to_json_schema`].
pub fn try_to_json_schema(topic: &str, records: &[Record]) -> Vec<Result<Record, String>> {
    sinkfleet_testkit::json_schema::try_to_json_schema(root(), topic, records)
}

/// See [`sinkfleet_testkit::json_schema::to_json_schema`].
pub fn to_json_schema(topic: &str, records: &[Record]) -> Vec<Record> {
    sinkfleet_testkit::json_schema::to_json_schema(root(), topic, records)
}

/// See [`sinkfleet_testkit::json_schema::to_json_schema_numeric`].
pub fn to_json_schema_numeric(topic: &str, records: &[Record]) -> Vec<Record> {
    sinkfleet_testkit::json_schema::to_json_schema_numeric(root(), topic, records)
}

/// `topic`'s keys and values are JSON Schema.
pub fn json_schema_formats(topic: &str) -> TopicFormats {
    TopicFormats::new([(
        topic.to_owned(),
        Formats {
            key: Format::JsonSchema,
            value: Format::JsonSchema,
        },
    )])
    .unwrap()
}

/// A decoder of `topic` in JSON Schema (with `opts` otherwise) that holds
/// the schemas `records` name, fetched from the registry.
pub async fn decoder_for(topic: &str, records: &[Record], opts: DecodeOptions) -> Decoder {
    let client = super::avro::registry();
    let mut decoder = Decoder::new(DecodeOptions {
        formats: json_schema_formats(topic),
        ..opts
    });
    for r in records {
        for id in decoder.missing_schemas(topic, r.key.as_deref(), r.value.as_deref()) {
            decoder.add_schema(id, client.schema(id).await.unwrap());
        }
    }
    decoder
}
