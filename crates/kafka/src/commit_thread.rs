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
    let mut tpl = TopicPartitionList::new();
    let mut listed = Vec::with_capacity(offsets.len());
    for ((topic, partition), next) in offsets {
        match tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            Ok(()) => listed.push(((Arc::clone(topic), *partition), *next)),
            Err(e) => tracing::warn!(%topic, partition, error = %e, "cannot build commit list"),
        }
    }
    let result = consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(|e| e.to_string());
    listed
        .into_iter()
        .map(|(partition, offset)| CommitAnswer {
            partition,
            offset,
            result: result.clone(),
        })
        .collect()
}

/// Commits synchronously, retrying a refusal after `backoff` until
/// `deadline` (at least one attempt): the last commit for partitions about
/// to go, on a revoke or at shutdown (`what`, for the log). Returns whether
/// the broker acknowledged every offset.
pub(crate) fn commit_until<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &[(PartitionId, i64)],
    deadline: Instant,
    backoff: &Backoff,
    what: &str,
) -> bool {
    let mut attempt = 0;
    loop {
        let refused = commit(consumer, offsets)
            .into_iter()
            .find_map(|answer| answer.result.err());
        let Some(error) = refused else {
            return true;
        };
        attempt += 1;
        metrics::counter!(OFFSET_COMMIT_FAILURES_TOTAL).increment(1);
        let delay = backoff.delay(attempt);
        if Instant::now() + delay >= deadline {
            tracing::warn!(%error, attempt, "commit on {what} failed within the drain timeout; the next owner replays from the last committed offset (harmless)");
            return false;
        }
        tracing::info!(%error, attempt, "commit on {what} refused; retrying");
        std::thread::sleep(delay);
    }
}
