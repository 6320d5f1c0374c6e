//! The Connect schemas of a table's keys and envelopes, as the
//! JsonConverter writes them (`value.converter.schemas.enable`).

use super::TableCodec;
use serde_json::{Value, json};

fn field(codec: &TableCodec, i: usize) -> Option<Value> {
    let column = &codec.columns[i];
    let mut f = column.codec.as_ref()?.schema.clone();
    f["field"] = json!(column.name);
    Some(f)
}

/// `<prefix>.<schema>.<table>.<suffix>`.
fn name(codec: &TableCodec, prefix: &str, suffix: &str) -> String {
    format!("{prefix}.{}.{}.{suffix}", codec.schema, codec.table)
}

/// The key's schema: the key columns' field schemas.
pub fn key(codec: &TableCodec, prefix: &str) -> Value {
    let fields: Vec<Value> = codec.key.iter().filter_map(|&i| field(codec, i)).collect();
    json!({
        "type": "struct", "fields": fields, "optional": false,
        "name": name(codec, prefix, "Key"),
    })
}

fn row(codec: &TableCodec, prefix: &str, field_name: &str) -> Value {
    let fields: Vec<Value> = (0..codec.columns.len())
        .filter_map(|i| {
            let mut f = field(codec, i)?;
            // A mapped column says so in the value's schema (not the key's).
            if let Some(mapper) = &codec.columns[i].mapper {
                let (name, value) = mapper.parameter();
                if !f["parameters"].is_object() {
                    f["parameters"] = json!({});
                }
                f["parameters"][name] = json!(value);
            }
            Some(f)
        })
        .collect();
    json!({
        "type": "struct", "fields": fields, "optional": true,
        "name": name(codec, prefix, "Value"), "field": field_name,
    })
}

/// The values `source.snapshot` takes (Debezium's `SnapshotRecord`).
const SNAPSHOT_VALUES: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

pub(crate) fn plain(t: &str, f: &str, optional: bool) -> Value {
    json!({ "type": t, "optional": optional, "field": f })
}

/// The `source` block's schema (`io.debezium.connector.postgresql.Source`).
pub(crate) fn source() -> Value {
    json!({
        "type": "struct",
        "fields": [
            plain("string", "version", false),
            plain("string", "connector", false),
            plain("string", "name", false),
            plain("int64", "ts_ms", false),
            {
                "type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
                "parameters": { "allowed": SNAPSHOT_VALUES }, "default": "false", "field": "snapshot"
            },
            plain("string", "db", false),
            plain("string", "sequence", true),
            plain("int64", "ts_us", true),
            plain("int64", "ts_ns", true),
            plain("string", "schema", false),
            plain("string", "table", false),
            plain("int64", "txId", true),
            plain("int64", "lsn", true),
            plain("int64", "xmin", true),
            plain("string", "origin", true),
            plain("int64", "origin_lsn", true),
        ],
        "optional": false, "name": "io.debezium.connector.postgresql.Source", "version": 1,
        "field": "source",
    })
}

/// The `transaction` block's schema (`event.block`).
pub(crate) fn transaction() -> Value {
    json!({
        "type": "struct",
        "fields": [
            plain("string", "id", false),
            plain("int64", "total_order", false),
            plain("int64", "data_collection_order", false),
        ],
        "optional": true, "name": "event.block", "version": 1, "field": "transaction",
    })
}

/// The envelope's schema (version 2: with `ts_us` and `ts_ns`).
pub fn envelope(codec: &TableCodec, prefix: &str) -> Value {
    json!({
        "type": "struct",
        "fields": [
            row(codec, prefix, "before"),
            row(codec, prefix, "after"),
            source(),
            transaction(),
            plain("string", "op", false),
            plain("int64", "ts_ms", true),
            plain("int64", "ts_us", true),
            plain("int64", "ts_ns", true),
        ],
        "optional": false, "name": name(codec, prefix, "Envelope"), "version": 2,
    })
}
