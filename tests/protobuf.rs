//! Protobuf topics through a Schema Registry, end to end.
//!
//! Records are written by Confluent's own Protobuf serializer (Python
//! `confluent-kafka`, `scripts/testdata/connect_protobuf.py`) from
//! Debezium's JsonConverter events, with the schema Kafka Connect's
//! `ProtobufConverter` (`ProtobufData`) makes of the Connect schema.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::avro::registry_url;
use common::protobuf::{Nullables, to_protobuf};
use common::{Pipeline, free_port};
use sinkfleet_testkit::kafka::{self, Record};
use sinkfleet_testkit::workload::{self, Options};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

/// The YAML that makes `topic` a Protobuf topic. `updated_at` is Debezium's
/// `MicroTimestamp`, a name Protobuf schemas drop: declared back.
fn decode_section(topic: &str, registry: &str) -> String {
    format!(
        "decode:
  formats:
    - {{ topics: {topic}, key: protobuf, value: protobuf, nulls: presence }}
  registry: {{ url: \"{registry}\", timeout_ms: 1000 }}
  columns:
    public.customers: {{ updated_at: io.debezium.time.MicroTimestamp }}
"
    )
}

/// A workload of inserts, updates and deletes in Protobuf converges to the
/// rows its JSON original gives, through the worker and Postgres; a replay
/// changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn protobuf_topic_converges_to_the_json_rows() {
    let p = Pipeline::new("pb-converge", 3).await;
    let w = workload::generate(&Options {
        keys: 50,
        changes: 600,
        seed: 31,
        ..Options::default()
    });
    let records = to_protobuf(&p.topic, &w.records, Nullables::Optional);
    p.produce(&records).await;
    let port = free_port();
    let config = p.config(&decode_section(&p.topic, &registry_url()), "", port);
    let mut worker = p.spawn("w", &config, port);
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 0.0);
    p.produce(&records).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// Records a Protobuf topic cannot decode are dead-lettered, each with the
/// reason that names what is wrong, and change nothing in the target.
#[tokio::test(flavor = "multi_thread")]
async fn bad_protobuf_records_are_dead_lettered_with_their_reason() {
    let p = Pipeline::new("pb-bad", 1).await;
    let w = workload::generate(&Options {
        keys: 1,
        changes: 1,
        seed: 5,
        ..Options::default()
    });
    let good = to_protobuf(&p.topic, &w.records[..1], Nullables::Default).remove(0);
    let value = good.value.clone().unwrap();
    let key = good.key.clone();
    let with_value = |value: Vec<u8>| Record {
        key: key.clone(),
        value: Some(value),
    };
    let mut unknown_id = value.clone();
    unknown_id[1..5].copy_from_slice(&999_999u32.to_be_bytes());
    // The key's body (indexes and message) framed with the value's id.
    let mut mismatch = value[..5].to_vec();
    mismatch.extend_from_slice(&key.as_ref().unwrap()[5..]);
    // Message indexes naming a message the schema does not have.
    let mut no_message = value[..5].to_vec();
    no_message.extend_from_slice(&[2, 40]);
    no_message.extend_from_slice(&value[6..]);
    p.produce(&[
        with_value(w.records[0].value.clone().unwrap()), // JSON on a Protobuf topic
        with_value(unknown_id),
        with_value(value[..value.len() / 2].to_vec()),
        with_value(mismatch),
        with_value(value[..5].to_vec()),
        with_value(no_message),
        good,
    ])
    .await;
    let port = free_port();
    let config = p.config(&decode_section(&p.topic, &registry_url()), "", port);
    let mut worker = p.spawn("w", &config, port);
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    let dead = kafka::read_to_end(&p.brokers, &p.dlq, CONVERGE).unwrap();
    let reason = |offset: &str| {
        dead.iter()
            .find(|r| r.headers["sinkfleet.original.offset"] == offset)
            .map(|r| {
                assert_eq!(r.headers["sinkfleet.error.class"], "decode");
                r.headers["sinkfleet.error.message"].clone()
            })
            .unwrap_or_else(|| panic!("offset {offset} not dead-lettered: {dead:?}"))
    };
    let messages: Vec<&String> = dead
        .iter()
        .map(|r| &r.headers["sinkfleet.error.message"])
        .collect();
    assert_eq!(dead.len(), 6, "{messages:?}");
    let expect = [
        ("0", "wrong magic byte 0x7b"),
        ("1", "schema id 999999 does not exist in the registry"),
        ("2", "does not match its schema"),
        ("3", "does not match its schema"),
        ("4", "truncated"),
        ("5", "name no message of the schema"),
    ];
    for (offset, text) in expect {
        assert!(
            reason(offset).contains(text),
            "{offset}: {}",
            reason(offset)
        );
    }
    // Only the good record reached the target.
    let pool = p.pool().await;
    let sql = format!("SELECT count(*) FROM \"{}\".customers", p.schema);
    let rows: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 1);
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 6.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());
}
