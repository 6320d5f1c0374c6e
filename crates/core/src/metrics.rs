//! The metrics of the shared table layer, and the rules every crate's
//! `metrics.rs` follows: each name written once, in the crate that emits
//! it, with its description and unit (its `describe`); call sites refer to
//! the constants. The binary describes every crate's metrics at start.
//!
//! The names are a contract: `deploy/grafana/sinkfleet.json`,
//! `deploy/prometheus/alerts.yaml` and docs/metrics.md read them, so they do not
//! change.
//!
//! **Series exist at 0 before their first event** (each crate's `at_zero`). Prometheus'
//! `increase()` and `rate()` see no increase in a series whose first sample
//! is already 1: an alert on the first dead letter of a topic would stay
//! silent. So every counter and histogram is registered at 0 as soon as
//! its labels are known: at start for labels known then (`sink`, `kind`,
//! `reason`), when a topic's first partition is assigned for `topic`.
//! Only the labels that name what a record carries (`table`) appear with
//! their first record. Gauges that measure something (lag, committed
//! offset, freshness, slot lag) appear once measured: a 0 there would be a
//! claim, not a start value.

use ::metrics::{Unit, describe_counter};

/// Counter `{sink,table}`.
pub const RECORDS_APPLIED_TOTAL: &str = "sinkfleet_records_applied_total";

/// Counter `{sink,table}`.
pub const RECORDS_SKIPPED_STALE_TOTAL: &str = "sinkfleet_records_skipped_stale_total";

/// Describes this crate's metrics to the installed recorder (the `# HELP`
/// lines); once, after the recorder is installed.
pub fn describe() {
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
}
