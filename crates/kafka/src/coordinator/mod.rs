//! The coordinator: one async task that owns all partition state.
//!
//! It receives records and rebalances from the poll thread and results from
//! the writers (see [`lanes`]); it batches records, keeps the in-flight
//! budgets by pausing and resuming partitions, advances offset watermarks
//! only over durable records, commits them until the broker acknowledges
//! them, and drains revoked partitions. Keeping all of it in one task means
//! no locks around partition state.

use crate::commit_thread::Committer;
use crate::config::WorkerConfig;
use crate::consumer::WorkerContext;
use crate::dead_letter::DeadLetter;
use crate::end_offsets::EndOffsets;
use crate::messages::{Assignment, BrokerOffsetsMap, PartitionId, PollEvent};
use crate::metrics::{
    INFLIGHT_BYTES, INFLIGHT_RECORDS, PARTITIONS_PAUSED, RECORDS_IN_TOTAL, WRITERS, WRITERS_BUSY,
};
use crate::partition::{JobMark, PartitionState};
use crate::progress::{self, Freshness};
use crate::retry::Backoff;
use crate::writer::{Item, Payload, WriterCommand, WriterEvent, WriterEventKind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use sinkfleet_core::backpressure::Load;
use sinkfleet_core::debezium::transaction::decode_marker;
use sinkfleet_core::debezium::{DecodeOptions, Decoder};
use sinkfleet_core::watermark::OffsetWatermark;
use sinkfleet_core::{DurableRange, ErrorClass, FlushMode, Position, VersionSource};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The consumer, shared with the poll thread (librdkafka handles are thread-safe).
type SharedConsumer = Arc<BaseConsumer<WorkerContext>>;

/// A revoke waiting for its partitions' in-flight writes.
struct PendingRevoke {
    partitions: Vec<PartitionId>,
    reply: std_mpsc::SyncSender<Vec<(PartitionId, i64)>>,
    deadline: Instant,
}

/// One partition's part of a job.
#[derive(Debug, Default)]
struct JobShare {
    /// The assignment of the partition it was taken from
    /// ([`PartitionState::generation`]).
    generation: u64,
    /// Records and bytes.
    load: Load,
    /// Offsets, timestamps and tables, kept until durable.
    mark: JobMark,
}

impl JobShare {
    /// An empty share of `state`'s partition, in its current assignment.
    fn of(state: &PartitionState) -> Self {
        JobShare {
            generation: state.generation,
            ..JobShare::default()
        }
    }
}

/// Health flags served on `/healthz` and `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    /// The runtime is running.
    pub live: AtomicBool,
    /// Subscribed and the sink is not failing.
    pub ready: AtomicBool,
}

mod dispatch;
mod lanes;
mod offset_commits;
mod report;
mod schemas;
mod transactions;

use lanes::InFlight;
pub(crate) use lanes::Lane;
pub(crate) use report::StatusFeed;

/// Most poll events (each record of a burst counts as one) handled in one
/// go before dispatch and backpressure run again. Those scan every
/// partition; running them after each record cost more than the record. A
/// burst is bounded so a full channel still yields to writer results and
/// ticks.
const POLL_BURST: usize = 256;

/// How often the broker is asked for the end offset of a partition that
/// does not fetch (paused, or nothing received): librdkafka's statistics
/// interval, at which the lag of the others refreshes.
const LIST_INTERVAL: Duration = Duration::from_secs(5);

/// Gauges set on every backpressure pass (`writers_busy` after each
/// dispatch), looked up once.
struct Gauges {
    paused: metrics::Gauge,
    inflight_records: metrics::Gauge,
    inflight_bytes: metrics::Gauge,
    /// Writers with a batch in flight (of `sinkfleet_writers`).
    writers_busy: metrics::Gauge,
}

pub(crate) struct Coordinator {
    consumer: SharedConsumer,
    committer: Committer,
    cfg: WorkerConfig,
    decoder: Decoder,
    partitions: HashMap<PartitionId, PartitionState>,
    /// The writers; a partition's is `PartitionState::lane`.
    lanes: Vec<Lane>,
    broker_offsets: BrokerOffsetsMap,
    health: Arc<Health>,
    stop_polling: Arc<AtomicBool>,
    revokes: Vec<PendingRevoke>,
    next_job: u64,
    last_commit: Instant,
    /// Delays between refused commits.
    commit_backoff: Backoff,
    /// Applied-through time and LSN per source table.
    freshness: Freshness,
    /// Versions are `(commit_lsn, lsn)`: freshness can name LSNs.
    lsn_versions: bool,
    gauges: Gauges,
    /// Transactional apply, if on.
    transactions: Option<transactions::Assembler>,
    /// Status reports, if published.
    status: Option<StatusFeed>,
    /// Lists end offsets of partitions that do not fetch.
    end_offsets: EndOffsets,
    /// The last assignment generation handed out.
    generation: u64,
    /// Registry schemas being fetched, if a topic's format uses them.
    schemas: Option<schemas::Schemas>,
    /// Their answers, taken by [`Coordinator::run`].
    schema_answers: Option<mpsc::UnboundedReceiver<schemas::Answer>>,
}

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        consumer: SharedConsumer,
        committer: Committer,
        cfg: WorkerConfig,
        decode: DecodeOptions,
        transactions: Option<crate::config::TransactionsConfig>,
        lanes: Vec<Lane>,
        broker_offsets: BrokerOffsetsMap,
        health: Arc<Health>,
        stop_polling: Arc<AtomicBool>,
        status: Option<StatusFeed>,
        end_offsets: EndOffsets,
        registry: Option<sinkfleet_schema_registry::RegistryClient>,
    ) -> Self {
        metrics::gauge!(WRITERS).set(lanes.len() as f64);
        let (answers, schema_answers) = mpsc::unbounded_channel();
        let schemas = registry.map(|client| {
            crate::metrics::at_zero::registry();
            schemas::Schemas::new(client, answers, Backoff::from_config(&cfg))
        });
        Coordinator {
            consumer,
            committer,
            commit_backoff: Backoff::from_config(&cfg),
            freshness: Freshness::default(),
            lsn_versions: decode.version == VersionSource::DebeziumLsn,
            transactions: transactions.as_ref().map(transactions::Assembler::new),
            cfg,
            decoder: Decoder::new(decode),
            partitions: HashMap::new(),
            lanes,
            broker_offsets,
            health,
            stop_polling,
            revokes: Vec::new(),
            status,
            end_offsets,
            generation: 0,
            schemas,
            schema_answers: Some(schema_answers),
            next_job: 0,
            last_commit: Instant::now(),
            gauges: Gauges {
                paused: metrics::gauge!(PARTITIONS_PAUSED),
                inflight_records: metrics::gauge!(INFLIGHT_RECORDS),
                inflight_bytes: metrics::gauge!(INFLIGHT_BYTES),
                writers_busy: metrics::gauge!(WRITERS_BUSY),
            },
        }
    }

    /// Runs until the poll thread reports `Closed` after `shutdown` fired.
    pub async fn run(
        mut self,
        mut poll_events: mpsc::Receiver<PollEvent>,
        mut writer_events: mpsc::UnboundedReceiver<WriterEvent>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut tick =
            tokio::time::interval(Duration::from_millis(self.cfg.linger_ms.clamp(10, 250)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping: Option<Instant> = None;
        let mut schema_answers = self.schema_answers.take();
        let mut final_commit_done = false;
        let mut final_flush_sent = false;
        self.health.live.store(true, Ordering::Release);
        self.health.ready.store(true, Ordering::Release);
        loop {
            tokio::select! {
                event = poll_events.recv() => {
                    if !self.on_poll_events(event, &mut poll_events, stopping.is_some()) {
                        break;
                    }
                },
                Some(event) = writer_events.recv() => self.on_writer(event),
                Some(answer) = async {
                    match schema_answers.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.on_schema(answer),
                _ = tick.tick() => {}
                _ = &mut shutdown, if stopping.is_none() => {
                    tracing::info!("shutdown requested: finishing in-flight writes");
                    stopping = Some(Instant::now() + Duration::from_millis(self.cfg.shutdown_timeout_ms));
                    for p in self.partitions.values_mut() { p.pending.clear(); p.pending_bytes = 0; p.pending_since = None; p.awaiting_schema = 0; }
                }
            }
            self.answer_revokes(false);
            match stopping {
                None => {
                    // Pauses first: a dispatch reads them. A write that
                    // succeeded after an outage, or freed a budget, must
                    // resume its partitions before the transaction
                    // assembler looks, or it takes them for stuck behind a
                    // full budget and splits a transaction that is still
                    // arriving. (A dispatch only moves records from
                    // pending to in flight: the loads it decides on are the
                    // same before and after.)
                    self.backpressure();
                    if self.transactions.is_some() {
                        self.dispatch_transactions().await;
                    } else {
                        self.dispatch().await;
                    }
                    self.publish_busy();
                    if self.last_commit.elapsed()
                        >= Duration::from_millis(self.cfg.commit_interval_ms)
                    {
                        // Buffering sinks report durability on flush. It
                        // queues behind an in-flight write (a writer takes
                        // commands in order), so a busy writer cannot starve
                        // it and hold every offset back.
                        self.flush(FlushMode::Due);
                        self.commit_async();
                        self.publish_progress();
                    }
                    self.report_status(false);
                }
                // A buffering sink makes what it holds durable before the
                // final commit, so a clean stop replays nothing.
                Some(deadline) if !final_flush_sent && self.idle() && Instant::now() < deadline => {
                    final_flush_sent = true;
                    self.flush(FlushMode::All);
                }
                Some(deadline)
                    if !final_commit_done
                        && ((final_flush_sent && self.idle()) || Instant::now() >= deadline) =>
                {
                    if !self.idle() {
                        tracing::warn!(
                            "shutdown timeout: abandoning the in-flight batch or flush (it will be replayed)"
                        );
                    }
                    self.commit_final().await;
                    final_commit_done = true;
                    self.stop_polling.store(true, Ordering::Release);
                }
                Some(_) => {}
            }
        }
        self.health.ready.store(false, Ordering::Release);
        self.answer_revokes(true);
        self.report_status(true);
    }

    /// Handles `first` and the events queued behind it, up to a burst.
    /// False once the poll thread is gone.
    fn on_poll_events(
        &mut self,
        first: Option<PollEvent>,
        queue: &mut mpsc::Receiver<PollEvent>,
        stopping: bool,
    ) -> bool {
        let mut event = first;
        let mut handled = 0;
        loop {
            match event {
                Some(PollEvent::Records(records)) => {
                    // A burst counts its records, so it bounds what arrives
                    // between two backpressure passes as before.
                    handled += records.len().saturating_sub(1);
                    if !stopping {
                        for incoming in records {
                            self.on_record(incoming)
                        }
                    }
                }
                Some(PollEvent::Assigned(partitions)) => self.on_assigned(partitions),
                Some(PollEvent::Revoked {
                    partitions,
                    reply,
                    lost,
                }) => self.on_revoked(partitions, reply, stopping || lost),
                Some(PollEvent::Committed(answers)) => self.on_committed(answers),
                Some(PollEvent::Closed) | None => return false,
            }
            handled += 1;
            if handled >= POLL_BURST {
                return true;
            }
            event = match queue.try_recv() {
                Ok(next) => Some(next),
                // Empty, or closed: the next `recv` says which.
                Err(_) => return true,
            };
        }
    }

    fn on_record(&mut self, r: crate::messages::Incoming) {
        let id: PartitionId = (r.topic.clone(), r.partition);
        let Some(state) = self.partitions.get_mut(&id) else {
            return; // revoked while the record was queued
        };
        state
            .records_in
            .get_or_insert_with(
                || metrics::counter!(RECORDS_IN_TOTAL, "topic" => r.topic.to_string()),
            )
            .increment(1);
        state.received_since_listing = true;
        if state.first_ts.is_none() {
            state.first_ts = r.timestamp_ms;
        }
        let covers_from = state.next_expected.unwrap_or(r.offset).min(r.offset);
        state.next_expected = Some(r.offset + 1);
        if state.watermark.is_none() {
            state.watermark = Some(OffsetWatermark::new(r.offset));
            state.first_offset = Some(r.offset);
        }
        let position = Position {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
        };
        let marker = self
            .transactions
            .as_ref()
            .is_some_and(|t| t.is_marker_topic(&position.topic));
        // Behind a record waiting for its schema, every record waits.
        let behind_waiting = state.awaiting_schema > 0;
        let mut item = Item {
            covers_from,
            position,
            key: r.key,
            value: r.value,
            replayed_offset: r.replayed_offset,
            payload: Payload::Skip,
            timestamp_ms: r.timestamp_ms,
            held: 0,
        };
        let missing = if marker || r.discard {
            Vec::new()
        } else {
            self.decoder.missing_schemas(
                &item.position.topic,
                item.key.as_deref(),
                item.value.as_deref(),
            )
        };
        item.payload = match (marker, item.value.as_deref()) {
            _ if r.discard => Payload::Discard,
            (true, Some(value)) => match decode_marker(value) {
                Ok(m) => Payload::Marker(Box::new(m)),
                Err(e) => Payload::DeadLetter(DeadLetter {
                    position: item.position.clone(),
                    key: item.key.clone(),
                    value: item.value.clone(),
                    class: ErrorClass::Decode,
                    message: e.to_string(),
                    parked_since: None,
                }),
            },
            (true, None) => Payload::Skip,
            (false, _) if behind_waiting || !missing.is_empty() => Payload::AwaitingSchema,
            (false, _) => schemas::decoded(&mut self.decoder, &item),
        };
        item.held = Item::held_bytes(item.key.as_deref(), item.value.as_deref(), &item.payload);
        let waits = matches!(item.payload, Payload::AwaitingSchema);
        let Some(state) = self.partitions.get_mut(&id) else {
            return;
        };
        state.pending_bytes += item.held;
        state.pending_since.get_or_insert_with(Instant::now);
        state.pending.push_back(item);
        if waits {
            state.awaiting_schema += 1;
            self.request_schemas(missing);
            self.count_awaiting();
        }
    }

    fn on_assigned(&mut self, assigned: Vec<Assignment>) {
        self.assignment_changed();
        let mut bound = vec![0usize; self.lanes.len()];
        for state in self.partitions.values() {
            bound[state.lane] += 1;
        }
        let mut resume = rdkafka::TopicPartitionList::new();
        for Assignment {
            partition: id,
            start,
        } in assigned
        {
            if self.reassigned(&id)
                && let Some(old) = self.partitions.remove(&id)
            {
                bound[old.lane] -= 1;
                // The poll thread resumed it before the assign, but the
                // old state may have paused it again since.
                resume.add_partition(&id.0, id.1);
            }
            self.generation += 1;
            let lane = lanes::least_loaded(&bound);
            bound[lane] += 1;
            let mut state = PartitionState {
                generation: self.generation,
                lane,
                ..PartitionState::default()
            };
            if let Some(start) = start {
                // Claimed in the target: everything below the start is
                // applied there or was dead-lettered, so it is the
                // durable watermark already, and Kafka's committed offset
                // must follow it even if no record ever arrives (a
                // partition whose records were all applied by an owner
                // that died before committing them to Kafka). Records
                // from the start on cover any gap before them.
                state.watermark = Some(OffsetWatermark::new(start.offset));
                state.first_offset = Some(start.offset);
                state.next_expected = Some(start.offset);
                if let Some(kafka) = start.kafka {
                    state.commit.seed(kafka);
                }
            }
            self.partitions.insert(id, state);
        }
        if resume.count() > 0
            && let Err(e) = self.consumer.resume(&resume)
        {
            tracing::warn!(error = %e, "cannot resume partitions assigned again");
        }
    }

    /// A partition assigned again while its revoke is still pending: the
    /// poll thread stopped waiting for the revoke's drain (it committed
    /// nothing for it) and the partition came back. The revoke no longer
    /// concerns it, or answering it would forget the partition we own
    /// again, and its records would be dropped. Its old writes still go:
    /// the writers drop what they hold of it, as for any revoke, and the
    /// partition starts afresh where the group (or the target) says.
    /// True when that was the case.
    fn reassigned(&mut self, id: &PartitionId) -> bool {
        let mut pending = false;
        for revoke in &mut self.revokes {
            let before = revoke.partitions.len();
            revoke.partitions.retain(|p| p != id);
            pending |= revoke.partitions.len() != before;
        }
        if pending {
            tracing::warn!(topic = %id.0, partition = id.1,
                "partition assigned again before its revoke finished draining: starting it afresh");
            for lane in &self.lanes {
                let _ = lane.revocations.send(vec![id.clone()]);
            }
        }
        pending || self.partitions.contains_key(id)
    }

    /// Some writer's sink is failing (see [`Coordinator::backpressure`]).
    fn held(&self) -> bool {
        self.lanes.iter().any(|l| l.held)
    }

    /// No writer is writing or flushing.
    fn idle(&self) -> bool {
        self.lanes.iter().all(Lane::idle)
    }

    /// Asks every writer not flushing yet to flush. A writer whose queue is
    /// full is asked again on the next tick; one draining for a revoke is
    /// not asked until the revoke is answered.
    fn flush(&mut self, mode: FlushMode) {
        for i in 0..self.lanes.len() {
            if self.lanes[i].flushing || self.draining(i) {
                continue;
            }
            let lane = &mut self.lanes[i];
            lane.flushing = lane.commands.try_send(WriterCommand::Flush(mode)).is_ok();
        }
    }

    /// Whether a pending revoke waits for `lane` to become idle. Such a
    /// lane gets no new job or flush: jobs and flushes in turn would keep
    /// it busy until the drain timeout, and the revoke would then be
    /// answered while a write (which may upload the revoked partition's
    /// files) is in flight. Its other partitions wait at most one job.
    fn draining(&self, lane: usize) -> bool {
        self.revokes.iter().any(|revoke| {
            revoke.partitions.iter().any(|p| {
                self.partitions
                    .get(p)
                    .is_some_and(|state| state.lane == lane)
            })
        })
    }

    /// Queues a revoke, answered once its writers are idle or at the drain
    /// timeout; `at_once` (stopping, or the assignment was lost) answers it
    /// without waiting for the writers.
    fn on_revoked(
        &mut self,
        partitions: Vec<PartitionId>,
        reply: std_mpsc::SyncSender<Vec<(PartitionId, i64)>>,
        at_once: bool,
    ) {
        for id in &partitions {
            if let Some(state) = self.partitions.get_mut(id) {
                // Not yet handed to the writer: the next owner reads them again.
                state.pending.clear();
                state.pending_bytes = 0;
                state.pending_since = None;
            }
        }
        let drain = if at_once {
            0
        } else {
            self.cfg.drain_timeout_ms
        };
        self.revokes.push(PendingRevoke {
            partitions,
            reply,
            deadline: Instant::now() + Duration::from_millis(drain),
        });
    }

    /// Answers revokes whose partitions have nothing in flight (or whose
    /// drain timed out): with the durable offsets, then forgets them.
    fn answer_revokes(&mut self, force: bool) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.revokes.len() {
            // The whole lane, not just jobs holding the partition: a
            // buffering sink's write or flush uploads any of its files that
            // are due, the revoked partition's included.
            let busy = self.revokes[i].partitions.iter().any(|p| {
                self.partitions
                    .get(p)
                    .is_some_and(|state| !self.lanes[state.lane].idle())
            });
            if busy && !force && now < self.revokes[i].deadline {
                i += 1;
                continue;
            }
            let revoke = self.revokes.swap_remove(i);
            self.assignment_changed();
            let mut offsets = Vec::new();
            for id in &revoke.partitions {
                // The poll thread commits these (and publishes the
                // committed offset once the broker acknowledged it), unless
                // the broker has them already.
                if let Some(state) = self.partitions.remove(id)
                    && let Some(next) = state.durable()
                    && state.commit.behind(next)
                {
                    offsets.push((id.clone(), next));
                }
                progress::clear_lag(id);
            }
            // Every lane hears it: a revocation of partitions a sink instance
            // never held is a no-op, and a partition's lane can be told
            // without looking it up again.
            for lane in &self.lanes {
                let _ = lane.revocations.send(revoke.partitions.clone());
            }
            let _ = revoke.reply.send(offsets);
        }
    }

    fn on_writer(&mut self, event: WriterEvent) {
        let Some(lane) = self.lanes.get_mut(event.lane) else {
            return;
        };
        match event.kind {
            WriterEventKind::Retrying { attempt, error } => {
                if !lane.held {
                    tracing::warn!(writer = event.lane, attempt, %error,
                        "sink failing: pausing all partitions until it recovers");
                }
                lane.held = true;
                self.health.ready.store(false, Ordering::Release);
                return;
            }
            WriterEventKind::Done { id, mut durable } => {
                if let Some(job) = lane.inflight.take_if(|j| j.id == id) {
                    for (pid, share) in job.load {
                        match self.partitions.get_mut(&pid) {
                            Some(state) if state.generation == share.generation => {
                                state.inflight.records -=
                                    share.load.records.min(state.inflight.records);
                                state.inflight.bytes -= share.load.bytes.min(state.inflight.bytes);
                                // Counts for freshness and lag once the
                                // watermark passes it: at once for a
                                // durable sink, after the upload for a
                                // buffering one.
                                state.written.push_back(share.mark);
                            }
                            // Taken from an earlier assignment of a
                            // partition assigned again: none of its
                            // bookkeeping is this assignment's.
                            Some(_) => {
                                durable.retain(|r| *r.topic != *pid.0 || r.partition != pid.1)
                            }
                            None => {}
                        }
                    }
                }
                self.mark_durable(durable);
            }
            WriterEventKind::Flushed(ranges) => {
                lane.flushing = false;
                self.mark_durable(ranges);
            }
        }
        // A write or flush succeeded: the writer's sink works again.
        let lane = &mut self.lanes[event.lane];
        if lane.held {
            tracing::info!(writer = event.lane, "sink recovered: resuming partitions");
        }
        lane.held = false;
        let ready = !self.held();
        self.health.ready.store(ready, Ordering::Release);
    }

    fn mark_durable(&mut self, ranges: Vec<DurableRange>) {
        for r in ranges {
            // Never for a partition we no longer own.
            if let Some(state) = self.partitions.get_mut(&(r.topic.clone(), r.partition))
                && let Some(w) = state.watermark.as_mut()
            {
                w.mark_durable(r.first, r.last);
                self.freshness.durable(&state.take_durable());
            }
        }
    }

    /// Lag per owned partition from the broker's numbers, durable but
    /// uncommitted records, and freshness per table.
    fn publish_progress(&mut self) {
        if let Some(assembler) = &self.transactions {
            assembler.publish(&self.partitions);
        }
        let now = crate::clock::now_ms();
        let broker = self
            .broker_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (id, state) in &mut self.partitions {
            let offsets = broker.get(id).copied();
            if let Some(b) = offsets {
                state.commit.seed(b.committed);
            }
            if let Some(lag) = progress::partition_lag(state, offsets, now) {
                progress::publish_lag(id, lag);
                state.lag_since_ms = (lag.records > 0).then(|| state.lag_since_ms.unwrap_or(now));
            }
        }
        drop(broker);
        self.freshness.publish(now);
        self.list_end_offsets();
    }

    /// Asks the broker for the end offsets of the partitions whose
    /// statistics may be stale (see [`crate::end_offsets`]).
    fn list_end_offsets(&mut self) {
        let now = Instant::now();
        let due: Vec<PartitionId> = self
            .partitions
            .iter()
            .filter(|(_, state)| state.listing_due(now, LIST_INTERVAL))
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() || !self.end_offsets.request(due.clone()) {
            return; // busy: the next tick asks
        }
        for id in due {
            if let Some(state) = self.partitions.get_mut(&id) {
                state.listed_at = Some(now);
                state.received_since_listing = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Start;
    use rdkafka::ClientConfig;
    use sinkfleet_core::DurableRange;

    /// A coordinator with one lane, on a consumer that never connects (no
    /// broker listens there), and what its lane receives.
    fn coordinator() -> (Coordinator, mpsc::UnboundedReceiver<Vec<PartitionId>>) {
        let (c, revoked, _commands) = coordinator_with_commands();
        (c, revoked)
    }

    /// [`coordinator`], and its lane's command queue (commands are sent
    /// only while it is open).
    fn coordinator_with_commands() -> (
        Coordinator,
        mpsc::UnboundedReceiver<Vec<PartitionId>>,
        mpsc::Receiver<WriterCommand>,
    ) {
        let (events, _) = mpsc::channel(16);
        let broker_offsets: BrokerOffsetsMap = Arc::default();
        let context = WorkerContext::new(
            events.clone(),
            Duration::from_secs(1),
            Backoff::fixed(Duration::from_millis(10)),
            Arc::clone(&broker_offsets),
            None,
            None,
        );
        let consumer: SharedConsumer = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", "127.0.0.1:9")
                .set("group.id", "g")
                .create_with_context(context)
                .expect("a consumer"),
        );
        let committer = Committer::spawn(Arc::clone(&consumer), events).expect("committer");
        let end_offsets = EndOffsets::spawn(Arc::clone(&consumer), Arc::clone(&broker_offsets))
            .expect("end offsets");
        let (commands, queue) = mpsc::channel(2);
        let (revocations, revoked) = mpsc::unbounded_channel();
        let coordinator = Coordinator::new(
            consumer,
            committer,
            WorkerConfig::default(),
            DecodeOptions::default(),
            None,
            vec![Lane::new(commands, revocations)],
            broker_offsets,
            Arc::default(),
            Arc::default(),
            None,
            end_offsets,
            None,
        );
        (coordinator, revoked, queue)
    }

    /// Job `id`, holding records of `partition`, in flight on lane 0.
    fn in_flight(c: &mut Coordinator, id: u64, partition: &PartitionId) {
        c.lanes[0].inflight = Some(InFlight {
            id,
            load: HashMap::from([(partition.clone(), JobShare::of(&c.partitions[partition]))]),
        });
    }

    /// Lane 0's writer finished job `id`, nothing made durable.
    fn done(c: &mut Coordinator, id: u64) {
        c.on_writer(WriterEvent {
            lane: 0,
            kind: WriterEventKind::Done {
                id,
                durable: Vec::new(),
            },
        });
    }

    fn assignment(p: &PartitionId, start: Option<Start>) -> Vec<Assignment> {
        vec![Assignment {
            partition: p.clone(),
            start,
        }]
    }

    #[test]
    fn a_partition_assigned_again_while_its_revoke_drains_stays_ours() {
        let (mut c, mut revoked) = coordinator();
        let p: PartitionId = (Arc::from("t"), 0);
        c.on_assigned(assignment(&p, None));
        // A write of it is in flight when it is revoked: the drain waits.
        in_flight(&mut c, 1, &p);
        let (reply, answer) = std_mpsc::sync_channel(1);
        c.on_revoked(vec![p.clone()], reply, false);
        c.answer_revokes(false);
        assert!(answer.try_recv().is_err(), "still draining");
        // The poll thread gave up waiting, and the partition came back.
        c.on_assigned(assignment(&p, None));
        assert_eq!(revoked.try_recv().ok(), Some(vec![p.clone()]));
        c.answer_revokes(true);
        assert_eq!(answer.try_recv().ok(), Some(Vec::new()));
        assert!(c.partitions.contains_key(&p), "the revoke forgot it");
        // The old write finishing is none of the new assignment's business.
        c.on_writer(WriterEvent {
            lane: 0,
            kind: WriterEventKind::Done {
                id: 1,
                durable: vec![DurableRange {
                    topic: Arc::clone(&p.0),
                    partition: 0,
                    first: 0,
                    last: 9,
                }],
            },
        });
        let state = &c.partitions[&p];
        assert!(state.written.is_empty() && state.durable().is_none());
    }

    /// A buffering sink's write uploads any of its lane's files that are
    /// due (by age, or to free memory), not only those of the job's
    /// partitions: a revoke answered while its lane writes another
    /// partition's job let an upload of the revoked partition land after
    /// its new owner had listed the store (the Parquet crash storm stored
    /// a record twice).
    #[test]
    fn a_revoke_waits_for_its_lanes_job_even_without_its_records() {
        let (mut c, mut revoked) = coordinator();
        let (p, q): (PartitionId, PartitionId) = ((Arc::from("t"), 0), (Arc::from("t"), 1));
        c.on_assigned(assignment(&p, None));
        c.on_assigned(assignment(&q, None));
        in_flight(&mut c, 1, &q);
        let (reply, answer) = std_mpsc::sync_channel(1);
        c.on_revoked(vec![p.clone()], reply, false);
        c.answer_revokes(false);
        assert!(answer.try_recv().is_err(), "answered while the lane writes");
        assert!(revoked.try_recv().is_err());
        done(&mut c, 1);
        c.answer_revokes(false);
        assert_eq!(answer.try_recv().ok(), Some(Vec::new()));
        assert_eq!(revoked.try_recv().ok(), Some(vec![p.clone()]));
    }

    /// A lane kept busy by jobs and flushes in turn (a flush is due every
    /// commit interval, and queues behind the job in flight) was never
    /// idle, so its revokes waited out the drain timeout and were answered
    /// while a job was in flight: an upload of the revoked partition could
    /// land after its new owner had listed the store, and the long callback
    /// cost the worker its group membership on the mock cluster. A lane
    /// with a revoke pending gets no new job and no flush.
    #[tokio::test]
    async fn a_lane_with_a_revoke_pending_gets_no_new_job_or_flush() {
        let (mut c, mut revoked, _queue) = coordinator_with_commands();
        c.cfg.linger_ms = 0;
        let (p, q): (PartitionId, PartitionId) = ((Arc::from("t"), 0), (Arc::from("t"), 1));
        c.on_assigned(assignment(&p, None));
        c.on_assigned(assignment(&q, None));
        in_flight(&mut c, 1, &q);
        // A commit interval passes while the job is in flight, then the
        // revoke comes, and a record of the other partition.
        c.flush(FlushMode::Due);
        assert!(c.lanes[0].flushing);
        let (reply, answer) = std_mpsc::sync_channel(1);
        c.on_revoked(vec![p.clone()], reply, false);
        c.on_record(crate::messages::Incoming {
            topic: Arc::clone(&q.0),
            partition: q.1,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: None,
            replayed_offset: None,
            discard: false,
        });
        done(&mut c, 1);
        c.answer_revokes(false);
        c.dispatch().await;
        c.flush(FlushMode::Due);
        assert!(
            c.lanes[0].inflight.is_none(),
            "a job went to the draining lane"
        );
        c.on_writer(WriterEvent {
            lane: 0,
            kind: WriterEventKind::Flushed(Vec::new()),
        });
        c.answer_revokes(false);
        assert_eq!(
            answer.try_recv().ok(),
            Some(Vec::new()),
            "the lane never became idle"
        );
        assert_eq!(revoked.try_recv().ok(), Some(vec![p.clone()]));
        // Once answered, the other partition's records go on.
        c.dispatch().await;
        assert!(c.lanes[0].inflight.is_some());
    }

    #[test]
    fn a_start_claimed_in_the_target_is_committed_without_a_record() {
        let (mut c, _revoked) = coordinator();
        let (p, q): (PartitionId, PartitionId) = ((Arc::from("t"), 0), (Arc::from("t"), 1));
        let start = |offset, kafka| {
            Some(Start {
                offset,
                kafka: Some(kafka),
            })
        };
        c.on_assigned(assignment(&p, start(50, 40)));
        c.on_assigned(assignment(&q, start(30, 30)));
        let now = Instant::now();
        let due = |c: &Coordinator, id: &PartitionId| {
            let state = &c.partitions[id];
            state.commit.due(state.durable()?, now)
        };
        assert_eq!(due(&c, &p), Some(50), "Kafka is behind the target");
        assert_eq!(due(&c, &q), None, "Kafka has it already");
    }
}
