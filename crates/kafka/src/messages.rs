//! What the poll, committer and end-offset threads tell the coordinator,
//! and what the coordinator and the writers share about partitions. A leaf:
//! it imports nothing from this crate, so every thread's module can use it.

pub use sinkfleet_core::PartitionId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

/// A record as read from Kafka, detached from librdkafka's buffers.
#[derive(Debug)]
pub struct Incoming {
    /// Topic (interned).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record timestamp (ms since epoch), if any.
    pub timestamp_ms: Option<i64>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` for a Kafka tombstone).
    pub value: Option<Vec<u8>>,
    /// Its original offset, when `sinkfleet dlq replay` put it back here.
    pub replayed_offset: Option<i64>,
    /// A discard marker (`sinkfleet dlq discard`): never applied.
    pub discard: bool,
}

/// What the poll thread (and the committer thread) tell the coordinator.
#[derive(Debug)]
pub enum PollEvent {
    /// Records, in the order they were polled (at most [`crate::consumer::RECORD_BURST`]).
    Records(Vec<Incoming>),
    /// Partitions newly assigned to this process.
    Assigned(Vec<Assignment>),
    /// Partitions being revoked. Answer on `reply` with the next offsets to
    /// commit for them once their in-flight writes are drained or abandoned.
    Revoked {
        /// The revoked partitions.
        partitions: Vec<PartitionId>,
        /// Where the coordinator answers.
        reply: std_mpsc::SyncSender<Vec<(PartitionId, i64)>>,
        /// The assignment was lost: the group gave the partitions to
        /// another member while this one missed the rebalance. Nothing is
        /// drained (the writers drop what they hold at once) or committed.
        lost: bool,
    },
    /// The broker answered an offset commit (from the committer thread).
    Committed(Vec<CommitAnswer>),
    /// The consumer left the group; no more events follow.
    Closed,
}

/// A partition newly assigned to this process.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The partition.
    pub partition: PartitionId,
    /// Where it starts, when the target keeps offsets (set by the assign
    /// callback); `None`: at the group's committed offset.
    pub start: Option<Start>,
}

/// Where a partition claimed in the target starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The first offset to read: every record below it is applied (the
    /// target's stored offset) or was dead-lettered (Kafka's, when it is
    /// further on).
    pub offset: i64,
    /// Kafka's committed offset at the claim, if the group has one.
    pub kafka: Option<i64>,
}

/// The broker's answer for one partition of an offset commit.
#[derive(Debug)]
pub struct CommitAnswer {
    /// The partition.
    pub partition: PartitionId,
    /// The committed offset (the next offset to read).
    pub offset: i64,
    /// `Err` with the broker's (or librdkafka's) reason when refused.
    pub result: Result<(), String>,
}

/// What the broker says about a partition, from librdkafka's statistics
/// (refreshed every `statistics.interval.ms`) and from the end offsets the
/// coordinator asks for ([`crate::end_offsets`]).
#[derive(Debug, Clone, Copy)]
pub struct BrokerOffsets {
    /// High watermark: the offset the next produced record will get;
    /// negative while unknown. librdkafka learns it from fetch responses
    /// only, so for a partition that does not fetch (paused) its
    /// statistics keep an old value: this is the newest (largest) of that
    /// and the end offsets listed since. It only grows.
    pub high: i64,
    /// Low watermark: the oldest offset still retained.
    pub low: i64,
    /// The group's committed offset as librdkafka last heard it from the
    /// broker (fetched at assignment, updated by acknowledged commits);
    /// negative when the group never committed.
    pub committed: i64,
}

/// [`BrokerOffsets`] per partition, shared with the coordinator.
pub type BrokerOffsetsMap = Arc<Mutex<HashMap<PartitionId, BrokerOffsets>>>;
