//! The consumer runtime's metrics: records in and dead-lettered, offsets,
//! lag and freshness, writes, backpressure, the group, the Schema Registry
//! and transactional apply. Names are a contract (dashboards, alerts and
//! docs/metrics.md read them); the series start at 0 as
//! [`sinkfleet_core::metrics`] says.

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

// Records.

/// Counter `{topic}`.
pub const RECORDS_IN_TOTAL: &str = "sinkfleet_records_in_total";

/// Counter `{topic,class}`; `class` is an [`ErrorClass`](sinkfleet_core::ErrorClass).
pub const RECORDS_DEAD_LETTERED_TOTAL: &str = "sinkfleet_records_dead_lettered_total";

/// Counter `{topic}`.
pub const RECORDS_PARKED_TOTAL: &str = "sinkfleet_records_parked_total";

/// Gauge.
pub const PARKED_KEYS: &str = "sinkfleet_parked_keys";

// Offsets and lag, per `{topic,partition}`, and the Schema Registry.

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

// Freshness, per source `{table}`.

/// Gauge `{table}`.
pub const APPLIED_SOURCE_TIMESTAMP_SECONDS: &str = "sinkfleet_applied_source_timestamp_seconds";

/// Gauge `{table}`.
pub const APPLIED_COMMIT_LSN: &str = "sinkfleet_applied_commit_lsn";

/// Gauge `{table}`.
pub const FRESHNESS_SECONDS: &str = "sinkfleet_freshness_seconds";

// Writes, backpressure, the group.

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
pub const REBALANCE_KINDS: [&str; 3] = ["assign", "revoke", "lost"];

/// Counter.
pub const CONSUMER_ERRORS_TOTAL: &str = "sinkfleet_consumer_errors_total";

// Transactional apply.

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

/// Describes this crate's metrics to the installed recorder (the `# HELP`
/// lines); once, after the recorder is installed.
pub fn describe() {
    describe_counter!(
        RECORDS_IN_TOTAL,
        Unit::Count,
        "Records received from Kafka."
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
        "Consumer-group rebalances seen by this worker, by kind (assign, revoke, lost: partitions the group gave to another member while this one missed the rebalance)."
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
}

/// Registers series at 0 before their first event (see
/// [`sinkfleet_core::metrics`]). Registering an existing series changes
/// nothing, so each may be called again.
pub mod at_zero {
    use super::*;
    use sinkfleet_core::ErrorClass;

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

    /// Transactional apply.
    pub fn transactions() {
        ::metrics::counter!(TRANSACTIONS_APPLIED_TOTAL).increment(0);
        for reason in SPLIT_REASONS {
            ::metrics::counter!(TRANSACTIONS_SPLIT_TOTAL, "reason" => reason).increment(0);
        }
    }
}
