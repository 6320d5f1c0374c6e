//! `sinkfleet status`: the group's members, who owns which partition, and
//! per partition the committed offset against the end, the lag, whether it
//! is paused and how old its lag is; freshness per source table.
//!
//! Offsets come from the broker (what it acknowledged as committed, and its
//! end offsets). Members, assignment, pauses and freshness come from the
//! workers' reports in the status topic (see `sinkfleet_kafka::status`),
//! because the broker knows nothing of pauses or freshness; where the
//! broker can describe the group, its member list is shown beside them.

use crate::config::Config;
use anyhow::Context;
use serde::Serialize;
use sinkfleet_kafka::group::{GroupOffsets, TopicPartition};
use sinkfleet_kafka::status::{BrokerMember, MemberReport, describe_group, read_reports};
use std::collections::BTreeMap;
use std::time::Duration;

/// Reports older than this are not read at all (a worker killed long ago).
const FORGET_AFTER_MS: i64 = 3_600_000;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Everything `status` prints.
#[derive(Debug, Serialize)]
pub struct GroupStatus {
    /// Consumer group.
    pub group: String,
    /// Where the members' reports were read.
    pub status_topic: String,
    /// Members as the broker describes them...
    pub broker_members: Option<Vec<BrokerMember>>,
    /// ...or why it cannot.
    pub broker_error: Option<String>,
    /// Members from their reports.
    pub members: Vec<Member>,
    /// Every partition of the consumed topics.
    pub partitions: Vec<PartitionStatus>,
    /// Freshness per source table, from the live members' reports.
    pub tables: Vec<TableStatus>,
}

/// A member, from its latest report.
#[derive(Debug, Serialize)]
pub struct Member {
    /// Member name (`group_instance_id`, or `<host>-<pid>`).
    pub member: String,
    /// Host.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Reported within three intervals; a member that is not live may be
    /// gone (killed) or stuck.
    pub live: bool,
    /// Seconds since its latest report.
    pub last_report_seconds: f64,
    /// The partitions it reported owning.
    pub partitions: Vec<String>,
}

/// One partition.
#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The live member that owns it, if any.
    pub owner: Option<String>,
    /// The group's committed offset (next to read), as the broker has it.
    pub committed: Option<i64>,
    /// The end offset (next record's offset).
    pub end: i64,
    /// End minus committed (from the oldest retained record if never
    /// committed).
    pub lag: i64,
    /// Fetching paused by its owner.
    pub paused: Option<bool>,
    /// Age of the newest committed record while there is lag, from its
    /// owner.
    pub lag_seconds: Option<f64>,
}

/// Freshness of one source table.
#[derive(Debug, Serialize)]
pub struct TableStatus {
    /// `schema.table`.
    pub table: String,
    /// Source commit time of the newest change durable in the target.
    pub applied_source_ts_ms: i64,
    /// Seconds since then (grows while the source is idle).
    pub freshness_seconds: f64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The live members' reports, for `offsets reset`'s refusal.
pub fn live_members(config: &Config) -> anyhow::Result<Vec<MemberReport>> {
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let topic = config.status.topic(&config.kafka.group_id);
    let now = now_ms();
    Ok(
        read_reports(&client, &topic, now - FORGET_AFTER_MS, TIMEOUT)
            .with_context(|| format!("reading {topic}"))?
            .into_iter()
            .filter(|r| r.is_live(now))
            .collect(),
    )
}

/// Gathers the group's status.
pub fn gather(config: &Config) -> anyhow::Result<GroupStatus> {
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let group = config.kafka.group_id.clone();
    let status_topic = config.status.topic(&group);
    let now = now_ms();
    let reports: Vec<MemberReport> =
        read_reports(&client, &status_topic, now - FORGET_AFTER_MS, TIMEOUT)
            .with_context(|| format!("reading {status_topic}"))?
            .into_iter()
            .filter(|r| !r.stopped)
            .collect();
    let offsets = GroupOffsets::new(&client, &group, TIMEOUT)?;
    let topics = &config.kafka.topics;
    let ids = offsets.partitions(topics).map_err(anyhow::Error::msg)?;
    let committed = offsets.committed(&ids).map_err(anyhow::Error::msg)?;

    // Owners, from the live members only: a silent member's claim is stale.
    let mut owned: BTreeMap<TopicPartition, (&MemberReport, usize)> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.is_live(now)) {
        for (i, p) in r.partitions.iter().enumerate() {
            owned.insert((p.topic.clone(), p.partition), (r, i));
        }
    }
    let mut partitions = Vec::with_capacity(ids.len());
    for id in &ids {
        let (low, end) = offsets.watermarks(id).map_err(anyhow::Error::msg)?;
        let committed = committed.get(id).copied().flatten();
        let owner = owned.get(id).map(|(r, i)| (*r, &r.partitions[*i]));
        partitions.push(PartitionStatus {
            topic: id.0.clone(),
            partition: id.1,
            owner: owner.map(|(r, _)| r.member.clone()),
            committed,
            end,
            lag: (end - committed.unwrap_or(low)).max(0),
            paused: owner.map(|(_, p)| p.paused),
            lag_seconds: owner.map(|(_, p)| p.lag_seconds),
        });
    }
    let mut tables: BTreeMap<String, i64> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.is_live(now)) {
        for t in &r.tables {
            let ts = tables
                .entry(t.table.clone())
                .or_insert(t.applied_source_ts_ms);
            *ts = (*ts).max(t.applied_source_ts_ms);
        }
    }
    let members = reports
        .iter()
        .map(|r| Member {
            member: r.member.clone(),
            host: r.host.clone(),
            pid: r.pid,
            live: r.is_live(now),
            last_report_seconds: (now - r.reported_at_ms).max(0) as f64 / 1000.0,
            partitions: r
                .partitions
                .iter()
                .map(|p| format!("{}/{}", p.topic, p.partition))
                .collect(),
        })
        .collect();
    let (broker_members, broker_error) =
        match describe_group(&client, &group, Duration::from_secs(10)) {
            Ok(members) => (Some(members), None),
            Err(e) => (None, Some(e)),
        };
    Ok(GroupStatus {
        broker_members,
        broker_error,
        group,
        status_topic,
        members,
        partitions,
        tables: tables
            .into_iter()
            .map(|(table, ts)| TableStatus {
                table,
                applied_source_ts_ms: ts,
                freshness_seconds: (now - ts).max(0) as f64 / 1000.0,
            })
            .collect(),
    })
}

/// The status as tables for a terminal.
pub fn render(s: &GroupStatus) -> String {
    let mut out = format!("group {}\n\n", s.group);
    match (&s.broker_members, &s.broker_error) {
        (Some(members), _) => out.push_str(&format!("broker: {} members\n", members.len())),
        (None, e) => out.push_str(&format!(
            "broker: cannot describe the group ({}); members below are from their reports\n",
            e.as_deref().unwrap_or("no answer")
        )),
    }
    out.push_str(&format!(
        "{:<32} {:<20} {:>7} {:<8} {:>11}  partitions\n",
        "member", "host", "pid", "state", "last report"
    ));
    for m in &s.members {
        out.push_str(&format!(
            "{:<32} {:<20} {:>7} {:<8} {:>10.1}s  {}\n",
            m.member,
            m.host,
            m.pid,
            if m.live { "live" } else { "silent" },
            m.last_report_seconds,
            m.partitions.join(",")
        ));
    }
    out.push_str(&format!(
        "{} members reporting to {}\n\n",
        s.members.len(),
        s.status_topic
    ));
    out.push_str(&format!(
        "{:<40} {:>9} {:<32} {:>12} {:>12} {:>10} {:<6} {:>8}\n",
        "topic", "partition", "owner", "committed", "end", "lag", "paused", "lag (s)"
    ));
    let dash = || "-".to_owned();
    for p in &s.partitions {
        out.push_str(&format!(
            "{:<40} {:>9} {:<32} {:>12} {:>12} {:>10} {:<6} {:>8}\n",
            p.topic,
            p.partition,
            p.owner.clone().unwrap_or_else(dash),
            p.committed.map_or_else(dash, |c| c.to_string()),
            p.end,
            p.lag,
            p.paused
                .map_or_else(dash, |x| if x { "yes" } else { "no" }.to_owned()),
            p.lag_seconds.map_or_else(dash, |x| format!("{x:.1}")),
        ));
    }
    let lag: i64 = s.partitions.iter().map(|p| p.lag).sum();
    out.push_str(&format!("total lag {lag} records\n"));
    if !s.tables.is_empty() {
        out.push_str(&format!("\n{:<48} {:>14}\n", "table", "freshness (s)"));
        for t in &s.tables {
            out.push_str(&format!("{:<48} {:>14.1}\n", t.table, t.freshness_seconds));
        }
    }
    out
}
