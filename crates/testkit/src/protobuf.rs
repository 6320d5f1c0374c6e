//! Debezium's JsonConverter envelopes as Confluent's ProtobufSerializer
//! writes them: `scripts/testdata/connect_protobuf.py` (Python
//! `confluent-kafka`, the schema `ProtobufData` makes), registering the
//! schemas in a registry (see [`crate::avro::registry_url`]).

use crate::avro::serialize;
use crate::kafka::Record;
use std::path::Path;

/// The converter's nullable handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nullables {
    /// The default: a null scalar is not written.
    Default,
    /// `optional.for.nullables=true`: optional fields are proto3 `optional`.
    Optional,
}

/// `records` (JsonConverter envelopes) in Protobuf for `topic`; `Err` for a
/// record the serializer refuses. `root` is the repository.
pub fn try_to_protobuf(
    root: &Path,
    topic: &str,
    records: &[Record],
    nullables: Nullables,
) -> Vec<Result<Record, String>> {
    let args: &[&str] = match nullables {
        Nullables::Default => &[],
        Nullables::Optional => &["--optional-for-nullables"],
    };
    serialize(root, "connect_protobuf.py", args, topic, records)
}

/// [`try_to_protobuf`] of records that all fit their schemas.
pub fn to_protobuf(
    root: &Path,
    topic: &str,
    records: &[Record],
    nullables: Nullables,
) -> Vec<Record> {
    try_to_protobuf(root, topic, records, nullables)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("connect_protobuf.py: {e}")))
        .collect()
}
