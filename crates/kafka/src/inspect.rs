//! Reading the dead-letter topic back, for `sinkfleet dlq`: what an
//! operator looks at before deciding what to replay, and the replay.

use crate::dead_letter::headers;
use crate::producer::Producer;
use crate::reading::{partitions_of, reader};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One dead-lettered record, with what its headers say.
#[derive(Debug, Clone)]
pub struct Letter {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset there.
    pub offset: i64,
    /// When it was dead-lettered (the record's timestamp, ms since the
    /// epoch).
    pub timestamp_ms: Option<i64>,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original value.
    pub value: Option<Vec<u8>>,
    /// `decode`, `apply` or `schema` (`sinkfleet.error.class`).
    pub class: String,
    /// Why (`sinkfleet.error.message`).
    pub message: String,
    /// Where it was read: topic, partition, offset (`sinkfleet.original.*`).
    pub origin: Option<(String, i32, i64)>,
    /// The source table (`schema.table`) its value names, when it is a
    /// Debezium event that can be read that far.
    pub table: Option<String>,
}

/// Reads `topic` from its start to the end it had when called. Records
/// without sinkfleet's headers are still listed (class `unknown`).
pub fn read_all(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Letter>, ReadError> {
    let mut letters = Vec::new();
    read_to_end(client, topic, timeout, |m| letters.push(letter(m)))?;
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}

/// Why [`read_to_end`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The topic does not exist (or has no partitions).
    #[error("{0}: no such topic")]
    NoSuchTopic(String),
    /// The broker could not be asked, or did not deliver in time.
    #[error("{0}")]
    Kafka(String),
}

/// The latest value per key of a compacted topic, read to its end from
/// `since_ms` (see [`read_since`]) or its start (`None` for a key whose
/// latest record is a tombstone). A missing topic holds
/// nothing. Compaction keeps only the latest value per key, but the topic
/// may not be compacted yet, so this keeps only that too.
pub fn read_latest(
    client: &ClientConfig,
    topic: &str,
    since_ms: Option<i64>,
    timeout: Duration,
) -> Result<HashMap<Vec<u8>, Option<Vec<u8>>>, ReadError> {
    let mut latest = HashMap::new();
    match read_since(client, topic, since_ms, timeout, |m| {
        if let Some(key) = m.key() {
            latest.insert(key.to_vec(), m.payload().map(<[u8]>::to_vec));
        }
    }) {
        Ok(()) | Err(ReadError::NoSuchTopic(_)) => Ok(latest),
        Err(e) => Err(e),
    }
}

/// Hands every record of `topic`, from each partition's start to the end it
/// had when called, to `on_record` (in order within a partition). Uses no
/// consumer group offsets: nothing is committed.
pub fn read_to_end(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
    on_record: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    read_since(client, topic, None, timeout, on_record)
}

/// As [`read_to_end`], but from the first record of each partition whose
/// timestamp is at or after `since_ms` (ms since the epoch), when given.
pub fn read_since(
    client: &ClientConfig,
    topic: &str,
    since_ms: Option<i64>,
    timeout: Duration,
    mut on_record: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    let kafka = |e: rdkafka::error::KafkaError| ReadError::Kafka(format!("{topic}: {e}"));
    let consumer: BaseConsumer = reader(client).create().map_err(kafka)?;
    let partitions = partitions_of(&consumer, topic, timeout).map_err(kafka)?;
    if partitions.is_empty() {
        return Err(ReadError::NoSuchTopic(topic.to_owned()));
    }
    // Where each partition ends now: what was there when asked.
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(kafka)?;
        let start = match since_ms {
            None => low,
            Some(ms) => {
                let mut at = TopicPartitionList::new();
                at.add_partition_offset(topic, p, Offset::Offset(ms))
                    .map_err(kafka)?;
                let found = consumer.offsets_for_times(at, timeout).map_err(kafka)?;
                match found.elements().first().map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.max(low),
                    // Nothing that new.
                    _ => high,
                }
            }
        };
        if high > start {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(kafka)?;
        }
    }
    consumer.assign(&tpl).map_err(kafka)?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + timeout;
    while ends
        .iter()
        .any(|(p, end)| next.get(p).is_none_or(|n| n < end))
    {
        if Instant::now() >= deadline {
            return Err(ReadError::Kafka(format!(
                "{topic}: read up to {next:?} of {ends:?} within {timeout:?}"
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                if ends
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() < *end)
                {
                    on_record(&m);
                }
            }
            Some(Err(e)) => return Err(kafka(e)),
            None => {}
        }
    }
    Ok(())
}

fn letter(m: &BorrowedMessage<'_>) -> Letter {
    let mut found: HashMap<&str, String> = HashMap::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            found.insert(
                header.key,
                String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
            );
        }
    }
    let origin = match (
        found.get(headers::TOPIC),
        found.get(headers::PARTITION).and_then(|p| p.parse().ok()),
        found.get(headers::OFFSET).and_then(|o| o.parse().ok()),
    ) {
        (Some(t), Some(p), Some(o)) => Some((t.clone(), p, o)),
        _ => None,
    };
    Letter {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        class: found
            .remove(headers::ERROR_CLASS)
            .unwrap_or_else(|| "unknown".into()),
        message: found.remove(headers::ERROR_MESSAGE).unwrap_or_default(),
        origin,
        table: m.payload().and_then(source_table),
    }
}

/// Header on a replayed record: the dead-letter partition and offset it
/// was replayed from.
pub const REPLAYED_FROM: &str = "sinkfleet.replayed.from";

/// Header on a replayed record: its original offset (in the same topic and
/// partition). A replay of the record that parked a key releases the key.
pub const REPLAYED_OFFSET: &str = "sinkfleet.replayed.offset";

/// Header on a discard marker (`sinkfleet dlq discard`): a replayed record
/// with the original key and no value, which the worker never applies. If
/// it is the record that parked its key, its arrival releases the key.
pub const DISCARD: &str = "sinkfleet.discard";

/// Produces each letter's original key and value back into the partition
/// it was read from (so its key keeps its partition and its order there),
/// with [`REPLAYED_FROM`]; waits for every acknowledgement. Letters without
/// origin headers are refused before anything is sent. Returns the offset
/// each letter got, in order.
///
/// Safe to repeat: the sink applies a record only if its version is newer
/// than what the target holds, so a replayed record that a newer change of
/// its key has overtaken changes nothing.
pub async fn replay(client: &ClientConfig, letters: &[&Letter]) -> Result<Vec<i64>, String> {
    produce_back(client, letters, false).await
}

/// As [`replay`], but each letter goes back as a discard marker
/// ([`DISCARD`]): its key, no value.
pub async fn discard(client: &ClientConfig, letters: &[&Letter]) -> Result<Vec<i64>, String> {
    produce_back(client, letters, true).await
}

async fn produce_back(
    client: &ClientConfig,
    letters: &[&Letter],
    discard: bool,
) -> Result<Vec<i64>, String> {
    if let Some(l) = letters.iter().find(|l| l.origin.is_none()) {
        return Err(format!(
            "dead letter {}@{} has no sinkfleet.original.* headers: its topic is unknown",
            l.partition, l.offset
        ));
    }
    let producer = Producer::new(
        crate::producer_side(client)
            .set("enable.idempotence", "true")
            .set("acks", "all"),
    )
    .map_err(|e| e.to_string())?;
    let mut offsets = Vec::with_capacity(letters.len());
    for l in letters {
        let Some((topic, partition, original)) = &l.origin else {
            continue;
        };
        let from = format!("{}@{}", l.partition, l.offset);
        let original = original.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: REPLAYED_FROM,
                value: Some(from.as_str()),
            })
            .insert(Header {
                key: REPLAYED_OFFSET,
                value: Some(original.as_str()),
            });
        if discard {
            headers = headers.insert(Header {
                key: DISCARD,
                value: Some("true"),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(*partition)
            .headers(headers);
        if let Some(k) = &l.key {
            record = record.key(k.as_slice());
        }
        if let (false, Some(v)) = (discard, &l.value) {
            record = record.payload(v.as_slice());
        }
        let delivery = producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|e| format!("replaying {from} into {topic}/{partition}: {e}"))?;
        offsets.push(delivery.offset);
    }
    Ok(offsets)
}

/// `schema.table` from a Debezium value's `source` (bare or enveloped).
fn source_table(value: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(value).ok()?;
    let event = json.get("payload").unwrap_or(&json);
    let source = event.get("source")?;
    Some(format!(
        "{}.{}",
        source.get("schema")?.as_str()?,
        source.get("table")?.as_str()?
    ))
}

#[cfg(test)]
mod tests {
    use super::source_table;

    #[test]
    fn the_table_is_read_from_bare_or_enveloped_events_only() {
        let bare = br#"{"op":"c","source":{"schema":"public","table":"orders"}}"#;
        assert_eq!(source_table(bare).as_deref(), Some("public.orders"));
        let enveloped = br#"{"schema":{},"payload":{"source":{"schema":"s","table":"t"}}}"#;
        assert_eq!(source_table(enveloped).as_deref(), Some("s.t"));
        assert_eq!(source_table(b"{not json"), None);
        assert_eq!(source_table(br#"{"source":{"schema":1}}"#), None);
    }
}
