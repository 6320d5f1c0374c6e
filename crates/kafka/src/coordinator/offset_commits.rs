//! The coordinator's offset commits: periodic ones through the committer
//! thread, the broker's answers, and the last one before leaving the group.
//! What is due when is decided by [`crate::commit_tracker::CommitTracker`].

use super::Coordinator;
use crate::commit_thread;
use crate::messages::{CommitAnswer, PartitionId};
use crate::metrics::OFFSET_COMMIT_FAILURES_TOTAL;
use crate::progress;
use std::time::{Duration, Instant};

impl Coordinator {
    /// Sends a commit for every partition whose durable watermark is ahead
    /// of what the broker acknowledged (see [`crate::commit`]) to the
    /// committer thread, which answers with [`crate::messages::PollEvent::Committed`].
    pub(super) fn commit_async(&mut self) {
        let now = Instant::now();
        self.last_commit = now;
        let due: Vec<(PartitionId, i64)> = self
            .partitions
            .iter()
            .filter_map(|(id, state)| {
                let next = state.commit.due(state.durable()?, now)?;
                Some((id.clone(), next))
            })
            .collect();
        if due.is_empty() || !self.committer.request(due.clone()) {
            return; // busy: the next tick sends them
        }
        for (id, next) in due {
            if let Some(state) = self.partitions.get_mut(&id) {
                state.commit.sent(next, now);
            }
        }
    }

    /// The broker's answers: an acknowledged offset is committed (and only
    /// then published); a refused one is retried after a backoff.
    pub(super) fn on_committed(&mut self, answers: Vec<CommitAnswer>) {
        let now = Instant::now();
        for answer in answers {
            // Answers for partitions given up meanwhile concern their new
            // owner's bookkeeping, not ours.
            let Some(state) = self.partitions.get_mut(&answer.partition) else {
                continue;
            };
            match answer.result {
                Ok(()) => {
                    state.acknowledged(answer.offset);
                    progress::publish_committed(&answer.partition, answer.offset);
                }
                Err(error) => {
                    metrics::counter!(OFFSET_COMMIT_FAILURES_TOTAL).increment(1);
                    // A refusal storm (a long rebalance) logs once per streak
                    // and then every tenth attempt.
                    if state.commit.failures() % 10 == 0 {
                        tracing::warn!(topic = %answer.partition.0, partition = answer.partition.1,
                            offset = answer.offset, attempts = state.commit.failures() + 1, %error,
                            "offset commit refused by the broker; retrying");
                    }
                    state
                        .commit
                        .refused(answer.offset, now, &self.commit_backoff);
                }
            }
        }
    }

    /// The last commit before leaving the group: synchronous, retried
    /// within the drain timeout until the broker has every durable offset.
    pub(super) async fn commit_final(&mut self) {
        let due: Vec<(PartitionId, i64)> = self
            .partitions
            .iter()
            .filter_map(|(id, state)| {
                let next = state.durable().filter(|d| state.commit.behind(*d))?;
                Some((id.clone(), next))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let consumer = self.consumer.clone();
        let backoff = self.commit_backoff;
        let deadline = Instant::now() + Duration::from_millis(self.cfg.drain_timeout_ms);
        // A synchronous commit blocks: keep it off the async workers.
        let acked = tokio::task::spawn_blocking(move || {
            commit_thread::commit_until(
                &consumer,
                &due,
                deadline,
                &backoff,
                commit_thread::LastCommit::Shutdown,
            )
            .then_some(due)
        })
        .await;
        match acked {
            Ok(Some(due)) => self.on_committed(
                due.into_iter()
                    .map(|(partition, offset)| CommitAnswer {
                        partition,
                        offset,
                        result: Ok(()),
                    })
                    .collect(),
            ),
            Ok(None) => {} // logged by commit_until
            Err(e) => tracing::error!(error = %e, "commit task failed"),
        }
    }
}
