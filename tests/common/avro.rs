//! Avro records as Confluent's serializer writes them
//! (`scripts/testdata/connect_avro.py`, Python `confluent-kafka`), and
//! decoding them through the test registry.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sinkfleet_core::Change;
use sinkfleet_core::debezium::{DecodeOptions, Decoder, Format, Formats, TopicFormats};
use sinkfleet_schema_registry::{RegistryClient, RegistryConfig};
use sinkfleet_testkit::kafka::Record;
use std::io::Write;
use std::process::{Command, Stdio};

pub fn registry_url() -> String {
    std::env::var("SINKFLEET_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:58081".into())
}

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

/// The Python that has Confluent's serializers.
fn serializers_python() -> String {
    if let Ok(python) = std::env::var("SINKFLEET_SERIALIZERS_PYTHON") {
        return python;
    }
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh"))
        .arg("serializers-python")
        .output()
        .expect("scripts/services.sh serializers-python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `records` (JsonConverter envelopes) as Confluent's AvroSerializer
/// writes them for `topic`, registering their schemas. `Err` for a record
/// the serializer refuses (a value that does not fit its schema).
pub fn try_to_avro(topic: &str, records: &[Record]) -> Vec<Result<Record, String>> {
    let json = |bytes: &Option<Vec<u8>>| match bytes {
        Some(b) => serde_json::from_slice::<serde_json::Value>(b).unwrap(),
        None => serde_json::Value::Null,
    };
    let mut input = String::new();
    for r in records {
        let line =
            serde_json::json!({"topic": topic, "key": json(&r.key), "value": json(&r.value)});
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut child = Command::new(serializers_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/testdata/connect_avro.py"
        ))
        .args(["--registry", &registry_url(), "--keep-going"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("connect_avro.py");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "connect_avro.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    writer.join().unwrap().unwrap();
    let bytes = |v: &serde_json::Value| v.as_str().map(|s| BASE64.decode(s).unwrap());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            match v["error"].as_str() {
                Some(e) => Err(e.to_owned()),
                None => Ok(Record {
                    key: bytes(&v["key"]),
                    value: bytes(&v["value"]),
                }),
            }
        })
        .collect()
}

/// [`try_to_avro`] of records that all fit their schemas.
pub fn to_avro(topic: &str, records: &[Record]) -> Vec<Record> {
    try_to_avro(topic, records)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("connect_avro.py: {e}")))
        .collect()
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
