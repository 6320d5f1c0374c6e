//! The record value: Debezium's envelope, written as JSON text in the
//! connector's field order (Debezium 3.x, envelope schema version 2):
//!
//! ```text
//! {"before", "after", "source": {"version", "connector", "name", "ts_ms",
//!   "snapshot", "db", "sequence", "ts_us", "ts_ns", "schema", "table",
//!   "txId", "lsn", "xmin", "origin", "origin_lsn"},
//!  "transaction", "op", "ts_ms", "ts_us", "ts_ns"}
//! ```
//!
//! optionally inside `{"schema", "payload"}`. `source.ts_*` is when the
//! change happened (the commit; the snapshot transaction's start for
//! snapshot rows), the envelope's `ts_*` when the publisher wrote it.

use super::{Row, TableCodec, schema};
use crate::config::ConnectorConfig;
use serde_json::Value;

/// `source.snapshot`: which part of a snapshot a row is, or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// A streamed change.
    False,
    /// The first row of the whole snapshot.
    First,
    /// The first row of a table.
    FirstInDataCollection,
    /// Any other snapshot row.
    True,
    /// The last row of a table.
    LastInDataCollection,
    /// The last row of the whole snapshot.
    Last,
    /// A row of an incremental snapshot's chunk.
    Incremental,
}

impl Snapshot {
    /// The value Debezium writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Snapshot::False => "false",
            Snapshot::First => "first",
            Snapshot::FirstInDataCollection => "first_in_data_collection",
            Snapshot::True => "true",
            Snapshot::LastInDataCollection => "last_in_data_collection",
            Snapshot::Last => "last",
            Snapshot::Incremental => "incremental",
        }
    }
}

/// Where and when a change happened.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Database name.
    pub db: &'a str,
    /// Commit LSN of the transaction (snapshot: the snapshot LSN).
    pub commit_lsn: u64,
    /// The change's own LSN (snapshot: 0).
    pub lsn: u64,
    /// Transaction id (snapshot: the snapshot transaction's).
    pub tx_id: Option<u64>,
    /// Commit time (snapshot: the snapshot transaction's start), µs since
    /// the Unix epoch.
    pub ts_us: i64,
    /// Snapshot position, or [`Snapshot::False`].
    pub snapshot: Snapshot,
    /// The replication origin of a replicated transaction: its name and LSN.
    pub origin: Option<(&'a str, u64)>,
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

/// A table's constant parts of the envelope, escaped once.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// `{"version":…,"connector":"postgresql","name":…,"ts_ms":`.
    source_head: String,
    /// `"schema":…,"table":…`.
    source_table: String,
    /// The envelope's schema, with schemas enabled.
    schema: Option<String>,
}

impl Layout {
    /// The layout of `codec`'s events.
    pub fn new(codec: &TableCodec, cfg: &ConnectorConfig) -> Layout {
        let text = |s: &str| Value::from(s).to_string();
        Layout {
            source_head: source_head(cfg),
            source_table: format!(
                r#""schema":{},"table":{}"#,
                text(&codec.schema),
                text(&codec.table)
            ),
            schema: cfg
                .schemas_enable
                .then(|| schema::envelope(codec, &cfg.topic_prefix).to_string()),
        }
    }
}

/// `payload` alone, or inside the `{"schema", "payload"}` envelope when
/// schemas are enabled (the JsonConverter writes the schema first).
pub fn enveloped(schema: Option<&str>, payload: Vec<u8>) -> Vec<u8> {
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

/// The `source` block, in the connector's field order: `head` is a
/// [`Layout`]'s `source_head` (or [`source_head`]), `table` its
/// `"schema":…,"table":…`.
pub(crate) fn write_source(out: &mut String, head: &str, table: &str, src: &Source<'_>) {
    use std::fmt::Write;
    let text = |s: &str| Value::from(s).to_string();
    let _ = write!(
        out,
        r#"{head}{ts_ms},"snapshot":"{snapshot}","db":{db},"sequence":"[\"{commit}\",\"{lsn_seq}\"]","ts_us":{ts_us},"ts_ns":{ts_ns},{table},"txId":{tx_id},"lsn":{lsn},"xmin":null,"origin":{origin},"origin_lsn":{origin_lsn}}}"#,
        ts_ms = src.ts_us.div_euclid(1000),
        snapshot = src.snapshot.as_str(),
        db = text(src.db),
        commit = src.commit_lsn,
        lsn_seq = src.lsn,
        ts_us = src.ts_us,
        ts_ns = src.ts_us as i128 * 1000,
        tx_id = src.tx_id.map_or("null".to_owned(), |t| t.to_string()),
        lsn = if src.lsn == 0 {
            src.commit_lsn
        } else {
            src.lsn
        },
        origin = src.origin.map_or("null".to_owned(), |(name, _)| text(name)),
        origin_lsn = src
            .origin
            .map_or("null".to_owned(), |(_, lsn)| lsn.to_string()),
    );
}

/// The `transaction` block, or `null`.
pub(crate) fn write_transaction(out: &mut String, transaction: Option<&TxOrder<'_>>) {
    use std::fmt::Write;
    match transaction {
        Some(t) => {
            let _ = write!(
                out,
                r#"{{"id":{},"total_order":{},"data_collection_order":{}}}"#,
                Value::from(t.id),
                t.total_order,
                t.data_collection_order
            );
        }
        None => out.push_str("null"),
    }
}

/// `{"version":…,"connector":"postgresql","name":…,"ts_ms":`: the start of
/// every `source` block of a connector.
pub(crate) fn source_head(cfg: &ConnectorConfig) -> String {
    let text = |s: &str| Value::from(s).to_string();
    format!(
        r#"{{"version":{},"connector":"postgresql","name":{},"ts_ms":"#,
        text(env!("CARGO_PKG_VERSION")),
        text(&cfg.topic_prefix)
    )
}

/// Now, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The record value of a change.
pub fn value(
    codec: &TableCodec,
    op: &str,
    before: Option<&Row>,
    after: Option<&Row>,
    src: &Source<'_>,
) -> Vec<u8> {
    use std::fmt::Write;
    let now = now_us();
    let carried = || codec.carried().map(|(i, _, _)| i);
    let mut out = Vec::with_capacity(320 + 48 * codec.columns.len());
    for (field, image) in [(&br#"{"before":"#[..], before), (br#","after":"#, after)] {
        out.extend_from_slice(field);
        match image {
            Some(row) => codec.write_object(row, carried(), true, &mut out),
            None => out.extend_from_slice(b"null"),
        }
    }
    let text = |s: &str| Value::from(s).to_string();
    let mut tail = String::with_capacity(400);
    tail.push_str(r#","source":"#);
    write_source(
        &mut tail,
        &codec.envelope.source_head,
        &codec.envelope.source_table,
        src,
    );
    tail.push_str(r#","transaction":"#);
    write_transaction(&mut tail, src.transaction.as_ref());
    let _ = write!(
        tail,
        r#","op":{op},"ts_ms":{ms},"ts_us":{now},"ts_ns":{ns}}}"#,
        op = text(op),
        ms = now.div_euclid(1000),
        ns = now as i128 * 1000,
    );
    out.extend_from_slice(tail.as_bytes());
    enveloped(codec.envelope.schema.as_deref(), out)
}
