//! Every metric sinkfleet exports: each name written once, here, with its
//! description and unit ([`describe`]); call sites refer to the constants.
//!
//! The names are a contract: `deploy/grafana/sinkfleet.json`,
//! `deploy/prometheus/alerts.yaml` and docs/metrics.md read them, so they do not
//! change.
//!
//! **Series exist at 0 before their first event** ([`at_zero`]). Prometheus'
//! `increase()` and `rate()` see no increase in a series whose first sample
//! is already 1: an alert on the first dead letter of a topic would stay
//! silent. So every counter and histogram is registered at 0 as soon as
//! its labels are known: at start for labels known then (`sink`, `kind`,
//! `reason`), when a topic's first partition is assigned for `topic`.
//! Only the labels that name what a record carries (`table`) appear with
//! their first record. Gauges that measure something (lag, committed
//! offset, freshness, slot lag) appear once measured: a 0 there would be a
//! claim, not a start value.

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

// Sink worker: records.

/// Counter `{topic}`.
pub const RECORDS_IN_TOTAL: &str = "sinkfleet_records_in_total";
/// Counter `{sink,table}`.
pub const RECORDS_APPLIED_TOTAL: &str = "sinkfleet_records_applied_total";
/// Counter `{sink,table}`.
pub const RECORDS_SKIPPED_STALE_TOTAL: &str = "sinkfleet_records_skipped_stale_total";
/// Counter `{topic,class}`; `class` is an [`ErrorClass`](crate::ErrorClass).
pub const RECORDS_DEAD_LETTERED_TOTAL: &str = "sinkfleet_records_dead_lettered_total";
/// Counter `{topic}`.
pub const RECORDS_PARKED_TOTAL: &str = "sinkfleet_records_parked_total";
/// Gauge.
pub const PARKED_KEYS: &str = "sinkfleet_parked_keys";

// Sink worker: offsets and lag, per `{topic,partition}`.

/// Gauge `{topic,partition}`.
pub const COMMITTED_OFFSET: &str = "sinkfleet_committed_offset";
/// Gauge `{topic,partition}`.
pub const CONSUMER_LAG_RECORDS: &str = "sinkfleet_consumer_lag_records";
/// Gauge `{topic,partition}`.
pub const CONSUMER_LAG_SECONDS: &str = "sinkfleet_consumer_lag_seconds";
/// Gauge `{topic,partition}`.
pub const UNCOMMITTED_DURABLE_RECORDS: &str = "sinkfleet_uncommitted_durable_records";
/// Counter `{outcome}`: `found`, `not_found`, `outage`.
pub const SCHEMA_FETCHES_TOTAL: &str = "sinkfleet_schema_registry_fetches_total";
/// The outcomes of [`SCHEMA_FETCHES_TOTAL`].
pub const SCHEMA_FETCH_OUTCOMES: [&str; 3] = ["found", "not_found", "outage"];
/// Gauge: records held back waiting for a registry schema.
pub const RECORDS_AWAITING_SCHEMA: &str = "sinkfleet_records_awaiting_schema";
/// Counter.
pub const OFFSET_COMMIT_FAILURES_TOTAL: &str = "sinkfleet_offset_commit_failures_total";

// Sink worker: freshness, per source `{table}`.

/// Gauge `{table}`.
pub const APPLIED_SOURCE_TIMESTAMP_SECONDS: &str = "sinkfleet_applied_source_timestamp_seconds";
/// Gauge `{table}`.
pub const APPLIED_COMMIT_LSN: &str = "sinkfleet_applied_commit_lsn";
/// Gauge `{table}`.
pub const FRESHNESS_SECONDS: &str = "sinkfleet_freshness_seconds";

// Sink worker: writes, backpressure, the group.

/// Counter `{sink}`.
pub const WRITE_RETRIES_TOTAL: &str = "sinkfleet_write_retries_total";
/// Histogram `{sink}`.
pub const WRITE_DURATION_SECONDS: &str = "sinkfleet_write_duration_seconds";
/// Histogram `{sink}`.
pub const BATCH_RECORDS: &str = "sinkfleet_batch_records";
/// Gauge.
pub const PARTITIONS_PAUSED: &str = "sinkfleet_partitions_paused";
/// Gauge.
pub const INFLIGHT_RECORDS: &str = "sinkfleet_inflight_records";
/// Gauge.
pub const INFLIGHT_BYTES: &str = "sinkfleet_inflight_bytes";
/// Gauge.
pub const WRITERS: &str = "sinkfleet_writers";
/// Gauge.
pub const WRITERS_BUSY: &str = "sinkfleet_writers_busy";
/// Counter `{kind}`, `kind` one of [`REBALANCE_KINDS`].
pub const REBALANCES_TOTAL: &str = "sinkfleet_rebalances_total";
/// The `kind`s of [`REBALANCES_TOTAL`].
pub const REBALANCE_KINDS: [&str; 2] = ["assign", "revoke"];
/// Counter.
pub const CONSUMER_ERRORS_TOTAL: &str = "sinkfleet_consumer_errors_total";

// Postgres sink: offsets in the target, transactional apply.

/// Counter.
pub const FENCED_WRITES_TOTAL: &str = "sinkfleet_fenced_writes_total";
/// Counter.
pub const TRANSACTIONS_APPLIED_TOTAL: &str = "sinkfleet_transactions_applied_total";
/// Counter `{reason}`, `reason` one of [`SPLIT_REASONS`].
pub const TRANSACTIONS_SPLIT_TOTAL: &str = "sinkfleet_transactions_split_total";
/// The `reason`s of [`TRANSACTIONS_SPLIT_TOTAL`].
pub const SPLIT_REASONS: [&str; 2] = ["budget", "timeout"];
/// Gauge.
pub const TRANSACTIONS_BUFFERED: &str = "sinkfleet_transactions_buffered";
/// Gauge.
pub const TRANSACTION_BUFFERED_BYTES: &str = "sinkfleet_transaction_buffered_bytes";
/// Gauge.
pub const TRANSACTION_OLDEST_AGE_SECONDS: &str = "sinkfleet_transaction_oldest_age_seconds";

// Parquet sink.

/// Counter.
pub const OBJECTS_WRITTEN_TOTAL: &str = "sinkfleet_objects_written_total";
/// Counter.
pub const OBJECT_BYTES_WRITTEN_TOTAL: &str = "sinkfleet_object_bytes_written_total";
/// Counter.
pub const RECORDS_ALREADY_WRITTEN_TOTAL: &str = "sinkfleet_records_already_written_total";
/// Histogram.
pub const OBJECT_UPLOAD_DURATION_SECONDS: &str = "sinkfleet_object_upload_duration_seconds";
/// Gauge.
pub const OPEN_FILES: &str = "sinkfleet_open_files";
/// Gauge.
pub const OPEN_FILE_BYTES: &str = "sinkfleet_open_file_bytes";

// Publisher.

/// Counter.
pub const PUBLISHER_EVENTS_TOTAL: &str = "sinkfleet_publisher_events_total";
/// Counter.
pub const PUBLISHER_RECONNECTS_TOTAL: &str = "sinkfleet_publisher_reconnects_total";
/// Histogram.
pub const PUBLISHER_DELIVERY_SECONDS: &str = "sinkfleet_publisher_delivery_seconds";
/// Gauge.
pub const PUBLISHER_CONFIRMED_LSN: &str = "sinkfleet_publisher_confirmed_lsn";
/// Gauge.
pub const PUBLISHER_SLOT_LAG_BYTES: &str = "sinkfleet_publisher_slot_lag_bytes";
/// Gauge `{table}` (a gauge despite its `_total`: set once per snapshot).
pub const PUBLISHER_SNAPSHOT_ROWS_TOTAL: &str = "sinkfleet_publisher_snapshot_rows_total";
/// Gauge `{table}`.
pub const PUBLISHER_SNAPSHOT_ROWS_DONE: &str = "sinkfleet_publisher_snapshot_rows_done";

/// Describes every metric to the installed recorder (the `# HELP` lines);
/// once, after the recorder is installed.
pub fn describe() {
    // Records.
    describe_counter!(
        RECORDS_IN_TOTAL,
        Unit::Count,
        "Records received from Kafka."
    );
    describe_counter!(
        RECORDS_APPLIED_TOTAL,
        Unit::Count,
        "Changes written to the target (for Parquet: stored in an uploaded object)."
    );
    describe_counter!(
        RECORDS_SKIPPED_STALE_TOTAL,
        Unit::Count,
        "Changes not written: superseded within their batch, or not newer than the stored version."
    );
    describe_counter!(
        RECORDS_DEAD_LETTERED_TOTAL,
        Unit::Count,
        "Records sent to the dead-letter topic, by error class (decode, apply, schema, parked)."
    );
    describe_counter!(
        RECORDS_PARKED_TOTAL,
        Unit::Count,
        "Records dead-lettered because their key is parked (dead_letter.on_error: park_key)."
    );
    describe_gauge!(
        PARKED_KEYS,
        Unit::Count,
        "Keys parked in this process's partitions: their changes wait in the dead-letter topic for a replay."
    );
    // Offsets and lag.
    describe_gauge!(
        COMMITTED_OFFSET,
        Unit::Count,
        "The committed offset the broker acknowledged (the next one to read)."
    );
    describe_gauge!(
        CONSUMER_LAG_RECORDS,
        Unit::Count,
        "The broker's high watermark minus the committed offset; 0 for a partition given up."
    );
    describe_gauge!(
        CONSUMER_LAG_SECONDS,
        Unit::Seconds,
        "While there is lag, the age of the newest committed record (at least of what is known to wait)."
    );
    describe_gauge!(
        UNCOMMITTED_DURABLE_RECORDS,
        Unit::Count,
        "Records durable in the target whose offset the broker has not acknowledged yet."
    );
    describe_counter!(
        OFFSET_COMMIT_FAILURES_TOTAL,
        Unit::Count,
        "Offset commits the broker refused (each is retried)."
    );
    // Freshness.
    describe_gauge!(
        APPLIED_SOURCE_TIMESTAMP_SECONDS,
        Unit::Seconds,
        "Source commit time (source.ts_ms) of the newest change of the table durable in the target."
    );
    describe_gauge!(
        APPLIED_COMMIT_LSN,
        Unit::Count,
        "Commit LSN of the newest change of the table durable in the target (LSN-versioned topics)."
    );
    describe_gauge!(
        FRESHNESS_SECONDS,
        Unit::Seconds,
        "Seconds since the source commit of the table's newest durable change; grows while the source is idle."
    );
    // Writes, backpressure, the group.
    describe_counter!(
        WRITE_RETRIES_TOTAL,
        Unit::Count,
        "Retryable write errors; the partitions stay paused while the sink fails."
    );
    describe_histogram!(
        WRITE_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one sink write (a batch)."
    );
    describe_histogram!(
        BATCH_RECORDS,
        Unit::Count,
        "Records per successful sink write."
    );
    describe_gauge!(
        PARTITIONS_PAUSED,
        Unit::Count,
        "Partitions paused: over the in-flight budget, or while the sink fails."
    );
    describe_gauge!(
        INFLIGHT_RECORDS,
        Unit::Count,
        "Records received and not durable yet."
    );
    describe_gauge!(
        INFLIGHT_BYTES,
        Unit::Bytes,
        "Bytes of records received and not durable yet."
    );
    describe_gauge!(
        WRITERS,
        Unit::Count,
        "Writers of this worker (worker.writers)."
    );
    describe_gauge!(WRITERS_BUSY, Unit::Count, "Writers with a batch in flight.");
    describe_counter!(
        REBALANCES_TOTAL,
        Unit::Count,
        "Consumer-group rebalances seen by this worker, by kind (assign, revoke)."
    );
    describe_counter!(
        CONSUMER_ERRORS_TOTAL,
        Unit::Count,
        "Errors the Kafka consumer reported."
    );
    describe_counter!(
        SCHEMA_FETCHES_TOTAL,
        Unit::Count,
        "Schema Registry fetches by outcome: found, not_found (its records are dead-lettered), outage (its records wait)."
    );
    describe_gauge!(
        RECORDS_AWAITING_SCHEMA,
        Unit::Count,
        "Records held back until the Schema Registry answers for the schema they (or a record before them) name."
    );
    // Postgres sink.
    describe_counter!(
        FENCED_WRITES_TOTAL,
        Unit::Count,
        "Batches rolled back because another worker claimed their partitions (offset_storage: target)."
    );
    describe_counter!(
        TRANSACTIONS_APPLIED_TOTAL,
        Unit::Count,
        "Source transactions applied whole (transactional apply)."
    );
    describe_counter!(
        TRANSACTIONS_SPLIT_TOTAL,
        Unit::Count,
        "Source transactions applied as far as they arrived, by reason (budget, timeout)."
    );
    describe_gauge!(
        TRANSACTIONS_BUFFERED,
        Unit::Count,
        "Source transactions waiting for their last events."
    );
    describe_gauge!(
        TRANSACTION_BUFFERED_BYTES,
        Unit::Bytes,
        "Bytes of the source transactions waiting for their last events."
    );
    describe_gauge!(
        TRANSACTION_OLDEST_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest source transaction waiting for its last events."
    );
    // Parquet sink.
    describe_counter!(
        OBJECTS_WRITTEN_TOTAL,
        Unit::Count,
        "Parquet objects uploaded."
    );
    describe_counter!(
        OBJECT_BYTES_WRITTEN_TOTAL,
        Unit::Bytes,
        "Bytes of Parquet objects uploaded."
    );
    describe_counter!(
        RECORDS_ALREADY_WRITTEN_TOTAL,
        Unit::Count,
        "Records skipped because an uploaded object holds them already (after a crash, or a replay)."
    );
    describe_histogram!(
        OBJECT_UPLOAD_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one object upload."
    );
    describe_gauge!(
        OPEN_FILES,
        Unit::Count,
        "Parquet files open: buffered, not durable yet."
    );
    describe_gauge!(
        OPEN_FILE_BYTES,
        Unit::Bytes,
        "Bytes held by open Parquet files (kept under max_buffer_bytes)."
    );
    // Publisher.
    describe_counter!(
        PUBLISHER_EVENTS_TOTAL,
        Unit::Count,
        "Events handed to the Kafka producer."
    );
    describe_counter!(
        PUBLISHER_RECONNECTS_TOTAL,
        Unit::Count,
        "Replication streams reconnected after a failure."
    );
    describe_histogram!(
        PUBLISHER_DELIVERY_SECONDS,
        Unit::Seconds,
        "From a source commit's arrival to Kafka's acknowledgement of all its events."
    );
    describe_gauge!(
        PUBLISHER_CONFIRMED_LSN,
        Unit::Count,
        "The LSN confirmed to the replication slot (everything before it is in Kafka)."
    );
    describe_gauge!(
        PUBLISHER_SLOT_LAG_BYTES,
        Unit::Bytes,
        "WAL the replication slot holds: the current WAL LSN minus the slot's confirmed LSN."
    );
    describe_gauge!(
        PUBLISHER_SNAPSHOT_ROWS_TOTAL,
        Unit::Count,
        "Rows of the table to snapshot, counted when its snapshot starts."
    );
    describe_gauge!(
        PUBLISHER_SNAPSHOT_ROWS_DONE,
        Unit::Count,
        "Rows of the table snapshotted so far."
    );
}

/// Registers series at 0 before their first event (see the module
/// comment). Registering an existing series changes nothing, so each may
/// be called again (a topic assigned back, a sink restarted).
pub mod at_zero {
    use super::*;
    use crate::ErrorClass;

    /// A sink worker's own series, before it joins its group.
    pub fn worker() {
        ::metrics::counter!(OFFSET_COMMIT_FAILURES_TOTAL).increment(0);
        ::metrics::counter!(CONSUMER_ERRORS_TOTAL).increment(0);
        for kind in REBALANCE_KINDS {
            ::metrics::counter!(REBALANCES_TOTAL, "kind" => kind).increment(0);
        }
    }

    /// The series of `topic`, when one of its partitions is assigned;
    /// `parking` with `dead_letter.on_error: park_key`.
    pub fn topic(topic: &str, parking: bool) {
        ::metrics::counter!(RECORDS_IN_TOTAL, "topic" => topic.to_owned()).increment(0);
        for class in ErrorClass::ALL {
            ::metrics::counter!(RECORDS_DEAD_LETTERED_TOTAL,
                "topic" => topic.to_owned(), "class" => class.as_str())
            .increment(0);
        }
        if parking {
            ::metrics::counter!(RECORDS_PARKED_TOTAL, "topic" => topic.to_owned()).increment(0);
        }
    }

    /// The series of one of the worker's sinks, `sink` its name.
    pub fn sink(sink: &'static str) {
        ::metrics::counter!(WRITE_RETRIES_TOTAL, "sink" => sink).increment(0);
        // Registering is the point: a registered histogram is exported
        // with every bucket at 0.
        let _ = ::metrics::histogram!(WRITE_DURATION_SECONDS, "sink" => sink);
        let _ = ::metrics::histogram!(BATCH_RECORDS, "sink" => sink);
    }

    /// Parked keys, with `dead_letter.on_error: park_key`.
    pub fn parking() {
        ::metrics::gauge!(PARKED_KEYS).set(0.0);
    }

    /// A Schema Registry (a topic in a registry format).
    pub fn registry() {
        for outcome in SCHEMA_FETCH_OUTCOMES {
            ::metrics::counter!(SCHEMA_FETCHES_TOTAL, "outcome" => outcome).increment(0);
        }
        ::metrics::gauge!(RECORDS_AWAITING_SCHEMA).set(0.0);
    }

    /// Offsets stored in the target (`offset_storage: target`).
    pub fn target_offsets() {
        ::metrics::counter!(FENCED_WRITES_TOTAL).increment(0);
    }

    /// Transactional apply.
    pub fn transactions() {
        ::metrics::counter!(TRANSACTIONS_APPLIED_TOTAL).increment(0);
        for reason in SPLIT_REASONS {
            ::metrics::counter!(TRANSACTIONS_SPLIT_TOTAL, "reason" => reason).increment(0);
        }
    }

    /// The Parquet sink.
    pub fn parquet() {
        for counter in [
            OBJECTS_WRITTEN_TOTAL,
            OBJECT_BYTES_WRITTEN_TOTAL,
            RECORDS_ALREADY_WRITTEN_TOTAL,
        ] {
            ::metrics::counter!(counter).increment(0);
        }
        let _ = ::metrics::histogram!(OBJECT_UPLOAD_DURATION_SECONDS);
    }

    /// The publisher.
    pub fn publisher() {
        ::metrics::counter!(PUBLISHER_EVENTS_TOTAL).increment(0);
        ::metrics::counter!(PUBLISHER_RECONNECTS_TOTAL).increment(0);
        // The delivery alert reads the buckets' `rate()`: a histogram born
        // with its first (slow) delivery would show no rate at all.
        let _ = ::metrics::histogram!(PUBLISHER_DELIVERY_SECONDS);
    }
}
