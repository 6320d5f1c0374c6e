//! Kafka helpers for tests and the demo: create topics, produce, read back.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

/// A record to produce.
#[derive(Debug, Clone)]
pub struct Record {
    /// Key bytes (routes the record to a partition).
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` = Kafka tombstone).
    pub value: Option<Vec<u8>>,
}

/// A record read back, with its headers.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers as text.
    pub headers: HashMap<String, String>,
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// Creates a topic (no-op if it exists).
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        client(brokers).create().map_err(|e| e.to_string())?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(-1),
            )],
            &opts,
        )
        .await
        .map_err(|e| e.to_string())?;
    for r in res {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("{t}: {e}")),
        }
    }
    Ok(())
}

/// Produces records in order (idempotent producer, acks=all) and waits for
/// every acknowledgement.
pub async fn produce(brokers: &str, topic: &str, records: &[Record]) -> Result<(), String> {
    produce_with_timestamp(brokers, topic, records, None).await
}

/// [`produce`] with every record's Kafka timestamp set to `timestamp_ms`
/// (ms since the epoch): records that look as old as a backlog does, for
/// lag measured in seconds.
pub async fn produce_dated(
    brokers: &str,
    topic: &str,
    records: &[Record],
    timestamp_ms: i64,
) -> Result<(), String> {
    produce_with_timestamp(brokers, topic, records, Some(timestamp_ms)).await
}

async fn produce_with_timestamp(
    brokers: &str,
    topic: &str,
    records: &[Record],
    timestamp_ms: Option<i64>,
) -> Result<(), String> {
    let producer: FutureProducer = client(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .map_err(|e| e.to_string())?;
    let mut inflight = Vec::with_capacity(records.len());
    for r in records {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(ts) = timestamp_ms {
            rec = rec.timestamp(ts);
        }
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    inflight.push(f);
                    break;
                }
                Err((e, back)) => {
                    // Local queue full: let deliveries drain.
                    if !matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        return Err(e.to_string());
                    }
                    rec = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for f in inflight {
        match f.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e.to_string()),
            Err(_) => return Err("delivery canceled".into()),
        }
    }
    Ok(())
}

/// Reads every record of `topic` (all partitions) up to the end offsets it
/// has when called, waiting until each partition has been read that far:
/// on state, not on a read window, which comes back short on a loaded
/// machine. Fails after `timeout` with what is missing.
pub fn read_to_end(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<ReadRecord>, String> {
    let mut out = Vec::new();
    sinkfleet_kafka::inspect::read_to_end(&client(brokers), topic, timeout, |m| {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ReadRecord {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        });
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Committed offsets of `group` for `topic` (partition → next offset; -1
/// when nothing is committed).
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<HashMap<i32, i64>, String> {
    let consumer: BaseConsumer = client(brokers)
        .set("group.id", group)
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| {
            let o = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), o)
        })
        .collect())
}

/// End offsets (next offset to be written) per partition.
pub fn end_offsets(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<HashMap<i32, i64>, String> {
    let consumer: BaseConsumer = client(brokers).create().map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        out.insert(p, high);
    }
    Ok(out)
}

/// The names of every topic the broker has.
pub fn topic_names(brokers: &str) -> Result<Vec<String>, String> {
    let consumer: BaseConsumer = client(brokers).create().map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect())
}
