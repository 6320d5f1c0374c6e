//! `sinkfleet status`: the group's members, per topic its dead letters and
//! parked keys, per partition its committed offset against the end, how
//! long its oldest record has waited, who owns it and whether it is
//! paused; freshness per source table.
//!
//! Each number says where it comes from. From the broker, read by this
//! command: committed and end offsets, the lag, and the timestamp of the
//! record at the committed offset (the oldest the group has not committed,
//! so `waited` is how long the partition's lag has been waiting, not how
//! old the last commit is). From the dead-letter, resolved and parked-keys
//! topics, read by this command: dead letters and parked keys. From the
//! workers' reports in the status topic (see `sinkfleet_kafka::status`),
//! with each report's age: members, owners, pauses and freshness, which
//! the broker does not know. A worker reports every `status.interval_ms`,
//! and at once when its assignment changes or it pauses or resumes a
//! partition.

use crate::config::Config;
use crate::dlq_resolved::DeadLetters;
use crate::timestamps::{now_ms, time_text, utc};
use anyhow::Context;
use serde::Serialize;
use sinkfleet_kafka::OnError;
use sinkfleet_kafka::group::{GroupOffsets, PartitionId, timestamps_at};
use sinkfleet_kafka::parking::read_parked;
use sinkfleet_kafka::status::{BrokerMember, MemberReport, describe_group, read_reports};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Reports older than this are not read at all: a stopped worker is shown
/// as stopped for this long.
const FORGET_AFTER_MS: i64 = 3_600_000;

const TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for the records at the committed offsets.
const WAITED_TIMEOUT: Duration = Duration::from_secs(5);

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
    pub broker_note: Option<String>,
    /// Members from their reports: running ones, and those that stopped
    /// cleanly within the hour. A worker that stopped reporting without a
    /// clean stop (killed) is left out after three intervals.
    pub members: Vec<Member>,
    /// Per consumed topic: lag, dead letters and parked keys.
    pub topics: Vec<TopicStatus>,
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
    /// `live` (reported within three intervals) or `stopped` (its last
    /// report said it stopped cleanly).
    pub state: &'static str,
    /// When it stopped (ms since the epoch).
    pub stopped_at_ms: Option<i64>,
    /// Seconds since its latest report.
    pub last_report_seconds: f64,
    /// The partitions it reported owning.
    pub partitions: Vec<String>,
}

/// One consumed topic.
#[derive(Debug, Serialize)]
pub struct TopicStatus {
    /// Topic.
    pub topic: String,
    /// Records not committed yet, all partitions (broker).
    pub lag: i64,
    /// Dead letters of this topic, copies of one record counted once.
    pub dead_letters: usize,
    /// Those not resolved by a replay.
    pub open_dead_letters: usize,
    /// Open ones dead-lettered after the last replay of this topic's dead
    /// letters (all open ones if none was replayed).
    pub new_dead_letters: usize,
    /// When this topic's dead letters were last replayed (ms since epoch).
    pub last_replay_ms: Option<i64>,
    /// Keys parked now (`on_error: park_key`).
    pub parked_keys: usize,
    /// The key parked longest.
    pub oldest_parked: Option<OldestParked>,
}

/// The key of a topic parked longest.
#[derive(Debug, Serialize)]
pub struct OldestParked {
    /// Its partition.
    pub partition: i32,
    /// The key, as text.
    pub key: String,
    /// Offset of the record that parked it.
    pub since: i64,
    /// When it was parked (ms since epoch), where known.
    pub parked_at_ms: Option<i64>,
}

/// One partition.
#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The group's committed offset (next to read), as the broker has it.
    pub committed: Option<i64>,
    /// The end offset (next record's offset), as the broker has it.
    pub end: i64,
    /// End minus committed (from the oldest retained record if never
    /// committed).
    pub lag: i64,
    /// While there is lag: seconds since the broker stored the oldest
    /// record the group has not committed (the record at the committed
    /// offset). `None` without lag, or when it could not be read.
    pub waited_seconds: Option<f64>,
    /// The live member that owns it, by its report.
    pub owner: Option<String>,
    /// Fetching paused, by its owner's report.
    pub paused: Option<bool>,
    /// Age of that report (seconds).
    pub report_age_seconds: Option<f64>,
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
            .filter(|r| r.stopped || r.is_live(now))
            .collect();
    let offsets = GroupOffsets::new(&client, &group, TIMEOUT)?;
    let topics = &config.kafka.topics;
    let ids = offsets.partitions(topics).map_err(anyhow::Error::msg)?;
    let committed = offsets.committed(&ids).map_err(anyhow::Error::msg)?;

    // Owners, from the live members only: a stopped member owns nothing.
    let mut owned: BTreeMap<PartitionId, (&MemberReport, usize)> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.is_live(now)) {
        for (i, p) in r.partitions.iter().enumerate() {
            owned.insert((Arc::from(p.topic.as_str()), p.partition), (r, i));
        }
    }
    let mut partitions = Vec::with_capacity(ids.len());
    let mut waiting: BTreeMap<PartitionId, i64> = BTreeMap::new();
    for id in &ids {
        let (low, end) = offsets.watermarks(id).map_err(anyhow::Error::msg)?;
        let committed = committed.get(id).copied().flatten();
        let from = committed.unwrap_or(low).max(low);
        if end > from {
            waiting.insert(id.clone(), from);
        }
        let owner = owned.get(id).map(|(r, i)| (*r, &r.partitions[*i]));
        partitions.push(PartitionStatus {
            topic: id.0.to_string(),
            partition: id.1,
            committed,
            end,
            lag: (end - committed.unwrap_or(low)).max(0),
            waited_seconds: None,
            owner: owner.map(|(r, _)| r.member.clone()),
            paused: owner.map(|(_, p)| p.paused),
            report_age_seconds: owner.map(|(r, _)| seconds_since(r.reported_at_ms, now)),
        });
    }
    let stored = timestamps_at(&client, &waiting, WAITED_TIMEOUT).map_err(anyhow::Error::msg)?;
    for p in &mut partitions {
        if let Some(ts) = stored.get(&(Arc::from(p.topic.as_str()), p.partition)) {
            p.waited_seconds = Some(seconds_since(*ts, now));
        }
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
            state: if r.stopped { "stopped" } else { "live" },
            stopped_at_ms: r.stopped.then_some(r.reported_at_ms),
            last_report_seconds: seconds_since(r.reported_at_ms, now),
            partitions: r
                .partitions
                .iter()
                .map(|p| format!("{}/{}", p.topic, p.partition))
                .collect(),
        })
        .collect();
    let (broker_members, broker_note) =
        match describe_group(&client, &group, Duration::from_secs(10)) {
            Ok(members) => (Some(members), None),
            // The same broker just answered every other request: a broker
            // that closes the connection on this one does not implement it
            // (as tansu does not).
            Err(e) if e.contains("BrokerTransportFailure") => (
                None,
                Some("ListGroups/DescribeGroups not supported by this broker".to_owned()),
            ),
            Err(e) => (None, Some(e)),
        };
    Ok(GroupStatus {
        broker_members,
        broker_note,
        group,
        status_topic,
        members,
        topics: topic_statuses(config, &partitions)?,
        partitions,
        tables: tables
            .into_iter()
            .map(|(table, ts)| TableStatus {
                table,
                applied_source_ts_ms: ts,
                freshness_seconds: seconds_since(ts, now),
            })
            .collect(),
    })
}

fn seconds_since(ms: i64, now: i64) -> f64 {
    (now - ms).max(0) as f64 / 1000.0
}

/// Lag, dead letters and parked keys per consumed topic.
fn topic_statuses(
    config: &Config,
    partitions: &[PartitionStatus],
) -> anyhow::Result<Vec<TopicStatus>> {
    let dead = DeadLetters::read(config, TIMEOUT)?;
    let parked = if config.dead_letter.on_error == OnError::ParkKey {
        let client = sinkfleet_kafka::client_config(&config.kafka);
        let topic = config.dead_letter.parked_topic();
        read_parked(&client, &topic, TIMEOUT)
            .map_err(|e| anyhow::anyhow!("reading {topic}: {e}"))?
    } else {
        Vec::new()
    };
    let mut topics: BTreeMap<&str, i64> = BTreeMap::new();
    for p in partitions {
        *topics.entry(&p.topic).or_default() += p.lag;
    }
    Ok(topics
        .into_iter()
        .map(|(topic, lag)| {
            let letters: Vec<_> = dead
                .distinct()
                .iter()
                .filter(|l| l.origin.as_ref().is_some_and(|o| o.0 == topic))
                .collect();
            let parked_here: Vec<_> = parked.iter().filter(|p| p.topic == topic).collect();
            let oldest = parked_here
                .iter()
                .min_by_key(|p| (p.parked_at_ms.unwrap_or(i64::MIN), p.since))
                .map(|p| OldestParked {
                    partition: p.partition,
                    key: String::from_utf8_lossy(&p.key).into_owned(),
                    since: p.since,
                    parked_at_ms: p.parked_at_ms,
                });
            TopicStatus {
                topic: topic.to_owned(),
                lag,
                dead_letters: letters.len(),
                open_dead_letters: letters
                    .iter()
                    .filter(|l| dead.resolution(l).is_none())
                    .count(),
                new_dead_letters: dead.new_since_last_replay(topic),
                last_replay_ms: dead.last_resolved_ms(Some(topic)),
                parked_keys: parked_here.len(),
                oldest_parked: oldest,
            }
        })
        .collect())
}

/// The status as tables for a terminal.
pub fn render(s: &GroupStatus) -> String {
    let dash = || "-".to_owned();
    let mut out = format!("group {}\n\n", s.group);
    match (&s.broker_members, &s.broker_note) {
        (Some(members), _) => out.push_str(&format!("broker: {} members\n", members.len())),
        (None, note) => out.push_str(&format!(
            "broker: cannot describe the group ({}); members below are from their reports\n",
            note.as_deref().unwrap_or("no answer")
        )),
    }
    out.push_str(&format!(
        "{:<32} {:<20} {:>7} {:<31} {:>11}  partitions\n",
        "member", "host", "pid", "state", "last report"
    ));
    for m in &s.members {
        let state = match m.stopped_at_ms {
            Some(at) => format!("stopped at {}", utc(at)),
            None => m.state.to_owned(),
        };
        out.push_str(&format!(
            "{:<32} {:<20} {:>7} {:<31} {:>10.1}s  {}\n",
            m.member,
            m.host,
            m.pid,
            state,
            m.last_report_seconds,
            m.partitions.join(",")
        ));
    }
    let live = s.members.iter().filter(|m| m.state == "live").count();
    out.push_str(&format!(
        "{live} live members reporting to {}\n\n",
        s.status_topic
    ));
    out.push_str(&format!(
        "{:<40} {:>10} {:>13} {:>6} {:>10} {:>7}  oldest parked key\n",
        "topic", "lag", "dead letters", "open", "new", "parked"
    ));
    for t in &s.topics {
        let oldest = t.oldest_parked.as_ref().map_or_else(dash, |p| {
            format!(
                "{} in partition {} since offset {}{}",
                p.key,
                p.partition,
                p.since,
                p.parked_at_ms
                    .map_or_else(String::new, |at| format!(", {}", time_text(at)))
            )
        });
        out.push_str(&format!(
            "{:<40} {:>10} {:>13} {:>6} {:>10} {:>7}  {oldest}\n",
            t.topic, t.lag, t.dead_letters, t.open_dead_letters, t.new_dead_letters, t.parked_keys
        ));
    }
    out.push_str(
        "(dead letters: copies of a record counted once; open: not replayed; new: open and \
         dead-lettered after the topic's last replay)\n\n",
    );
    out.push_str(&format!(
        "{:<50} | {:<47} | from the owner's report\n",
        "", "from the broker"
    ));
    out.push_str(&format!(
        "{:<40} {:>9} | {:>12} {:>12} {:>10} {:>10} | {:<32} {:<6} {:>10}\n",
        "topic",
        "partition",
        "committed",
        "end",
        "lag",
        "waited (s)",
        "owner",
        "paused",
        "as of (s)"
    ));
    for p in &s.partitions {
        out.push_str(&format!(
            "{:<40} {:>9} | {:>12} {:>12} {:>10} {:>10} | {:<32} {:<6} {:>10}\n",
            p.topic,
            p.partition,
            p.committed.map_or_else(dash, |c| c.to_string()),
            p.end,
            p.lag,
            p.waited_seconds.map_or_else(dash, |x| format!("{x:.1}")),
            p.owner.clone().unwrap_or_else(dash),
            p.paused
                .map_or_else(dash, |x| if x { "yes" } else { "no" }.to_owned()),
            p.report_age_seconds
                .map_or_else(dash, |x| format!("{x:.1}")),
        ));
    }
    let lag: i64 = s.partitions.iter().map(|p| p.lag).sum();
    out.push_str(&format!(
        "total lag {lag} records (waited: since the broker stored the oldest record not \
         committed)\n"
    ));
    if !s.tables.is_empty() {
        out.push_str(&format!("\n{:<48} {:>14}\n", "table", "freshness (s)"));
        for t in &s.tables {
            out.push_str(&format!("{:<48} {:>14.1}\n", t.table, t.freshness_seconds));
        }
    }
    out
}
