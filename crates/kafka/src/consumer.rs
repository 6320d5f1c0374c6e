//! The poll thread and the consumer context.
//!
//! librdkafka runs rebalance callbacks on the thread that polls. A revoke
//! must not complete before the revoked partitions' in-flight writes are
//! drained and their durable offsets committed, so the poll runs on its own
//! OS thread: its revoke callback hands the partitions to the coordinator
//! and *blocks* until the coordinator answers with the offsets to commit,
//! commits them synchronously (retrying within the drain timeout), then
//! lets the revoke proceed. The thread polls continuously, so a paused or
//! slow sink never exceeds `max.poll.interval.ms`.
//!
//! Records travel to the coordinator in bursts (what librdkafka already
//! holds, up to [`RECORD_BURST`]), not one channel message and one wake-up
//! each. A burst is collected over several polls, and a rebalance callback
//! may run inside any of them, so the callbacks send the pending burst
//! first: records always arrive in the order they were polled, before the
//! revoke or assignment that followed them.
//!
//! When the sink keeps offsets in its target ([`OffsetStore`]), the assign
//! callback claims the new partitions there and starts each one at the
//! offset the target stored, before librdkafka fetches anything; the
//! coordinator hears that start with the assignment ([`Assignment`]), so
//! Kafka's committed offset follows it even if no record ever arrives.
//!
//! The assign callback also resumes the partitions it assigns: librdkafka
//! keeps an application pause on a partition across its revoke and a
//! later assign to the same process, and the coordinator's state of a new
//! assignment says "not paused".

use crate::messages::{
    Assignment, BrokerOffsets, BrokerOffsetsMap, Incoming, PartitionId, PollEvent, Start,
};
use crate::metrics::{COMMITTED_OFFSET, CONSUMER_ERRORS_TOTAL, REBALANCES_TOTAL, at_zero};
use crate::parking::Parking;
use crate::retry::Backoff;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList as Tpl};
use sinkfleet_core::OffsetStore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most records sent to the coordinator in one [`PollEvent::Records`].
pub const RECORD_BURST: usize = 64;

/// Consumer context: forwards rebalances, records statistics.
pub struct WorkerContext {
    events: mpsc::Sender<PollEvent>,
    drain_timeout: Duration,
    /// Retry delays of a refused revoke commit.
    commit_backoff: Backoff,
    broker_offsets: BrokerOffsetsMap,
    topics: Mutex<HashMap<String, Arc<str>>>,
    /// Records polled but not yet sent. Only the poll thread touches it (the
    /// callbacks run inside its `poll`), so the lock is never contended.
    pending: Mutex<Vec<Incoming>>,
    /// Where the sink keeps offsets in its target, if it does.
    target_offsets: Option<TargetOffsets>,
    /// The parked keys, with `on_error: park_key`.
    parking: Option<Arc<Parking>>,
    /// Starts of partitions claimed in the target, from the assign
    /// callback until the assignment is reported (poll thread only).
    starts: Mutex<HashMap<PartitionId, Start>>,
}

/// An [`OffsetStore`] and the async runtime its claims run on (the poll
/// thread is not one of the runtime's threads, so it may block on them).
pub struct TargetOffsets {
    /// The sink's store.
    pub store: Arc<dyn OffsetStore>,
    /// The runtime that runs its futures.
    pub runtime: tokio::runtime::Handle,
}

impl WorkerContext {
    /// Creates the context.
    pub fn new(
        events: mpsc::Sender<PollEvent>,
        drain_timeout: Duration,
        commit_backoff: Backoff,
        broker_offsets: BrokerOffsetsMap,
        target_offsets: Option<TargetOffsets>,
        parking: Option<Arc<Parking>>,
    ) -> Self {
        WorkerContext {
            events,
            drain_timeout,
            commit_backoff,
            broker_offsets,
            topics: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::with_capacity(RECORD_BURST)),
            target_offsets,
            parking,
            starts: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the keys parked in newly assigned partitions. Blocks the poll
    /// thread until the parked-keys topic could be read: without them, a
    /// parked key's next record would be applied ahead of its failed one.
    fn load_parked_keys(&self, tpl: &Tpl) {
        let Some(parking) = &self.parking else {
            return;
        };
        let partitions = self.partitions(tpl);
        let mut attempt = 0;
        loop {
            match parking.load(&partitions, Duration::from_secs(30)) {
                Ok(keys) => {
                    tracing::info!(keys, ?partitions, "parked keys loaded");
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "cannot read the parked keys; retrying");
                    std::thread::sleep(self.commit_backoff.delay(attempt));
                }
            }
        }
    }

    /// Claims newly assigned partitions in the target and sets each one's
    /// start to the offset stored there, or Kafka's committed offset when
    /// that is further on (the records between were dead-lettered). Blocks
    /// the poll thread until the target answers: starting anywhere else
    /// could apply a record twice, or skip one.
    fn start_at_target_offsets(&self, consumer: &BaseConsumer<Self>, tpl: &mut Tpl) {
        let Some(target) = &self.target_offsets else {
            return;
        };
        let partitions = self.partitions(tpl);
        let mut attempt = 0;
        let stored = loop {
            match target.runtime.block_on(target.store.claim(&partitions)) {
                Ok(stored) => break stored,
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "cannot claim assigned partitions in the target; retrying");
                    std::thread::sleep(self.commit_backoff.delay(attempt));
                }
            }
        };
        let mut committed = HashMap::new();
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(list) => {
                for e in list.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        committed.insert((e.topic().to_owned(), e.partition()), o);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets; starting at the target's")
            }
        }
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        for ((topic, partition), stored) in partitions.iter().zip(stored) {
            let Some(stored) = stored else { continue };
            let kafka = committed.get(&(topic.to_string(), *partition)).copied();
            let start = kafka.map_or(stored, |k| k.max(stored));
            tracing::info!(%topic, partition, stored, ?kafka, start, "starting at the target's offset");
            if let Err(e) = tpl.set_partition_offset(topic, *partition, Offset::Offset(start)) {
                tracing::warn!(%topic, partition, error = %e, "cannot set the start offset");
                continue;
            }
            starts.insert(
                (Arc::clone(topic), *partition),
                Start {
                    offset: start,
                    kafka,
                },
            );
        }
    }

    /// Resumes the partitions about to be assigned. librdkafka keeps a
    /// partition's application pause across its revoke and a later assign
    /// to this process (the partition's handle, flags included, outlives
    /// the assignment): one paused before it went (for a failing sink, a
    /// fence or a full budget) would come back assigned but never fetched,
    /// while the coordinator's fresh state says it is not paused. Done
    /// before the assign, so the fetch starts at the assigned position; a
    /// partition not paused is left as it is.
    fn resume_assigned(&self, consumer: &BaseConsumer<Self>, tpl: &Tpl) {
        if let Err(e) = consumer.resume(tpl) {
            tracing::warn!(error = %e, "cannot resume assigned partitions");
        }
    }

    /// Queues a polled record; true when the burst is full.
    fn hold(&self, record: Incoming) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.push(record);
        pending.len() >= RECORD_BURST
    }

    /// Sends the pending records, if any. False once the coordinator is gone.
    fn flush(&self) -> bool {
        let records = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.is_empty() {
                return true;
            }
            std::mem::replace(&mut *pending, Vec::with_capacity(RECORD_BURST))
        };
        // Bounded channel: if the coordinator lags, this blocks the poll
        // thread briefly instead of growing memory.
        self.events
            .blocking_send(PollEvent::Records(records))
            .is_ok()
    }

    /// The one shared name of `topic`; allocates only the first time.
    fn intern(&self, topic: &str) -> Arc<str> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(name) = topics.get(topic) {
            return Arc::clone(name);
        }
        let name: Arc<str> = Arc::from(topic);
        topics.insert(topic.to_owned(), Arc::clone(&name));
        name
    }

    fn partitions(&self, tpl: &Tpl) -> Vec<PartitionId> {
        tpl.elements()
            .iter()
            .map(|e| (self.intern(e.topic()), e.partition()))
            .collect()
    }
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        let mut offsets = self
            .broker_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                if *id < 0 {
                    continue;
                }
                let key = (self.intern(name), *id);
                match offsets.get_mut(&key) {
                    Some(known) => {
                        // A paused partition's statistics repeat the high
                        // watermark of its last fetch: never let them
                        // lower a listed end offset.
                        known.high = known.high.max(p.hi_offset);
                        if p.lo_offset >= 0 {
                            known.low = p.lo_offset;
                        }
                        known.committed = p.committed_offset;
                    }
                    None if p.hi_offset >= 0 || p.committed_offset >= 0 => {
                        offsets.insert(
                            key,
                            BrokerOffsets {
                                high: p.hi_offset,
                                low: p.lo_offset.max(0),
                                committed: p.committed_offset,
                            },
                        );
                    }
                    None => {}
                }
            }
        }
    }
}

impl ConsumerContext for WorkerContext {
    /// librdkafka's rebalance, as rdkafka does it, plus one step: an
    /// assignment's start offsets come from the target when it keeps them
    /// (they must be set before the assign, or librdkafka fetches from the
    /// committed offset first).
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut Tpl) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.start_at_target_offsets(consumer, tpl);
                self.load_parked_keys(tpl);
                self.resume_assigned(consumer, tpl);
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    tracing::error!(error = %e, "assign failed");
                }
                self.post_rebalance(consumer, &Rebalance::Assign(tpl));
            }
            // A revoke, or an error: either way the partitions go (as in
            // rdkafka's own rebalance).
            other => {
                let rebalance = if other == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    Rebalance::Revoke(tpl)
                } else {
                    let code: RDKafkaErrorCode = other.into();
                    Rebalance::Error(KafkaError::Rebalance(code))
                };
                self.pre_rebalance(consumer, &rebalance);
                let revoked = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = revoked {
                    tracing::error!(error = %e, "unassign failed");
                }
                self.post_rebalance(consumer, &rebalance);
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        // Records polled before the revoke go first, so the drain sees them.
        if !self.flush() {
            return; // coordinator gone: nothing durable to add
        }
        let partitions = self.partitions(tpl);
        let started = Instant::now();
        // Lost: another member may be writing them already, so this one
        // stops at once; a commit would be refused anyway.
        let lost = consumer.assignment_lost();
        if lost {
            metrics::counter!(REBALANCES_TOTAL, "kind" => "lost").increment(1);
            tracing::warn!(
                ?partitions,
                "assignment lost: the group gave these partitions to another member while this worker missed the rebalance; dropping what it holds of them, committing nothing"
            );
        } else {
            metrics::counter!(REBALANCES_TOTAL, "kind" => "revoke").increment(1);
            tracing::info!(?partitions, "partitions revoked: draining");
        }
        let (reply, answer) = std_mpsc::sync_channel(1);
        if self
            .events
            .blocking_send(PollEvent::Revoked {
                partitions,
                reply,
                lost,
            })
            .is_err()
        {
            return; // coordinator gone: nothing durable to add
        }
        // Wait for the drain (bounded: the coordinator gives up on in-flight
        // writes after the drain timeout and answers with what is durable).
        let offsets = match answer.recv_timeout(self.drain_timeout + Duration::from_secs(5)) {
            Ok(offsets) => offsets,
            Err(_) => {
                tracing::warn!("revoke drain timed out; committing nothing for revoked partitions");
                return;
            }
        };
        if offsets.is_empty() || lost {
            return;
        }
        // Retries share the drain's time budget, with a little left for a
        // drain that used all of it.
        let deadline = (started + self.drain_timeout).max(Instant::now() + Duration::from_secs(2));
        if crate::commit_thread::commit_until(
            consumer,
            &offsets,
            deadline,
            &self.commit_backoff,
            crate::commit_thread::LastCommit::Revoke,
        ) {
            tracing::info!(?offsets, "committed revoked partitions");
            for ((topic, partition), next) in &offsets {
                let labels = [
                    ("topic", topic.to_string()),
                    ("partition", partition.to_string()),
                ];
                metrics::gauge!(COMMITTED_OFFSET, &labels).set(*next as f64);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                // Records of the previous assignment come before it.
                if !self.flush() {
                    return;
                }
                let partitions = self.partitions(tpl);
                // Before any record of the partitions can be counted, so
                // the first dead letter of a topic is an increase from 0.
                let mut topics: Vec<&Arc<str>> = partitions.iter().map(|(t, _)| t).collect();
                topics.sort();
                topics.dedup();
                for topic in topics {
                    at_zero::topic(topic, self.parking.is_some());
                }
                metrics::counter!(REBALANCES_TOTAL, "kind" => "assign").increment(1);
                tracing::info!(?partitions, "partitions assigned");
                let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
                let assigned = partitions
                    .into_iter()
                    .map(|partition| Assignment {
                        start: starts.remove(&partition),
                        partition,
                    })
                    .collect();
                // Starts of partitions that were not assigned after all
                // (the assign failed) must not reach a later assignment.
                starts.clear();
                drop(starts);
                let _ = self.events.blocking_send(PollEvent::Assigned(assigned));
            }
            Rebalance::Revoke(tpl) => {
                if let Some(parking) = &self.parking {
                    parking.forget(&self.partitions(tpl));
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The original offset a replayed record carries
/// ([`REPLAYED_OFFSET`](crate::inspect::REPLAYED_OFFSET)).
fn replayed_offset(msg: &rdkafka::message::BorrowedMessage<'_>) -> Option<i64> {
    msg.headers()?
        .iter()
        .find(|h| h.key == crate::inspect::REPLAYED_OFFSET)
        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
}

/// Runs the poll loop until `stop` is set, then leaves the group (revoking
/// everything through the callbacks above) and reports `Closed`.
pub fn poll_loop(consumer: Arc<BaseConsumer<WorkerContext>>, stop: Arc<AtomicBool>) {
    let context = consumer.context();
    let mut unsubscribed = false;
    loop {
        if stop.load(Ordering::Acquire) && !unsubscribed {
            consumer.unsubscribe();
            unsubscribed = true;
        }
        if unsubscribed
            && consumer
                .assignment()
                .map(|a| a.count() == 0)
                .unwrap_or(true)
        {
            break;
        }
        // Wait for a record, then take what librdkafka already holds
        // without waiting, up to a burst.
        let mut timeout = Duration::from_millis(100);
        // Records come in runs of one topic: the last name is reused
        // without taking the interning lock.
        let mut topic: Option<Arc<str>> = None;
        loop {
            match consumer.poll(timeout) {
                None => break,
                Some(Ok(msg)) => {
                    let name = match topic.take() {
                        Some(name) if *name == *msg.topic() => name,
                        _ => context.intern(msg.topic()),
                    };
                    topic = Some(Arc::clone(&name));
                    let incoming = Incoming {
                        topic: name,
                        partition: msg.partition(),
                        offset: msg.offset(),
                        timestamp_ms: msg.timestamp().to_millis(),
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                        replayed_offset: replayed_offset(&msg),
                        discard: msg
                            .headers()
                            .is_some_and(|h| h.iter().any(|h| h.key == crate::inspect::DISCARD)),
                    };
                    if context.hold(incoming) {
                        break;
                    }
                }
                Some(Err(e)) => {
                    metrics::counter!(CONSUMER_ERRORS_TOTAL).increment(1);
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
            }
            timeout = Duration::ZERO;
        }
        if !context.flush() {
            break;
        }
    }
    let events = context.events.clone();
    // Drop our handle before reporting, so the coordinator's drop (the
    // last one) closes the consumer after the group was left.
    drop(consumer);
    let _ = events.blocking_send(PollEvent::Closed);
}
