//! Avro records as Confluent's serializer writes them
//! (`scripts/testdata/connect_avro.py`, Python `confluent-kafka`), and
//! decoding them through the test registry.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use sinkfleet_core::Change;
use sinkfleet_core::debezium::{DecodeOptions, Decoder, Format, Formats, TopicFormats};
use sinkfleet_schema_registry::{RegistryClient, RegistryConfig};
use sinkfleet_testkit::kafka::Record;

pub use sinkfleet_testkit::avro::registry_url;

pub fn registry() -> RegistryClient {
    RegistryClient::new(&RegistryConfig {
        url: registry_url(),
        username: None,
        password: None,
        ca_file: None,
        timeout_ms: 5_000,
        attempts: 3,
    })
    .unwrap()
}

pub use sinkfleet_testkit::services::RegistryTls as TlsRegistry;

/// The TLS listener of the test registry; `None` (and a note) outside CI
/// when the scripts did not export it, a failure in CI.
pub fn tls_registry() -> Option<TlsRegistry> {
    let found = sinkfleet_testkit::services::registry_tls();
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "the registry's TLS settings are not set"
        );
        eprintln!("SINKFLEET_REGISTRY_TLS_URL etc. not set: run scripts/services.sh start");
    }
    found
}

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// See [`sinkfleet_testkit::avro::try_to_avro`].
pub fn try_to_avro(topic: &str, records: &[Record]) -> Vec<Result<Record, String>> {
    sinkfleet_testkit::avro::try_to_avro(root(), topic, records)
}

/// See [`sinkfleet_testkit::avro::to_avro`].
pub fn to_avro(topic: &str, records: &[Record]) -> Vec<Record> {
    sinkfleet_testkit::avro::to_avro(root(), topic, records)
}

/// `topic`'s keys and values are Avro.
pub fn avro_formats(topic: &str) -> TopicFormats {
    TopicFormats::new([(
        topic.to_owned(),
        Formats {
            key: Format::Avro,
            value: Format::Avro,
        },
    )])
    .unwrap()
}

/// A decoder of `topic` in Avro (with `opts` otherwise) that holds the
/// schemas `records` name, fetched from the registry.
pub async fn decoder_for(topic: &str, records: &[Record], opts: DecodeOptions) -> Decoder {
    let client = registry();
    let mut decoder = Decoder::new(DecodeOptions {
        formats: avro_formats(topic),
        ..opts
    });
    for r in records {
        for id in decoder.missing_schemas(topic, r.key.as_deref(), r.value.as_deref()) {
            decoder.add_schema(id, client.schema(id).await.unwrap());
        }
    }
    decoder
}

/// Decodes one Avro record of `topic`.
pub fn decode(decoder: &mut Decoder, topic: &str, r: &Record) -> Result<Option<Change>, String> {
    decoder
        .decode_record(topic, r.key.as_deref(), r.value.as_deref(), 0)
        .map_err(|e| e.to_string())
}
