//! Per-key parking (`dead_letter.on_error: park_key`).
//!
//! Once a record of key K is dead-lettered in a partition, K is *parked*
//! there: its later records go to the dead-letter topic too (class
//! `parked`), so no newer version of K is applied ahead of the one that
//! failed. Other keys keep flowing and offsets keep advancing. A replay of
//! the record that parked K (`sinkfleet dlq replay`, which marks it with
//! [`REPLAYED_OFFSET`](crate::inspect::REPLAYED_OFFSET)) releases K where
//! it arrives in the stream, so K's replayed records that follow it apply
//! in their original order.
//!
//! The parked keys live in a compacted topic (`dead_letter.parked_topic`),
//! one record per parked key, a tombstone once released. Contract: a park
//! or a release is acknowledged by the broker before the offset of the
//! record that caused it can be committed, and a worker reads the topic to
//! its end when partitions are assigned, before it handles their records.
//! So the next owner of a partition, after a restart or a rebalance, knows
//! exactly the keys parked up to its start offset.
//!
//! Keys are compared as the record's raw key bytes; a record without a key
//! cannot be parked (it is dead-lettered as with `skip`).

use crate::inspect::{ReadError, read_latest};
use crate::messages::PartitionId;
use crate::metrics::PARKED_KEYS;
use crate::producer::Producer;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use sinkfleet_core::Position;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Why a key is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// Offset of the record that parked the key: records of the key after
    /// it are parked, those before it are not.
    pub since: i64,
    /// Why that record was dead-lettered.
    pub reason: String,
    /// Where a release (a replay of the record that parked it, or a
    /// discard of that record) reached the partition: records after it
    /// apply, those between `since` and it stay parked, whatever order a
    /// job looks at them in.
    pub released_at: Option<i64>,
}

impl Parked {
    /// Whether the record at `offset` is parked by this.
    fn parks(&self, offset: i64) -> bool {
        offset > self.since && self.released_at.is_none_or(|r| offset < r)
    }
}

/// What to do with a record of a possibly parked key.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not parked: apply it.
    Apply,
    /// Parked: dead-letter it, marked as parked.
    Park(Parked),
    /// The replay of the record that parked its key: release the key, then
    /// apply it.
    Release,
}

/// A parked key as stored in the parked-keys topic.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    topic: String,
    partition: i32,
    key_hex: String,
    since: i64,
    reason: String,
    /// When it was parked (ms since the epoch); absent in records written
    /// before sinkfleet stored it.
    #[serde(default)]
    parked_at_ms: Option<i64>,
}

/// The parked keys of this process's partitions, and their topic.
pub struct Parking {
    keys: Mutex<HashMap<PartitionId, HashMap<Vec<u8>, Parked>>>,
    client: ClientConfig,
    producer: Producer,
    topic: String,
}

impl Parking {
    /// Creates the store (no connection is made until first used).
    pub fn new(client: &ClientConfig, topic: String) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = Producer::new(
            crate::producer_side(client)
                .set("enable.idempotence", "true")
                .set("acks", "all"),
        )?;
        crate::metrics::at_zero::parking();
        Ok(Parking {
            keys: Mutex::default(),
            client: client.clone(),
            producer,
            topic,
        })
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionId, HashMap<Vec<u8>, Parked>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What to do with the record at `position` with `key`; `replayed` is
    /// its original offset when it was replayed from the dead-letter topic.
    pub fn verdict(
        &self,
        position: &Position,
        key: Option<&[u8]>,
        replayed: Option<i64>,
    ) -> Verdict {
        let Some(key) = key else {
            return Verdict::Apply;
        };
        let keys = self.keys();
        let parked = keys
            .get(&(position.topic.clone(), position.partition))
            .and_then(|partition| partition.get(key));
        match parked {
            Some(p) if p.released_at.is_none() && replayed == Some(p.since) => Verdict::Release,
            Some(p) if p.parks(position.offset) => Verdict::Park(p.clone()),
            _ => Verdict::Apply,
        }
    }

    /// Parks `key` from `position` on, unless it is parked from an earlier
    /// offset already. Returns once the broker acknowledged it.
    pub async fn park(
        &self,
        position: &Position,
        key: Option<&[u8]>,
        reason: &str,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let Some(key) = key else { return Ok(()) };
        let id = (position.topic.clone(), position.partition);
        let earlier = self
            .keys()
            .get(&id)
            .and_then(|p| p.get(key))
            .is_some_and(|p| p.since <= position.offset && p.released_at.is_none());
        if earlier {
            return Ok(());
        }
        let stored = Stored {
            topic: position.topic.to_string(),
            partition: position.partition,
            key_hex: hex::encode(key),
            since: position.offset,
            reason: reason.to_owned(),
            parked_at_ms: Some(crate::clock::now_ms()),
        };
        let value = serde_json::to_vec(&stored).unwrap_or_default();
        self.send(&record_key(&id, key), Some(&value)).await?;
        tracing::warn!(topic = %position.topic, partition = position.partition, since = position.offset,
            key = %String::from_utf8_lossy(key), "key parked: its later records go to the dead-letter topic");
        self.keys().entry(id).or_default().insert(
            key.to_vec(),
            Parked {
                since: position.offset,
                reason: reason.to_owned(),
                released_at: None,
            },
        );
        self.count();
        Ok(())
    }

    /// Releases `key` in the partition of `position`. Returns once the
    /// broker acknowledged it.
    pub async fn release(
        &self,
        position: &Position,
        key: &[u8],
    ) -> Result<(), rdkafka::error::KafkaError> {
        let id = (position.topic.clone(), position.partition);
        self.send(&record_key(&id, key), None).await?;
        tracing::info!(topic = %position.topic, partition = position.partition, offset = position.offset,
            key = %String::from_utf8_lossy(key), "parked key released");
        if let Some(parked) = self.keys().get_mut(&id).and_then(|p| p.get_mut(key)) {
            parked.released_at = Some(position.offset);
        }
        self.count();
        Ok(())
    }

    async fn send(
        &self,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
    }

    /// Reads the parked-keys topic to its end and takes the keys parked in
    /// `partitions` (newly assigned). Blocking: it runs on the poll thread,
    /// before the partitions' records are fetched. A missing topic holds
    /// nothing.
    pub fn load(&self, partitions: &[PartitionId], timeout: Duration) -> Result<usize, ReadError> {
        let mut loaded: HashMap<PartitionId, HashMap<Vec<u8>, Parked>> = HashMap::new();
        for parked in read_parked(&self.client, &self.topic, timeout)? {
            let Some(id) = partitions
                .iter()
                .find(|(t, p)| **t == *parked.topic && *p == parked.partition)
            else {
                continue;
            };
            loaded.entry(id.clone()).or_default().insert(
                parked.key,
                Parked {
                    since: parked.since,
                    reason: parked.reason,
                    released_at: None,
                },
            );
        }
        let count = loaded.values().map(HashMap::len).sum();
        {
            let mut keys = self.keys();
            for id in partitions {
                keys.remove(id);
            }
            keys.extend(loaded);
        }
        self.count();
        Ok(count)
    }

    /// Forgets the keys of partitions this process no longer owns.
    pub fn forget(&self, partitions: &[PartitionId]) {
        let mut keys = self.keys();
        for id in partitions {
            keys.remove(id);
        }
        drop(keys);
        self.count();
    }

    fn count(&self) {
        let n: usize = self
            .keys()
            .values()
            .flat_map(HashMap::values)
            .filter(|p| p.released_at.is_none())
            .count();
        metrics::gauge!(PARKED_KEYS).set(n as f64);
    }
}

/// A parked key, as `sinkfleet dlq replay` reads it from the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedKey {
    /// Topic of the partition it is parked in.
    pub topic: String,
    /// That partition.
    pub partition: i32,
    /// The raw key.
    pub key: Vec<u8>,
    /// Offset of the record that parked it.
    pub since: i64,
    /// Why that record was dead-lettered.
    pub reason: String,
    /// When it was parked (ms since the epoch), where known.
    pub parked_at_ms: Option<i64>,
}

/// Every key parked in `topic` (the parked-keys topic) now.
pub fn read_parked(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<ParkedKey>, ReadError> {
    let latest = read_latest(client, topic, None, timeout)?;
    Ok(latest
        .into_values()
        .flatten()
        .filter_map(|value| {
            let stored: Stored = serde_json::from_slice(&value).ok()?;
            Some(ParkedKey {
                key: hex::decode(&stored.key_hex).ok()?,
                topic: stored.topic,
                partition: stored.partition,
                since: stored.since,
                reason: stored.reason,
                parked_at_ms: stored.parked_at_ms,
            })
        })
        .collect())
}

/// The parked-keys topic's record key: `<topic>/<partition>/<hex key>`
/// (a topic name cannot hold `/`).
fn record_key((topic, partition): &PartitionId, key: &[u8]) -> String {
    format!("{topic}/{partition}/{}", hex::encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn at(offset: i64) -> Position {
        Position {
            topic: Arc::from("t"),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn only_later_records_of_a_parked_key_are_parked_and_its_replay_releases_it() {
        let parking = Parking::new(&ClientConfig::new(), "parked".into()).expect("producer");
        parking
            .keys()
            .entry((Arc::from("t"), 0))
            .or_default()
            .insert(
                b"k".to_vec(),
                Parked {
                    since: 5,
                    reason: "too wide".into(),
                    released_at: None,
                },
            );
        assert_eq!(parking.verdict(&at(4), Some(b"k"), None), Verdict::Apply);
        assert_eq!(parking.verdict(&at(5), Some(b"k"), None), Verdict::Apply);
        assert!(matches!(
            parking.verdict(&at(6), Some(b"k"), None),
            Verdict::Park(Parked { since: 5, .. })
        ));
        assert_eq!(
            parking.verdict(&at(6), Some(b"other"), None),
            Verdict::Apply
        );
        assert_eq!(parking.verdict(&at(6), None, None), Verdict::Apply);
        // A replay of a parked record (not the one that parked it) stays parked.
        assert!(matches!(
            parking.verdict(&at(9), Some(b"k"), Some(7)),
            Verdict::Park(_)
        ));
        assert_eq!(
            parking.verdict(&at(9), Some(b"k"), Some(5)),
            Verdict::Release
        );
        let other_partition = Position {
            partition: 1,
            ..at(9)
        };
        assert_eq!(
            parking.verdict(&other_partition, Some(b"k"), None),
            Verdict::Apply
        );
    }

    #[test]
    fn a_release_applies_the_records_after_it_whatever_order_they_are_looked_at() {
        let parking = Parking::new(&ClientConfig::new(), "parked".into()).expect("producer");
        let key = b"k".to_vec();
        parking
            .keys()
            .entry((Arc::from("t"), 0))
            .or_default()
            .insert(
                key.clone(),
                Parked {
                    since: 5,
                    reason: "undecodable".into(),
                    released_at: Some(12),
                },
            );
        assert_eq!(parking.verdict(&at(13), Some(b"k"), None), Verdict::Apply);
        assert!(matches!(
            parking.verdict(&at(8), Some(b"k"), None),
            Verdict::Park(_)
        ));
        // Replayed again after its release: applied, not a second release.
        assert_eq!(
            parking.verdict(&at(14), Some(b"k"), Some(5)),
            Verdict::Apply
        );
    }

    #[test]
    fn a_stored_key_names_its_partition_and_key_bytes() {
        assert_eq!(record_key(&(Arc::from("t"), 3), b"\x01{"), "t/3/017b");
    }
}
