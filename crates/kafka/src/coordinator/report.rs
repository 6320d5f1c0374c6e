//! The coordinator's status report (see [`crate::status`]): built from the
//! partition state it owns, handed to the reporter task through a watch
//! channel, so a slow broker never holds the coordinator up and only the
//! newest report is ever sent.

use super::Coordinator;
use crate::messages::PartitionId;
use crate::progress;
use crate::status::{MemberReport, PartitionReport, TableReport};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where reports go, and when the next one is due.
pub(crate) struct StatusFeed {
    /// The newest report, for the reporter task.
    pub tx: watch::Sender<Option<MemberReport>>,
    /// Identity and interval; partitions and tables are filled per report.
    pub base: MemberReport,
    /// The last report went out then.
    pub last: Option<Instant>,
    /// The assignment changed since.
    pub dirty: bool,
    /// The partitions paused in the last report: a pause or a resume is
    /// reported at once, not an interval later.
    pub paused: HashSet<PartitionId>,
    /// Source tables in the last report: a table's first applied change
    /// is reported at once too.
    pub tables: usize,
}

impl Coordinator {
    /// Sends a report when one is due (every interval, and as soon as the
    /// assignment changed or a partition was paused or resumed), or the
    /// last one (`stopped`) at the end.
    pub(super) fn report_status(&mut self, stopped: bool) {
        let Some(feed) = self.status.as_mut() else {
            return;
        };
        let interval = Duration::from_millis(feed.base.interval_ms);
        let mut paused = self.partitions.iter().filter(|(_, p)| p.paused());
        let pauses_changed = paused.clone().count() != feed.paused.len()
            || paused.any(|(id, _)| !feed.paused.contains(id));
        let due = stopped
            || feed.dirty
            || pauses_changed
            || self.freshness.tables() != feed.tables
            || feed.last.is_none_or(|l| l.elapsed() >= interval);
        if !due {
            return;
        }
        feed.paused = self
            .partitions
            .iter()
            .filter(|(_, p)| p.paused())
            .map(|(id, _)| id.clone())
            .collect();
        let now = crate::clock::now_ms();
        let broker = self
            .broker_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut partitions: Vec<PartitionReport> = if stopped {
            Vec::new()
        } else {
            self.partitions
                .iter()
                .map(|(id, state)| PartitionReport {
                    topic: id.0.to_string(),
                    partition: id.1,
                    paused: state.paused(),
                    durable_next: state.durable(),
                    lag_seconds: progress::partition_lag(state, broker.get(id).copied(), now)
                        .map_or(0.0, |lag| lag.seconds),
                })
                .collect()
        };
        drop(broker);
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let mut tables: Vec<TableReport> = self
            .freshness
            .applied()
            .map(|(table, ts)| TableReport {
                table: table.to_string(),
                applied_source_ts_ms: ts,
            })
            .collect();
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        feed.tables = self.freshness.tables();
        let report = MemberReport {
            reported_at_ms: now,
            stopped,
            partitions,
            tables,
            ..feed.base.clone()
        };
        feed.tx.send_replace(Some(report));
        feed.last = Some(Instant::now());
        feed.dirty = false;
    }

    /// The assignment changed: report it on the next tick.
    pub(super) fn assignment_changed(&mut self) {
        if let Some(feed) = self.status.as_mut() {
            feed.dirty = true;
        }
    }
}
