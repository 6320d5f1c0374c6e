//! The Parquet sink's own metrics: objects, uploads, open files. Names are
//! a contract, as [`sinkfleet_core::metrics`] says.

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

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

/// Describes this crate's metrics to the installed recorder (the `# HELP`
/// lines); once, after the recorder is installed.
pub fn describe() {
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
}

/// Registers series at 0 before their first event (see
/// [`sinkfleet_core::metrics`]). Registering an existing series changes
/// nothing, so each may be called again.
pub mod at_zero {
    use super::*;

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
}
