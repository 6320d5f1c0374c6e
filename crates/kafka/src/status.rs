//! Worker status reports, for `sinkfleet status`.
//!
//! Every worker publishes a [`MemberReport`] (who it is, its partitions,
//! which of them are paused, what it made durable, how fresh each table is)
//! to a compacted status topic, keyed by member, every
//! `status.interval_ms` and whenever its assignment changes; a clean stop
//! publishes a last report marked stopped. This is how Kafka Connect
//! reports task status (its `status.storage.topic`), and it is needed for
//! the same reason: the broker knows members and assignments, but not what
//! a worker paused or how fresh its tables are. It also answers "who is in
//! the group" where the broker cannot describe groups (see
//! [`describe_group`]).
//!
//! A report is a claim about the past: a worker that was killed leaves a
//! running report behind. [`MemberReport::is_live`] therefore trusts a
//! report only for three reporting intervals.

use crate::inspect::{ReadError, read_latest};
use crate::producer::Producer;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Status reporting (`status:` in YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// The compacted status topic (default `<kafka.group_id>.status`, with
    /// characters a topic name cannot hold replaced by `_`).
    #[serde(default)]
    pub topic: Option<String>,
    /// How often a worker reports (ms).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Create the topic at start if it is missing.
    #[serde(default = "default_create_topic")]
    pub create_topic: bool,
}

fn default_interval_ms() -> u64 {
    10_000
}

fn default_create_topic() -> bool {
    true
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            topic: None,
            interval_ms: default_interval_ms(),
            create_topic: default_create_topic(),
        }
    }
}

impl StatusConfig {
    /// The status topic of consumer group `group`.
    pub fn topic(&self, group: &str) -> String {
        self.topic.clone().unwrap_or_else(|| {
            let safe: String = group
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{safe}.status")
        })
    }
}

/// What one worker process says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    /// Unique per process: `group_instance_id`, or `<host>-<pid>`.
    pub member: String,
    /// Host name (the pod name on Kubernetes).
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When the process started (ms since the epoch).
    pub started_at_ms: i64,
    /// When this report was made (ms since the epoch).
    pub reported_at_ms: i64,
    /// The reporting interval (ms): a report older than three of them is
    /// not trusted.
    pub interval_ms: u64,
    /// True on the last report of a clean stop.
    pub stopped: bool,
    /// The partitions it owns.
    pub partitions: Vec<PartitionReport>,
    /// Freshness of the source tables it applied.
    pub tables: Vec<TableReport>,
}

impl MemberReport {
    /// Running and reported within the last three intervals.
    pub fn is_live(&self, now_ms: i64) -> bool {
        let window = i64::try_from(self.interval_ms.saturating_mul(3)).unwrap_or(i64::MAX);
        !self.stopped && now_ms.saturating_sub(self.reported_at_ms) <= window
    }
}

/// One owned partition, as its worker sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Fetching is paused (over budget, or the sink is failing).
    pub paused: bool,
    /// The next offset after what is durable in the target (committed or
    /// about to be).
    pub durable_next: Option<i64>,
    /// Age of the newest committed record while there is lag (seconds).
    pub lag_seconds: f64,
}

/// Freshness of one source table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    /// `schema.table` of the source.
    pub table: String,
    /// Source commit time of its newest durable change (ms since epoch).
    pub applied_source_ts_ms: i64,
}

/// Publishes reports to the status topic.
pub(crate) struct Reporter {
    producer: Producer,
    topic: String,
}

impl Reporter {
    pub(crate) fn new(
        client: &ClientConfig,
        topic: String,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = Producer::new(crate::producer_side(client).set("acks", "all"))?;
        Ok(Reporter { producer, topic })
    }

    /// Sends one report; a failure is logged, the next report replaces it.
    pub(crate) async fn send(&self, report: &MemberReport) {
        let Ok(value) = serde_json::to_vec(report) else {
            return;
        };
        let record = FutureRecord::to(&self.topic)
            .key(report.member.as_bytes())
            .payload(&value);
        if let Err(e) = self.producer.send(record, Duration::from_secs(5)).await {
            tracing::warn!(error = %e, topic = %self.topic, "status report not published");
        }
    }
}

/// The latest report of every member in `topic` that reported since
/// `since_ms` (ms since the epoch). Only that part of the topic is read:
/// it stays quick where the broker does not compact the topic.
pub fn read_reports(
    client: &ClientConfig,
    topic: &str,
    since_ms: i64,
    timeout: Duration,
) -> Result<Vec<MemberReport>, ReadError> {
    let latest = read_latest(client, topic, Some(since_ms), timeout)?;
    let mut reports: Vec<MemberReport> = latest
        .into_values()
        .flatten()
        .filter_map(|value| serde_json::from_slice(&value).ok())
        .collect();
    reports.sort_by(|a, b| a.member.cmp(&b.member));
    Ok(reports)
}

/// A group member as the broker describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerMember {
    /// The broker's member id.
    pub id: String,
    /// The member's `client.id`.
    pub client_id: String,
    /// The host it connected from.
    pub client_host: String,
}

/// The group's members as the broker describes them (DescribeGroups).
/// `Err` when the broker cannot say: not every Kafka-protocol broker
/// implements the group APIs.
pub fn describe_group(
    client: &ClientConfig,
    group: &str,
    timeout: Duration,
) -> Result<Vec<BrokerMember>, String> {
    let consumer: BaseConsumer = client.create().map_err(|e| e.to_string())?;
    let list = consumer
        .fetch_group_list(Some(group), timeout)
        .map_err(|e| e.to_string())?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .flat_map(|g| {
            g.members().iter().map(|m| BrokerMember {
                id: m.id().to_owned(),
                client_id: m.client_id().to_owned(),
                client_host: m.client_host().to_owned(),
            })
        })
        .collect())
}

/// This process's identity for its reports.
pub(crate) fn identity(group_instance_id: Option<&str>) -> (String, String, u32) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let pid = std::process::id();
    let member = group_instance_id.map_or_else(|| format!("{host}-{pid}"), str::to_owned);
    (member, host, pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(reported_at_ms: i64, stopped: bool) -> MemberReport {
        MemberReport {
            member: "m".into(),
            host: "h".into(),
            pid: 1,
            started_at_ms: 0,
            reported_at_ms,
            interval_ms: 1000,
            stopped,
            partitions: Vec::new(),
            tables: Vec::new(),
        }
    }

    #[test]
    fn a_report_is_trusted_for_three_intervals_unless_it_says_stopped() {
        assert!(report(10_000, false).is_live(12_999));
        assert!(report(10_000, false).is_live(13_000));
        assert!(!report(10_000, false).is_live(13_001));
        assert!(!report(10_000, true).is_live(10_000));
    }

    #[test]
    fn the_default_topic_is_named_after_the_group() {
        let cfg = StatusConfig::default();
        assert_eq!(cfg.topic("orders-sink"), "orders-sink.status");
        assert_eq!(cfg.topic("team/orders sink"), "team_orders_sink.status");
        let named = StatusConfig {
            topic: Some("ops.status".into()),
            ..StatusConfig::default()
        };
        assert_eq!(named.topic("g"), "ops.status");
    }
}
