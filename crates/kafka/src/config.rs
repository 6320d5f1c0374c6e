//! Configuration of the consumer runtime (`kafka` and `worker` sections).

use serde::Deserialize;
use sinkfleet_core::backpressure::Budget;
use std::collections::BTreeMap;

/// Kafka connection and consumer group settings (`kafka:` in YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group id: all workers of one pipeline share it.
    pub group_id: String,
    /// Topics to consume (a name starting with `^` is a regex).
    pub topics: Vec<String>,
    /// Static membership (`group.instance.id`): a restarted worker reclaims
    /// its partitions without a rebalance. Must be unique per process.
    #[serde(default)]
    pub group_instance_id: Option<String>,
    /// Extra librdkafka properties for consumer and producer, e.g.
    /// `security.protocol`. They override sinkfleet's defaults.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Dead-letter routing (`dead_letter:` in YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Topic receiving records that cannot be decoded or applied.
    pub topic: String,
    /// Create the topic (and the parked-keys topic) at start if missing.
    #[serde(default = "defaults::yes")]
    pub create_topic: bool,
    /// What a dead-lettered record means for later records of its key.
    #[serde(default)]
    pub on_error: OnError,
    /// The compacted topic that remembers parked keys across restarts and
    /// rebalances (default `<topic>.parked`); used with `park_key` only.
    #[serde(default)]
    pub parked_topic: Option<String>,
    /// The compacted topic where `sinkfleet dlq replay` records which dead
    /// letters it handed back (default `<topic>.resolved`; see
    /// [`crate::resolution`]).
    #[serde(default)]
    pub resolved_topic: Option<String>,
}

impl DeadLetterConfig {
    /// The parked-keys topic: `parked_topic`, or `<topic>.parked`.
    pub fn parked_topic(&self) -> String {
        self.parked_topic
            .clone()
            .unwrap_or_else(|| format!("{}.parked", self.topic))
    }

    /// The resolved-dead-letters topic: `resolved_topic`, or
    /// `<topic>.resolved`.
    pub fn resolved_topic(&self) -> String {
        self.resolved_topic
            .clone()
            .unwrap_or_else(|| format!("{}.resolved", self.topic))
    }
}

/// `dead_letter.on_error`: what happens to a key once one of its records
/// was dead-lettered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The record is skipped; later records of its key apply as usual (a
    /// newer version may then overtake the dead-lettered one).
    #[default]
    Skip,
    /// The key is parked in its partition: its later records go to the
    /// dead-letter topic too (marked `sinkfleet.parked=true`) until a
    /// replay of the record that parked it releases the key. Other keys
    /// keep flowing and offsets keep advancing.
    ParkKey,
}

/// Transactional apply: the runtime hands the sink whole source
/// transactions, framed by the BEGIN and END records of a transaction
/// topic (see the `coordinator::transactions` module).
#[derive(Debug, Clone)]
pub struct TransactionsConfig {
    /// The topic of BEGIN and END records (`<topic.prefix>.transaction`);
    /// it must have one partition, so END records keep commit order.
    pub topic: String,
    /// How long a transaction's END may wait for its events before the
    /// transaction is applied as far as it arrived (split, counted).
    pub max_wait_ms: u64,
}

/// Most writers one process may run: each holds a target connection.
pub const MAX_WRITERS: usize = 64;

/// Batching, budgets, retries and timeouts (`worker:` in YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Most records in one sink write.
    #[serde(default = "defaults::batch_max_records")]
    pub batch_max_records: usize,
    /// Most bytes in one sink write, counted as the budgets count them:
    /// what the records hold in memory (raw record plus decoded change).
    #[serde(default = "defaults::batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// How long a partial batch waits for more records (milliseconds).
    #[serde(default = "defaults::linger_ms")]
    pub linger_ms: u64,
    /// In-flight budget of one partition. A field left out keeps its
    /// default, so one mark can be tuned alone (also from the environment).
    #[serde(
        default = "defaults::partition_budget",
        deserialize_with = "budgets::partition"
    )]
    pub partition_budget: Budget,
    /// In-flight budget of the whole process (fields as above).
    #[serde(
        default = "defaults::global_budget",
        deserialize_with = "budgets::global"
    )]
    pub global_budget: Budget,
    /// First retry delay after a retryable sink error (milliseconds).
    #[serde(default = "defaults::retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest retry delay (milliseconds).
    #[serde(default = "defaults::retry_max_ms")]
    pub retry_max_ms: u64,
    /// How long a revoke waits for in-flight writes (milliseconds).
    #[serde(default = "defaults::drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// How long shutdown waits for in-flight writes (milliseconds).
    #[serde(default = "defaults::shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// How often durable offsets are committed (milliseconds).
    #[serde(default = "defaults::commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Writes in flight at once, each with its own sink instance (and
    /// target connection). A partition is bound to one of them from its
    /// assignment to its revoke, so its records are applied in order: one
    /// partition never uses more than one writer.
    #[serde(default = "defaults::writers")]
    pub writers: usize,
    /// Optional rate limit protecting the target (shared by all writers).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// Rate limit per sink (governor token buckets); unset fields are unlimited.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Rows per second written to the target.
    #[serde(default)]
    pub rows_per_second: Option<u32>,
    /// Write calls (batches) per second.
    #[serde(default)]
    pub writes_per_second: Option<u32>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            batch_max_records: defaults::batch_max_records(),
            batch_max_bytes: defaults::batch_max_bytes(),
            linger_ms: defaults::linger_ms(),
            partition_budget: defaults::partition_budget(),
            global_budget: defaults::global_budget(),
            retry_initial_ms: defaults::retry_initial_ms(),
            retry_max_ms: defaults::retry_max_ms(),
            drain_timeout_ms: defaults::drain_timeout_ms(),
            shutdown_timeout_ms: defaults::shutdown_timeout_ms(),
            commit_interval_ms: defaults::commit_interval_ms(),
            writers: defaults::writers(),
            rate_limit: None,
        }
    }
}

impl WorkerConfig {
    /// Checks relations between fields: returns `(field path, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.batch_max_records == 0 {
            problems.push((
                "worker.batch_max_records".into(),
                "must be at least 1".into(),
            ));
        }
        if !(1..=MAX_WRITERS).contains(&self.writers) {
            problems.push((
                "worker.writers".into(),
                format!("must be in 1..={MAX_WRITERS}"),
            ));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            problems.push((
                "worker.retry_max_ms".into(),
                "need 0 < retry_initial_ms <= retry_max_ms".into(),
            ));
        }
        for (path, b) in [
            ("worker.partition_budget", &self.partition_budget),
            ("worker.global_budget", &self.global_budget),
        ] {
            if b.high_records == 0
                || b.high_bytes == 0
                || b.resume_percent == 0
                || b.resume_percent >= 100
            {
                problems.push((
                    path.into(),
                    "high marks must be > 0 and resume_percent in 1..99".into(),
                ));
            }
        }
        if let Some(r) = self.rate_limit
            && (r.rows_per_second == Some(0) || r.writes_per_second == Some(0))
        {
            problems.push((
                "worker.rate_limit".into(),
                "a rate of 0 would stop the sink; leave it unset".into(),
            ));
        }
        problems
    }
}

/// Budgets given in part: the fields left out take the budget's defaults.
mod budgets {
    use super::defaults;
    use serde::{Deserialize, Deserializer};
    use sinkfleet_core::backpressure::Budget;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Partial {
        high_records: Option<u64>,
        high_bytes: Option<u64>,
        resume_percent: Option<u8>,
    }

    fn over<'de, D: Deserializer<'de>>(d: D, base: Budget) -> Result<Budget, D::Error> {
        let p = Partial::deserialize(d)?;
        Ok(Budget {
            high_records: p.high_records.unwrap_or(base.high_records),
            high_bytes: p.high_bytes.unwrap_or(base.high_bytes),
            resume_percent: p.resume_percent.unwrap_or(base.resume_percent),
        })
    }

    pub fn partition<'de, D: Deserializer<'de>>(d: D) -> Result<Budget, D::Error> {
        over(d, defaults::partition_budget())
    }

    pub fn global<'de, D: Deserializer<'de>>(d: D) -> Result<Budget, D::Error> {
        over(d, defaults::global_budget())
    }
}

mod defaults {
    use sinkfleet_core::backpressure::Budget;

    pub fn yes() -> bool {
        true
    }
    pub fn batch_max_records() -> usize {
        5_000
    }
    pub fn batch_max_bytes() -> usize {
        8 << 20
    }
    pub fn linger_ms() -> u64 {
        100
    }
    pub fn partition_budget() -> Budget {
        Budget {
            high_records: 20_000,
            high_bytes: 32 << 20,
            resume_percent: 50,
        }
    }
    pub fn global_budget() -> Budget {
        Budget {
            high_records: 100_000,
            high_bytes: 128 << 20,
            resume_percent: 50,
        }
    }
    pub fn retry_initial_ms() -> u64 {
        200
    }
    pub fn retry_max_ms() -> u64 {
        30_000
    }
    pub fn drain_timeout_ms() -> u64 {
        10_000
    }
    pub fn shutdown_timeout_ms() -> u64 {
        15_000
    }
    pub fn commit_interval_ms() -> u64 {
        1_000
    }
    pub fn writers() -> usize {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_given_in_part_keeps_its_other_defaults() {
        let cfg: WorkerConfig = serde_json::from_str(
            r#"{"global_budget": {"high_records": 25000},
                "partition_budget": {"resume_percent": 80}}"#,
        )
        .expect("parses");
        let global = defaults::global_budget();
        assert_eq!(
            cfg.global_budget,
            Budget {
                high_records: 25_000,
                ..global
            }
        );
        assert_eq!(
            cfg.partition_budget,
            Budget {
                resume_percent: 80,
                ..defaults::partition_budget()
            }
        );
        assert!(serde_json::from_str::<WorkerConfig>(r#"{"global_budget": {"high": 1}}"#).is_err());
    }
}
