//! After `dlq replay` into the topic, with `on_error: park_key`: a key is
//! released where the replay of the record that parked it arrives in its
//! partition. A record of that key which reached the partition after
//! `replay` read the dead-letter topic, but before the replayed record, was
//! parked after `replay` looked. So `replay` waits until the group has
//! committed past each released key's replayed record (every record before
//! it is then applied or in the dead-letter topic), reads the dead-letter
//! topic again, and replays those records too; the key is released by then,
//! so they apply.

use crate::config::Config;
use crate::dlq_resolved::Resolver;
use anyhow::bail;
use sinkfleet_kafka::group::{GroupOffsets, PartitionId};
use sinkfleet_kafka::inspect::{Letter, read_all, replay};
use sinkfleet_kafka::parking::ParkedKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A parked key that a replay releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Topic of its partition.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The raw key.
    pub key: Vec<u8>,
    /// Offset of the record that parked it.
    pub since: i64,
    /// Offset its replay got: the key is released there.
    pub at: i64,
}

/// Whether `l` is the record that parked a key parked now: its replay
/// releases the key.
pub fn releases_key(parked: &[ParkedKey], l: &Letter) -> bool {
    parked_by(parked, l).is_some()
}

fn parked_by<'a>(parked: &'a [ParkedKey], l: &Letter) -> Option<&'a ParkedKey> {
    let (topic, partition, offset) = l.origin.as_ref()?;
    let key = l.key.as_ref()?;
    parked.iter().find(|p| {
        p.topic == *topic && p.partition == *partition && p.since == *offset && p.key == *key
    })
}

/// The keys the replayed `letters` (which got `offsets`) release: those of
/// which the record that parked them was replayed.
pub fn releases(parked: &[ParkedKey], letters: &[&Letter], offsets: &[i64]) -> Vec<Release> {
    letters
        .iter()
        .zip(offsets)
        .filter_map(|(l, &at)| {
            parked_by(parked, l).map(|p| Release {
                topic: p.topic.clone(),
                partition: p.partition,
                key: p.key.clone(),
                since: p.since,
                at,
            })
        })
        .collect()
}

/// Whether `l` is a record of `r`'s key parked while the release was on
/// its way: after the record that parked the key, before the replayed one.
fn parked_meanwhile(r: &Release, l: &Letter) -> bool {
    l.key.as_ref() == Some(&r.key)
        && l.origin.as_ref().is_some_and(|(t, p, o)| {
            *t == r.topic && *p == r.partition && *o > r.since && *o < r.at
        })
}

/// Waits (up to `wait`) for the group to commit past every release, then
/// replays what was parked meanwhile. `seen` is, per dead-letter
/// partition, the end `replay` read up to. Returns what it did.
pub async fn follow_up(
    config: &Config,
    releases: &[Release],
    seen: &HashMap<i32, i64>,
    resolver: &Resolver,
    wait: Duration,
) -> anyhow::Result<String> {
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let group = GroupOffsets::new(&client, &config.kafka.group_id, Duration::from_secs(30))?;
    let ids: Vec<PartitionId> = releases
        .iter()
        .map(|r| (Arc::from(r.topic.as_str()), r.partition))
        .collect();
    let started = Instant::now();
    let deadline = started + wait;
    let mut said = started;
    loop {
        let committed = group.committed(&ids).map_err(anyhow::Error::msg)?;
        let passed = releases.iter().all(|r| {
            committed
                .get(&(Arc::from(r.topic.as_str()), r.partition))
                .copied()
                .flatten()
                .is_some_and(|c| c > r.at)
        });
        if passed {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "replayed, but the group did not commit past the replayed records of {} \
                 released keys within {}s (are the workers running?): records of those keys \
                 parked meanwhile may remain in the dead-letter topic; run the same replay \
                 again once the workers caught up (replays are harmless)",
                releases.len(),
                wait.as_secs()
            );
        }
        if said.elapsed() >= Duration::from_secs(5) {
            said = Instant::now();
            eprintln!(
                "waiting for group {} to commit past the replayed records of {} parked keys \
                 ({}s of {}s)",
                config.kafka.group_id,
                releases.len(),
                started.elapsed().as_secs(),
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let letters = read_all(&client, &config.dead_letter.topic, Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    let mut late: Vec<&Letter> = letters
        .iter()
        .filter(|l| seen.get(&l.partition).is_none_or(|end| l.offset >= *end))
        .filter(|l| releases.iter().any(|r| parked_meanwhile(r, l)))
        .collect();
    late.sort_by(|a, b| a.origin.cmp(&b.origin));
    let mut out = format!(
        "{} parked keys released; the group has committed past them\n",
        releases.len()
    );
    if !late.is_empty() {
        let offsets = replay(&client, &late).await.map_err(anyhow::Error::msg)?;
        resolver.replayed(&late, &offsets).await?;
        out.push_str(&format!(
            "{} records parked while the release was on its way, replayed too\n",
            late.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(offset: i64, key: &[u8]) -> Letter {
        Letter {
            partition: 0,
            offset,
            timestamp_ms: None,
            key: Some(key.to_vec()),
            value: None,
            class: "parked".into(),
            message: String::new(),
            origin: Some(("t".into(), 0, offset)),
            table: None,
        }
    }

    #[test]
    fn only_the_record_that_parked_a_key_releases_it() {
        let parked = [ParkedKey {
            topic: "t".into(),
            partition: 0,
            key: b"k".to_vec(),
            since: 2,
            reason: String::new(),
            parked_at_ms: None,
        }];
        let (poison, later, other) = (letter(2, b"k"), letter(4, b"k"), letter(2, b"x"));
        let found = releases(&parked, &[&later, &poison, &other], &[10, 11, 12]);
        assert_eq!(
            found,
            [Release {
                topic: "t".into(),
                partition: 0,
                key: b"k".to_vec(),
                since: 2,
                at: 11
            }]
        );
        let r = &found[0];
        assert!(parked_meanwhile(r, &letter(7, b"k")));
        assert!(!parked_meanwhile(r, &letter(2, b"k")), "the poison itself");
        assert!(!parked_meanwhile(r, &letter(11, b"k")), "after the release");
        assert!(!parked_meanwhile(r, &letter(7, b"x")), "another key");
    }
}
