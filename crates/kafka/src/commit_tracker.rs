//! When a partition's offset is committed, and what counts as committed.
//!
//! An offset counts as committed only once the broker acknowledged it (the
//! committer thread reports each answer, see [`crate::commit_thread`]). A
//! commit can be refused (a rebalance in progress, a stale generation, the
//! coordinator moving). A refused commit
//! of an idle partition would otherwise never be sent again, leaving a
//! stale committed offset that every lag dashboard, alert and autoscaler
//! reads as lag, and that the next owner replays from. So, per partition:
//!
//! * a commit is due whenever the durable watermark is ahead of the last
//!   acknowledged offset, whether or not new records arrived;
//! * one commit is in flight at a time (answers arrive in order), and one
//!   that is never answered is sent again after [`ANSWER_TIMEOUT`];
//! * a refused commit is retried after an exponential backoff.
//!
//! Pure policy: the coordinator feeds it times and answers.

use crate::retry::Backoff;
use std::time::{Duration, Instant};

/// How long a sent commit may go unanswered before it is sent again. The
/// committer answers every request (a synchronous commit gives up after
/// the session timeout at the latest); this only guards against an answer
/// that never reaches the coordinator.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Commit bookkeeping of one partition.
#[derive(Debug, Default)]
pub(crate) struct CommitTracker {
    /// The next offset to read as the broker last acknowledged it for the
    /// group (Kafka's committed offset), as far as this process knows.
    acked: Option<i64>,
    /// A commit sent and not answered yet: `(offset, sent at)`.
    inflight: Option<(i64, Instant)>,
    /// Refusals in a row, for the backoff.
    failures: u32,
    /// No new attempt before this instant (after a refusal).
    retry_at: Option<Instant>,
}

impl CommitTracker {
    /// The broker-acknowledged committed offset, if known.
    pub fn acked(&self) -> Option<i64> {
        self.acked
    }

    /// Refusals since the last acknowledged commit.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The offset to commit now, if any: `durable` (the watermark's next
    /// offset) when the broker does not have it yet, no commit is waiting
    /// for its answer, and no backoff is running.
    pub fn due(&self, durable: i64, now: Instant) -> Option<i64> {
        if self.acked == Some(durable) {
            return None;
        }
        if let Some((_, sent)) = self.inflight
            && now.duration_since(sent) < ANSWER_TIMEOUT
        {
            return None;
        }
        if self.retry_at.is_some_and(|at| now < at) {
            return None;
        }
        Some(durable)
    }

    /// Whether a final, synchronous commit has anything to do: the broker
    /// does not have `durable` yet (in flight or not).
    pub fn behind(&self, durable: i64) -> bool {
        self.acked != Some(durable)
    }

    /// A commit of `offset` was handed to librdkafka.
    pub fn sent(&mut self, offset: i64, now: Instant) {
        self.inflight = Some((offset, now));
    }

    /// The broker acknowledged `offset`.
    pub fn ack(&mut self, offset: i64) {
        if self.inflight.is_some_and(|(o, _)| o <= offset) {
            self.inflight = None;
        }
        // Answers come in order and the watermark never moves back while
        // the partition is owned: never let a late answer lower it.
        self.acked = Some(self.acked.map_or(offset, |a| a.max(offset)));
        self.failures = 0;
        self.retry_at = None;
    }

    /// The commit of `offset` was refused (or could not be sent): retry
    /// after a backoff that grows with every refusal in a row.
    pub fn refused(&mut self, offset: i64, now: Instant, backoff: &Backoff) {
        if self.inflight.is_none_or(|(o, _)| o == offset) {
            self.inflight = None;
        }
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + backoff.delay(self.failures));
    }

    /// The committed offset the broker already had when the partition was
    /// assigned (from librdkafka's statistics), if nothing newer is known.
    pub fn seed(&mut self, committed: i64) {
        if self.acked.is_none() && committed >= 0 {
            self.acked = Some(committed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::fixed(Duration::from_millis(100))
    }

    #[test]
    fn an_idle_partition_is_committed_until_the_broker_has_it() {
        let t0 = Instant::now();
        let mut c = CommitTracker::default();
        assert_eq!(c.due(10, t0), Some(10));
        c.sent(10, t0);
        assert_eq!(c.due(10, t0), None, "one commit in flight at a time");
        // Refused during a rebalance: nothing new arrives, yet it is
        // retried after the backoff.
        c.refused(10, t0, &backoff());
        assert_eq!(c.due(10, t0 + Duration::from_millis(50)), None);
        assert_eq!(c.due(10, t0 + Duration::from_millis(100)), Some(10));
        c.sent(10, t0 + Duration::from_millis(100));
        c.ack(10);
        assert_eq!(c.acked(), Some(10));
        assert_eq!(c.due(10, t0 + Duration::from_secs(5)), None, "done");
        assert_eq!(c.due(12, t0 + Duration::from_secs(5)), Some(12));
    }

    #[test]
    fn an_unanswered_commit_is_sent_again() {
        let t0 = Instant::now();
        let mut c = CommitTracker::default();
        c.sent(5, t0);
        assert_eq!(c.due(5, t0 + ANSWER_TIMEOUT / 2), None);
        assert_eq!(c.due(5, t0 + ANSWER_TIMEOUT), Some(5));
    }

    #[test]
    fn a_late_answer_never_lowers_the_acknowledged_offset() {
        let mut c = CommitTracker::default();
        c.ack(20);
        c.ack(15);
        assert_eq!(c.acked(), Some(20));
        assert!(!c.behind(20));
        assert!(c.behind(21));
    }

    #[test]
    fn refusals_back_off_and_an_ack_resets_them() {
        let t0 = Instant::now();
        let mut c = CommitTracker::default();
        let grow = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..5 {
            c.refused(3, t0, &grow);
        }
        assert_eq!(c.failures(), 5);
        assert_eq!(c.due(3, t0 + Duration::from_millis(400)), None);
        assert_eq!(c.due(3, t0 + Duration::from_secs(1)), Some(3));
        c.ack(3);
        assert_eq!(c.failures(), 0);
    }

    #[test]
    fn the_broker_committed_offset_seeds_only_an_unknown_state() {
        let mut c = CommitTracker::default();
        c.seed(-1001); // librdkafka's "invalid": the group never committed
        assert_eq!(c.acked(), None);
        c.seed(7);
        assert_eq!(c.acked(), Some(7));
        c.ack(9);
        c.seed(7);
        assert_eq!(c.acked(), Some(9));
    }
}
