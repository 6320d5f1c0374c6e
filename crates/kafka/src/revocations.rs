//! Partitions this process gave up, on their way to the writer.
//!
//! Revoked partitions are applied before every write attempt and between
//! retries, so a write that waited, or a write or flush that keeps failing,
//! cannot outlive the partitions it was started for: once another process
//! owns a partition, this one writes nothing more of it (a late upload
//! would replace the new owner's objects, or store its records twice).

use crate::messages::PartitionId;
use sinkfleet_core::{Position, Sink, SinkRecord};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The writer's end of the revocation channel: partitions this process gave
/// up (revoked after their drain). Unbounded and separate from the command
/// queue, so a revocation is never dropped because the queue is full and is
/// heard while a command is still being retried.
pub struct Revocations {
    rx: mpsc::UnboundedReceiver<Vec<PartitionId>>,
    /// Revoked since the current command started: its records of these
    /// partitions are no longer this process's to write.
    during_command: HashSet<PartitionId>,
}

impl Revocations {
    /// Wraps the receiving end of the coordinator's revocation channel.
    pub fn new(rx: mpsc::UnboundedReceiver<Vec<PartitionId>>) -> Self {
        Revocations {
            rx,
            during_command: HashSet::new(),
        }
    }

    async fn apply<S: Sink>(&mut self, sink: &mut S, partitions: Vec<PartitionId>) {
        tracing::info!(
            ?partitions,
            "partitions revoked during a write: dropping their records"
        );
        sink.revoke(&partitions).await;
        self.during_command.extend(partitions);
    }

    /// Applies the revocations waiting now; a new command starts with none.
    pub(crate) async fn start_command<S: Sink>(&mut self, sink: &mut S) {
        while let Ok(partitions) = self.rx.try_recv() {
            sink.revoke(&partitions).await;
        }
        self.during_command.clear();
    }

    /// Applies the revocations queued now, without waiting. Called before
    /// every write attempt: a job can wait long after its command started
    /// (on the rate limit, behind a slow write), the drain may have given
    /// up on it meanwhile, and the partition's new owner may be writing it.
    pub(crate) async fn hear<S: Sink>(&mut self, sink: &mut S) {
        while let Ok(partitions) = self.rx.try_recv() {
            self.apply(sink, partitions).await;
        }
    }

    /// Waits `delay` before a retry, applying revocations as they arrive.
    pub(crate) async fn sleep<S: Sink>(&mut self, sink: &mut S, delay: Duration) {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                Some(partitions) = self.rx.recv() => self.apply(sink, partitions).await,
            }
        }
    }

    pub(crate) fn owns(&self, position: &Position) -> bool {
        self.during_command.is_empty()
            || !self
                .during_command
                .contains(&(Arc::clone(&position.topic), position.partition))
    }

    /// `records` without those of partitions revoked during the command.
    pub(crate) fn retain_owned<'a>(&self, records: &'a [SinkRecord]) -> Cow<'a, [SinkRecord]> {
        if self.during_command.is_empty() {
            return Cow::Borrowed(records);
        }
        Cow::Owned(
            records
                .iter()
                .filter(|r| self.owns(&r.position))
                .cloned()
                .collect(),
        )
    }
}
