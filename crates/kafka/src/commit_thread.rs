//! The committer thread: offset commits, one at a time, off the coordinator.
//!
//! Why a thread and synchronous commits: librdkafka reports the result of
//! an *asynchronous* manual commit only to a C-level offset-commit callback,
//! which rdkafka's event-based consumer does not install. A refused async
//! commit is merely logged (`COMMITFAIL`) and the application never hears
//! of it, so it would count an offset as committed that the broker never
//! took. A synchronous commit returns the broker's answer, but may block
//! (up to the session timeout while no group coordinator is known), so it
//! runs here and the answer travels back to the coordinator as
//! [`PollEvent::Committed`].

use crate::messages::{CommitAnswer, PartitionId, PollEvent};
use crate::metrics::OFFSET_COMMIT_FAILURES_TOTAL;
use crate::retry::Backoff;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::Instant;
use tokio::sync::mpsc;

/// The coordinator's handle on the committer thread; dropping it ends the
/// thread once the commit in progress is answered.
pub(crate) struct Committer {
    requests: std_mpsc::SyncSender<Vec<(PartitionId, i64)>>,
}

impl Committer {
    /// Starts the thread. Answers go to `answers` (the coordinator's event
    /// channel).
    pub fn spawn<C: ConsumerContext + 'static>(
        consumer: Arc<BaseConsumer<C>>,
        answers: mpsc::Sender<PollEvent>,
    ) -> std::io::Result<Committer> {
        // One request waiting beside the one being committed: the
        // coordinator sends again on a later tick when this is full.
        let (requests, rx) = std_mpsc::sync_channel::<Vec<(PartitionId, i64)>>(1);
        std::thread::Builder::new()
            .name("kafka-commit".into())
            .spawn(move || {
                while let Ok(offsets) = rx.recv() {
                    let answer = commit(&consumer, &offsets);
                    if answers.blocking_send(PollEvent::Committed(answer)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Committer { requests })
    }

    /// Queues a commit of `(partition, next offset)` pairs. Returns false
    /// when the committer is busy (nothing was queued).
    pub fn request(&self, offsets: Vec<(PartitionId, i64)>) -> bool {
        self.requests.try_send(offsets).is_ok()
    }
}

/// Commits synchronously; every partition gets the request's answer.
pub(crate) fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &[(PartitionId, i64)],
) -> Vec<CommitAnswer> {
    let (listed, result) = commit_once(consumer, offsets);
    let result = result.map_err(|e| e.to_string());
    listed
        .into_iter()
        .map(|(partition, offset)| CommitAnswer {
            partition,
            offset,
            result: result.clone(),
        })
        .collect()
}

/// One synchronous commit: the offsets it carried and the broker's answer.
fn commit_once<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &[(PartitionId, i64)],
) -> (Vec<(PartitionId, i64)>, KafkaResult<()>) {
    let mut tpl = TopicPartitionList::new();
    let mut listed = Vec::with_capacity(offsets.len());
    for ((topic, partition), next) in offsets {
        match tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            Ok(()) => listed.push(((Arc::clone(topic), *partition), *next)),
            Err(e) => tracing::warn!(%topic, partition, error = %e, "cannot build commit list"),
        }
    }
    let result = consumer.commit(&tpl, CommitMode::Sync);
    (listed, result)
}

/// Whether the group has moved on from the generation a refused commit
/// was sent in, so retrying it cannot succeed: the member was fenced or
/// removed, and the partitions may be another member's already. During a
/// rebalance callback, "rebalance in progress" is final too: the rebalance
/// cannot finish before the callback returns, so retrying only holds the
/// member back from rejoining (the Java client does not retry either).
fn group_moved_on(error: &KafkaError, occasion: LastCommit) -> bool {
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::FencedInstanceId,
        ) => true,
        Some(RDKafkaErrorCode::RebalanceInProgress) => occasion == LastCommit::Revoke,
        _ => false,
    }
}

/// Why partitions get their last commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastCommit {
    /// From the rebalance callback, for revoked partitions.
    Revoke,
    /// At shutdown, for every partition.
    Shutdown,
}

impl std::fmt::Display for LastCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LastCommit::Revoke => "revoke",
            LastCommit::Shutdown => "shutdown",
        })
    }
}

/// Commits synchronously, retrying a refusal after `backoff` until
/// `deadline` (at least one attempt): the last commit for partitions about
/// to go (`occasion`). A refusal that says the group has moved on is not
/// retried. Returns whether the broker acknowledged every offset.
pub(crate) fn commit_until<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &[(PartitionId, i64)],
    deadline: Instant,
    backoff: &Backoff,
    occasion: LastCommit,
) -> bool {
    let mut attempt = 0;
    loop {
        let Err(error) = commit_once(consumer, offsets).1 else {
            return true;
        };
        attempt += 1;
        metrics::counter!(OFFSET_COMMIT_FAILURES_TOTAL).increment(1);
        if group_moved_on(&error, occasion) {
            tracing::warn!(%error, attempt, "commit on {occasion} refused: the group has moved on; the next owner replays from the last committed offset (harmless)");
            return false;
        }
        let delay = backoff.delay(attempt);
        if Instant::now() + delay >= deadline {
            tracing::warn!(%error, attempt, "commit on {occasion} failed within the drain timeout; the next owner replays from the last committed offset (harmless)");
            return false;
        }
        tracing::info!(%error, attempt, "commit on {occasion} refused; retrying");
        std::thread::sleep(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::ConsumerCommit(code)
    }

    #[test]
    fn a_fenced_or_removed_member_does_not_retry_its_commit() {
        for code in [
            RDKafkaErrorCode::IllegalGeneration,
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::FencedInstanceId,
        ] {
            assert!(
                group_moved_on(&refused(code), LastCommit::Shutdown),
                "{code:?}"
            );
            assert!(
                group_moved_on(&refused(code), LastCommit::Revoke),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_rebalance_in_progress_is_final_only_inside_the_rebalance() {
        let e = refused(RDKafkaErrorCode::RebalanceInProgress);
        assert!(group_moved_on(&e, LastCommit::Revoke));
        assert!(
            !group_moved_on(&e, LastCommit::Shutdown),
            "at shutdown the rebalance can finish"
        );
        for code in [
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::CoordinatorLoadInProgress,
        ] {
            assert!(
                !group_moved_on(&refused(code), LastCommit::Revoke),
                "{code:?}"
            );
        }
    }
}
