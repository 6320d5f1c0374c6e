//! The numbers an operator watches: lag per partition and freshness per
//! table, published as gauges.
//!
//! Lag is measured from the offsets the *broker* acknowledged as committed
//! against its high watermark, the same numbers `kafka-consumer-groups`
//! and lag-based autoscalers read. What this process made durable but the
//! broker does not have yet is its own gauge: a gap there that does not
//! close means commits are failing.
//!
//! Freshness is per source table: the source commit time and LSN of the
//! newest change that became durable in the target.

use crate::messages::{BrokerOffsets, PartitionId};
use crate::metrics::{
    APPLIED_COMMIT_LSN, APPLIED_SOURCE_TIMESTAMP_SECONDS, COMMITTED_OFFSET, CONSUMER_LAG_RECORDS,
    CONSUMER_LAG_SECONDS, FRESHNESS_SECONDS, UNCOMMITTED_DURABLE_RECORDS,
};
use crate::partition::{JobMark, PartitionState};
use sinkfleet_core::TableId;
use std::collections::HashMap;

fn partition_labels(id: &PartitionId) -> [(&'static str, String); 2] {
    [("topic", id.0.to_string()), ("partition", id.1.to_string())]
}

/// Lag of one partition as the broker sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PartitionLag {
    /// High watermark minus the committed offset.
    pub records: i64,
    /// Age of the newest committed record, while there is lag.
    pub seconds: f64,
    /// Durable here, not acknowledged by the broker.
    pub uncommitted: i64,
}

/// Lag of a partition from the broker's numbers (`None` until the
/// partition's high watermark is known, from librdkafka's statistics or a
/// listing of end offsets).
pub(crate) fn partition_lag(
    state: &PartitionState,
    broker: Option<BrokerOffsets>,
    now_ms: i64,
) -> Option<PartitionLag> {
    let broker = broker.filter(|b| b.high >= 0)?;
    // A group that never committed starts at the oldest retained record.
    let committed = state
        .committed(Some(broker.committed))
        .unwrap_or(broker.low);
    let records = (broker.high - committed).max(0);
    // The age of the newest committed record. Until this assignment knows
    // it (nothing of its own acknowledged yet: a partition just assigned,
    // or handed over while paused, may never get there), what is known to
    // wait is at least as old as the first record received, and as the
    // lag itself: neither can be newer than the committed record.
    let since = state
        .committed_ts
        .or_else(|| match (state.first_ts, state.lag_since_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
    let seconds = match (records, since) {
        (0, _) | (_, None) => 0.0,
        (_, Some(ts)) => (now_ms - ts).max(0) as f64 / 1000.0,
    };
    let uncommitted = match (state.durable(), state.first_offset) {
        (Some(durable), Some(first)) => (durable - state.committed(None).unwrap_or(first)).max(0),
        _ => 0,
    };
    Some(PartitionLag {
        records,
        seconds,
        uncommitted,
    })
}

/// Publishes one owned partition's lag gauges.
pub(crate) fn publish_lag(id: &PartitionId, lag: PartitionLag) {
    let labels = partition_labels(id);
    metrics::gauge!(CONSUMER_LAG_RECORDS, &labels).set(lag.records as f64);
    metrics::gauge!(CONSUMER_LAG_SECONDS, &labels).set(lag.seconds);
    metrics::gauge!(UNCOMMITTED_DURABLE_RECORDS, &labels).set(lag.uncommitted as f64);
}

/// A partition this process gave up reports no lag of its own any more:
/// its new owner does. (Zero rather than a stale value, so `max` and `sum`
/// over the fleet see the owner's numbers.)
pub(crate) fn clear_lag(id: &PartitionId) {
    publish_lag(
        id,
        PartitionLag {
            records: 0,
            seconds: 0.0,
            uncommitted: 0,
        },
    );
}

/// Publishes the committed offset the broker acknowledged.
pub(crate) fn publish_committed(id: &PartitionId, offset: i64) {
    metrics::gauge!(COMMITTED_OFFSET, &partition_labels(id)).set(offset as f64);
}

/// The newest durable change of one source table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Applied {
    source_ts_ms: Option<i64>,
    commit_lsn: Option<u64>,
}

/// Freshness per source table, from the jobs that became durable.
#[derive(Debug, Default)]
pub(crate) struct Freshness {
    tables: HashMap<TableId, Applied>,
}

impl Freshness {
    /// Folds durable jobs in; publishes the applied-through gauges of the
    /// tables they touched.
    pub fn durable(&mut self, marks: &[JobMark]) {
        for mark in marks {
            for t in &mark.tables {
                let applied = self.tables.entry(t.table.clone()).or_default();
                let before = *applied;
                applied.source_ts_ms = applied.source_ts_ms.max(t.source_ts_ms);
                applied.commit_lsn = applied.commit_lsn.max(t.commit_lsn);
                if *applied == before {
                    continue;
                }
                let table = t.table.to_string();
                if let Some(ts) = applied.source_ts_ms {
                    metrics::gauge!(APPLIED_SOURCE_TIMESTAMP_SECONDS, "table" => table.clone())
                        .set(ts as f64 / 1000.0);
                }
                if let Some(lsn) = applied.commit_lsn {
                    metrics::gauge!(APPLIED_COMMIT_LSN, "table" => table).set(lsn as f64);
                }
            }
        }
    }

    /// Seconds since the source commit of each table's newest durable
    /// change. It keeps growing while the source is idle: read it together
    /// with the lag (a table is stale only while records wait).
    pub fn publish(&self, now_ms: i64) {
        for (table, applied) in &self.tables {
            if let Some(ts) = applied.source_ts_ms {
                metrics::gauge!(FRESHNESS_SECONDS, "table" => table.to_string())
                    .set((now_ms - ts).max(0) as f64 / 1000.0);
            }
        }
    }

    /// Source tables with a durable change.
    pub fn tables(&self) -> usize {
        self.tables.len()
    }

    /// Each table's applied-through source time (ms since the epoch).
    pub fn applied(&self) -> impl Iterator<Item = (&TableId, i64)> {
        self.tables
            .iter()
            .filter_map(|(table, a)| Some((table, a.source_ts_ms?)))
    }

    /// The applied-through source time of `table` (tests).
    #[cfg(test)]
    fn source_ts_ms(&self, table: &TableId) -> Option<i64> {
        self.tables.get(table).and_then(|a| a.source_ts_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::TableMark;
    use sinkfleet_core::watermark::OffsetWatermark;

    fn broker(high: i64, committed: i64) -> Option<BrokerOffsets> {
        Some(BrokerOffsets {
            high,
            low: 0,
            committed,
        })
    }

    #[test]
    fn lag_counts_from_what_the_broker_acknowledged_not_what_is_durable() {
        let mut p = PartitionState {
            watermark: Some(OffsetWatermark::new(0)),
            first_offset: Some(0),
            ..PartitionState::default()
        };
        if let Some(w) = p.watermark.as_mut() {
            w.mark_durable(0, 99);
        }
        // Everything durable, nothing acknowledged: all of it is lag, and
        // all of it waits for a commit.
        let lag = partition_lag(&p, broker(100, -1001), 0).unwrap();
        assert_eq!((lag.records, lag.uncommitted), (100, 100));
        p.acknowledged(100);
        let lag = partition_lag(&p, broker(100, -1001), 0).unwrap();
        assert_eq!((lag.records, lag.uncommitted), (0, 0));
        assert_eq!(lag.seconds, 0.0);
    }

    #[test]
    fn an_idle_partition_without_records_reads_the_group_offset() {
        let p = PartitionState::default();
        assert_eq!(partition_lag(&p, broker(50, 50), 0).unwrap().records, 0);
        assert_eq!(partition_lag(&p, broker(50, 20), 0).unwrap().records, 30);
        assert_eq!(
            partition_lag(&p, broker(50, -1001), 0).unwrap().records,
            50,
            "never committed: everything retained is lag"
        );
        assert!(partition_lag(&p, None, 0).is_none());
    }

    #[test]
    fn lag_seconds_is_the_age_of_the_newest_committed_record() {
        let mut p = PartitionState {
            committed_ts: Some(1_000),
            ..PartitionState::default()
        };
        p.acknowledged(10);
        let lag = partition_lag(&p, broker(20, 10), 4_500).unwrap();
        assert_eq!(lag.seconds, 3.5);
    }

    #[test]
    fn a_partition_without_a_known_high_watermark_reports_no_lag() {
        let p = PartitionState::default();
        assert!(partition_lag(&p, broker(-1001, 10), 0).is_none());
    }

    #[test]
    fn lag_seconds_of_a_new_owner_count_from_what_is_known_to_wait() {
        // Handed over while paused: no record, no commit of its own.
        let mut p = PartitionState {
            lag_since_ms: Some(2_000),
            ..PartitionState::default()
        };
        assert_eq!(
            partition_lag(&p, broker(20, 10), 5_000).unwrap().seconds,
            3.0
        );
        // A record received (and not committed yet) is older.
        p.first_ts = Some(1_000);
        assert_eq!(
            partition_lag(&p, broker(20, 10), 5_000).unwrap().seconds,
            4.0
        );
        // Once a commit of its own is acknowledged, its record's age counts.
        p.committed_ts = Some(1_500);
        assert_eq!(
            partition_lag(&p, broker(20, 10), 5_000).unwrap().seconds,
            3.5
        );
        assert_eq!(
            partition_lag(&p, broker(10, 10), 5_000).unwrap().seconds,
            0.0
        );
    }

    #[test]
    fn freshness_keeps_the_newest_durable_change_per_table() {
        let table = TableId::new("public", "orders");
        let mark = |ts| JobMark {
            last_offset: 0,
            newest_ts: None,
            tables: vec![TableMark {
                table: table.clone(),
                source_ts_ms: Some(ts),
                commit_lsn: Some(7),
            }],
        };
        let mut f = Freshness::default();
        f.durable(&[mark(2_000), mark(1_000)]);
        assert_eq!(f.source_ts_ms(&table), Some(2_000));
    }
}
