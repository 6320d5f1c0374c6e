//! Per-partition offset watermarks.
//!
//! A partition's committable position is `last + 1` where `last` is the
//! highest offset such that *every* record at or below it is durable in the
//! target (or deliberately dead-lettered). Records may become durable out of
//! order (a buffering sink, a split batch); the watermark only ever advances
//! over the contiguous durable prefix, so nothing in flight is committed.

use std::collections::BTreeMap;

/// Tracks durable offset ranges of one partition.
#[derive(Debug, Clone)]
pub struct OffsetWatermark {
    /// Next offset to commit (Kafka semantics: last durable + 1).
    next: i64,
    /// Durable ranges above `next`, as `start -> end` (inclusive), disjoint.
    ahead: BTreeMap<i64, i64>,
}

impl OffsetWatermark {
    /// Starts at `next`, the first offset this process will read (everything
    /// below was committed by someone else or is not ours to claim).
    pub fn new(next: i64) -> Self {
        OffsetWatermark {
            next,
            ahead: BTreeMap::new(),
        }
    }

    /// The offset to commit: every record below it is durable.
    pub fn committable(&self) -> i64 {
        self.next
    }

    /// Marks `start..=end` durable. Ranges below the watermark are ignored
    /// (a replay of something already durable).
    pub fn mark_durable(&mut self, start: i64, end: i64) {
        if end < self.next || end < start {
            return;
        }
        let start = start.max(self.next);
        self.ahead
            .entry(start)
            .and_modify(|e| *e = (*e).max(end))
            .or_insert(end);
        // Advance over every range that touches the watermark.
        while let Some((&s, &e)) = self.ahead.first_key_value() {
            if s > self.next {
                break;
            }
            self.ahead.pop_first();
            self.next = self.next.max(e + 1);
        }
    }

    /// Number of disjoint durable ranges waiting for a gap to close.
    pub fn pending_ranges(&self) -> usize {
        self.ahead.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_over_contiguous_prefix() {
        let mut w = OffsetWatermark::new(10);
        w.mark_durable(15, 19);
        assert_eq!(w.committable(), 10, "a gap at 10..14 holds it back");
        w.mark_durable(10, 12);
        assert_eq!(w.committable(), 13);
        w.mark_durable(13, 14);
        assert_eq!(w.committable(), 20);
        assert_eq!(w.pending_ranges(), 0);
    }

    #[test]
    fn replays_below_the_watermark_are_ignored() {
        let mut w = OffsetWatermark::new(5);
        w.mark_durable(0, 3);
        assert_eq!(w.committable(), 5);
        w.mark_durable(3, 7);
        assert_eq!(w.committable(), 8);
    }

    #[test]
    fn overlapping_ranges_merge() {
        let mut w = OffsetWatermark::new(0);
        w.mark_durable(4, 8);
        w.mark_durable(4, 6);
        w.mark_durable(2, 5);
        assert_eq!(w.committable(), 0);
        w.mark_durable(0, 1);
        assert_eq!(w.committable(), 9);
    }
}
