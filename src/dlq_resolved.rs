//! The dead-letter topic as an operator reads it: one dead letter per
//! original record (however many copies offset resets left), each open or
//! resolved (see [`sinkfleet_kafka::resolution`]).

use crate::config::Config;
use anyhow::Context;
use sinkfleet_kafka::inspect::{Letter, ReadError, read_all};
use sinkfleet_kafka::resolution::{
    Origin, Resolution, ResolutionWriter, Resolved, read_resolutions,
};
use std::collections::HashMap;
use std::time::Duration;

/// The dead-letter topic, read to its end, and what has been resolved.
pub struct DeadLetters {
    /// One per original record: its newest copy, in origin order (records
    /// without origin headers last, each on its own).
    distinct: Vec<Letter>,
    /// Copies of each origin in the topic.
    copies: HashMap<Origin, usize>,
    /// Records in the topic, copies included.
    records: usize,
    resolved: HashMap<Origin, Resolution>,
}

impl DeadLetters {
    /// Reads the dead-letter topic and the resolutions of `config`.
    pub fn read(config: &Config, timeout: Duration) -> anyhow::Result<Self> {
        let client = sinkfleet_kafka::client_config(&config.kafka);
        let topic = &config.dead_letter.topic;
        // Workers create the topic at start: before that, it holds nothing.
        let copies = match read_all(&client, topic, timeout) {
            Ok(copies) => copies,
            Err(ReadError::NoSuchTopic(_)) => Vec::new(),
            Err(e) => {
                return Err(anyhow::Error::msg(e)).with_context(|| format!("reading {topic}"));
            }
        };
        let resolved_topic = config.dead_letter.resolved_topic();
        let resolved = read_resolutions(&client, &resolved_topic, timeout)
            .map_err(|e| anyhow::anyhow!("reading {resolved_topic}: {e}"))?;
        Ok(Self::new(copies, resolved))
    }

    /// From the topic's records (in topic order) and the resolutions.
    pub fn new(records: Vec<Letter>, resolved: HashMap<Origin, Resolution>) -> Self {
        let total = records.len();
        let mut newest: HashMap<Origin, Letter> = HashMap::new();
        let mut copies: HashMap<Origin, usize> = HashMap::new();
        let mut without_origin = Vec::new();
        for l in records {
            match l.origin.clone() {
                Some(origin) => {
                    *copies.entry(origin.clone()).or_default() += 1;
                    let keep = newest
                        .get(&origin)
                        .is_none_or(|n| (n.timestamp_ms, n.offset) <= (l.timestamp_ms, l.offset));
                    if keep {
                        newest.insert(origin, l);
                    }
                }
                None => without_origin.push(l),
            }
        }
        let mut distinct: Vec<Letter> = newest.into_values().collect();
        distinct.sort_by(|a, b| a.origin.cmp(&b.origin));
        distinct.extend(without_origin);
        DeadLetters {
            distinct,
            copies,
            records: total,
            resolved,
        }
    }

    /// One letter per original record.
    pub fn distinct(&self) -> &[Letter] {
        &self.distinct
    }

    /// Records in the topic, copies included.
    pub fn records(&self) -> usize {
        self.records
    }

    /// How `l` was resolved, if it was.
    pub fn resolution(&self, l: &Letter) -> Option<&Resolution> {
        self.resolved.get(l.origin.as_ref()?)
    }

    /// Copies of `l`'s original record in the topic.
    pub fn copies(&self, l: &Letter) -> usize {
        l.origin
            .as_ref()
            .and_then(|o| self.copies.get(o))
            .copied()
            .unwrap_or(1)
    }

    /// When the newest resolution of a dead letter from `topic` (any topic
    /// with `None`) was recorded.
    pub fn last_resolved_ms(&self, topic: Option<&str>) -> Option<i64> {
        self.resolved
            .values()
            .filter(|r| topic.is_none_or(|t| r.topic == t))
            .map(|r| r.at_ms)
            .max()
    }

    /// Open dead letters of `topic` dead-lettered after the last
    /// resolution of one of its dead letters (every open one if none was
    /// resolved).
    pub fn new_since_last_replay(&self, topic: &str) -> usize {
        let since = self.last_resolved_ms(Some(topic));
        self.distinct
            .iter()
            .filter(|l| l.origin.as_ref().is_some_and(|o| o.0 == topic))
            .filter(|l| {
                since.is_none_or(|s| l.timestamp_ms.is_none_or(|ts| ts > s))
                    && self.resolution(l).is_none()
            })
            .count()
    }
}

/// A resolution, in words: `replayed to <topic>/<partition>@<offset> at
/// <time>`, `applied through the sink at <time>` or `discarded at <time>`.
pub fn describe(r: &Resolution) -> String {
    let at = crate::timestamps::utc(r.at_ms);
    match r.resolved {
        Resolved::Replayed { replayed_offset } => {
            format!(
                "replayed to {}/{}@{replayed_offset} at {at}",
                r.topic, r.partition
            )
        }
        Resolved::ThroughSink => format!("applied through the sink at {at}"),
        Resolved::Discarded {
            marker_offset: None,
        } => format!("discarded at {at}"),
        Resolved::Discarded {
            marker_offset: Some(o),
        } => format!(
            "discarded at {at}; its key released at {}/{}@{o}",
            r.topic, r.partition
        ),
    }
}

/// Records replays and sink applications as resolutions.
pub struct Resolver {
    writer: ResolutionWriter,
}

impl Resolver {
    /// Creates the writer, and the resolved topic when the config lets
    /// sinkfleet create topics; refuses (before anything is replayed) when
    /// the topic is missing and may not be created.
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        let client = sinkfleet_kafka::client_config(&config.kafka);
        let topic = config.dead_letter.resolved_topic();
        if !config.dead_letter.create_topic {
            let exists =
                sinkfleet_kafka::admin::topic_exists(&client, &topic, Duration::from_secs(10))
                    .map_err(anyhow::Error::msg)?;
            if !exists {
                anyhow::bail!(
                    "topic {topic} (dead_letter.resolved_topic), where replays are recorded, \
                     does not exist and dead_letter.create_topic is false: create it \
                     (1 partition, cleanup.policy=compact). Nothing was replayed"
                );
            }
        } else {
            // One partition, compacted: only an origin's latest state counts.
            sinkfleet_kafka::admin::ensure_topic_with(
                &client,
                &topic,
                1,
                &[("cleanup.policy", "compact")],
            )
            .await
            .map_err(anyhow::Error::msg)?;
        }
        Ok(Resolver {
            writer: ResolutionWriter::new(&client, topic)?,
        })
    }

    /// `letters` were replayed into their partitions at `offsets`.
    pub async fn replayed(&self, letters: &[&Letter], offsets: &[i64]) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let resolutions: Vec<Resolution> = letters
            .iter()
            .zip(offsets)
            .filter_map(|(l, &replayed_offset)| {
                resolution(l, Resolved::Replayed { replayed_offset }, now)
            })
            .collect();
        self.writer
            .record(&resolutions)
            .await
            .map_err(anyhow::Error::msg)
    }

    /// `letters` were discarded; those that parked their key got a discard
    /// marker at the offset `markers` gives.
    pub async fn discarded(
        &self,
        letters: &[&Letter],
        markers: &HashMap<Origin, i64>,
    ) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let resolutions: Vec<Resolution> = letters
            .iter()
            .filter_map(|l| {
                let marker_offset = l.origin.as_ref().and_then(|o| markers.get(o)).copied();
                resolution(l, Resolved::Discarded { marker_offset }, now)
            })
            .collect();
        self.writer
            .record(&resolutions)
            .await
            .map_err(anyhow::Error::msg)
    }

    /// `letters` were applied through the sink.
    pub async fn applied(&self, letters: &[&Letter]) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let resolutions: Vec<Resolution> = letters
            .iter()
            .filter_map(|l| resolution(l, Resolved::ThroughSink, now))
            .collect();
        self.writer
            .record(&resolutions)
            .await
            .map_err(anyhow::Error::msg)
    }
}

fn resolution(l: &Letter, resolved: Resolved, at_ms: i64) -> Option<Resolution> {
    let (topic, partition, offset) = l.origin.clone()?;
    Some(Resolution {
        topic,
        partition,
        offset,
        resolved,
        at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(dlq_offset: i64, origin_offset: i64, ts: i64) -> Letter {
        Letter {
            partition: 0,
            offset: dlq_offset,
            timestamp_ms: Some(ts),
            key: Some(b"k".to_vec()),
            value: None,
            class: "decode".into(),
            message: format!("copy {dlq_offset}"),
            origin: Some(("t".into(), 0, origin_offset)),
            table: None,
        }
    }

    #[test]
    fn copies_of_one_record_are_one_dead_letter_and_resolution_is_by_origin() {
        let resolved = HashMap::from([(
            ("t".to_owned(), 0, 5),
            Resolution {
                topic: "t".into(),
                partition: 0,
                offset: 5,
                resolved: Resolved::Replayed { replayed_offset: 9 },
                at_ms: 150,
            },
        )]);
        let dead = DeadLetters::new(
            vec![
                copy(0, 5, 100),
                copy(1, 7, 120),
                copy(2, 5, 200),
                copy(3, 5, 300),
            ],
            resolved,
        );
        assert_eq!(dead.records(), 4);
        let distinct = dead.distinct();
        assert_eq!(distinct.len(), 2);
        assert_eq!(
            distinct[0].message, "copy 3",
            "the newest copy stands for it"
        );
        assert_eq!(dead.copies(&distinct[0]), 3);
        assert!(dead.resolution(&distinct[0]).is_some());
        assert!(dead.resolution(&distinct[1]).is_none());
        // Offset 7 arrived before the replay at 150: open, but not new.
        assert_eq!(dead.new_since_last_replay("t"), 0);
        let later = DeadLetters::new(vec![copy(0, 7, 120), copy(1, 8, 160)], dead.resolved);
        assert_eq!(later.new_since_last_replay("t"), 1);
        assert_eq!(later.new_since_last_replay("other"), 0);
    }
}
