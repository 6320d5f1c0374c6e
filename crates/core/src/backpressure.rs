//! Backpressure policy: when to pause and resume a partition.
//!
//! The runtime never slows the source and never stops polling; it pauses
//! Kafka partitions. A partition pauses when its own in-flight records or
//! bytes reach the high-water mark, or when the whole process does; it
//! resumes when both drop below the low-water mark. The gap between the
//! two marks (hysteresis) keeps partitions from flapping.

use serde::Deserialize;

/// High/low water marks for records and bytes in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Pause at or above this many records in flight.
    pub high_records: u64,
    /// Pause at or above this many bytes in flight: what the records hold
    /// in memory (the runtime counts the raw record and its decoded change).
    pub high_bytes: u64,
    /// Resume once both loads drop below this percentage of the high marks.
    #[serde(default = "default_resume_percent")]
    pub resume_percent: u8,
}

fn default_resume_percent() -> u8 {
    50
}

/// Records and bytes currently in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Records received and not yet durable (or dead-lettered).
    pub records: u64,
    /// Payload bytes of those records.
    pub bytes: u64,
}

impl Budget {
    /// True when `load` has reached the high-water mark.
    pub fn over_high(&self, load: Load) -> bool {
        load.records >= self.high_records || load.bytes >= self.high_bytes
    }

    /// True when `load` is below the low-water mark on both dimensions.
    pub fn under_low(&self, load: Load) -> bool {
        let low = |high: u64| high.saturating_mul(self.resume_percent.min(100) as u64) / 100;
        load.records < low(self.high_records).max(1) && load.bytes < low(self.high_bytes).max(1)
    }
}

/// What to do with one partition given its own and the global load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Pause fetching this partition.
    Pause,
    /// Resume fetching this partition.
    Resume,
    /// Leave it as it is.
    Keep,
}

/// Decides for one partition. `held` is true while the sink is failing and
/// every partition must stay paused regardless of load.
pub fn decide(
    paused: bool,
    partition: Load,
    partition_budget: &Budget,
    global: Load,
    global_budget: &Budget,
    held: bool,
) -> Decision {
    if held {
        return if paused {
            Decision::Keep
        } else {
            Decision::Pause
        };
    }
    if !paused {
        if partition_budget.over_high(partition) || global_budget.over_high(global) {
            return Decision::Pause;
        }
        return Decision::Keep;
    }
    if partition_budget.under_low(partition) && global_budget.under_low(global) {
        Decision::Resume
    } else {
        Decision::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budget = Budget {
        high_records: 100,
        high_bytes: 1000,
        resume_percent: 50,
    };
    const G: Budget = Budget {
        high_records: 1000,
        high_bytes: 10_000,
        resume_percent: 50,
    };

    fn load(records: u64, bytes: u64) -> Load {
        Load { records, bytes }
    }

    #[test]
    fn pauses_at_high_and_resumes_below_low() {
        assert_eq!(
            decide(false, load(99, 10), &B, load(0, 0), &G, false),
            Decision::Keep
        );
        assert_eq!(
            decide(false, load(100, 10), &B, load(0, 0), &G, false),
            Decision::Pause
        );
        assert_eq!(
            decide(false, load(1, 1000), &B, load(0, 0), &G, false),
            Decision::Pause
        );
        // Between the marks a paused partition stays paused (hysteresis).
        assert_eq!(
            decide(true, load(60, 10), &B, load(0, 0), &G, false),
            Decision::Keep
        );
        assert_eq!(
            decide(true, load(49, 10), &B, load(0, 0), &G, false),
            Decision::Resume
        );
    }

    #[test]
    fn global_budget_pauses_everyone() {
        assert_eq!(
            decide(false, load(1, 1), &B, load(1000, 0), &G, false),
            Decision::Pause
        );
        assert_eq!(
            decide(true, load(1, 1), &B, load(600, 0), &G, false),
            Decision::Keep
        );
    }

    #[test]
    fn a_failing_sink_holds_every_partition() {
        assert_eq!(
            decide(false, load(0, 0), &B, load(0, 0), &G, true),
            Decision::Pause
        );
        assert_eq!(
            decide(true, load(0, 0), &B, load(0, 0), &G, true),
            Decision::Keep
        );
    }
}
