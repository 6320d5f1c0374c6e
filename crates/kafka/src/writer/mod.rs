//! A writer task: owns one sink instance and writes one job at a time.
//!
//! A process runs `worker.writers` of them (lanes), so that many writes are
//! in flight at once; the coordinator binds each partition to one lane.
//! A writer takes one job at a time from the coordinator and reports back
//! which offsets became durable. Retryable sink errors are retried with
//! exponential backoff and jitter (the coordinator keeps partitions paused
//! meanwhile); a permanent error splits the failing slice in halves until
//! the bad record is alone, and that record goes to the dead-letter topic.
//!
//! Revoked partitions arrive on their own channel ([`Revocations`]) and are
//! applied between retry attempts.

mod dead_letters;

use crate::config::RateLimit;
use crate::dead_letter::{DeadLetter, DeadLetterProducer};
use crate::metrics::{BATCH_RECORDS, WRITE_DURATION_SECONDS, WRITE_RETRIES_TOTAL};
use crate::parking::Parking;
use crate::retry::Backoff;
use crate::revocations::Revocations;
use dead_letters::{Origin, Taken, dead_letter, release_discarded, take_parked};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sinkfleet_core::debezium::transaction::TxMarker;
use sinkfleet_core::{
    Durability, DurableRange, ErrorClass, FlushMode, Position, Sink, SinkError, SinkRecord,
};
use std::borrow::Cow;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What a job's item is.
#[derive(Debug)]
pub enum Payload {
    /// A decoded change for the sink.
    Change(SinkRecord),
    /// Nothing to apply (a Kafka tombstone): durable as soon as reached.
    Skip,
    /// A discard marker (`sinkfleet dlq discard`): applies nothing; where
    /// it stands for the record that parked its key, it releases the key.
    Discard,
    /// Undecodable: straight to the dead-letter topic.
    DeadLetter(DeadLetter),
    /// A transaction BEGIN or END record: frames changes, applies nothing.
    Marker(Box<TxMarker>),
    /// Not decoded yet: it (or a record before it in its partition) names
    /// a registry schema not fetched yet. Never dispatched: decoded in
    /// place once the schema is there.
    AwaitingSchema,
}

/// One record of a job.
#[derive(Debug)]
pub struct Item {
    /// Lowest offset this record accounts for (offsets skipped by the broker,
    /// e.g. compaction gaps, are covered by the next record).
    pub covers_from: i64,
    /// Its own position.
    pub position: Position,
    /// Raw key (kept for dead-lettering after an apply failure).
    pub key: Option<Vec<u8>>,
    /// Raw value.
    pub value: Option<Vec<u8>>,
    /// Its original offset, when it is a replay of a dead letter.
    pub replayed_offset: Option<i64>,
    /// What to do with it.
    pub payload: Payload,
    /// Record timestamp (ms since epoch), for lag in seconds.
    pub timestamp_ms: Option<i64>,
    /// What it holds in memory, counted against the budgets: see
    /// [`Item::held_bytes`].
    pub held: u64,
}

impl Item {
    /// Bytes counted against the in-flight budgets.
    pub fn bytes(&self) -> u64 {
        self.held
    }

    /// What a record holds in memory: its raw key and value (kept to
    /// dead-letter it after an apply failure) and its decoded change. The
    /// budgets exist to bound the worker's memory, and the decoded change
    /// is most of it: counting raw bytes alone let a full budget hold
    /// about three times its size.
    pub fn held_bytes(key: Option<&[u8]>, value: Option<&[u8]>, payload: &Payload) -> u64 {
        let raw = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        let decoded = match payload {
            Payload::Change(record) => record.change.memory_bytes(),
            Payload::Skip
            | Payload::Discard
            | Payload::DeadLetter(_)
            | Payload::Marker(_)
            | Payload::AwaitingSchema => 0,
        };
        (std::mem::size_of::<Item>() + raw + decoded) as u64
    }
}

/// A batch handed to the writer.
#[derive(Debug)]
pub struct Job {
    /// Job id, echoed in [`WriterEventKind::Done`].
    pub id: u64,
    /// Records in per-partition stream order.
    pub items: Vec<Item>,
}

/// What a writer reports, with its lane.
#[derive(Debug)]
pub struct WriterEvent {
    /// The lane (index of the writer) reporting.
    pub lane: usize,
    /// What happened.
    pub kind: WriterEventKind,
}

/// What happened in a writer.
#[derive(Debug)]
pub enum WriterEventKind {
    /// A retryable error; the same write is retried after a backoff.
    Retrying {
        /// Attempt number (1-based).
        attempt: u32,
        /// The error.
        error: String,
    },
    /// The job is finished: these ranges are durable (or dead-lettered).
    Done {
        /// Job id.
        id: u64,
        /// Durable ranges.
        durable: Vec<DurableRange>,
    },
    /// Ranges a buffering sink made durable on flush.
    Flushed(Vec<DurableRange>),
}

/// Commands to the writer.
#[derive(Debug)]
pub enum WriterCommand {
    /// Write a job.
    Write(Job),
    /// Flush the sink.
    Flush(FlushMode),
}

/// The rate limit, shared by every writer: it protects the target, which
/// sees all of them.
pub(crate) struct Limits {
    /// Rows limiter and its bucket size (one request may not exceed it).
    rows: Option<(DefaultDirectRateLimiter, u32)>,
    writes: Option<DefaultDirectRateLimiter>,
}

impl Limits {
    pub(crate) fn new(cfg: Option<RateLimit>) -> Self {
        let cfg = cfg.unwrap_or_default();
        Limits {
            rows: cfg
                .rows_per_second
                .and_then(NonZeroU32::new)
                .map(|n| (RateLimiter::direct(Quota::per_second(n)), n.get())),
            writes: cfg
                .writes_per_second
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::direct(Quota::per_second(n))),
        }
    }

    async fn wait(&self, rows: usize) {
        if let Some(writes) = &self.writes {
            writes.until_ready().await;
        }
        if let Some((limiter, burst)) = &self.rows {
            let mut left = u32::try_from(rows).unwrap_or(u32::MAX);
            while left > 0 {
                let n = left.min(*burst);
                if let Some(n) = NonZeroU32::new(n) {
                    // Cannot fail: n never exceeds the bucket size.
                    let _ = limiter.until_n_ready(n).await;
                }
                left -= n;
            }
        }
    }
}

/// What every writer of a process shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Where records that cannot be applied go.
    pub dead_letters: Arc<DeadLetterProducer>,
    /// The parked keys, with `on_error: park_key`.
    pub parking: Option<Arc<Parking>>,
    /// The process's rate limit.
    pub limits: Arc<Limits>,
    /// Retry delays.
    pub backoff: Backoff,
    /// Reports to the coordinator.
    pub events: mpsc::UnboundedSender<WriterEvent>,
}

/// One writer's way of reporting: every event names its lane.
struct Reporter<'a> {
    lane: usize,
    events: &'a mpsc::UnboundedSender<WriterEvent>,
}

impl Reporter<'_> {
    fn report(&self, kind: WriterEventKind) {
        // The coordinator is gone only at shutdown, when nobody listens.
        let _ = self.events.send(WriterEvent {
            lane: self.lane,
            kind,
        });
    }
}

/// The writer loop of lane `lane`.
pub(crate) async fn run<S: Sink>(
    lane: usize,
    mut sink: S,
    shared: Shared,
    mut commands: mpsc::Receiver<WriterCommand>,
    mut revocations: Revocations,
) {
    let name = sink.name();
    crate::metrics::at_zero::sink(name);
    let backoff = shared.backoff;
    let reporter = Reporter {
        lane,
        events: &shared.events,
    };
    let ctx = Context {
        dead_letters: &shared.dead_letters,
        parking: shared.parking.as_deref(),
        backoff,
        limits: &shared.limits,
        reporter: &reporter,
        name,
    };
    while let Some(command) = commands.recv().await {
        // A revocation sent before this command applies before it.
        revocations.start_command(&mut sink).await;
        match command {
            WriterCommand::Write(job) => {
                let durable = write_job(&mut sink, &mut revocations, &ctx, job.items).await;
                reporter.report(WriterEventKind::Done {
                    id: job.id,
                    durable,
                });
            }
            WriterCommand::Flush(mode) => {
                let mut attempt = 0;
                loop {
                    match sink.flush(mode).await {
                        Ok(ranges) => {
                            reporter.report(WriterEventKind::Flushed(ranges));
                            break;
                        }
                        Err(e) => {
                            attempt += 1;
                            reporter.report(WriterEventKind::Retrying {
                                attempt,
                                error: e.to_string(),
                            });
                            // A revocation drops the partition's buffered
                            // records, so the next attempt does not upload them.
                            revocations.sleep(&mut sink, backoff.delay(attempt)).await;
                        }
                    }
                }
            }
        }
    }
}

/// What a job needs besides the sink.
struct Context<'a> {
    dead_letters: &'a DeadLetterProducer,
    /// The parked keys, with `on_error: park_key`.
    parking: Option<&'a Parking>,
    /// Delays between retries (sink writes, flushes, dead-letter produces).
    backoff: Backoff,
    limits: &'a Limits,
    reporter: &'a Reporter<'a>,
    name: &'static str,
}

async fn write_job<S: Sink>(
    sink: &mut S,
    revocations: &mut Revocations,
    ctx: &Context<'_>,
    items: Vec<Item>,
) -> Vec<DurableRange> {
    let Context {
        limits,
        reporter,
        name,
        parking,
        ..
    } = *ctx;
    let mut durable: Vec<(Position, i64)> = Vec::with_capacity(items.len());
    let mut changes: Vec<SinkRecord> = Vec::new();
    // Per change: what it covers and its raw bytes, for dead-lettering.
    let mut origins: Vec<Origin> = Vec::new();
    for item in items {
        match item.payload {
            Payload::Skip | Payload::Marker(_) => durable.push((item.position, item.covers_from)),
            Payload::Discard => {
                if let Some(parking) = parking {
                    release_discarded(ctx, parking, &item).await;
                }
                durable.push((item.position, item.covers_from));
            }
            Payload::DeadLetter(letter) => {
                tracing::warn!(
                    class = letter.class.as_str(),
                    position = ?letter.position,
                    message = %letter.message,
                    "record dead-lettered"
                );
                dead_letter(ctx, &letter).await;
                durable.push((item.position, item.covers_from));
            }
            // Never dispatched (see `take_head`): holding its offset back
            // loses nothing if it ever were.
            Payload::AwaitingSchema => {
                tracing::error!(position = ?item.position, "a record awaiting its schema was dispatched");
            }
            Payload::Change(record) => {
                origins.push(Origin {
                    covers_from: item.covers_from,
                    key: item.key,
                    value: item.value,
                    replayed_offset: item.replayed_offset,
                });
                changes.push(record);
            }
        }
    }
    let skipped: Vec<Position> = durable.iter().map(|(p, _)| p.clone()).collect();
    let store_skipped = !skipped.is_empty() && sink.skipped(&skipped);

    // Slices still to write, front first, so that each partition's records
    // are decided in stream order; a permanent failure replaces a slice by
    // its two halves. An empty slice is a write of no change, for a sink
    // that stores the skipped records' offsets in its target.
    let mut todo: std::collections::VecDeque<std::ops::Range<usize>> = Default::default();
    if !changes.is_empty() || store_skipped {
        todo.push_back(0..changes.len());
    }
    // Changes dead-lettered because their key is parked: never written.
    let mut parked = vec![false; changes.len()];
    while let Some(range) = todo.pop_front() {
        // The slice's changes still to write, by index.
        let mut indices: Vec<usize> = range.clone().filter(|&i| !parked[i]).collect();
        if let Some(parking) = parking {
            let taken = Taken {
                parked: &mut parked,
                durable: &mut durable,
            };
            take_parked(ctx, parking, &changes, &origins, &mut indices, taken).await;
            if indices.is_empty() && !range.is_empty() {
                continue;
            }
        }
        let slice: Cow<'_, [SinkRecord]> = if indices.len() == range.len() {
            Cow::Borrowed(&changes[range.clone()])
        } else {
            Cow::Owned(indices.iter().map(|&i| changes[i].clone()).collect())
        };
        limits.wait(slice.len()).await;
        let mut attempt = 0u32;
        // `None`: nothing left to write, every record's partition was revoked.
        let outcome: Result<Option<Durability>, (ErrorClass, String)> = loop {
            // Records of partitions revoked while this job waited or was
            // retried belong to another process now: they are not written.
            revocations.hear(sink).await;
            let owned = revocations.retain_owned(&slice);
            if owned.is_empty() && !slice.is_empty() {
                break Ok(None);
            }
            let started = Instant::now();
            let result = sink.write(&owned).await;
            metrics::histogram!(WRITE_DURATION_SECONDS, "sink" => name)
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(durability) => {
                    metrics::histogram!(BATCH_RECORDS, "sink" => name).record(owned.len() as f64);
                    break Ok(Some(durability));
                }
                Err(SinkError::Permanent { class, message }) => break Err((class, message)),
                Err(SinkError::Retryable(error)) => {
                    attempt += 1;
                    metrics::counter!(WRITE_RETRIES_TOTAL, "sink" => name).increment(1);
                    tracing::warn!(sink = name, attempt, %error, "retryable write error; partitions stay paused");
                    reporter.report(WriterEventKind::Retrying { attempt, error });
                    revocations.sleep(sink, ctx.backoff.delay(attempt)).await;
                }
            }
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(durability)) => {
                for &i in &indices {
                    let record = &changes[i];
                    if !revocations.owns(&record.position) {
                        continue;
                    }
                    let covers_from = origins[i].covers_from;
                    match durability {
                        Durability::Durable => durable.push((record.position.clone(), covers_from)),
                        // The record itself is reported by the sink's flush;
                        // the offsets before it that hold nothing (compaction
                        // or transaction-marker gaps) are durable now.
                        Durability::Buffered if covers_from < record.position.offset => {
                            let gap_end = Position {
                                offset: record.position.offset - 1,
                                ..record.position.clone()
                            };
                            durable.push((gap_end, covers_from));
                        }
                        Durability::Buffered => {}
                    }
                }
            }
            Err((class, message)) if indices.len() == 1 => {
                let (record, origin) = (&changes[indices[0]], &origins[indices[0]]);
                tracing::warn!(sink = name, class = class.as_str(), position = ?record.position, %message, "record dead-lettered");
                let letter = DeadLetter {
                    position: record.position.clone(),
                    key: origin.key.clone(),
                    value: origin.value.clone(),
                    class,
                    message,
                    parked_since: None,
                };
                dead_letter(ctx, &letter).await;
                durable.push((record.position.clone(), origin.covers_from));
            }
            Err((_, message)) => {
                tracing::info!(sink = name, records = indices.len(), %message, "permanent error: splitting batch to isolate the record");
                let mid = range.start + range.len() / 2;
                todo.push_front(mid..range.end);
                todo.push_front(range.start..mid);
            }
        }
    }
    to_ranges(durable)
}

/// Folds `(position, covers_from)` pairs into ranges per partition.
fn to_ranges(mut durable: Vec<(Position, i64)>) -> Vec<DurableRange> {
    durable.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<DurableRange> = Vec::new();
    for (pos, from) in durable {
        match out.last_mut() {
            Some(last)
                if last.topic == pos.topic
                    && last.partition == pos.partition
                    && from <= last.last + 1 =>
            {
                last.last = last.last.max(pos.offset);
            }
            _ => out.push(DurableRange {
                topic: pos.topic,
                partition: pos.partition,
                first: from,
                last: pos.offset,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests;
