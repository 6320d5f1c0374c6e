//! Per-partition bookkeeping of the coordinator.

use crate::writer::Item;
use sinkfleet_core::backpressure::Load;
use sinkfleet_core::watermark::OffsetWatermark;
use std::collections::VecDeque;
use std::time::Instant;

/// State of one assigned partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    /// Records received, not yet handed to the writer.
    pub pending: VecDeque<Item>,
    /// When the oldest pending record arrived (for linger).
    pub pending_since: Option<Instant>,
    /// Bytes of `pending`.
    pub pending_bytes: u64,
    /// Records and bytes handed to the writer, not yet durable.
    pub inflight: Load,
    /// Durable prefix; created at the first record (nothing below it is ours).
    pub watermark: Option<OffsetWatermark>,
    /// Offset after the last record seen: the next record covers from here.
    pub next_expected: Option<i64>,
    /// Whether we paused fetching.
    pub paused: bool,
    /// Last offset committed (next offset to read).
    pub committed: Option<i64>,
    /// Timestamp (ms) of the newest durable record, for lag in seconds.
    pub last_durable_ts: Option<i64>,
}

impl PartitionState {
    /// Everything not yet durable.
    pub fn load(&self) -> Load {
        Load {
            records: self.pending.len() as u64 + self.inflight.records,
            bytes: self.pending_bytes + self.inflight.bytes,
        }
    }

    /// The offset to commit if it moved since the last commit.
    pub fn commit_due(&self) -> Option<i64> {
        let next = self.watermark.as_ref()?.committable();
        (self.committed != Some(next)).then_some(next)
    }
}
