//! Transaction metadata (`provide.transaction.metadata: true`), as the
//! Debezium PostgreSQL connector writes it:
//!
//! * a BEGIN record before a transaction's first event and an END record
//!   after its last, on `<topic.prefix>.transaction`, keyed by the
//!   transaction's id; END says how many events the transaction produced,
//!   in total and per table (`data_collections`);
//! * a `transaction` block in every event: the id, the event's position in
//!   the transaction (`total_order`) and among its table's events
//!   (`data_collection_order`).
//!
//! A consumer can then tell when it holds a whole transaction: the END
//! record plus as many events as it counts. The id is `<xid>:<commit LSN>`
//! (Debezium's form): unique even across xid wraparound, and ordered like
//! the commits.
//!
//! A transaction that produced no event (it touched no published table)
//! gets no BEGIN and no END. The topic has one partition, so its records
//! keep commit order.

use crate::event::TxOrder;
use serde_json::{Value, json};

/// The metadata of one open transaction.
#[derive(Debug)]
pub struct TxMetadata {
    id: String,
    ts_ms: i64,
    total: u64,
    /// Events per table (`schema.table`), in order of first appearance.
    collections: Vec<(String, u64)>,
}

impl TxMetadata {
    /// A transaction with id `<xid>:<commit_lsn>`, committed at `ts_ms`.
    pub fn new(xid: u32, commit_lsn: u64, ts_ms: i64) -> Self {
        TxMetadata {
            id: format!("{xid}:{commit_lsn}"),
            ts_ms,
            total: 0,
            collections: Vec::new(),
        }
    }

    /// True before the first event (no BEGIN was sent yet).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Counts one more event of table `collection` and returns its place.
    pub fn next(&mut self, collection: &str) -> TxOrder<'_> {
        self.total += 1;
        let order = match self.collections.iter_mut().find(|(c, _)| c == collection) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.collections.push((collection.to_owned(), 1));
                1
            }
        };
        TxOrder {
            id: &self.id,
            total_order: self.total,
            data_collection_order: order,
        }
    }

    /// The BEGIN record: `(key, value)`.
    pub fn begin(&self, schemas: bool) -> (Vec<u8>, Vec<u8>) {
        let value = json!({
            "status": "BEGIN", "id": self.id, "event_count": null,
            "data_collections": null, "ts_ms": self.ts_ms,
        });
        (self.key(schemas), envelope(schemas, value_schema(), value))
    }

    /// The END record: `(key, value)`.
    pub fn end(&self, schemas: bool) -> (Vec<u8>, Vec<u8>) {
        let collections: Vec<Value> = self
            .collections
            .iter()
            .map(|(c, n)| json!({"data_collection": c, "event_count": n}))
            .collect();
        let value = json!({
            "status": "END", "id": self.id, "event_count": self.total,
            "data_collections": collections, "ts_ms": self.ts_ms,
        });
        (self.key(schemas), envelope(schemas, value_schema(), value))
    }

    fn key(&self, schemas: bool) -> Vec<u8> {
        let schema = json!({
            "type": "struct", "optional": false,
            "name": "io.debezium.connector.common.TransactionMetadataKey",
            "fields": [{"type": "string", "optional": false, "field": "id"}],
        });
        envelope(schemas, schema, json!({"id": self.id}))
    }
}

fn value_schema() -> Value {
    let s = |t: &str, f: &str, optional: bool| json!({"type": t, "optional": optional, "field": f});
    json!({
        "type": "struct", "optional": false,
        "name": "io.debezium.connector.common.TransactionMetadataValue", "version": 1,
        "fields": [
            s("string", "status", false), s("string", "id", false),
            s("int64", "event_count", true),
            {
                "type": "array", "optional": true, "field": "data_collections",
                "items": {
                    "type": "struct", "optional": false,
                    "fields": [s("string", "data_collection", false), s("int64", "event_count", false)],
                },
            },
            s("int64", "ts_ms", false),
        ],
    })
}

/// `payload` alone, or inside `{"schema", "payload"}` with schemas enabled.
fn envelope(schemas: bool, schema: Value, payload: Value) -> Vec<u8> {
    let value = if schemas {
        json!({"schema": schema, "payload": payload})
    } else {
        payload
    };
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_counts_events_in_total_and_per_table() {
        let mut tx = TxMetadata::new(571, 53_195_832, 1_700_000_000_000);
        assert!(tx.is_empty());
        let first = tx.next("public.accounts");
        assert_eq!(
            (first.id, first.total_order, first.data_collection_order),
            ("571:53195832", 1, 1)
        );
        tx.next("public.ledger");
        let third = tx.next("public.accounts");
        assert_eq!((third.total_order, third.data_collection_order), (3, 2));

        let (key, begin) = tx.begin(false);
        assert_eq!(String::from_utf8(key).unwrap(), r#"{"id":"571:53195832"}"#);
        let begin: Value = serde_json::from_slice(&begin).unwrap();
        assert_eq!(begin["status"], "BEGIN");
        assert_eq!(begin["event_count"], Value::Null);
        let (_, end) = tx.end(true);
        let end: Value = serde_json::from_slice(&end).unwrap();
        assert_eq!(
            end["payload"],
            json!({
                "status": "END", "id": "571:53195832", "event_count": 3, "ts_ms": 1_700_000_000_000_i64,
                "data_collections": [
                    {"data_collection": "public.accounts", "event_count": 2},
                    {"data_collection": "public.ledger", "event_count": 1},
                ],
            })
        );
        assert_eq!(
            end["schema"]["name"],
            "io.debezium.connector.common.TransactionMetadataValue"
        );
    }
}
