//! Debezium's JsonConverter envelopes as Confluent's JSONSerializer writes
//! them: `scripts/testdata/connect_json_schema.py` (Python
//! `confluent-kafka`, the code users run), registering the schemas in a
//! registry.

use crate::avro::serialize;
use crate::kafka::Record;
use std::path::Path;

/// `records` (JsonConverter envelopes) in JSON Schema for `topic`; `Err`
/// for a record the serializer refuses (a value that does not match its
/// schema). `root` is the repository (where `scripts/` is).
pub fn try_to_json_schema(
    root: &Path,
    topic: &str,
    records: &[Record],
) -> Vec<Result<Record, String>> {
    serialize(root, "connect_json_schema.py", &[], topic, records)
}

/// [`to_json_schema`] with the converter's `decimal.format=NUMERIC`
/// (Decimals as JSON numbers).
pub fn to_json_schema_numeric(root: &Path, topic: &str, records: &[Record]) -> Vec<Record> {
    serialize(
        root,
        "connect_json_schema.py",
        &["--decimal-format", "NUMERIC"],
        topic,
        records,
    )
    .into_iter()
    .map(|r| r.unwrap_or_else(|e| panic!("connect_json_schema.py: {e}")))
    .collect()
}

/// [`try_to_json_schema`] of records that all match their schemas.
pub fn to_json_schema(root: &Path, topic: &str, records: &[Record]) -> Vec<Record> {
    try_to_json_schema(root, topic, records)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("connect_json_schema.py: {e}")))
        .collect()
}
