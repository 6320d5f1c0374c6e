//! The Postgres sink's own metrics (the runtime's are in `sinkfleet-kafka`).
//! Names are a contract, as [`sinkfleet_core::metrics`] says.

use ::metrics::{Unit, describe_counter};

/// Counter.
pub const FENCED_WRITES_TOTAL: &str = "sinkfleet_fenced_writes_total";

/// Describes this crate's metrics to the installed recorder (the `# HELP`
/// lines); once, after the recorder is installed.
pub fn describe() {
    describe_counter!(
        FENCED_WRITES_TOTAL,
        Unit::Count,
        "Batches rolled back because another worker claimed their partitions (offset_storage: target)."
    );
}

/// Registers series at 0 before their first event (see
/// [`sinkfleet_core::metrics`]). Registering an existing series changes
/// nothing, so each may be called again.
pub mod at_zero {
    use super::*;

    /// Offsets stored in the target (`offset_storage: target`).
    pub fn target_offsets() {
        ::metrics::counter!(FENCED_WRITES_TOTAL).increment(0);
    }
}
