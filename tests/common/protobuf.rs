//! Protobuf records as Confluent's serializer writes them
//! (`scripts/testdata/connect_protobuf.py`, Python `confluent-kafka`), and
//! decoding them through the test registry.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use sinkfleet_core::debezium::{DecodeOptions, Decoder, Format, Formats, TopicFormats};
use sinkfleet_testkit::kafka::Record;

pub use sinkfleet_testkit::protobuf::Nullables;

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// See [`sinkfleet_testkit::protobuf::try_to_protobuf`].
pub fn try_to_protobuf(
    topic: &str,
    records: &[Record],
    nullables: Nullables,
) -> Vec<Result<Record, String>> {
    sinkfleet_testkit::protobuf::try_to_protobuf(root(), topic, records, nullables)
}

/// See [`sinkfleet_testkit::protobuf::to_protobuf`].
pub fn to_protobuf(topic: &str, records: &[Record], nullables: Nullables) -> Vec<Record> {
    sinkfleet_testkit::protobuf::to_protobuf(root(), topic, records, nullables)
}

/// `topic`'s keys and values are Protobuf.
pub fn protobuf_formats(topic: &str) -> TopicFormats {
    TopicFormats::new([(
        topic.to_owned(),
        Formats {
            key: Format::Protobuf,
            value: Format::Protobuf,
        },
    )])
    .unwrap()
}

/// A decoder of `topic` in Protobuf (with `opts` otherwise) that holds the
/// schemas `records` name, fetched from the registry.
pub async fn decoder_for(topic: &str, records: &[Record], opts: DecodeOptions) -> Decoder {
    let client = super::avro::registry();
    let mut decoder = Decoder::new(DecodeOptions {
        formats: protobuf_formats(topic),
        ..opts
    });
    for r in records {
        for id in decoder.missing_schemas(topic, r.key.as_deref(), r.value.as_deref()) {
            decoder.add_schema(id, client.schema(id).await.unwrap());
        }
    }
    decoder
}
