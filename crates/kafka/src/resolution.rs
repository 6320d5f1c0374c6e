//! Which dead letters are resolved.
//!
//! The dead-letter topic only grows: a record replayed (into its topic, or
//! through the sink) stays there, and an offset reset that reads a broken
//! record again dead-letters another copy of it. So `sinkfleet dlq replay`
//! records each dead letter it handled in a compacted topic
//! (`dead_letter.resolved_topic`, default `<dead_letter.topic>.resolved`),
//! keyed by the record's origin (topic, partition, offset): one original
//! record is one dead letter however many copies of it the topic holds, and
//! it is resolved once a replay of it was acknowledged (by the broker, or
//! by the target through the sink).
//!
//! A replayed record that fails again is dead-lettered under its new
//! origin (the offset its replay got), so it is a new, open dead letter:
//! resolved means "handed back" (or discarded on purpose), not "applied".

use crate::inspect::{ReadError, read_latest};
use crate::producer::Producer;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Where a record was read from: topic, partition, offset.
pub type Origin = (String, i32, i64);

/// How a dead letter was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Resolved {
    /// Produced back into its partition, where it got `replayed_offset`.
    Replayed {
        /// The offset the replayed record got.
        replayed_offset: i64,
    },
    /// Applied by the sink directly (`--through-sink`).
    ThroughSink,
    /// Dropped on purpose (`sinkfleet dlq discard`), never applied; where
    /// it had parked its key, a discard marker went into its partition at
    /// `marker_offset` to release the key there.
    Discarded {
        /// The marker's offset, where one was sent.
        marker_offset: Option<i64>,
    },
}

/// One resolved dead letter, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// How it was resolved.
    #[serde(flatten)]
    pub resolved: Resolved,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

impl Resolution {
    /// The origin it resolves.
    pub fn origin(&self) -> Origin {
        (self.topic.clone(), self.partition, self.offset)
    }
}

/// The record key of an origin's resolution: `<topic>/<partition>/<offset>`
/// (a topic name cannot hold `/`).
fn record_key((topic, partition, offset): &Origin) -> String {
    format!("{topic}/{partition}/{offset}")
}

/// Every resolution in `topic`, by origin. A missing topic holds none.
pub fn read_resolutions(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<HashMap<Origin, Resolution>, ReadError> {
    Ok(read_latest(client, topic, None, timeout)?
        .into_values()
        .flatten()
        .filter_map(|value| serde_json::from_slice::<Resolution>(&value).ok())
        .map(|r| (r.origin(), r))
        .collect())
}

/// Records resolutions; each is acknowledged by the broker before
/// [`record`](Self::record) returns.
pub struct ResolutionWriter {
    producer: Producer,
    topic: String,
}

impl ResolutionWriter {
    /// Creates the producer (no connection is made until the first send).
    pub fn new(client: &ClientConfig, topic: String) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = Producer::new(
            crate::producer_side(client)
                .set("enable.idempotence", "true")
                .set("acks", "all"),
        )?;
        Ok(ResolutionWriter { producer, topic })
    }

    /// Records `resolutions`.
    pub async fn record(&self, resolutions: &[Resolution]) -> Result<(), String> {
        for r in resolutions {
            let key = record_key(&r.origin());
            let value = serde_json::to_vec(r).map_err(|e| e.to_string())?;
            let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.topic)
                .key(key.as_str())
                .payload(value.as_slice());
            self.producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|e| format!("recording {key} as resolved in {}: {e}", self.topic))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolution_is_stored_flat_and_keyed_by_its_origin() {
        let r = Resolution {
            topic: "cdc.orders".into(),
            partition: 3,
            offset: 41,
            resolved: Resolved::Replayed {
                replayed_offset: 97,
            },
            at_ms: 5,
        };
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"topic": "cdc.orders", "partition": 3, "offset": 41,
                               "how": "replayed", "replayed_offset": 97, "at_ms": 5})
        );
        assert_eq!(
            serde_json::from_value::<Resolution>(json).ok(),
            Some(r.clone())
        );
        assert_eq!(record_key(&r.origin()), "cdc.orders/3/41");
    }
}
