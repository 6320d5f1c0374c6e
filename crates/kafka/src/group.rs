//! A consumer group's offsets seen from outside the group, for
//! `sinkfleet status` and `sinkfleet offsets reset`: the partitions of its
//! topics, their committed and end offsets, and committing new ones.
//!
//! [`GroupOffsets`] never subscribes, so it never joins the group: reading
//! is invisible to the workers, and a commit is an administrative one
//! (generation -1). A broker that tracks membership refuses such a commit
//! while the group has members; callers check membership first anyway.

use crate::reading::{partitions_of, reader};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
pub use sinkfleet_core::PartitionId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Reads and commits the offsets of one consumer group.
pub struct GroupOffsets {
    consumer: BaseConsumer,
    timeout: Duration,
}

impl GroupOffsets {
    /// A client of group `group` that does not join it.
    pub fn new(
        client: &ClientConfig,
        group: &str,
        timeout: Duration,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer = client
            .clone()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(GroupOffsets { consumer, timeout })
    }

    /// Every partition of `topics` as a worker subscribes to them: a name,
    /// or a pattern starting with `^` (matched against the broker's topics,
    /// internal ones aside). An error names a topic that does not exist or
    /// a pattern that is not a regular expression.
    pub fn partitions(&self, topics: &[String]) -> Result<Vec<PartitionId>, String> {
        let mut out = Vec::new();
        for topic in topics {
            if topic.starts_with('^') {
                let pattern =
                    regex::Regex::new(topic).map_err(|e| format!("topic pattern {topic}: {e}"))?;
                let metadata = self
                    .consumer
                    .fetch_metadata(None, self.timeout)
                    .map_err(|e| format!("listing topics: {e}"))?;
                for t in metadata.topics() {
                    if pattern.is_match(t.name()) && !t.name().starts_with("__") {
                        let name: Arc<str> = Arc::from(t.name());
                        out.extend(t.partitions().iter().map(|p| (name.clone(), p.id())));
                    }
                }
                continue;
            }
            let found = partitions_of(&self.consumer, topic, self.timeout)
                .map_err(|e| format!("{topic}: {e}"))?;
            if found.is_empty() {
                return Err(format!("{topic}: no such topic"));
            }
            let name: Arc<str> = Arc::from(topic.as_str());
            out.extend(found.into_iter().map(|p| (Arc::clone(&name), p)));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// `(low, high)` watermarks: the oldest retained offset and the offset
    /// the next record will get.
    pub fn watermarks(&self, (topic, partition): &PartitionId) -> Result<(i64, i64), String> {
        self.consumer
            .fetch_watermarks(topic, *partition, self.timeout)
            .map_err(|e| format!("{topic}/{partition}: {e}"))
    }

    /// The group's committed offsets (`None`: never committed).
    pub fn committed(
        &self,
        partitions: &[PartitionId],
    ) -> Result<BTreeMap<PartitionId, Option<i64>>, String> {
        let tpl = list(partitions, Offset::Invalid)?;
        let committed = self
            .consumer
            .committed_offsets(tpl, self.timeout)
            .map_err(|e| format!("committed offsets: {e}"))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                ((Arc::from(e.topic()), e.partition()), offset)
            })
            .collect())
    }

    /// The first offset of each partition whose record timestamp is at or
    /// after `timestamp_ms`; the end offset where no record is that new.
    pub fn offsets_for_time(
        &self,
        partitions: &[PartitionId],
        timestamp_ms: i64,
    ) -> Result<BTreeMap<PartitionId, i64>, String> {
        let tpl = list(partitions, Offset::Offset(timestamp_ms))?;
        let found = self
            .consumer
            .offsets_for_times(tpl, self.timeout)
            .map_err(|e| format!("offsets for time {timestamp_ms}: {e}"))?;
        let mut out = BTreeMap::new();
        for e in found.elements() {
            let id = (Arc::from(e.topic()), e.partition());
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                // No record at or after the time: start at the end.
                _ => self.watermarks(&id)?.1,
            };
            out.insert(id, offset);
        }
        Ok(out)
    }

    /// Commits `offsets` (next offset to read) for the group, synchronously:
    /// returns once the broker acknowledged them.
    pub fn commit(&self, offsets: &BTreeMap<PartitionId, i64>) -> Result<(), String> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| e.to_string())?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| format!("commit: {e}"))
    }
}

/// The timestamp (ms since the epoch) of the record at each offset of
/// `at`: for a group's committed offsets, the oldest record each partition
/// has waiting. Read without a group (nothing is committed), a little of
/// each partition, for at most `wait`; a partition whose record did not
/// arrive by then (or that holds none there) is left out. A record removed
/// by retention is replaced by the oldest one retained.
pub fn timestamps_at(
    client: &ClientConfig,
    at: &BTreeMap<PartitionId, i64>,
    wait: Duration,
) -> Result<BTreeMap<PartitionId, i64>, String> {
    let mut found = BTreeMap::new();
    if at.is_empty() {
        return Ok(found);
    }
    let consumer: BaseConsumer = reader(client)
        .set("auto.offset.reset", "earliest")
        // One record per partition is all it needs.
        .set("max.partition.fetch.bytes", "65536")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in at {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + wait;
    while found.len() < at.len() && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let id: PartitionId = (Arc::from(m.topic()), m.partition());
                if let (false, Some(ts)) = (found.contains_key(&id), m.timestamp().to_millis()) {
                    found.insert(id, ts);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {}
        }
    }
    Ok(found)
}

fn list(partitions: &[PartitionId], offset: Offset) -> Result<TopicPartitionList, String> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition_offset(topic, *partition, offset)
            .map_err(|e| e.to_string())?;
    }
    Ok(tpl)
}
