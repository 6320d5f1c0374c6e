//! Transaction metadata records: the BEGIN and END records Debezium (and
//! sinkfleet's publisher) write to `<topic.prefix>.transaction` with
//! `provide.transaction.metadata: true`.
//!
//! END says how many events the transaction produced per table
//! (`data_collections`); with it a consumer knows when it holds a whole
//! transaction.

use crate::error::DecodeError;
use serde::Deserialize;
use std::sync::Arc;

/// BEGIN or END.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// The transaction's first record.
    Begin,
    /// The transaction's last record, with its event counts.
    End,
}

/// One BEGIN or END record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxMarker {
    /// BEGIN or END.
    pub status: TxStatus,
    /// The transaction id, as in its events' `transaction.id`.
    pub id: Arc<str>,
    /// END: events per table (`schema.table`, Debezium's data collection).
    pub collections: Vec<(String, u64)>,
}

impl TxMarker {
    /// The commit LSN in an id of the form `<xid>:<commit LSN>` (sinkfleet's
    /// publisher and Debezium 2+ for PostgreSQL), which orders transactions
    /// by commit. `None` for other forms.
    pub fn commit_lsn(&self) -> Option<u64> {
        commit_lsn(&self.id)
    }
}

/// See [`TxMarker::commit_lsn`].
pub fn commit_lsn(id: &str) -> Option<u64> {
    id.rsplit_once(':')?.1.parse().ok()
}

#[derive(Deserialize)]
struct Wire {
    status: Option<String>,
    id: Option<String>,
    #[serde(default)]
    data_collections: Option<Vec<Collection>>,
    #[serde(default)]
    payload: Option<Box<Wire>>,
}

#[derive(Deserialize)]
struct Collection {
    data_collection: String,
    event_count: u64,
}

/// Decodes a BEGIN or END record's value (bare, or in a
/// `{"schema", "payload"}` envelope).
pub fn decode_marker(value: &[u8]) -> Result<TxMarker, DecodeError> {
    let bad = |path: &str, message: &str| DecodeError::Field {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    let mut wire: Wire = serde_json::from_slice(value).map_err(|e| DecodeError::Json {
        part: "value",
        message: e.to_string(),
    })?;
    if let Some(payload) = wire.payload.take() {
        wire = *payload;
    }
    let id = wire.id.ok_or_else(|| bad("id", "missing"))?;
    let status = match wire.status.as_deref() {
        Some("BEGIN") => TxStatus::Begin,
        Some("END") => TxStatus::End,
        Some(other) => {
            return Err(bad(
                "status",
                &format!("expected BEGIN or END, found `{other}`"),
            ));
        }
        None => return Err(bad("status", "missing")),
    };
    let collections = match (status, wire.data_collections) {
        (TxStatus::End, Some(c)) => c
            .into_iter()
            .map(|c| (c.data_collection, c.event_count))
            .collect(),
        (TxStatus::End, None) => return Err(bad("data_collections", "an END record needs them")),
        (TxStatus::Begin, _) => Vec::new(),
    };
    Ok(TxMarker {
        status,
        id: Arc::from(id),
        collections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_and_end_decode_bare_or_enveloped() {
        let begin = decode_marker(
            br#"{"status":"BEGIN","id":"571:53195832","event_count":null,"data_collections":null}"#,
        )
        .unwrap();
        assert_eq!(begin.status, TxStatus::Begin);
        assert_eq!(begin.commit_lsn(), Some(53_195_832));
        let end = decode_marker(
            br#"{"schema":{},"payload":{"status":"END","id":"571","event_count":2,
                "data_collections":[{"data_collection":"s1.a","event_count":1},{"data_collection":"s2.a","event_count":1}]}}"#,
        )
        .unwrap();
        assert_eq!(end.status, TxStatus::End);
        assert_eq!(
            end.collections,
            vec![("s1.a".into(), 1), ("s2.a".into(), 1)]
        );
        assert_eq!(end.commit_lsn(), None, "Debezium 1.x ids carry no LSN");
    }

    #[test]
    fn malformed_markers_are_refused_naming_the_field() {
        for (value, path) in [
            (&br#"{"status":"END","id":"1"}"#[..], "data_collections"),
            (br#"{"status":"COMMIT","id":"1"}"#, "status"),
            (br#"{"status":"BEGIN"}"#, "id"),
        ] {
            match decode_marker(value) {
                Err(DecodeError::Field { path: p, .. }) => assert_eq!(p, path),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(decode_marker(b"{"), Err(DecodeError::Json { .. })));
    }
}
