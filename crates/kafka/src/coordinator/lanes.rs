//! The coordinator's view of its writers (lanes).
//!
//! Each lane is a writer task with its own sink instance, writing one job
//! at a time, so a process has as many writes in flight as it has lanes.
//! Toward the target a lane is what a worker process is: its own
//! connection, its own transactions. A partition is bound to one lane from
//! its assignment to its revoke, which keeps its records in order (a job
//! is dispatched only after the lane's previous one finished) and keeps a
//! buffering sink's open files of a partition in one sink instance.

use super::JobShare;
use crate::messages::PartitionId;
use crate::writer::WriterCommand;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The job a lane's writer is working on.
pub(super) struct InFlight {
    /// Job id, echoed when the writer is done.
    pub id: u64,
    /// Per partition: what the job holds of it.
    pub load: HashMap<PartitionId, JobShare>,
}

/// One writer, as the coordinator tracks it.
pub(crate) struct Lane {
    /// Jobs and flushes, in order.
    pub(super) commands: mpsc::Sender<WriterCommand>,
    /// Revoked partitions (see [`crate::revocations::Revocations`]).
    pub(super) revocations: mpsc::UnboundedSender<Vec<PartitionId>>,
    /// Its job, while it writes one.
    pub(super) inflight: Option<InFlight>,
    /// Its sink is failing: every partition stays paused until it reports
    /// success.
    pub(super) held: bool,
    /// A flush is with it. Like a job, it may upload records of any of the
    /// lane's partitions (a buffering sink), so their revokes wait for both.
    pub(super) flushing: bool,
}

impl Lane {
    /// A lane fed through `commands` and `revocations`.
    pub(crate) fn new(
        commands: mpsc::Sender<WriterCommand>,
        revocations: mpsc::UnboundedSender<Vec<PartitionId>>,
    ) -> Self {
        Lane {
            commands,
            revocations,
            inflight: None,
            held: false,
            flushing: false,
        }
    }

    /// Neither writing nor flushing.
    pub fn idle(&self) -> bool {
        self.inflight.is_none() && !self.flushing
    }
}

/// The lane a newly assigned partition is bound to, given how many
/// partitions each lane has: the one with the fewest (the first of them on
/// a tie), so partitions spread evenly and one lane is not left with every
/// partition of a rebalance.
pub(super) fn least_loaded(bound: &[usize]) -> usize {
    bound
        .iter()
        .enumerate()
        .min_by_key(|(i, n)| (**n, *i))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_partition_goes_to_the_lane_with_fewest() {
        assert_eq!(least_loaded(&[0, 0, 0]), 0);
        assert_eq!(least_loaded(&[2, 1, 1]), 1);
        assert_eq!(least_loaded(&[3, 3, 0]), 2);
    }
}
