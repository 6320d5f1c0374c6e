//! Clients that read topics from outside any consumer group (the operator
//! commands), and a topic's partitions from the broker's metadata.

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::time::Duration;

/// A consumer's config that reads assigned partitions and never commits
/// (its group is its own, and unused).
pub(crate) fn reader(client: &ClientConfig) -> ClientConfig {
    let mut reader = client.clone();
    reader
        .set(
            "group.id",
            format!("sinkfleet-reader-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    reader
}

/// The partitions of `topic` from the broker's metadata; none when it does
/// not exist.
pub(crate) fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, rdkafka::error::KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}
