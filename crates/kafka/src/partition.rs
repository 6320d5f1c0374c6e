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
    /// `(last offset, newest timestamp)` of written jobs whose records are
    /// not all below the watermark yet, oldest first.
    pub timestamps: VecDeque<(i64, i64)>,
}

impl PartitionState {
    /// Everything not yet durable.
    pub fn load(&self) -> Load {
        Load {
            records: self.pending.len() as u64 + self.inflight.records,
            bytes: self.pending_bytes + self.inflight.bytes,
        }
    }

    /// Moves `last_durable_ts` over the jobs the watermark has passed.
    pub fn advance_durable_ts(&mut self) {
        let Some(next) = self.watermark.as_ref().map(OffsetWatermark::committable) else {
            return;
        };
        while let Some(&(last_offset, ts)) = self.timestamps.front() {
            if last_offset >= next {
                break;
            }
            self.last_durable_ts = self.last_durable_ts.max(Some(ts));
            self.timestamps.pop_front();
        }
    }

    /// The offset to commit if it moved since the last commit.
    pub fn commit_due(&self) -> Option<i64> {
        let next = self.watermark.as_ref()?.committable();
        (self.committed != Some(next)).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_timestamp_follows_the_watermark_not_the_write() {
        let mut p = PartitionState {
            watermark: Some(OffsetWatermark::new(0)),
            ..PartitionState::default()
        };
        // Two jobs written (a buffering sink: not durable yet).
        p.timestamps.push_back((4, 100));
        p.timestamps.push_back((9, 200));
        p.advance_durable_ts();
        assert_eq!(p.last_durable_ts, None);
        if let Some(w) = p.watermark.as_mut() {
            w.mark_durable(0, 4);
        }
        p.advance_durable_ts();
        assert_eq!(p.last_durable_ts, Some(100));
        if let Some(w) = p.watermark.as_mut() {
            w.mark_durable(5, 9);
        }
        p.advance_durable_ts();
        assert_eq!(p.last_durable_ts, Some(200));
        assert!(p.timestamps.is_empty());
    }
}
