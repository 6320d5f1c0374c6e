//! Topic administration needed at start (brokers without auto-creation).

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;

/// Creates `topic` with `partitions` partitions unless it exists.
pub async fn ensure_topic(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> Result<(), String> {
    ensure_topic_with(client, topic, partitions, &[]).await
}

/// Creates `topic` with `partitions` partitions and topic `configs` (such
/// as `cleanup.policy`) unless it exists; an existing topic is left as is.
pub async fn ensure_topic_with(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = crate::producer_side(client)
        .create()
        .map_err(|e| e.to_string())?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    for (name, value) in configs {
        new = new.set(name, value);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| e.to_string())?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("creating topic {name}: {code}")),
        }
    }
    Ok(())
}

/// Whether `topic` exists on the broker.
pub fn topic_exists(client: &ClientConfig, topic: &str, timeout: Duration) -> Result<bool, String> {
    let consumer: rdkafka::consumer::BaseConsumer = client.create().map_err(|e| e.to_string())?;
    crate::reading::partitions_of(&consumer, topic, timeout)
        .map(|partitions| !partitions.is_empty())
        .map_err(|e| format!("{topic}: {e}"))
}
