//! `sinkfleet offsets reset`: moves the group's committed offsets, with the
//! group stopped, and says what it changed.
//!
//! A reset under running workers would be overwritten by their next commit
//! (or, on a broker that tracks membership, refused), so it is refused
//! while the group has members: as the broker describes them where it can,
//! and as the workers' status reports say in any case (a worker killed
//! without a clean stop counts as a member until its report is three
//! reporting intervals old). When the sink keeps offsets in its target
//! (`offset_storage: target`), those are reset too: workers resume from
//! the further of the two.

use crate::config::{Config, SinkConfig};
use anyhow::{Context, bail};
use sinkfleet_kafka::group::{GroupOffsets, PartitionId};
use sinkfleet_kafka::status::describe_group;
use sinkfleet_sink_postgres::{OffsetStorage, PostgresSink};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Where `--to` moves the offsets.
#[derive(Debug, PartialEq)]
pub enum ResetTo {
    /// The oldest retained record of every partition.
    Earliest,
    /// The end of every partition (skips everything not yet applied).
    Latest,
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
    /// Exact offsets of named partitions (`topic:partition:offset`).
    Exact(BTreeMap<PartitionId, i64>),
}

impl ResetTo {
    /// Parses the `--to` values: one of `earliest`, `latest`, an RFC 3339
    /// time, or one or more `topic:partition:offset`.
    pub fn parse(to: &[String]) -> anyhow::Result<ResetTo> {
        match to {
            [] => bail!("--to is required"),
            [one] if one == "earliest" => return Ok(ResetTo::Earliest),
            [one] if one == "latest" => return Ok(ResetTo::Latest),
            [one] => {
                if let Ok(time) = chrono::DateTime::parse_from_rfc3339(one) {
                    return Ok(ResetTo::Time(time.timestamp_millis()));
                }
                // A date (with or without a time) but no zone: which instant
                // it means is a guess, so it is refused rather than read as
                // UTC or as a partition spec.
                if one
                    .get(..10)
                    .is_some_and(|date| chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok())
                {
                    bail!(
                        "--to {one}: a time needs a zone: 2026-11-30T06:00:00Z (UTC) \
                         or 2026-11-30T07:00:00+01:00"
                    );
                }
            }
            _ => {}
        }
        let mut exact = BTreeMap::new();
        for spec in to {
            let mut parts = spec.rsplitn(3, ':');
            let (Some(offset), Some(partition), Some(topic)) =
                (parts.next(), parts.next(), parts.next())
            else {
                bail!(
                    "--to {spec}: expected earliest, latest, an RFC 3339 time \
                     (2026-11-30T06:00:00Z) or topic:partition:offset"
                );
            };
            let partition: i32 = partition
                .parse()
                .with_context(|| format!("--to {spec}: partition {partition:?}"))?;
            let offset: i64 = offset
                .parse()
                .with_context(|| format!("--to {spec}: offset {offset:?}"))?;
            if topic.is_empty() || partition < 0 || offset < 0 {
                bail!("--to {spec}: empty topic, or negative partition or offset");
            }
            if exact
                .insert((Arc::from(topic), partition), offset)
                .is_some()
            {
                bail!("--to {spec}: partition given twice");
            }
        }
        Ok(ResetTo::Exact(exact))
    }
}

/// Refuses while the group has members.
fn refuse_if_members(config: &Config) -> anyhow::Result<String> {
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let group = &config.kafka.group_id;
    let broker = match describe_group(&client, group, Duration::from_secs(10)) {
        Ok(members) if !members.is_empty() => {
            let ids: Vec<String> = members
                .iter()
                .map(|m| format!("{} ({})", m.client_id, m.client_host))
                .collect();
            bail!(
                "group {group} has {} members: {}; stop them first",
                ids.len(),
                ids.join(", ")
            );
        }
        Ok(_) => "the broker lists no members".to_owned(),
        Err(e) => format!("the broker cannot describe groups ({e})"),
    };
    let live = crate::status::live_members(config)?;
    if !live.is_empty() {
        let names: Vec<&str> = live.iter().map(|r| r.member.as_str()).collect();
        bail!(
            "group {group} has {} live members by their status reports: {}; stop them first \
             (a worker killed without a clean stop counts for three reporting intervals)",
            live.len(),
            names.join(", ")
        );
    }
    Ok(format!("{broker}; no live member reports"))
}

/// `offsets reset`: returns what it did (or, with `dry_run`, would do).
pub async fn reset(config: &Config, to: &ResetTo, dry_run: bool) -> anyhow::Result<String> {
    // A dry run changes nothing: it previews the reset while workers run.
    let membership = match refuse_if_members(config) {
        Err(e) if dry_run => format!("{e:#}; the reset itself is refused until they stop"),
        other => other?,
    };
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let group = &config.kafka.group_id;
    let offsets = GroupOffsets::new(&client, group, TIMEOUT)?;
    let topics = &config.kafka.topics;
    let all = offsets.partitions(topics).map_err(anyhow::Error::msg)?;
    let chosen: Vec<PartitionId> = match to {
        ResetTo::Exact(exact) => {
            for id in exact.keys() {
                if !all.contains(id) {
                    bail!(
                        "{}/{} is not a partition of kafka.topics ({})",
                        id.0,
                        id.1,
                        topics.join(", ")
                    );
                }
            }
            exact.keys().cloned().collect()
        }
        _ => all,
    };
    let by_time = match to {
        ResetTo::Time(ms) => Some(
            offsets
                .offsets_for_time(&chosen, *ms)
                .map_err(anyhow::Error::msg)?,
        ),
        _ => None,
    };
    let mut new = BTreeMap::new();
    for id in &chosen {
        let (low, high) = offsets.watermarks(id).map_err(anyhow::Error::msg)?;
        let offset = match to {
            ResetTo::Earliest => low,
            ResetTo::Latest => high,
            ResetTo::Time(_) => by_time
                .as_ref()
                .and_then(|t| t.get(id).copied())
                .unwrap_or(high),
            ResetTo::Exact(exact) => {
                let offset = exact.get(id).copied().unwrap_or(high);
                if offset < low || offset > high {
                    bail!(
                        "{}/{}: offset {offset} is outside what the partition holds ({low}..={high})",
                        id.0,
                        id.1
                    );
                }
                offset
            }
        };
        new.insert(id.clone(), offset);
    }
    let old = offsets.committed(&chosen).map_err(anyhow::Error::msg)?;

    let mut out = format!("group {group}: {membership}\n");
    out.push_str(&format!(
        "{:<40} {:>9} {:>12}    {:>12}\n",
        "topic", "partition", "committed", "new"
    ));
    for (id, offset) in &new {
        let before = old.get(id).copied().flatten();
        out.push_str(&format!(
            "{:<40} {:>9} {:>12} -> {:>12}\n",
            id.0,
            id.1,
            before.map_or_else(|| "-".to_owned(), |o| o.to_string()),
            offset
        ));
    }
    if dry_run {
        out.push_str(&format!(
            "{} partitions would be reset (dry run)\n",
            new.len()
        ));
        return Ok(out);
    }
    offsets.commit(&new).map_err(anyhow::Error::msg)?;
    // Read back: the broker's word, not ours.
    let now = offsets.committed(&chosen).map_err(anyhow::Error::msg)?;
    for (id, offset) in &new {
        if now.get(id).copied().flatten() != Some(*offset) {
            bail!(
                "{}/{}: committed {offset}, but the broker now has {:?}",
                id.0,
                id.1,
                now.get(id)
            );
        }
    }
    out.push_str(&format!("{} partitions reset in Kafka\n", new.len()));
    if let SinkConfig::Postgres(pg) = &config.sink
        && pg.offset_storage == OffsetStorage::Target
    {
        let meta = pg.meta_schema.clone();
        let mut sink = PostgresSink::new(pg.clone())?;
        if let Some(store) = sink.offset_store(group)? {
            let list: Vec<(String, i32, i64)> = new
                .iter()
                .map(|((t, p), o)| (t.to_string(), *p, *o))
                .collect();
            let before = store.reset(&list).await?;
            for ((topic, partition, offset), before) in list.iter().zip(before) {
                out.push_str(&format!(
                    "target {meta}.offsets {topic}/{partition}: {} -> {offset}\n",
                    before.map_or_else(|| "-".to_owned(), |o| o.to_string())
                ));
            }
            out.push_str(&format!("{} partitions reset in the target\n", list.len()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<ResetTo> {
        ResetTo::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn reset_targets_parse_or_are_refused() {
        assert_eq!(parse(&["earliest"]).ok(), Some(ResetTo::Earliest));
        assert_eq!(parse(&["latest"]).ok(), Some(ResetTo::Latest));
        assert_eq!(
            parse(&["2026-11-30T06:00:00Z"]).ok(),
            Some(ResetTo::Time(1_796_018_400_000))
        );
        let exact = parse(&["app.public.orders:0:42", "app.public.orders:1:7"]).ok();
        assert_eq!(
            exact,
            Some(ResetTo::Exact(BTreeMap::from([
                ((Arc::from("app.public.orders"), 0), 42),
                ((Arc::from("app.public.orders"), 1), 7),
            ])))
        );
        for bad in [
            &["yesterday"][..],
            &["t:0"],
            &["t:x:1"],
            &["t:0:-1"],
            &[":0:1"],
            &["t:0:1", "t:0:2"],
            &[],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // A time without a zone is no partition: the refusal asks for one.
        // A multi-byte character where a date would end is a topic name.
        assert!(matches!(parse(&["2026-12-0é:0:1"]), Ok(ResetTo::Exact(_))));
        for zoneless in ["2026-12-06T06:35:27", "2026-12-06 06:35:27.5", "2026-12-06"] {
            let e = parse(&[zoneless]).unwrap_err().to_string();
            assert!(e.contains("needs a zone"), "{zoneless}: {e}");
        }
    }
}
