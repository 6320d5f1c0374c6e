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

/// Starts an event written in place: `{"schema":…,"payload":` when
/// schemas are enabled, nothing otherwise. [`close_envelope`] ends it.
pub(crate) fn open_envelope(schema: Option<&str>, out: &mut Vec<u8>) {
    if let Some(schema) = schema {
        out.extend_from_slice(br#"{"schema":"#);
        out.extend_from_slice(schema.as_bytes());
        out.extend_from_slice(br#","payload":"#);
    }
}

/// Ends what [`open_envelope`] started.
pub(crate) fn close_envelope(schema: Option<&str>, out: &mut Vec<u8>) {
    if schema.is_some() {
        out.push(b'}');
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `text` as a JSON string.
pub(crate) fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// The `source` block, in the connector's field order: `head` is a
/// [`Layout`]'s `source_head` (or [`source_head`]), `table` its
/// `"schema":…,"table":…`. Written piece by piece: this runs once per event.
pub(crate) fn write_source(out: &mut Vec<u8>, head: &str, table: &str, src: &Source<'_>) {
    out.extend_from_slice(head.as_bytes());
    push_int(out, src.ts_us.div_euclid(1000));
    out.extend_from_slice(br#","snapshot":""#);
    out.extend_from_slice(src.snapshot.as_str().as_bytes());
    out.extend_from_slice(br#"","db":"#);
    push_json_str(out, src.db);
    out.extend_from_slice(br#","sequence":"[\""#);
    push_int(out, src.commit_lsn);
    out.extend_from_slice(br#"\",\""#);
    push_int(out, src.lsn);
    out.extend_from_slice(br#"\"]","ts_us":"#);
    push_int(out, src.ts_us);
    out.extend_from_slice(br#","ts_ns":"#);
    push_int(out, src.ts_us as i128 * 1000);
    out.push(b',');
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(br#","txId":"#);
    match src.tx_id {
        Some(t) => push_int(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","lsn":"#);
    push_int(
        out,
        if src.lsn == 0 {
            src.commit_lsn
        } else {
            src.lsn
        },
    );
    out.extend_from_slice(br#","xmin":null,"origin":"#);
    match src.origin {
        Some((name, lsn)) => {
            push_json_str(out, name);
            out.extend_from_slice(br#","origin_lsn":"#);
            push_int(out, lsn);
        }
        None => out.extend_from_slice(br#"null,"origin_lsn":null"#),
    }
    out.push(b'}');
}

/// The `transaction` block, or `null`.
pub(crate) fn write_transaction(out: &mut Vec<u8>, transaction: Option<&TxOrder<'_>>) {
    match transaction {
        Some(t) => {
            out.extend_from_slice(br#"{"id":"#);
            push_json_str(out, t.id);
            out.extend_from_slice(br#","total_order":"#);
            push_int(out, t.total_order);
            out.extend_from_slice(br#","data_collection_order":"#);
            push_int(out, t.data_collection_order);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
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

/// The record value of a change, written in place (schema first when
/// schemas are enabled).
pub fn value(
    codec: &TableCodec,
    op: &str,
    before: Option<&Row>,
    after: Option<&Row>,
    src: &Source<'_>,
) -> Vec<u8> {
    let now = now_us();
    let schema = codec.envelope.schema.as_deref();
    let carried = || codec.carried().map(|(i, _, _)| i);
    let mut out = Vec::with_capacity(schema.map_or(0, str::len) + 640 + 64 * codec.columns.len());
    open_envelope(schema, &mut out);
    for (field, image) in [(&br#"{"before":"#[..], before), (br#","after":"#, after)] {
        out.extend_from_slice(field);
        match image {
            Some(row) => codec.write_object(row, carried(), true, &mut out),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(br#","source":"#);
    write_source(
        &mut out,
        &codec.envelope.source_head,
        &codec.envelope.source_table,
        src,
    );
    out.extend_from_slice(br#","transaction":"#);
    write_transaction(&mut out, src.transaction.as_ref());
    out.extend_from_slice(br#","op":"#);
    push_json_str(&mut out, op);
    out.extend_from_slice(br#","ts_ms":"#);
    push_int(&mut out, now.div_euclid(1000));
    out.extend_from_slice(br#","ts_us":"#);
    push_int(&mut out, now);
    out.extend_from_slice(br#","ts_ns":"#);
    push_int(&mut out, now as i128 * 1000);
    out.push(b'}');
    close_envelope(schema, &mut out);
    out
}
