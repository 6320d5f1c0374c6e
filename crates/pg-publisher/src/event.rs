//! Debezium change events for one table: key, envelope, schemas.
//!
//! The envelope matches the Debezium PostgreSQL connector's: `before`,
//! `after`, `source` (with `lsn` and `sequence = ["<commit_lsn>","<lsn>"]`),
//! `op`, `ts_ms`, optionally inside `{"schema", "payload"}`. The sinks
//! read the version from `sequence`: this publisher puts the event's own
//! transaction commit LSN first, and snapshot rows `(snapshot_lsn, 0)`.

use crate::config::ConnectorConfig;
use crate::pgoutput::{Relation, ReplicaIdentity, TupleValue};
use crate::types::{self, ColumnCodec, Kind};
use base64::Engine;
use serde_json::{Value, json};
use sinkfleet_core::debezium::UNAVAILABLE_VALUE;

/// Where and when a change happened.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Database name.
    pub db: &'a str,
    /// Commit LSN of the transaction (snapshot: the snapshot LSN).
    pub commit_lsn: u64,
    /// The change's own LSN (snapshot: 0).
    pub lsn: u64,
    /// Transaction id.
    pub tx_id: Option<u32>,
    /// Commit time, ms since the Unix epoch.
    pub ts_ms: i64,
    /// `"true"`/`"last"` for snapshot rows, `"false"` when streaming.
    pub snapshot: &'static str,
    /// The event's place in its transaction, with
    /// `provide.transaction.metadata` (else the block is null).
    pub transaction: Option<TxOrder<'a>>,
}

/// The `transaction` block of a data event.
#[derive(Debug, Clone, Copy)]
pub struct TxOrder<'a> {
    /// The transaction's id, as in its BEGIN and END records.
    pub id: &'a str,
    /// Position of the event among all of the transaction's events (from 1).
    pub total_order: u64,
    /// Position among the transaction's events of the same table (from 1).
    pub data_collection_order: u64,
}

/// Why a table cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}: {reason}")]
pub struct TableError {
    /// `schema.table`.
    pub table: String,
    /// What to do about it.
    pub reason: String,
}

/// A tuple's column values, in the table's column order (`Null` for SQL
/// NULL). Events are written from it as JSON text in the connector's field
/// order: no map is built per event.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(Vec<Value>);

/// Encodes the events of one table (one Relation message's shape).
#[derive(Debug, Clone)]
pub struct TableCodec {
    /// Source schema.
    pub schema: String,
    /// Source table.
    pub table: String,
    /// Kafka topic.
    pub topic: String,
    columns: Vec<(String, ColumnCodec)>,
    key: Vec<usize>,
    prefix: String,
    envelope_schema: Option<String>,
    key_schema: Option<String>,
    /// `"column":` per column, escaped once.
    field_names: Vec<String>,
    /// The constant part of `source` up to its `ts_ms` value.
    source_head: String,
    /// `"schema":…,"table":…` of `source`, escaped once.
    source_table: String,
}

impl TableCodec {
    /// Builds the codec. `primary_key` comes from the catalog;
    /// `message.key.columns` overrides it. A table without either needs
    /// `REPLICA IDENTITY FULL` (then every column is the key).
    pub fn new(
        rel: &Relation,
        primary_key: &[String],
        cfg: &ConnectorConfig,
    ) -> Result<Self, TableError> {
        let name = format!("{}.{}", rel.namespace, rel.name);
        let err = |reason: String| TableError {
            table: name.clone(),
            reason,
        };
        let columns: Vec<(String, ColumnCodec)> = rel
            .columns
            .iter()
            .map(|c| (c.name.clone(), types::codec(c.type_oid, c.type_modifier)))
            .collect();
        let key_names: Vec<String> = match cfg.message_key_columns.get(&name) {
            Some(cols) => cols.clone(),
            None if !primary_key.is_empty() => primary_key.to_vec(),
            None if rel.replica_identity == ReplicaIdentity::Full => {
                rel.columns.iter().map(|c| c.name.clone()).collect()
            }
            None => {
                return Err(err(
                    "has no primary key: add one, set REPLICA IDENTITY FULL, or name its key in message.key.columns".into(),
                ));
            }
        };
        let mut key = Vec::with_capacity(key_names.len());
        for k in &key_names {
            let i = columns
                .iter()
                .position(|(n, _)| n == k)
                .ok_or_else(|| err(format!("key column `{k}` does not exist")))?;
            key.push(i);
        }
        let text = |s: &str| Value::from(s).to_string();
        let mut codec = TableCodec {
            schema: rel.namespace.clone(),
            table: rel.name.clone(),
            topic: cfg.topic(&rel.namespace, &rel.name),
            field_names: columns
                .iter()
                .map(|(n, _)| format!("{}:", text(n)))
                .collect(),
            source_head: format!(
                r#"{{"version":{},"connector":"postgresql","name":{},"ts_ms":"#,
                text(env!("CARGO_PKG_VERSION")),
                text(&cfg.topic_prefix)
            ),
            source_table: format!(
                r#""schema":{},"table":{}"#,
                text(&rel.namespace),
                text(&rel.name)
            ),
            columns,
            key,
            prefix: cfg.topic_prefix.clone(),
            envelope_schema: None,
            key_schema: None,
        };
        if cfg.schemas_enable {
            codec.envelope_schema = Some(codec.build_envelope_schema().to_string());
            codec.key_schema = Some(codec.build_key_schema().to_string());
        }
        Ok(codec)
    }

    fn field_schema(&self, i: usize, optional: bool) -> Value {
        let (name, codec) = &self.columns[i];
        let mut f = codec.schema.clone();
        f["optional"] = json!(optional);
        f["field"] = json!(name);
        f
    }

    fn row_schema(&self, field: &str) -> Value {
        let fields: Vec<Value> = (0..self.columns.len())
            .map(|i| self.field_schema(i, !self.key.contains(&i)))
            .collect();
        json!({
            "type": "struct", "fields": fields, "optional": true,
            "name": format!("{}.{}.{}.Value", self.prefix, self.schema, self.table), "field": field,
        })
    }

    fn build_key_schema(&self) -> Value {
        let fields: Vec<Value> = self
            .key
            .iter()
            .map(|&i| self.field_schema(i, false))
            .collect();
        json!({
            "type": "struct", "fields": fields, "optional": false,
            "name": format!("{}.{}.{}.Key", self.prefix, self.schema, self.table),
        })
    }

    fn build_envelope_schema(&self) -> Value {
        let s =
            |t: &str, f: &str, optional: bool| json!({"type": t, "optional": optional, "field": f});
        let source = json!({
            "type": "struct", "optional": false, "field": "source",
            "name": "io.debezium.connector.postgresql.Source",
            "fields": [
                s("string", "version", false), s("string", "connector", false), s("string", "name", false),
                s("int64", "ts_ms", false), s("string", "snapshot", true), s("string", "db", false),
                s("string", "sequence", true), s("string", "schema", false), s("string", "table", false),
                s("int64", "txId", true), s("int64", "lsn", true), s("int64", "xmin", true),
            ],
        });
        json!({
            "type": "struct", "optional": false,
            "name": format!("{}.{}.{}.Envelope", self.prefix, self.schema, self.table),
            "fields": [
                self.row_schema("before"), self.row_schema("after"), source,
                s("string", "op", false), s("int64", "ts_ms", true),
                json!({
                    "type": "struct", "optional": true, "field": "transaction",
                    "name": "event.block", "version": 1,
                    "fields": [
                        s("string", "id", false), s("int64", "total_order", false),
                        s("int64", "data_collection_order", false),
                    ],
                }),
            ],
        })
    }

    /// A tuple as a Debezium row object. Unchanged TOAST values become the
    /// placeholder (sinks keep their stored value); a value that cannot be
    /// encoded travels as its text (counted and logged).
    pub fn row(&self, tuple: &[TupleValue]) -> Result<Row, TableError> {
        let mut row = Vec::with_capacity(self.columns.len());
        for (i, (name, codec)) in self.columns.iter().enumerate() {
            let value = match tuple.get(i) {
                None | Some(TupleValue::Null) => Value::Null,
                Some(TupleValue::UnchangedToast) => placeholder(&codec.kind),
                Some(TupleValue::Text(bytes) | TupleValue::Binary(bytes)) => {
                    let text = String::from_utf8_lossy(bytes);
                    // One odd value (a multi-dimensional array, say) must not
                    // stop the stream: it travels as its text; a sink whose
                    // column cannot hold it dead-letters just that record.
                    types::encode(&codec.kind, &text).unwrap_or_else(|reason| {
                        metrics::counter!("sinkfleet_publisher_unencodable_values_total").increment(1);
                        tracing::warn!(table = %format!("{}.{}", self.schema, self.table), column = %name, %reason,
                            "value sent as text");
                        Value::String(text.into_owned())
                    })
                }
            };
            row.push(value);
        }
        Ok(Row(row))
    }

    /// Writes `{"column":value,...}` of the columns at `indexes`.
    fn write_object(&self, row: &Row, indexes: impl Iterator<Item = usize>, out: &mut Vec<u8>) {
        out.push(b'{');
        for (n, i) in indexes.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.field_names[i].as_bytes());
            let value = row.0.get(i).unwrap_or(&Value::Null);
            // Writing a `Value` into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, value);
        }
        out.push(b'}');
    }

    /// Wraps `payload` in the `{"schema", "payload"}` envelope when
    /// schemas are enabled (the JsonConverter writes the schema first).
    fn enveloped(schema: Option<&str>, payload: Vec<u8>) -> Vec<u8> {
        match schema {
            Some(schema) => {
                let mut out = Vec::with_capacity(schema.len() + payload.len() + 24);
                out.extend_from_slice(br#"{"schema":"#);
                out.extend_from_slice(schema.as_bytes());
                out.extend_from_slice(br#","payload":"#);
                out.extend_from_slice(&payload);
                out.push(b'}');
                out
            }
            None => payload,
        }
    }

    /// The Kafka key of a row (its key columns).
    pub fn key(&self, row: &Row) -> Vec<u8> {
        let mut payload = Vec::with_capacity(16 * self.key.len() + 2);
        self.write_object(row, self.key.iter().copied(), &mut payload);
        Self::enveloped(self.key_schema.as_deref(), payload)
    }

    /// Whether two rows have the same key.
    pub fn same_key(&self, a: &Row, b: &Row) -> bool {
        self.key.iter().all(|&i| a.0.get(i) == b.0.get(i))
    }

    /// The record value of a change (`op` = c, r, u, d, t), fields in the
    /// connector's order: `before`, `after`, `source`, `op`, `ts_ms`,
    /// `transaction` (a truncate has no row images).
    pub fn value(
        &self,
        op: &str,
        before: Option<Row>,
        after: Option<Row>,
        src: &Source<'_>,
    ) -> Vec<u8> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut out = Vec::with_capacity(256 + 48 * self.columns.len());
        out.push(b'{');
        if op != "t" {
            for (field, image) in [(&br#""before":"#[..], &before), (br#""after":"#, &after)] {
                out.extend_from_slice(field);
                match image {
                    Some(row) => self.write_object(row, 0..self.columns.len(), &mut out),
                    None => out.extend_from_slice(b"null"),
                }
                out.push(b',');
            }
        }
        let text = |s: &str| Value::from(s).to_string();
        let tx_id = src.tx_id.map_or("null".to_owned(), |t| t.to_string());
        let lsn = if src.lsn == 0 {
            src.commit_lsn
        } else {
            src.lsn
        };
        let transaction = match &src.transaction {
            Some(t) => format!(
                r#"{{"id":{},"total_order":{},"data_collection_order":{}}}"#,
                text(t.id),
                t.total_order,
                t.data_collection_order
            ),
            None => "null".to_owned(),
        };
        let source = format!(
            r#""source":{head}{ts},"snapshot":{snapshot},"db":{db},"sequence":"[\"{commit}\",\"{lsn_seq}\"]",{table},"txId":{tx_id},"lsn":{lsn},"xmin":null}},"op":{op},"ts_ms":{now_ms},"transaction":{transaction}}}"#,
            head = self.source_head,
            ts = src.ts_ms,
            snapshot = text(src.snapshot),
            db = text(src.db),
            commit = src.commit_lsn,
            lsn_seq = src.lsn,
            table = self.source_table,
            op = text(op),
        );
        out.extend_from_slice(source.as_bytes());
        Self::enveloped(self.envelope_schema.as_deref(), out)
    }
}

/// The TOAST placeholder in the column's own encoding.
fn placeholder(kind: &Kind) -> Value {
    match kind {
        Kind::Bytes => json!(base64::engine::general_purpose::STANDARD.encode(UNAVAILABLE_VALUE)),
        Kind::Array(_) => json!([UNAVAILABLE_VALUE]),
        _ => json!(UNAVAILABLE_VALUE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgoutput::RelationColumn;
    use sinkfleet_core::debezium::{DecodeOptions, decode};
    use sinkfleet_core::{Op, Value as V, Version};
    use std::collections::BTreeMap;

    fn config(schemas: bool) -> ConnectorConfig {
        let mut p: BTreeMap<String, String> = [
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.password", ""),
            ("database.dbname", "app"),
            ("topic.prefix", "app"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.insert("value.converter.schemas.enable".into(), schemas.to_string());
        ConnectorConfig::from_properties(&p).unwrap()
    }

    fn relation(identity: ReplicaIdentity) -> Relation {
        let col = |name: &str, oid, typmod| RelationColumn {
            key: name == "id",
            name: name.into(),
            type_oid: oid,
            type_modifier: typmod,
        };
        Relation {
            oid: 1,
            namespace: "public".into(),
            name: "orders".into(),
            replica_identity: identity,
            columns: vec![
                col("id", 20, -1),
                col("amount", 1700, (10 << 16 | 2) + 4),
                col("note", 25, -1),
            ],
        }
    }

    /// The codec of `public.orders` keyed by `id`.
    fn orders(schemas: bool) -> TableCodec {
        TableCodec::new(
            &relation(ReplicaIdentity::Default),
            &["id".into()],
            &config(schemas),
        )
        .unwrap()
    }

    fn text(s: &str) -> TupleValue {
        TupleValue::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn events_decode_on_the_sink_side_with_the_right_version() {
        for schemas in [true, false] {
            let codec = orders(schemas);
            let row = codec
                .row(&[text("7"), text("12.50"), TupleValue::UnchangedToast])
                .unwrap();
            let src = Source {
                db: "app",
                commit_lsn: 900,
                lsn: 850,
                tx_id: Some(5),
                ts_ms: 1,
                snapshot: "false",
                transaction: None,
            };
            let key = codec.key(&row);
            let value = codec.value("u", None, Some(row), &src);
            let change = decode(Some(&key), Some(&value), 0, &DecodeOptions::default())
                .unwrap()
                .unwrap();
            assert_eq!(change.op, Op::Update);
            assert_eq!(change.version, Version::new(900, 850));
            assert_eq!(change.key.get("id"), Some(&V::Int(7)));
            let after = change.row.unwrap();
            assert!(
                !after.contains("note"),
                "TOAST placeholder leaves the column out"
            );
            if schemas {
                assert_eq!(after.get("amount"), Some(&V::Decimal("12.50".into())));
            }
        }
    }

    #[test]
    fn tables_without_a_key_are_refused_unless_identity_full_or_configured() {
        let err =
            TableCodec::new(&relation(ReplicaIdentity::Default), &[], &config(true)).unwrap_err();
        assert!(err.reason.contains("no primary key"), "{err}");
        assert!(TableCodec::new(&relation(ReplicaIdentity::Full), &[], &config(true)).is_ok());
        let mut cfg = config(true);
        cfg.message_key_columns
            .insert("public.orders".into(), vec!["note".into()]);
        let codec = TableCodec::new(&relation(ReplicaIdentity::Default), &[], &cfg).unwrap();
        let row = codec
            .row(&[text("1"), TupleValue::Null, text("n")])
            .unwrap();
        let key = codec.key(&row);
        assert!(String::from_utf8(key).unwrap().contains("\"note\":\"n\""));
    }

    #[test]
    fn events_are_written_in_the_connectors_layout() {
        for schemas in [true, false] {
            let codec = orders(schemas);
            let row = codec
                .row(&[text("7"), text("12.50"), text("a \"quoted\" note")])
                .unwrap();
            let src = Source {
                db: "app",
                commit_lsn: 900,
                lsn: 850,
                tx_id: None,
                ts_ms: 1,
                snapshot: "false",
                transaction: None,
            };
            let value = String::from_utf8(codec.value("c", None, Some(row.clone()), &src)).unwrap();
            let json: Value = serde_json::from_str(&value).unwrap();
            let payload = if schemas {
                assert!(value.starts_with(r#"{"schema":{"#), "{value}");
                &json["payload"]
            } else {
                &json
            };
            // Debezium's order, not serde_json's sorted maps.
            let at = |field: &str| value.find(&format!("\"{field}\":")).unwrap();
            assert!(at("before") < at("after") && at("after") < at("source"));
            assert!(at("source") < at("op") && at("op") < at("transaction"));
            assert!(value.find(r#""id":7"#).unwrap() < at("note"));
            assert_eq!(payload["after"]["note"], json!("a \"quoted\" note"));
            assert_eq!(payload["source"]["sequence"], json!("[\"900\",\"850\"]"));
            assert_eq!(payload["source"]["lsn"], json!(850));
            assert_eq!(payload["source"]["txId"], Value::Null);
            assert_eq!(payload["source"]["table"], json!("orders"));
            assert_eq!(payload["op"], json!("c"));
            let key = String::from_utf8(codec.key(&row)).unwrap();
            let key: Value = serde_json::from_str(&key).unwrap();
            let key = if schemas { &key["payload"] } else { &key };
            assert_eq!(key, &json!({"id": 7}));
        }
    }
}
