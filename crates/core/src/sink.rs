//! The `Sink` trait: what every target promises the consumer runtime.

use crate::change::Change;
use crate::error::SinkError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A Kafka partition: `(topic, partition)`. One type for every crate, so
/// a partition never needs converting between a worker and its sink.
pub type PartitionId = (Arc<str>, i32);

/// Where a record came from: topic, partition, offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Kafka topic.
    pub topic: Arc<str>,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset of the record.
    pub offset: i64,
}

/// A decoded change with its origin, as handed to a sink.
#[derive(Debug, Clone)]
pub struct SinkRecord {
    /// Origin of the record (for dead-letter headers and durable ranges).
    pub position: Position,
    /// The change to apply.
    pub change: Change,
}

/// Offsets `first..=last` of one partition that a sink has made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableRange {
    /// Kafka topic.
    pub topic: Arc<str>,
    /// Kafka partition.
    pub partition: i32,
    /// First durable offset.
    pub first: i64,
    /// Last durable offset (inclusive).
    pub last: i64,
}

/// What a successful [`Sink::write`] guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every record of the batch is durable in the target now (for example
    /// a committed Postgres transaction). The runtime may commit offsets.
    Durable,
    /// The records were accepted into a buffer; they become durable later
    /// and are reported by [`Sink::flush`]. Offsets do not advance until then.
    Buffered,
}

/// What [`Sink::flush`] is asked to make durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// The periodic call on the commit tick: make durable what the sink's
    /// own policy says is due (for example files past their age) and report
    /// everything that became durable since the last call.
    Due,
    /// Before shutdown: make everything accepted so far durable.
    All,
}

/// A target that applies changes as idempotent `(key, version)` upserts.
///
/// Contract:
/// * **Idempotent**: applying a record twice, or an older version after a
///   newer one, leaves the target as if only the newest had been applied.
///   Equal versions are replays (no-op). Deletes are versioned too: a later
///   older upsert never resurrects a deleted row.
/// * **Durability is explicit**: `Ok(Durable)` means every record of the
///   batch survives a crash of this process and of the target. A buffering
///   sink returns `Ok(Buffered)` and reports durability through `flush`.
/// * **Errors are classified**: `Retryable` means the same batch may
///   succeed later (the runtime retries with backoff, partitions paused);
///   `Permanent` means the batch as a whole cannot be applied (the runtime
///   splits it to isolate the bad record for the dead-letter topic). A
///   failed write must leave the target as if it had not been attempted or
///   had partially applied *whole records* (replays are harmless).
/// * Batches may hold records of many partitions and tables, in the order
///   each partition delivered them.
pub trait Sink: Send + 'static {
    /// Short name for metric labels (`postgres`, `clickhouse`, ...).
    fn name(&self) -> &'static str;

    /// Applies a batch.
    fn write(
        &mut self,
        batch: &[SinkRecord],
    ) -> impl Future<Output = Result<Durability, SinkError>> + Send;

    /// Makes durable what `mode` asks for and returns the ranges that became
    /// durable since the last call (including ones made durable during
    /// `write`). Ranges name exactly the offsets that are durable: a range
    /// never spans a record that is still buffered. Sinks that are durable
    /// on write return nothing.
    fn flush(
        &mut self,
        _mode: FlushMode,
    ) -> impl Future<Output = Result<Vec<DurableRange>, SinkError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Positions of a job's records that need no write: Kafka tombstones,
    /// transaction markers, records sent to the dead-letter topic. Called
    /// before the job's `write`. A sink that keeps offsets in its target
    /// stores these with its next write and returns true: the runtime then
    /// calls `write` even when the job has no change left (with an empty
    /// batch), so the offsets reach the target. Default: false (offsets
    /// live in Kafka only).
    fn skipped(&mut self, _positions: &[Position]) -> bool {
        false
    }

    /// Forgets buffered, not yet durable records of partitions this process
    /// no longer owns (after a revoke). Their new owner replays them.
    ///
    /// May be called between two attempts of a failing `write` or `flush`:
    /// after it returns, a retried `flush` must not make any of those
    /// records durable (for an object store: must not upload them).
    fn revoke(&mut self, _partitions: &[PartitionId]) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A future that [`OffsetStore`] returns (boxed, so the store can be a
/// trait object shared with the consumer's poll thread).
pub type ClaimFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Option<i64>>, SinkError>> + Send + 'a>>;

/// Offsets kept in the target, written in the same transaction as the rows
/// they cover, so a crash can never separate the two: what the target holds
/// and where consumption resumes always agree. With it, a topic whose
/// records carry no usable version is still applied exactly once.
///
/// Contract:
/// * [`OffsetStore::claim`] runs when partitions are assigned to this
///   process, before any of their records is read. It takes a new fencing
///   epoch per partition: from the moment it returns, a write by any
///   earlier owner of that partition (a zombie that lost it while paused)
///   fails inside its transaction and commits nothing.
/// * It returns, per partition and in order, the next offset to read as
///   the target stored it, or `None` when the target never stored one.
///   The runtime resumes there (or at Kafka's committed offset if that is
///   further on: records between the two were dead-lettered, not applied).
pub trait OffsetStore: Send + Sync + 'static {
    /// Claims `partitions` for this process (see the trait docs).
    fn claim<'a>(&'a self, partitions: &'a [PartitionId]) -> ClaimFuture<'a>;
}
