//! End offsets from the broker, for partitions that do not fetch.
//!
//! librdkafka learns a partition's high watermark from fetch responses
//! only (its periodic offset query asks for the low one). A paused
//! partition sends no fetch, so its statistics keep the high watermark of
//! its last fetch: lag computed from them stops growing however much is
//! produced, and a partition handed over while paused may even read 0.
//! So the coordinator names the partitions whose statistics may be stale
//! (see [`crate::partition::PartitionState::listing_due`]) and this thread
//! asks the broker for their end offsets: one ListOffsets request per
//! leader for all of them, off the coordinator (it blocks for a round
//! trip). The answers raise [`BrokerOffsets::high`]; the statistics never
//! lower it again.

use crate::messages::{BrokerOffsets, BrokerOffsetsMap, PartitionId};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::Duration;

/// How long one listing may wait for the broker.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The coordinator's handle on the listing thread; dropping it ends the
/// thread once the listing in progress is done.
pub(crate) struct EndOffsets {
    requests: std_mpsc::SyncSender<Vec<PartitionId>>,
}

impl EndOffsets {
    /// Starts the thread; it writes what it learns into `offsets`.
    pub fn spawn<C: ConsumerContext + 'static>(
        consumer: Arc<BaseConsumer<C>>,
        offsets: BrokerOffsetsMap,
    ) -> std::io::Result<EndOffsets> {
        // One request waiting beside the one being listed: the coordinator
        // asks again on a later tick when this is full.
        let (requests, rx) = std_mpsc::sync_channel::<Vec<PartitionId>>(1);
        std::thread::Builder::new()
            .name("kafka-end-offsets".into())
            .spawn(move || {
                while let Ok(partitions) = rx.recv() {
                    list(&consumer, &partitions, &offsets);
                }
            })?;
        Ok(EndOffsets { requests })
    }

    /// Queues a listing of `partitions`. Returns false when the thread is
    /// busy (nothing was queued).
    pub fn request(&self, partitions: Vec<PartitionId>) -> bool {
        self.requests.try_send(partitions).is_ok()
    }
}

/// Lists the end offsets of `partitions` (and the start offsets of those
/// the statistics never reported) and merges them into `offsets`.
fn list<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[PartitionId],
    offsets: &BrokerOffsetsMap,
) {
    let Some(ends) = query(consumer, partitions, Offset::End) else {
        return;
    };
    let unknown: Vec<PartitionId> = {
        let known = offsets.lock().unwrap_or_else(|p| p.into_inner());
        partitions
            .iter()
            .filter(|id| !known.contains_key(*id))
            .cloned()
            .collect()
    };
    // Without statistics the retained start is unknown too; lag falls back
    // to it for a group that never committed.
    let starts = if unknown.is_empty() {
        HashMap::new()
    } else {
        query(consumer, &unknown, Offset::Beginning).unwrap_or_default()
    };
    let mut known = offsets.lock().unwrap_or_else(|p| p.into_inner());
    for (id, high) in ends {
        let entry = known.entry(id.clone()).or_insert(BrokerOffsets {
            high,
            low: starts.get(&id).copied().unwrap_or(0),
            // librdkafka's "invalid": not known from the statistics.
            committed: -1001,
        });
        entry.high = entry.high.max(high);
    }
}

/// The offsets at `at` (the end or the beginning) of `partitions`, by
/// partition; `None` when the broker did not answer.
fn query<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[PartitionId],
    at: Offset,
) -> Option<HashMap<PartitionId, i64>> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        if let Err(e) = tpl.add_partition_offset(topic, *partition, at) {
            tracing::debug!(%topic, partition, error = %e, "cannot list the partition's offsets");
        }
    }
    if tpl.count() == 0 {
        return None;
    }
    // `offsets_for_times` with the logical end (or beginning) as the
    // timestamp is a ListOffsets for the latest (or earliest) offset,
    // batched per leader, unlike `fetch_watermarks` (two requests per
    // partition).
    let listed = match consumer.offsets_for_times(tpl, TIMEOUT) {
        Ok(listed) => listed,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list end offsets; lag may read low until the next try");
            return None;
        }
    };
    let wanted: HashMap<(&str, i32), &PartitionId> =
        partitions.iter().map(|id| ((&*id.0, id.1), id)).collect();
    Some(
        listed
            .elements()
            .iter()
            .filter(|e| e.error().is_ok())
            .filter_map(|e| {
                let Offset::Offset(offset) = e.offset() else {
                    return None;
                };
                let id = wanted.get(&(e.topic(), e.partition()))?;
                Some(((*id).clone(), offset))
            })
            .collect(),
    )
}
