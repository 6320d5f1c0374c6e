//! The Parquet sink: change events as Parquet files on S3-compatible object
//! storage or a local directory, exactly once.
//!
//! # How exactly-once holds
//!
//! * Records are appended to one open file per (table, topic, partition)
//!   and are *buffered*: their offsets advance only after the file's object
//!   is written ([`sinkfleet_core::Durability::Buffered`], reported by
//!   `flush`).
//! * An object's name is derived only from its first record
//!   (`<topic>+<partition>+<first offset>.parquet`) and its footer records
//!   the last offset it holds.
//! * The first time a (table, partition) is seen after an assignment, the
//!   sink lists that table's objects of the partition and reads the newest
//!   one's footer: every record at or below that offset is already in the
//!   store, so it is skipped and reported durable. A crash between upload and
//!   offset commit, a rebalance or a whole-topic replay therefore never
//!   writes a record into a second object.
//! * File boundaries may differ between runs (age rotation uses the wall
//!   clock, byte rotation depends on batching), but because written records
//!   are skipped rather than rewritten, boundaries never overlap.
//!
//! * A partition revoked while its upload keeps failing (the drain timed
//!   out) is released between two retries: its files are dropped, not
//!   uploaded late over the new owner's objects of the same name.
//!
//! Not covered: an upload request already on the wire when the partition
//! moves (bounded by one request's retries, about ten seconds), and a
//! process that lost its group membership without hearing of it yet (a
//! zombie after a session timeout; once it hears, the runtime revokes the
//! partitions without a drain). Object stores offer no create-only
//! multipart upload to fence those off.

pub mod config;
pub mod encode;
pub mod file;
pub mod layout;
pub mod metrics;
pub mod read;
pub mod schema;
pub mod store;

pub use config::ParquetSinkConfig;

use crate::file::{ClosedFile, OpenFile};
use crate::layout::{FileKey, Layout};
use crate::metrics::{
    OBJECT_BYTES_WRITTEN_TOTAL, OBJECT_UPLOAD_DURATION_SECONDS, OBJECTS_WRITTEN_TOTAL,
    OPEN_FILE_BYTES, OPEN_FILES, RECORDS_ALREADY_WRITTEN_TOTAL,
};
use crate::schema::FieldCache;
use object_store::ObjectStore;
use sinkfleet_core::metrics::RECORDS_APPLIED_TOTAL;
use sinkfleet_core::{
    Durability, DurableRange, FlushMode, PartitionId, Sink, SinkError, SinkRecord,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest schema, table or column name accepted (a directory name on
/// most file systems; S3 keys allow more, but one layout serves both).
pub const MAX_NAME_BYTES: usize = 255;

/// How far a (table, partition) has been written.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Last offset held by an object in the store (-1: none).
    written: i64,
    /// Last offset appended to a file, uploaded or not.
    accepted: i64,
}

/// The Parquet sink.
pub struct ParquetSink {
    cfg: ParquetSinkConfig,
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    fields: FieldCache,
    files: HashMap<FileKey, OpenFile>,
    cursors: HashMap<FileKey, Cursor>,
    /// Closed files whose upload failed, retried in order before anything else.
    pending: VecDeque<(FileKey, ClosedFile)>,
    /// Offsets that became durable since the last `flush`.
    durable: Vec<DurableRange>,
    /// This instance's part of `sinkfleet_open_files`.
    open_files: GaugeShare,
    /// This instance's part of `sinkfleet_open_file_bytes`.
    open_file_bytes: GaugeShare,
}

/// One sink instance's part of a process-wide gauge. A worker runs one
/// instance per writer, each with its own files: setting the gauge from
/// each would show whichever wrote last, so each adds the change of its
/// own part instead, and takes its part back when dropped.
struct GaugeShare {
    gauge: ::metrics::Gauge,
    mine: f64,
}

impl GaugeShare {
    fn new(gauge: ::metrics::Gauge) -> Self {
        GaugeShare { gauge, mine: 0.0 }
    }

    fn set(&mut self, value: f64) {
        self.gauge.increment(value - self.mine);
        self.mine = value;
    }
}

impl Drop for GaugeShare {
    fn drop(&mut self) {
        self.gauge.decrement(self.mine);
    }
}

impl ParquetSink {
    /// Creates the sink and opens its store (no request is made yet).
    pub fn new(cfg: ParquetSinkConfig) -> Result<Self, sinkfleet_core::ConfigError> {
        if let Some((field, problem)) = cfg.validate().into_iter().next() {
            return Err(sinkfleet_core::ConfigError::new(
                format!("sink.s3_parquet.{field}"),
                problem,
            ));
        }
        let store = store::open(&cfg)?;
        crate::metrics::at_zero::parquet();
        Ok(ParquetSink {
            layout: Layout::new(&cfg.prefix, &cfg.path),
            cfg,
            store,
            fields: FieldCache::default(),
            files: HashMap::new(),
            cursors: HashMap::new(),
            pending: VecDeque::new(),
            durable: Vec::new(),
            open_files: GaugeShare::new(::metrics::gauge!(OPEN_FILES)),
            open_file_bytes: GaugeShare::new(::metrics::gauge!(OPEN_FILE_BYTES)),
        })
    }

    /// The object store (for tests and tools that read the output back).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Where `key` stands, reconciling with the store the first time.
    async fn cursor(&mut self, key: &FileKey) -> Result<Cursor, SinkError> {
        if let Some(c) = self.cursors.get(key) {
            return Ok(*c);
        }
        let written = match store::last_written(self.store.as_ref(), &self.layout, key).await? {
            Some((object, last)) => {
                tracing::info!(table = %key.table, topic = %key.topic, partition = key.partition,
                    %object, last_offset = last, "resuming after the last object written");
                last
            }
            None => -1,
        };
        let c = Cursor {
            written,
            accepted: written,
        };
        self.cursors.insert(key.clone(), c);
        Ok(c)
    }

    fn push_durable(&mut self, key: &FileKey, first: i64, last: i64) {
        if let Some(prev) = self.durable.last_mut()
            && prev.topic == key.topic
            && prev.partition == key.partition
            && prev.last + 1 == first
        {
            prev.last = last;
            return;
        }
        self.durable.push(DurableRange {
            topic: Arc::clone(&key.topic),
            partition: key.partition,
            first,
            last,
        });
    }

    /// Uploads closed files whose upload failed before, oldest first.
    async fn upload_pending(&mut self) -> Result<(), SinkError> {
        while let Some((key, closed)) = self.pending.pop_front() {
            if let Err(e) = self.upload(&key, &closed).await {
                self.pending.push_front((key, closed));
                return Err(e);
            }
        }
        Ok(())
    }

    async fn upload(&mut self, key: &FileKey, closed: &ClosedFile) -> Result<(), SinkError> {
        let started = Instant::now();
        store::upload(
            self.store.as_ref(),
            &closed.object,
            closed.data.clone(),
            &self.cfg,
        )
        .await?;
        ::metrics::histogram!(OBJECT_UPLOAD_DURATION_SECONDS)
            .record(started.elapsed().as_secs_f64());
        ::metrics::counter!(OBJECTS_WRITTEN_TOTAL).increment(1);
        ::metrics::counter!(RECORDS_APPLIED_TOTAL, "sink" => "s3_parquet", "table" => key.table.to_string())
            .increment(closed.rows as u64);
        ::metrics::counter!(OBJECT_BYTES_WRITTEN_TOTAL).increment(closed.data.len() as u64);
        tracing::debug!(object = %closed.object, rows = closed.rows, bytes = closed.data.len(), "object written");
        if let (Some(c), Some(last)) = (self.cursors.get_mut(key), closed.ranges.last()) {
            c.written = c.written.max(last.last);
        }
        self.durable.extend(closed.ranges.iter().cloned());
        Ok(())
    }

    /// Closes `key`'s open file and uploads it. On failure the closed file
    /// waits in `pending` (nothing is lost) and the error is returned.
    async fn rotate(&mut self, key: &FileKey) -> Result<(), SinkError> {
        let Some(file) = self.files.remove(key) else {
            return Ok(());
        };
        // Closing writes the footer of bytes already encoded in memory;
        // values were checked when appended, so this does not fail on data.
        let closed = file
            .close()
            .map_err(|e| SinkError::apply(format!("{}: closing Parquet file: {e}", key.table)))?;
        if let Err(e) = self.upload(key, &closed).await {
            self.pending.push_back((key.clone(), closed));
            return Err(e);
        }
        Ok(())
    }

    /// Appends records of one table and partition (offsets increasing).
    async fn append(&mut self, key: &FileKey, records: &[&SinkRecord]) -> Result<(), SinkError> {
        // Schema and table names become directory names.
        self.cfg
            .identifiers
            .check_table(&key.table, None, MAX_NAME_BYTES)
            .map_err(|e| SinkError::schema(e.to_string()))?;
        let cursor = self.cursor(key).await?;
        let mut fresh: Vec<&SinkRecord> = Vec::with_capacity(records.len());
        for r in records {
            let offset = r.position.offset;
            if offset <= cursor.written {
                // Already in an object: written before a crash or a replay.
                ::metrics::counter!(RECORDS_ALREADY_WRITTEN_TOTAL).increment(1);
                self.push_durable(key, offset, offset);
            } else if offset > cursor.accepted {
                fresh.push(r);
            } // else: in a file that is open or waiting for upload (a retry).
        }
        let mut start = 0;
        while start < fresh.len() {
            // A run of records with the same columns.
            let fields = self.fields.fields(&fresh[start].change);
            let declared = fresh[start].change.schema.is_some();
            let mut end = start + 1;
            while end < fresh.len() {
                let next = self.fields.fields(&fresh[end].change);
                if !(Arc::ptr_eq(&next, &fields) || *next == *fields) {
                    break;
                }
                end += 1;
            }
            let mut run = &fresh[start..end];
            let (max_rows, max_bytes) = (self.cfg.rotation.max_rows, self.cfg.rotation.max_bytes);
            while !run.is_empty() {
                let file = self.file_for(key, run[0], &fields, declared).await?;
                let room = max_rows.saturating_sub(file.rows).max(1);
                let (now, later) = run.split_at(room.min(run.len()));
                if let Err(e) = file.append(now) {
                    // A file opened for these records and still empty
                    // goes: its schema may come from the refused record
                    // (a column no stored record has).
                    if file.rows == 0 {
                        self.files.remove(key);
                    }
                    return Err(SinkError::apply(format!("{}: {e}", key.table)));
                }
                let full = file.rows >= max_rows || file.size() >= max_bytes;
                if let (Some(c), Some(last)) = (self.cursors.get_mut(key), now.last()) {
                    c.accepted = last.position.offset;
                }
                if full {
                    self.rotate(key).await?;
                }
                run = later;
            }
            start = end;
        }
        Ok(())
    }

    /// The open file that `record` (with data columns `fields`) goes into;
    /// a schema change closes the current file first.
    async fn file_for(
        &mut self,
        key: &FileKey,
        record: &SinkRecord,
        fields: &Arc<Vec<arrow_schema::Field>>,
        declared: bool,
    ) -> Result<&mut OpenFile, SinkError> {
        let mut new_fields = Arc::clone(fields);
        if let Some(file) = self.files.get(key)
            && schema::fits(&file.data_fields, fields)
        {
            return self
                .files
                .get_mut(key)
                .ok_or_else(|| SinkError::Retryable("open file vanished".into()));
        }
        // New columns: their names pass the policy before anything changes.
        for field in fields.iter() {
            self.cfg
                .identifiers
                .check("column", field.name(), MAX_NAME_BYTES)
                .map_err(|e| SinkError::schema(e.to_string()))?;
        }
        if let Some(file) = self.files.get(key) {
            if !declared && !file.declared {
                new_fields = Arc::new(schema::union(&file.data_fields, fields));
            }
            tracing::info!(table = %key.table, "schema changed: closing the file, opening one with the new schema");
            self.rotate(key).await?;
        }
        let file_schema = schema::file_schema(&new_fields)
            .map_err(|e| SinkError::schema(format!("{}: {e}", key.table)))?;
        let object = self
            .layout
            .object(key, record.position.offset, record.change.source_ts_ms);
        let file = OpenFile::open(
            key.clone(),
            object,
            file_schema,
            new_fields,
            declared,
            &self.cfg,
        )
        .map_err(|e| SinkError::schema(format!("{}: {e}", key.table)))?;
        Ok(self.files.entry(key.clone()).or_insert(file))
    }

    /// Closes and uploads files older than `rotation.max_age_ms` (or all).
    /// Runs on every write as well as on flush: the runtime flushes only
    /// when the writer is idle, and a busy writer must not keep files open
    /// past their age.
    async fn rotate_aged(&mut self, all: bool) -> Result<(), SinkError> {
        let max_age = Duration::from_millis(self.cfg.rotation.max_age_ms);
        let due: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, f)| all || f.opened.elapsed() >= max_age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.rotate(&key).await?;
        }
        Ok(())
    }

    /// Publishes this instance's open files and their bytes; returns the bytes.
    fn publish_open(&mut self) -> usize {
        let total: usize = self.files.values().map(OpenFile::size).sum();
        self.open_file_bytes.set(total as f64);
        self.open_files.set(self.files.len() as f64);
        total
    }

    /// Keeps the open files under `max_buffer_bytes`: the largest go first.
    async fn bound_memory(&mut self) -> Result<(), SinkError> {
        loop {
            let total = self.publish_open();
            if total <= self.cfg.max_buffer_bytes {
                return Ok(());
            }
            let Some(largest) = self
                .files
                .iter()
                .max_by_key(|(_, f)| f.size())
                .map(|(k, _)| k.clone())
            else {
                return Ok(());
            };
            self.rotate(&largest).await?;
        }
    }
}

impl Sink for ParquetSink {
    fn name(&self) -> &'static str {
        "s3_parquet"
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Durability, SinkError> {
        self.upload_pending().await?;
        // Group by (table, partition), keeping each partition's order.
        let mut order: Vec<FileKey> = Vec::new();
        let mut groups: HashMap<FileKey, Vec<&SinkRecord>> = HashMap::new();
        for r in batch {
            let key = FileKey {
                table: r.change.table.clone(),
                topic: Arc::clone(&r.position.topic),
                partition: r.position.partition,
            };
            groups
                .entry(key)
                .or_insert_with_key(|k| {
                    order.push(k.clone());
                    Vec::new()
                })
                .push(r);
        }
        for key in order {
            if let Some(records) = groups.remove(&key) {
                self.append(&key, &records).await?;
            }
        }
        self.rotate_aged(false).await?;
        self.bound_memory().await?;
        Ok(Durability::Buffered)
    }

    async fn flush(&mut self, mode: FlushMode) -> Result<Vec<DurableRange>, SinkError> {
        self.upload_pending().await?;
        let rotated = self.rotate_aged(mode == FlushMode::All).await;
        // Files uploaded here (the writer is idle) are no longer held:
        // bytes left shown would keep the buffer alert firing.
        self.publish_open();
        rotated?;
        Ok(std::mem::take(&mut self.durable))
    }

    async fn revoke(&mut self, partitions: &[PartitionId]) {
        let revoked = |topic: &Arc<str>, partition: i32| {
            partitions
                .iter()
                .any(|(t, p)| t == topic && *p == partition)
        };
        self.files.retain(|k, _| !revoked(&k.topic, k.partition));
        self.cursors.retain(|k, _| !revoked(&k.topic, k.partition));
        self.pending
            .retain(|(k, _)| !revoked(&k.topic, k.partition));
        self.durable.retain(|r| !revoked(&r.topic, r.partition));
        self.publish_open();
    }
}
