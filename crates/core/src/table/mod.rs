//! What every table-shaped sink (Postgres, ClickHouse) does the same way,
//! implemented once: the pipeline of a batch ([`driver`]), where a source
//! table goes ([`route`]), how a batch splits into per-table work
//! ([`split`]), which columns a batch needs and of which type ([`plan`]),
//! and the per-table counters ([`ApplyStats`]).
//!
//! A sink brings only its target ([`TableTarget`]): its physical types (a
//! [`plan::TypeSystem`] mapping and widening the sink-neutral
//! [`ColumnType`](crate::ColumnType)), its session, the SQL it runs, and
//! how it applies a run of changes.

pub mod driver;
pub mod history;
pub mod plan;
pub mod route;
pub mod split;

pub use driver::{TableTarget, apply};
pub use route::route;
pub use split::{Run, TableShare, runs, split_by_target};

use crate::metrics::{RECORDS_APPLIED_TOTAL, RECORDS_SKIPPED_STALE_TOTAL};
use std::collections::BTreeMap;

/// Applied and stale (skipped: not newer than what the target holds)
/// counts per target table for one batch, published as
/// `sinkfleet_records_applied_total` and
/// `sinkfleet_records_skipped_stale_total` once the batch is durable.
#[derive(Debug, Default)]
pub struct ApplyStats(BTreeMap<String, (u64, u64)>);

impl ApplyStats {
    /// Counts `submitted` changes of `table`, of which `applied` changed a row.
    pub fn add(&mut self, table: &str, submitted: u64, applied: u64) {
        let entry = self.0.entry(table.to_owned()).or_default();
        entry.0 += applied;
        entry.1 += submitted.saturating_sub(applied);
    }

    /// Publishes the counts for `sink`.
    pub fn publish(self, sink: &'static str) {
        for (table, (applied, stale)) in self.0 {
            metrics::counter!(RECORDS_APPLIED_TOTAL, "sink" => sink, "table" => table.clone())
                .increment(applied);
            metrics::counter!(RECORDS_SKIPPED_STALE_TOTAL, "sink" => sink, "table" => table)
                .increment(stale);
        }
    }
}

/// A keyless record of `s.<table>` at `offset` (version `(offset, 0)`).
#[cfg(test)]
pub(crate) fn test_record(
    table: &str,
    op: crate::change::Op,
    offset: i64,
) -> crate::sink::SinkRecord {
    use crate::change::{Change, Row, TableId};
    crate::sink::SinkRecord {
        position: crate::sink::Position {
            topic: std::sync::Arc::from("t"),
            partition: 0,
            offset,
        },
        change: Change {
            table: TableId::new("s", table),
            op,
            key: Row::default(),
            row: None,
            version: crate::version::Version::new(offset as u64, 0),
            schema: None,
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        },
    }
}
