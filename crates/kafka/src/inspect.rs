//! Reading the dead-letter topic back, for `sinkfleet dlq`: what an
//! operator looks at before deciding what to replay.

use crate::dead_letter::headers;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
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
) -> Result<Vec<Letter>, String> {
    let consumer: BaseConsumer = client
        .clone()
        .set(
            "group.id",
            format!("sinkfleet-dlq-reader-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("{topic}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("{topic}: no such topic"));
    }
    // Where each partition ends now: what was there when asked.
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| format!("{topic}/{p}: {e}"))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(|e| e.to_string())?;
        }
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut letters = Vec::new();
    let deadline = Instant::now() + timeout;
    while ends
        .iter()
        .any(|(p, end)| next.get(p).is_none_or(|n| n < end))
    {
        if Instant::now() >= deadline {
            return Err(format!(
                "{topic}: read up to {next:?} of {ends:?} within {timeout:?}"
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                if ends
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() < *end)
                {
                    letters.push(letter(&m));
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {}
        }
    }
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}

fn letter(m: &rdkafka::message::BorrowedMessage<'_>) -> Letter {
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
