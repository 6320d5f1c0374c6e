//! The dead-letter producer: records that cannot be decoded or applied go
//! to a topic, with headers saying why and where they came from, so the
//! partition can move on without losing them.

use crate::producer::Producer;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use sinkfleet_core::{ErrorClass, Position};
use std::time::Duration;

/// Header names on dead-lettered records.
pub mod headers {
    /// `decode`, `apply` or `schema`.
    pub const ERROR_CLASS: &str = "sinkfleet.error.class";
    /// Human-readable reason.
    pub const ERROR_MESSAGE: &str = "sinkfleet.error.message";
    /// Topic the record was read from.
    pub const TOPIC: &str = "sinkfleet.original.topic";
    /// Partition it was read from.
    pub const PARTITION: &str = "sinkfleet.original.partition";
    /// Its offset there.
    pub const OFFSET: &str = "sinkfleet.original.offset";
    /// `true` on a record dead-lettered only because its key is parked.
    pub const PARKED: &str = "sinkfleet.parked";
    /// On a parked record: the offset of the record that parked its key
    /// (in the same partition). Replaying that record releases the key.
    pub const PARKED_SINCE: &str = "sinkfleet.parked.since";
}

/// A record bound for the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it came from.
    pub position: Position,
    /// Original key bytes.
    pub key: Option<Vec<u8>>,
    /// Original value bytes.
    pub value: Option<Vec<u8>>,
    /// Why it is dead-lettered.
    pub class: ErrorClass,
    /// Details.
    pub message: String,
    /// Set when the record is dead-lettered because its key is parked: the
    /// offset of the record that parked it.
    pub parked_since: Option<i64>,
}

/// Produces dead letters with an idempotent, `acks=all` producer.
pub struct DeadLetterProducer {
    producer: Producer,
    topic: String,
}

impl DeadLetterProducer {
    /// Creates the producer (no connection is made until the first send).
    pub fn new(client: &ClientConfig, topic: String) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = Producer::new(
            crate::producer_side(client)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5"),
        )?;
        Ok(DeadLetterProducer { producer, topic })
    }

    /// Sends one dead letter and waits for the broker's acknowledgement:
    /// only then may the record's offset be committed.
    pub async fn send(&self, letter: &DeadLetter) -> Result<(), rdkafka::error::KafkaError> {
        let partition = letter.position.partition.to_string();
        let offset = letter.position.offset.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: headers::ERROR_CLASS,
                value: Some(letter.class.as_str()),
            })
            .insert(Header {
                key: headers::ERROR_MESSAGE,
                value: Some(letter.message.as_str()),
            })
            .insert(Header {
                key: headers::TOPIC,
                value: Some(&*letter.position.topic),
            })
            .insert(Header {
                key: headers::PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: headers::OFFSET,
                value: Some(offset.as_str()),
            });
        let since = letter.parked_since.map(|s| s.to_string());
        if let Some(since) = &since {
            headers = headers
                .insert(Header {
                    key: headers::PARKED,
                    value: Some("true"),
                })
                .insert(Header {
                    key: headers::PARKED_SINCE,
                    value: Some(since.as_str()),
                });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(k) = &letter.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &letter.value {
            record = record.payload(v.as_slice());
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
    }
}
