//! Per-partition bookkeeping of the coordinator.

use crate::commit_tracker::CommitTracker;
use crate::writer::Item;
use sinkfleet_core::TableId;
use sinkfleet_core::backpressure::Load;
use sinkfleet_core::watermark::OffsetWatermark;
use std::collections::VecDeque;
use std::time::Instant;

/// Why a partition is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PauseCause {
    /// Its in-flight budget (or the process's) reached the high-water
    /// mark: nothing more may be fetched until some of it is durable.
    Budget,
    /// A writer's sink is failing (an outage, a fence): every partition
    /// waits for it, whatever its load.
    Sink,
    /// Its next record names a schema the registry cannot be asked for
    /// (an outage): it waits for the registry, whatever its load.
    Registry,
}

/// State of one assigned partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    /// This assignment of the partition, among all of the process's: a
    /// job's share from an earlier assignment (a revoke that gave up on
    /// its drain, then the partition came back) is not this one's.
    pub generation: u64,
    /// The writer (lane) its records go to, fixed while it is assigned.
    pub lane: usize,
    /// Records received, not yet handed to the writer.
    pub pending: VecDeque<Item>,
    /// Records in `pending` still waiting for a registry schema (the first
    /// of them, and every record behind it, to keep the partition's order).
    pub awaiting_schema: usize,
    /// When the oldest pending record arrived (for linger).
    pub pending_since: Option<Instant>,
    /// Bytes of `pending`.
    pub pending_bytes: u64,
    /// Records and bytes handed to the writer, not yet durable.
    pub inflight: Load,
    /// Durable prefix; created at the first record (nothing below it is ours).
    pub watermark: Option<OffsetWatermark>,
    /// The first offset this process read: where the watermark started.
    pub first_offset: Option<i64>,
    /// Offset after the last record seen: the next record covers from here.
    pub next_expected: Option<i64>,
    /// Whether we paused fetching, and why (see [`PauseCause`]).
    pub pause: Option<PauseCause>,
    /// What the broker acknowledged, and the next commit.
    pub commit: CommitTracker,
    /// Written jobs whose records are not all durable yet, oldest first.
    pub written: VecDeque<JobMark>,
    /// `(last offset, newest record timestamp)` of durable jobs whose
    /// offsets the broker has not acknowledged yet, oldest first.
    pub uncommitted: VecDeque<(i64, i64)>,
    /// Timestamp (ms) of the newest record the broker has as committed,
    /// for lag in seconds.
    pub committed_ts: Option<i64>,
    /// `sinkfleet_records_in_total` of the partition's topic, looked up
    /// once: a registry lookup (label hashing, a topic string) per record
    /// showed in profiles.
    pub records_in: Option<metrics::Counter>,
    /// Timestamp (ms) of the first record this assignment received: the
    /// newest committed record is older, so its age bounds the lag in
    /// seconds from below while `committed_ts` is unknown.
    pub first_ts: Option<i64>,
    /// Since when (ms) the lag has been above 0 without a break: the
    /// records waiting are at least that old (used while no record
    /// timestamp is known, e.g. a partition handed over while paused).
    pub lag_since_ms: Option<i64>,
    /// When the broker was last asked for the end offset (see
    /// [`crate::end_offsets`]).
    pub listed_at: Option<Instant>,
    /// A record arrived since then: the partition fetches, and fetch
    /// responses keep librdkafka's high watermark current.
    pub received_since_listing: bool,
}

/// What one job held of a partition, kept until its records are durable.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobMark {
    /// Highest offset of the job in this partition.
    pub last_offset: i64,
    /// Newest Kafka record timestamp (ms).
    pub newest_ts: Option<i64>,
    /// Per source table: the newest change the job carried.
    pub tables: Vec<TableMark>,
}

/// The newest change of one source table within a job.
#[derive(Debug, Clone)]
pub(crate) struct TableMark {
    /// The source table.
    pub table: TableId,
    /// Its source commit time (ms since the epoch), if the event had one.
    pub source_ts_ms: Option<i64>,
    /// Its commit LSN, for LSN-versioned (Debezium) topics.
    pub commit_lsn: Option<u64>,
}

impl JobMark {
    /// Folds one change of `table` into the mark.
    pub fn add_change(&mut self, table: &TableId, source_ts_ms: Option<i64>, lsn: Option<u64>) {
        match self.tables.iter_mut().find(|t| t.table == *table) {
            Some(t) => {
                t.source_ts_ms = t.source_ts_ms.max(source_ts_ms);
                t.commit_lsn = t.commit_lsn.max(lsn);
            }
            None => self.tables.push(TableMark {
                table: table.clone(),
                source_ts_ms,
                commit_lsn: lsn,
            }),
        }
    }
}

impl PartitionState {
    /// Whether fetching is paused.
    pub fn paused(&self) -> bool {
        self.pause.is_some()
    }

    /// Whether to ask the broker for the end offset now: at assignment,
    /// then every `interval` while the partition is paused or received
    /// nothing (librdkafka learns the high watermark from fetch responses
    /// only, and a paused partition sends none).
    pub fn listing_due(&self, now: Instant, interval: std::time::Duration) -> bool {
        match self.listed_at {
            None => true,
            Some(at) => {
                now.duration_since(at) >= interval
                    && (self.paused() || !self.received_since_listing)
            }
        }
    }

    /// Everything not yet durable.
    pub fn load(&self) -> Load {
        Load {
            records: self.pending.len() as u64 + self.inflight.records,
            bytes: self.pending_bytes + self.inflight.bytes,
        }
    }

    /// The watermark's next offset: every record below it is durable.
    pub fn durable(&self) -> Option<i64> {
        self.watermark.as_ref().map(OffsetWatermark::committable)
    }

    /// The committed offset as the broker knows it: acknowledged to us, or
    /// else what the group had before (`from_broker`, from statistics).
    pub fn committed(&self, from_broker: Option<i64>) -> Option<i64> {
        let from_broker = from_broker.filter(|c| *c >= 0);
        self.commit.acked().max(from_broker)
    }

    /// Takes the written jobs the watermark has passed: they are durable.
    /// Their timestamps then wait for the broker's acknowledgement.
    pub fn take_durable(&mut self) -> Vec<JobMark> {
        let Some(next) = self.durable() else {
            return Vec::new();
        };
        let mut done = Vec::new();
        while self.written.front().is_some_and(|m| m.last_offset < next) {
            if let Some(mark) = self.written.pop_front() {
                if let Some(ts) = mark.newest_ts {
                    self.uncommitted.push_back((mark.last_offset, ts));
                }
                done.push(mark);
            }
        }
        done
    }

    /// The broker acknowledged `offset`: records below it are committed.
    pub fn acknowledged(&mut self, offset: i64) {
        self.commit.ack(offset);
        while let Some(&(last_offset, ts)) = self.uncommitted.front() {
            if last_offset >= offset {
                break;
            }
            self.committed_ts = self.committed_ts.max(Some(ts));
            self.uncommitted.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(last_offset: i64, ts: i64) -> JobMark {
        JobMark {
            last_offset,
            newest_ts: Some(ts),
            tables: Vec::new(),
        }
    }

    #[test]
    fn timestamps_follow_durability_then_the_broker_not_the_write() {
        let mut p = PartitionState {
            watermark: Some(OffsetWatermark::new(0)),
            ..PartitionState::default()
        };
        // Two jobs written (a buffering sink: not durable yet).
        p.written.push_back(mark(4, 100));
        p.written.push_back(mark(9, 200));
        assert!(p.take_durable().is_empty());
        if let Some(w) = p.watermark.as_mut() {
            w.mark_durable(0, 4);
        }
        assert_eq!(p.take_durable().len(), 1);
        assert_eq!(p.committed_ts, None, "durable is not committed");
        p.acknowledged(5);
        assert_eq!(p.committed_ts, Some(100));
        if let Some(w) = p.watermark.as_mut() {
            w.mark_durable(5, 9);
        }
        assert_eq!(p.take_durable().len(), 1);
        p.acknowledged(10);
        assert_eq!(p.committed_ts, Some(200));
        assert!(p.written.is_empty() && p.uncommitted.is_empty());
    }

    #[test]
    fn committed_prefers_what_the_broker_acknowledged() {
        let mut p = PartitionState::default();
        assert_eq!(p.committed(Some(-1001)), None, "never committed");
        assert_eq!(p.committed(Some(40)), Some(40));
        p.acknowledged(50);
        assert_eq!(p.committed(Some(40)), Some(50));
    }

    #[test]
    fn a_job_mark_keeps_the_newest_change_per_table() {
        let mut m = JobMark::default();
        let a = TableId::new("s", "a");
        m.add_change(&a, Some(5), Some(100));
        m.add_change(&TableId::new("s", "b"), None, None);
        m.add_change(&a, Some(3), Some(120));
        assert_eq!(m.tables.len(), 2);
        assert_eq!(m.tables[0].source_ts_ms, Some(5));
        assert_eq!(m.tables[0].commit_lsn, Some(120));
    }
}
