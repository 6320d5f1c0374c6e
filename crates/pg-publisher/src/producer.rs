//! The Kafka side of the publisher: an idempotent, `acks=all` producer
//! that creates topics on first use (brokers may not auto-create them).

use crate::avro::PartFormat;
use crate::metrics::PUBLISHER_EVENTS_TOTAL;
use rdkafka::ClientConfig;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::collections::HashSet;
use std::time::Duration;

/// Producer plus the topics known to exist.
pub struct EventProducer {
    producer: FutureProducer,
    client: ClientConfig,
    partitions: i32,
    create_topics: bool,
    topics: HashSet<String>,
    key_format: PartFormat,
    value_format: PartFormat,
    /// `sinkfleet_publisher_events_total`, resolved once: it counts every
    /// event.
    events: metrics::Counter,
}

impl EventProducer {
    /// Creates the producer. Keys are partitioned with murmur2, as Java
    /// Kafka clients (and so Debezium) do: one row always lands on the
    /// partition Debezium would have chosen.
    pub fn new(
        client: ClientConfig,
        partitions: i32,
        create_topics: bool,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = client
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("partitioner", "murmur2_random")
            // Bound memory: librdkafka would buffer up to 1 GiB by default.
            .set("queue.buffering.max.kbytes", "32768")
            .create()?;
        Ok(EventProducer {
            producer,
            client,
            partitions,
            create_topics,
            topics: HashSet::new(),
            key_format: PartFormat::Json,
            value_format: PartFormat::Json,
            events: metrics::counter!(PUBLISHER_EVENTS_TOTAL),
        })
    }

    /// Converts keys and values as `key` and `value` say before producing
    /// them (default: as written).
    pub fn with_formats(mut self, key: PartFormat, value: PartFormat) -> Self {
        self.key_format = key;
        self.value_format = value;
        self
    }

    /// Creates `topic` unless it was seen before.
    pub async fn ensure_topic(&mut self, topic: &str) -> Result<(), String> {
        self.ensure_topic_with(topic, self.partitions).await
    }

    /// Creates `topic` with `partitions` unless it was seen before.
    pub async fn ensure_topic_with(&mut self, topic: &str, partitions: i32) -> Result<(), String> {
        if !self.create_topics || self.topics.contains(topic) {
            return Ok(());
        }
        sinkfleet_kafka::admin::ensure_topic(&self.client, topic, partitions).await?;
        self.topics.insert(topic.to_owned());
        Ok(())
    }

    /// Enqueues a record; the future resolves when the broker acknowledged it.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<DeliveryFuture, String> {
        self.send_with(topic, key, value, None).await
    }

    /// [`EventProducer::send`] with record headers.
    pub async fn send_with(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<DeliveryFuture, String> {
        // Converted before anything is enqueued: a record whose schema got
        // no id is not produced, and the error stops the publisher before
        // its LSN is confirmed.
        let key = match key {
            Some(k) => Some(
                self.key_format
                    .apply(topic, k)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let value = match value {
            Some(v) => Some(
                self.value_format
                    .apply(topic, v)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let (key, value) = (key.as_deref(), value.as_deref());
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(v) = value {
                record = record.payload(v);
            }
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.events.increment(1);
                    return Ok(delivery);
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    // The local queue is full: wait for deliveries to drain it.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
    }
}
