//! The coordinator: one async task that owns all partition state.
//!
//! It receives records and rebalances from the poll thread and results from
//! the writer; it batches records, keeps the in-flight budgets by pausing
//! and resuming partitions, advances offset watermarks only over durable
//! records, commits them, and drains revoked partitions. Keeping all of it
//! in one task means no locks around partition state.

use crate::config::WorkerConfig;
use crate::consumer::{HighWatermarks, PartitionId, PollEvent, WorkerContext};
use crate::dead_letter::DeadLetter;
use crate::partition::PartitionState;
use crate::writer::{Item, Job, Payload, WriterCommand, WriterEvent};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sinkfleet_core::backpressure::{Decision, Load, decide};
use sinkfleet_core::debezium::{DecodeOptions, Decoder};
use sinkfleet_core::watermark::OffsetWatermark;
use sinkfleet_core::{DurableRange, ErrorClass, FlushMode, Position, SinkRecord};
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

/// The job the writer is working on.
struct InFlight {
    id: u64,
    /// Per partition: what the job holds of it.
    load: HashMap<PartitionId, JobShare>,
}

/// One partition's part of a job.
#[derive(Debug, Default)]
struct JobShare {
    /// Records and bytes.
    load: Load,
    /// Newest record timestamp (ms).
    newest_ts: Option<i64>,
    /// Highest offset.
    last_offset: i64,
}

/// Health flags served on `/healthz` and `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    /// The runtime is running.
    pub live: AtomicBool,
    /// Subscribed and the sink is not failing.
    pub ready: AtomicBool,
}

pub(crate) struct Coordinator {
    consumer: SharedConsumer,
    cfg: WorkerConfig,
    decoder: Decoder,
    partitions: HashMap<PartitionId, PartitionState>,
    writer: mpsc::Sender<WriterCommand>,
    /// Revoked partitions, for the writer (see [`crate::releases::Releases`]).
    releases: mpsc::UnboundedSender<Vec<PartitionId>>,
    high_watermarks: HighWatermarks,
    health: Arc<Health>,
    stop_polling: Arc<AtomicBool>,
    inflight: Option<InFlight>,
    revokes: Vec<PendingRevoke>,
    next_job: u64,
    /// The sink is failing: every partition stays paused.
    held: bool,
    /// A flush is with the writer: a buffering sink may be uploading records
    /// of any partition, so revokes wait for it.
    flushing: bool,
    last_commit: Instant,
}

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        consumer: SharedConsumer,
        cfg: WorkerConfig,
        decode: DecodeOptions,
        writer: mpsc::Sender<WriterCommand>,
        releases: mpsc::UnboundedSender<Vec<PartitionId>>,
        high_watermarks: HighWatermarks,
        health: Arc<Health>,
        stop_polling: Arc<AtomicBool>,
    ) -> Self {
        Coordinator {
            consumer,
            cfg,
            decoder: Decoder::new(decode),
            partitions: HashMap::new(),
            writer,
            releases,
            high_watermarks,
            health,
            stop_polling,
            inflight: None,
            revokes: Vec::new(),
            next_job: 0,
            held: false,
            flushing: false,
            last_commit: Instant::now(),
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
        let mut final_commit_done = false;
        let mut final_flush_sent = false;
        self.health.live.store(true, Ordering::Release);
        self.health.ready.store(true, Ordering::Release);
        loop {
            tokio::select! {
                event = poll_events.recv() => match event {
                    Some(PollEvent::Record(incoming)) => {
                        if stopping.is_none() { self.on_record(incoming) }
                    }
                    Some(PollEvent::Assigned(partitions)) => self.on_assigned(partitions),
                    Some(PollEvent::Revoked { partitions, reply }) => self.on_revoked(partitions, reply, stopping.is_some()),
                    Some(PollEvent::Closed) | None => break,
                },
                Some(event) = writer_events.recv() => self.on_writer(event),
                _ = tick.tick() => {}
                _ = &mut shutdown, if stopping.is_none() => {
                    tracing::info!("shutdown requested: finishing in-flight writes");
                    stopping = Some(Instant::now() + Duration::from_millis(self.cfg.shutdown_timeout_ms));
                    for p in self.partitions.values_mut() { p.pending.clear(); p.pending_bytes = 0; p.pending_since = None; }
                }
            }
            self.answer_revokes(false);
            match stopping {
                None => {
                    self.dispatch().await;
                    self.backpressure();
                    if self.last_commit.elapsed()
                        >= Duration::from_millis(self.cfg.commit_interval_ms)
                    {
                        // Buffering sinks report durability on flush. It
                        // queues behind an in-flight write (the writer takes
                        // commands in order), so a busy writer cannot starve
                        // it and hold every offset back.
                        if !self.flushing {
                            self.flushing = self
                                .writer
                                .try_send(WriterCommand::Flush(FlushMode::Due))
                                .is_ok();
                        }
                        self.commit(CommitMode::Async).await;
                        self.publish_lag();
                    }
                }
                // A buffering sink makes what it holds durable before the
                // final commit, so a clean stop replays nothing.
                Some(deadline)
                    if !final_flush_sent
                        && self.inflight.is_none()
                        && !self.flushing
                        && Instant::now() < deadline =>
                {
                    final_flush_sent = true;
                    self.flushing = self
                        .writer
                        .try_send(WriterCommand::Flush(FlushMode::All))
                        .is_ok();
                }
                Some(deadline)
                    if !final_commit_done
                        && ((final_flush_sent && self.inflight.is_none() && !self.flushing)
                            || Instant::now() >= deadline) =>
                {
                    if self.inflight.is_some() || self.flushing {
                        tracing::warn!(
                            "shutdown timeout: abandoning the in-flight batch or flush (it will be replayed)"
                        );
                    }
                    self.commit(CommitMode::Sync).await;
                    final_commit_done = true;
                    self.stop_polling.store(true, Ordering::Release);
                }
                Some(_) => {}
            }
        }
        self.health.ready.store(false, Ordering::Release);
        self.answer_revokes(true);
    }

    fn on_record(&mut self, r: crate::consumer::Incoming) {
        let id: PartitionId = (r.topic.clone(), r.partition);
        let Some(state) = self.partitions.get_mut(&id) else {
            return; // revoked while the record was queued
        };
        metrics::counter!("sinkfleet_records_in_total", "topic" => r.topic.to_string())
            .increment(1);
        let covers_from = state.next_expected.unwrap_or(r.offset).min(r.offset);
        state.next_expected = Some(r.offset + 1);
        state
            .watermark
            .get_or_insert_with(|| OffsetWatermark::new(r.offset));
        let position = Position {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
        };
        let payload = match self
            .decoder
            .decode(r.key.as_deref(), r.value.as_deref(), r.offset)
        {
            Ok(Some(change)) => Payload::Change(SinkRecord {
                position: position.clone(),
                change,
            }),
            Ok(None) => Payload::Skip,
            Err(e) => Payload::DeadLetter(DeadLetter {
                position: position.clone(),
                key: r.key.clone(),
                value: r.value.clone(),
                class: ErrorClass::Decode,
                message: e.to_string(),
            }),
        };
        let bytes =
            (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64;
        state.pending_bytes += bytes;
        state.pending_since.get_or_insert_with(Instant::now);
        state.pending.push_back(Item {
            covers_from,
            position,
            key: r.key,
            value: r.value,
            payload,
            timestamp_ms: r.timestamp_ms,
        });
    }

    fn on_assigned(&mut self, partitions: Vec<PartitionId>) {
        for id in partitions {
            self.partitions.entry(id).or_default();
        }
    }

    fn on_revoked(
        &mut self,
        partitions: Vec<PartitionId>,
        reply: std_mpsc::SyncSender<Vec<(PartitionId, i64)>>,
        stopping: bool,
    ) {
        for id in &partitions {
            if let Some(state) = self.partitions.get_mut(id) {
                // Not yet handed to the writer: the next owner reads them again.
                state.pending.clear();
                state.pending_bytes = 0;
                state.pending_since = None;
            }
        }
        let drain = if stopping {
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
            let busy = self.flushing
                || self.inflight.as_ref().is_some_and(|job| {
                    self.revokes[i]
                        .partitions
                        .iter()
                        .any(|p| job.load.contains_key(p))
                });
            if busy && !force && now < self.revokes[i].deadline {
                i += 1;
                continue;
            }
            let revoke = self.revokes.swap_remove(i);
            let mut offsets = Vec::new();
            for id in &revoke.partitions {
                if let Some(state) = self.partitions.remove(id)
                    && let Some(next) = state.watermark.as_ref().map(OffsetWatermark::committable)
                {
                    offsets.push((id.clone(), next));
                    metrics::gauge!("sinkfleet_committed_offset", "topic" => id.0.to_string(), "partition" => id.1.to_string()).set(next as f64);
                }
            }
            let _ = self.releases.send(revoke.partitions.clone());
            let _ = revoke.reply.send(offsets);
        }
    }

    fn on_writer(&mut self, event: WriterEvent) {
        match event {
            WriterEvent::Retrying { attempt, error } => {
                if !self.held {
                    tracing::warn!(attempt, %error, "sink failing: pausing all partitions until it recovers");
                }
                self.held = true;
                self.health.ready.store(false, Ordering::Release);
            }
            WriterEvent::Done { id, durable } => {
                if let Some(job) = self.inflight.take_if(|j| j.id == id) {
                    for (pid, share) in job.load {
                        if let Some(state) = self.partitions.get_mut(&pid) {
                            state.inflight.records -=
                                share.load.records.min(state.inflight.records);
                            state.inflight.bytes -= share.load.bytes.min(state.inflight.bytes);
                            // Counts for lag in seconds once the watermark
                            // passes it: at once for a durable sink, after
                            // the upload for a buffering one.
                            if let Some(ts) = share.newest_ts {
                                state.timestamps.push_back((share.last_offset, ts));
                            }
                        }
                    }
                }
                self.mark_durable(durable);
                if self.held {
                    tracing::info!("sink recovered: resuming partitions");
                }
                self.held = false;
                self.health.ready.store(true, Ordering::Release);
            }
            WriterEvent::Flushed(ranges) => {
                self.flushing = false;
                self.mark_durable(ranges);
                if self.held {
                    tracing::info!("sink recovered: resuming partitions");
                }
                self.held = false;
                self.health.ready.store(true, Ordering::Release);
            }
        }
    }

    fn mark_durable(&mut self, ranges: Vec<DurableRange>) {
        for r in ranges {
            // Never for a partition we no longer own.
            if let Some(state) = self.partitions.get_mut(&(r.topic.clone(), r.partition))
                && let Some(w) = state.watermark.as_mut()
            {
                w.mark_durable(r.first, r.last);
                state.advance_durable_ts();
            }
        }
    }

    /// Hands a batch to the writer when it is idle and a batch is due.
    async fn dispatch(&mut self) {
        if self.inflight.is_some() || self.held {
            return;
        }
        let (records, bytes, oldest) =
            self.partitions
                .values()
                .fold((0usize, 0u64, None::<Instant>), |acc, p| {
                    let oldest = match (acc.2, p.pending_since) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    (acc.0 + p.pending.len(), acc.1 + p.pending_bytes, oldest)
                });
        let lingered =
            oldest.is_some_and(|t| t.elapsed() >= Duration::from_millis(self.cfg.linger_ms));
        if records == 0
            || !(records >= self.cfg.batch_max_records
                || bytes >= self.cfg.batch_max_bytes as u64
                || lingered)
        {
            return;
        }
        let mut items = Vec::with_capacity(records.min(self.cfg.batch_max_records));
        let mut job_load: HashMap<PartitionId, JobShare> = HashMap::new();
        let mut taken_bytes = 0u64;
        // Fair share: round-robin over partitions, one record at a time is
        // too slow; take up to an equal slice from each.
        let share = (self.cfg.batch_max_records / self.partitions.len().max(1)).max(1);
        for (pid, state) in self.partitions.iter_mut() {
            let mut n = 0;
            while n < share
                && items.len() < self.cfg.batch_max_records
                && taken_bytes < self.cfg.batch_max_bytes as u64
            {
                let Some(item) = state.pending.pop_front() else {
                    break;
                };
                let b = item.bytes();
                state.pending_bytes -= b.min(state.pending_bytes);
                state.inflight.records += 1;
                state.inflight.bytes += b;
                let entry = job_load.entry(pid.clone()).or_default();
                entry.load.records += 1;
                entry.load.bytes += b;
                entry.newest_ts = entry.newest_ts.max(item.timestamp_ms);
                entry.last_offset = entry.last_offset.max(item.position.offset);
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
        let id = self.next_job;
        self.next_job += 1;
        self.inflight = Some(InFlight { id, load: job_load });
        if self
            .writer
            .send(WriterCommand::Write(Job { id, items }))
            .await
            .is_err()
        {
            tracing::error!("writer task is gone");
        }
    }

    /// Pauses and resumes partitions according to the budgets.
    fn backpressure(&mut self) {
        let global = self.partitions.values().fold(Load::default(), |acc, p| {
            let l = p.load();
            Load {
                records: acc.records + l.records,
                bytes: acc.bytes + l.bytes,
            }
        });
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for ((topic, partition), state) in self.partitions.iter_mut() {
            match decide(
                state.paused,
                state.load(),
                &self.cfg.partition_budget,
                global,
                &self.cfg.global_budget,
                self.held,
            ) {
                Decision::Pause => {
                    state.paused = true;
                    pause.add_partition(topic, *partition);
                }
                Decision::Resume => {
                    state.paused = false;
                    resume.add_partition(topic, *partition);
                }
                Decision::Keep => {}
            }
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
        let paused = self.partitions.values().filter(|p| p.paused).count();
        metrics::gauge!("sinkfleet_partitions_paused").set(paused as f64);
        metrics::gauge!("sinkfleet_inflight_records").set(global.records as f64);
        metrics::gauge!("sinkfleet_inflight_bytes").set(global.bytes as f64);
    }

    /// Commits every partition whose durable watermark moved.
    async fn commit(&mut self, mode: CommitMode) {
        self.last_commit = Instant::now();
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for ((topic, partition), state) in &self.partitions {
            if let Some(next) = state.commit_due() {
                if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(next)) {
                    tracing::warn!(error = %e, "cannot build commit list");
                    continue;
                }
                moved.push(((topic.clone(), *partition), next));
            }
        }
        if moved.is_empty() {
            return;
        }
        let consumer = self.consumer.clone();
        let result = match mode {
            CommitMode::Sync => {
                // A synchronous commit blocks: keep it off the async workers.
                match tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                    .await
                {
                    Ok(result) => result,
                    Err(e) => {
                        tracing::error!(error = %e, "commit task failed");
                        return;
                    }
                }
            }
            CommitMode::Async => consumer.commit(&tpl, CommitMode::Async),
        };
        match result {
            Ok(()) => {
                for (id, next) in moved {
                    metrics::gauge!("sinkfleet_committed_offset", "topic" => id.0.to_string(), "partition" => id.1.to_string()).set(next as f64);
                    if let Some(state) = self.partitions.get_mut(&id) {
                        state.committed = Some(next);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
        }
    }

    /// Lag per partition from the broker's high watermark (statistics).
    fn publish_lag(&self) {
        let hw = self
            .high_watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for (id, state) in &self.partitions {
            let (Some(high), Some(w)) = (hw.get(id), state.watermark.as_ref()) else {
                continue;
            };
            let lag = (high - w.committable()).max(0);
            let labels = [("topic", id.0.to_string()), ("partition", id.1.to_string())];
            metrics::gauge!("sinkfleet_consumer_lag_records", &labels).set(lag as f64);
            let seconds = match (lag, state.last_durable_ts) {
                (0, _) => 0.0,
                (_, Some(ts)) => ((now_ms - ts).max(0) as f64) / 1000.0,
                (_, None) => 0.0,
            };
            metrics::gauge!("sinkfleet_consumer_lag_seconds", &labels).set(seconds);
        }
    }
}
