//! The publisher's metrics. Names are a contract, as
//! [`sinkfleet_core::metrics`] says.

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

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

/// Describes this crate's metrics to the installed recorder (the `# HELP`
/// lines); once, after the recorder is installed.
pub fn describe() {
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

/// Registers series at 0 before their first event (see
/// [`sinkfleet_core::metrics`]). Registering an existing series changes
/// nothing, so each may be called again.
pub mod at_zero {
    use super::*;

    /// The publisher.
    pub fn publisher() {
        ::metrics::counter!(PUBLISHER_EVENTS_TOTAL).increment(0);
        ::metrics::counter!(PUBLISHER_RECONNECTS_TOTAL).increment(0);
        // The delivery alert reads the buckets' `rate()`: a histogram born
        // with its first (slow) delivery would show no rate at all.
        let _ = ::metrics::histogram!(PUBLISHER_DELIVERY_SECONDS);
    }
}
