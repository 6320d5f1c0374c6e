//! Handing batches to the writers, and pausing partitions by the budgets.

use super::{Coordinator, InFlight, JobShare};
use crate::messages::PartitionId;
use crate::partition::{PartitionState, PauseCause};
use crate::writer::{Item, Job, Payload, WriterCommand};
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::TopicPartitionList;
use sinkfleet_core::backpressure::{Budget, Decision, Load, decide};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What waits for one lane: records not yet handed to its writer.
#[derive(Debug, Clone, Default)]
struct Waiting {
    /// Partitions bound to the lane.
    partitions: usize,
    records: usize,
    bytes: u64,
    /// When the oldest waiting record arrived.
    oldest: Option<Instant>,
}

impl Coordinator {
    /// Hands a batch to every idle writer whose partitions have one due,
    /// unless the sink is failing: then the failing writer's retries probe
    /// the target and the others wait with it. One pass over the partitions
    /// sums what waits per lane; only a lane with a batch due is visited
    /// again, to take it.
    pub(super) async fn dispatch(&mut self) {
        if self.held() {
            return;
        }
        let mut waiting = vec![Waiting::default(); self.lanes.len()];
        for p in self.partitions.values() {
            let w = &mut waiting[p.lane];
            w.partitions += 1;
            w.records += p.pending.len();
            w.bytes += p.pending_bytes;
            w.oldest = match (w.oldest, p.pending_since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let linger = Duration::from_millis(self.cfg.linger_ms);
        for (lane, w) in waiting.into_iter().enumerate() {
            let due = w.records > 0
                && (w.records >= self.cfg.batch_max_records
                    || w.bytes >= self.cfg.batch_max_bytes as u64
                    || w.oldest.is_some_and(|t| t.elapsed() >= linger));
            if due && self.lanes[lane].inflight.is_none() && !self.draining(lane) {
                self.dispatch_lane(lane, &w).await;
            }
        }
    }

    /// Takes a batch from the partitions bound to `lane`, where `waiting`
    /// records wait.
    async fn dispatch_lane(&mut self, lane: usize, waiting: &Waiting) {
        let records = waiting.records;
        let mut items = Vec::with_capacity(records.min(self.cfg.batch_max_records));
        let mut job_load: HashMap<PartitionId, JobShare> = HashMap::new();
        let mut taken_bytes = 0u64;
        // Fair share: round-robin over partitions, one record at a time is
        // too slow; take up to an equal slice from each.
        let share = (self.cfg.batch_max_records / waiting.partitions.max(1)).max(1);
        for (pid, state) in self.partitions.iter_mut().filter(|(_, p)| p.lane == lane) {
            let mut n = 0;
            while n < share
                && items.len() < self.cfg.batch_max_records
                && taken_bytes < self.cfg.batch_max_bytes as u64
            {
                if state.pending.is_empty() {
                    break;
                }
                let entry = job_load
                    .entry(pid.clone())
                    .or_insert_with(|| JobShare::of(state));
                let Some(item) = take_head(state, entry, self.lsn_versions) else {
                    break;
                };
                let b = item.bytes();
                taken_bytes += b;
                items.push(item);
                n += 1;
            }
            state.pending_since = if state.pending.is_empty() {
                None
            } else {
                Some(Instant::now())
            };
        }
        self.send_job(lane, items, job_load).await;
    }

    /// Hands `items` to `lane`'s writer as the next job; `job_load` is
    /// what it holds of each partition, kept until it is durable.
    pub(super) async fn send_job(
        &mut self,
        lane: usize,
        items: Vec<Item>,
        job_load: HashMap<PartitionId, JobShare>,
    ) {
        let id = self.next_job;
        self.next_job += 1;
        let lane = &mut self.lanes[lane];
        lane.inflight = Some(InFlight { id, load: job_load });
        if lane
            .commands
            .send(WriterCommand::Write(Job { id, items }))
            .await
            .is_err()
        {
            tracing::error!("writer task is gone");
        }
    }

    /// Pauses and resumes partitions according to the budgets. While a
    /// writer's sink is failing every partition stays paused: the writers
    /// share one target, and what stops one (an outage, a full disk)
    /// stops them all. Runs before each dispatch, so what a dispatch reads
    /// (the transaction assembler reads the pauses) is current.
    pub(super) fn backpressure(&mut self) {
        let held = self.held();
        let global = self.partitions.values().fold(Load::default(), |acc, p| {
            let l = p.load();
            Load {
                records: acc.records + l.records,
                bytes: acc.bytes + l.bytes,
            }
        });
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        let registry_down = self.schemas.as_ref().is_some_and(|s| s.down());
        for ((topic, partition), state) in self.partitions.iter_mut() {
            let outage = if held {
                Some(PauseCause::Sink)
            } else if registry_down && state.awaiting_schema > 0 {
                Some(PauseCause::Registry)
            } else {
                None
            };
            let next = next_pause(
                state.pause,
                state.load(),
                &self.cfg.partition_budget,
                global,
                &self.cfg.global_budget,
                outage,
            );
            match (state.paused(), next.is_some()) {
                (false, true) => {
                    pause.add_partition(topic, *partition);
                }
                (true, false) => {
                    resume.add_partition(topic, *partition);
                }
                _ => {}
            }
            state.pause = next;
        }
        if pause.count() > 0
            && let Err(e) = self.consumer.pause(&pause)
        {
            tracing::debug!(error = %e, "pause failed (partition revoked meanwhile?)");
        }
        if resume.count() > 0
            && let Err(e) = self.consumer.resume(&resume)
        {
            tracing::debug!(error = %e, "resume failed (partition revoked meanwhile?)");
        }
        let paused = self.partitions.values().filter(|p| p.paused()).count();
        self.gauges.paused.set(paused as f64);
        self.gauges.inflight_records.set(global.records as f64);
        self.gauges.inflight_bytes.set(global.bytes as f64);
    }

    /// Writers with a batch in flight, after the dispatch.
    pub(super) fn publish_busy(&self) {
        let busy = self.lanes.iter().filter(|l| l.inflight.is_some()).count();
        self.gauges.writers_busy.set(busy as f64);
    }
}

/// A partition's pause after a backpressure pass: the budget policy
/// ([`decide`]) for one paused for its budget or not paused, plus the
/// cause. A partition paused only because the sink was failing resumes as
/// soon as the sink works again, unless its load is over a high-water mark
/// by then (then it stays paused, for its budget now): the band between
/// the marks keeps budget pauses from flapping, and an outage is no
/// budget. Otherwise that partition would stay paused with room in its
/// budget, and the transaction assembler would take it for full.
fn next_pause(
    current: Option<PauseCause>,
    load: Load,
    partition_budget: &Budget,
    global: Load,
    global_budget: &Budget,
    outage: Option<PauseCause>,
) -> Option<PauseCause> {
    let outage_over = matches!(current, Some(PauseCause::Sink | PauseCause::Registry));
    if outage_over && outage.is_none() {
        let full = partition_budget.over_high(load) || global_budget.over_high(global);
        return full.then_some(PauseCause::Budget);
    }
    match decide(
        current.is_some(),
        load,
        partition_budget,
        global,
        global_budget,
        outage.is_some(),
    ) {
        Decision::Pause if outage.is_some() => outage,
        Decision::Pause => Some(PauseCause::Budget),
        Decision::Resume => None,
        Decision::Keep => current,
    }
}

/// Moves the head record of `state` into a job: counts it in flight and in
/// the job's `share` of the partition (offsets, timestamps, tables, for
/// freshness once it is durable). `lsn_versions`: versions are commit
/// LSNs, so the share can name the newest one.
pub(super) fn take_head(
    state: &mut PartitionState,
    share: &mut JobShare,
    lsn_versions: bool,
) -> Option<Item> {
    if matches!(
        state.pending.front().map(|i| &i.payload),
        Some(Payload::AwaitingSchema)
    ) {
        return None;
    }
    let item = state.pending.pop_front()?;
    let b = item.bytes();
    state.pending_bytes -= b.min(state.pending_bytes);
    state.inflight.records += 1;
    state.inflight.bytes += b;
    share.load.records += 1;
    share.load.bytes += b;
    let mark = &mut share.mark;
    mark.newest_ts = mark.newest_ts.max(item.timestamp_ms);
    mark.last_offset = mark.last_offset.max(item.position.offset);
    if let Payload::Change(record) = &item.payload {
        let c = &record.change;
        // Snapshot rows from Debezium carry no commit LSN.
        let lsn = lsn_versions.then(|| c.version.major.max(c.version.minor));
        mark.add_change(&c.table, c.source_ts_ms, lsn);
    }
    Some(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTITION: Budget = Budget {
        high_records: 100,
        high_bytes: 1_000_000,
        resume_percent: 50,
    };
    const GLOBAL: Budget = Budget {
        high_records: 1_000,
        high_bytes: 10_000_000,
        resume_percent: 50,
    };

    fn records(n: u64) -> Load {
        Load {
            records: n,
            bytes: n,
        }
    }

    fn next(current: Option<PauseCause>, load: u64, held: bool) -> Option<PauseCause> {
        next_pause(
            current,
            records(load),
            &PARTITION,
            records(load),
            &GLOBAL,
            held.then_some(PauseCause::Sink),
        )
    }

    #[test]
    fn a_failing_sink_pauses_everyone_and_its_recovery_resumes_them() {
        assert_eq!(next(None, 0, true), Some(PauseCause::Sink));
        assert_eq!(
            next(Some(PauseCause::Sink), 0, true),
            Some(PauseCause::Sink)
        );
        // Between the marks: a budget pause would stay, an outage's does not.
        assert_eq!(next(Some(PauseCause::Sink), 70, false), None);
        assert_eq!(
            next(Some(PauseCause::Budget), 70, false),
            Some(PauseCause::Budget)
        );
        // Over the high mark when the sink recovers: paused for the budget now.
        assert_eq!(
            next(Some(PauseCause::Sink), 100, false),
            Some(PauseCause::Budget)
        );
    }

    #[test]
    fn a_budget_pause_keeps_its_cause_through_an_outage() {
        assert_eq!(next(None, 100, false), Some(PauseCause::Budget));
        assert_eq!(
            next(Some(PauseCause::Budget), 10, true),
            Some(PauseCause::Budget)
        );
        assert_eq!(next(Some(PauseCause::Budget), 10, false), None);
    }
}
