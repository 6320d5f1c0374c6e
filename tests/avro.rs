//! Avro topics through a Schema Registry, end to end.
//!
//! Records are written by Confluent's own Avro serializer (Python
//! `confluent-kafka`, `scripts/testdata/connect_avro.py`), from Debezium's
//! JsonConverter events converted the way Kafka Connect's `AvroConverter`
//! converts a Connect schema. The registry is the project's test service
//! (`scripts/schema-registry.py`), reached through a proxy where a test
//! takes it away.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::avro::{avro_formats, registry, registry_url, to_avro};
use common::{Pipeline, Proxy, free_port, wait_until};
use sinkfleet_core::debezium::{DecodeOptions, Decoder, RegistrySchema};
use sinkfleet_testkit::kafka::{self, Record};
use sinkfleet_testkit::workload::{self, Options};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

/// The YAML that makes `topic` an Avro topic, with `registry` as the URL.
fn decode_section(topic: &str, registry: &str) -> String {
    format!(
        "decode:
  formats:
    - {{ topics: {topic}, key: avro, value: avro }}
  registry: {{ url: \"{registry}\", timeout_ms: 1000 }}
"
    )
}

/// Every real Debezium event of `../shared` that carries its schema,
/// written by Confluent's Avro serializer, decodes to exactly the change
/// its JSON original decodes to: same op, table, key, version, row values
/// and column types. What a sink stores is a function of that change, so
/// each sink stores an Avro event as it stores the JSON one.
#[tokio::test(flavor = "multi_thread")]
async fn fixtures_in_avro_decode_to_the_changes_of_their_json_originals() {
    let with_schema: Vec<_> = sinkfleet_testkit::fixtures::STEPS
        .iter()
        .filter(|(value, _, _)| value.contains("-with-schema"))
        .collect();
    let topic = common::unique("avro-fixtures");
    let client = registry();
    let mut compared = 0;
    for &&(value_file, key_file, key_columns) in &with_schema {
        let Some(value) = sinkfleet_testkit::fixtures::debezium(value_file) else {
            return;
        };
        let key = key_file.and_then(sinkfleet_testkit::fixtures::debezium);
        let json_record = Record {
            key: key.clone(),
            value: Some(value.clone()),
        };
        let avro = to_avro(&topic, std::slice::from_ref(&json_record)).remove(0);
        let mut opts = DecodeOptions::default();
        if !key_columns.is_empty() {
            opts.key_columns.insert(
                "*".into(),
                key_columns.iter().map(|c| (*c).to_owned()).collect(),
            );
        }
        let from_json = Decoder::new(opts.clone())
            .decode(key.as_deref(), Some(&value), 0)
            .unwrap()
            .unwrap();
        let mut decoder = Decoder::new(DecodeOptions {
            formats: avro_formats(&topic),
            ..opts
        });
        for id in decoder.missing_schemas(&topic, avro.key.as_deref(), avro.value.as_deref()) {
            decoder.add_schema(id, client.schema(id).await.unwrap());
        }
        let from_avro = decoder
            .decode_record(&topic, avro.key.as_deref(), avro.value.as_deref(), 0)
            .unwrap_or_else(|e| panic!("{value_file}: {e}"))
            .unwrap();
        assert_eq!(from_avro.op, from_json.op, "{value_file}");
        assert_eq!(from_avro.table, from_json.table, "{value_file}");
        assert_eq!(from_avro.key, from_json.key, "{value_file}");
        if value_file.starts_with("25-") {
            // Its `source.sequence` is not in its schema (the docs' example
            // was edited by hand): a Connect record cannot carry it, so the
            // Avro twin has none and orders by its LSN alone.
            let lsn = from_json.version.minor;
            assert_eq!(from_avro.version, sinkfleet_core::Version::new(lsn, lsn));
        } else {
            assert_eq!(from_avro.version, from_json.version, "{value_file}");
        }
        assert_eq!(from_avro.row, from_json.row, "{value_file}");
        assert_eq!(from_avro.unchanged, from_json.unchanged, "{value_file}");
        assert_eq!(
            from_avro.source_ts_ms, from_json.source_ts_ms,
            "{value_file}"
        );
        let types = |c: &sinkfleet_core::Change| {
            c.schema.as_ref().map(|s| {
                s.columns
                    .iter()
                    .map(|c| (c.name.clone(), c.ty.clone(), c.optional))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(types(&from_avro), types(&from_json), "{value_file}");
        compared += 1;
    }
    assert_eq!(compared, with_schema.len());
    assert!(compared >= 9, "{compared} fixtures with a schema");
    // The registry says no to an id it never gave.
    assert_eq!(
        client.schema(999_999).await.unwrap(),
        RegistrySchema::NotFound
    );
}

/// A worker on an Avro topic converges in Postgres like on JSON, and a
/// registry that is away when the records arrive is an outage: the
/// partitions pause, nothing is dead-lettered, the group does not
/// rebalance, and everything lands once the registry is back.
#[tokio::test(flavor = "multi_thread")]
async fn avro_topic_converges_and_a_registry_outage_only_pauses() {
    // librdkafka's mock cluster: it evicts a member that stops
    // heartbeating, so "no rebalance" means the worker kept polling.
    let (p, _mock) = Pipeline::on_mock("avro-outage", 3);
    let w = workload::generate(&Options {
        keys: 200,
        changes: 3_000,
        seed: 23,
        ..Options::default()
    });
    let records = to_avro(&p.topic, &w.records);
    let upstream = registry_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Proxy::start(&upstream).await;
    proxy.down();
    let port = free_port();
    let registry = format!("http://127.0.0.1:{}", proxy.port);
    let config = p.config(&decode_section(&p.topic, &registry), "", port);
    let mut worker = p.spawn("w", &config, port);
    p.produce(&records).await;
    wait_until("partitions paused for the registry", CONVERGE, || {
        worker.metric("sinkfleet_partitions_paused") == 3.0
            && worker.metric("sinkfleet_schema_registry_fetches_total{outcome=\"outage\"}") > 0.0
            && worker.metric("sinkfleet_records_awaiting_schema") > 0.0
    })
    .await;
    // Longer than session.timeout.ms (6 s): a worker that stopped polling
    // would be evicted and the group would rebalance.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 0.0);
    assert_eq!(
        worker.metric("sinkfleet_rebalances_total{kind=\"revoke\"}"),
        0.0,
        "no rebalance"
    );
    assert_eq!(worker.metric("sinkfleet_partitions_paused"), 3.0);
    let (awaiting, outages) = (
        worker.metric("sinkfleet_records_awaiting_schema"),
        worker.metric("sinkfleet_schema_registry_fetches_total{outcome=\"outage\"}"),
    );
    proxy.up().await;
    let back = std::time::Instant::now();
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    eprintln!(
        "registry away 30 s: {awaiting} records waited, {outages} failed fetches, \
         converged and committed {:.1} s after it returned",
        back.elapsed().as_secs_f64()
    );
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 0.0);
    assert_eq!(worker.metric("sinkfleet_records_awaiting_schema"), 0.0);
    assert_eq!(worker.metric("sinkfleet_partitions_paused"), 0.0);
    assert_eq!(
        worker.metric("sinkfleet_rebalances_total{kind=\"assign\"}"),
        1.0
    );

    // A replay of the whole topic is harmless.
    p.produce(&records).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    assert!(worker.terminate(Duration::from_secs(30)).success());
    proxy.down();
}

/// Records an Avro topic cannot decode are dead-lettered, each with the
/// reason that names what is wrong, and change nothing in the target.
#[tokio::test(flavor = "multi_thread")]
async fn bad_avro_records_are_dead_lettered_with_their_reason() {
    let p = Pipeline::new("avro-bad", 1).await;
    let w = workload::generate(&Options {
        keys: 1,
        changes: 1,
        seed: 5,
        ..Options::default()
    });
    let good = to_avro(&p.topic, &w.records[..1]).remove(0);
    let value = good.value.clone().unwrap();
    let key = good.key.clone();
    let with_value = |value: Vec<u8>| Record {
        key: key.clone(),
        value: Some(value),
    };
    let mut unknown_id = value.clone();
    unknown_id[1..5].copy_from_slice(&999_999u32.to_be_bytes());
    // The key's body framed with the value's schema id.
    let mut mismatch = value[..5].to_vec();
    mismatch.extend_from_slice(&key.as_ref().unwrap()[5..]);
    p.produce(&[
        with_value(w.records[0].value.clone().unwrap()), // JSON on an Avro topic
        with_value(unknown_id),
        with_value(value[..value.len() / 2].to_vec()),
        with_value(mismatch),
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
    assert_eq!(dead.len(), 4, "{messages:?}");
    assert!(
        reason("0").contains("wrong magic byte 0x7b"),
        "{}",
        reason("0")
    );
    assert!(
        reason("1").contains("schema id 999999 does not exist in the registry"),
        "{}",
        reason("1")
    );
    assert!(
        reason("2").contains("does not match its schema"),
        "{}",
        reason("2")
    );
    assert!(
        reason("3").contains("does not match its schema"),
        "{}",
        reason("3")
    );
    // Only the good record reached the target.
    let pool = p.pool().await;
    let sql = format!("SELECT count(*) FROM \"{}\".customers", p.schema);
    let rows: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 1);
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 4.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// The client over TLS with basic auth: a CA file verifies the registry, a
/// wrong password or an unknown CA is an outage (retryable, nothing about
/// the data), and the answer is the same schema as over plain HTTP.
#[tokio::test(flavor = "multi_thread")]
async fn the_registry_is_read_over_tls_with_basic_auth() {
    let Some(common::avro::TlsRegistry {
        url,
        ca,
        user,
        password,
    }) = common::avro::tls_registry()
    else {
        return;
    };
    // A schema to ask for.
    let w = workload::generate(&Options {
        keys: 1,
        changes: 1,
        ..Options::default()
    });
    let topic = common::unique("avro-tls");
    let record = to_avro(&topic, &w.records[..1]).remove(0);
    let id = u32::from_be_bytes(record.value.unwrap()[1..5].try_into().unwrap());
    let config = |password: &str, ca: Option<&str>| sinkfleet_schema_registry::RegistryConfig {
        url: url.clone(),
        username: Some(user.clone()),
        password: Some(password.to_owned()),
        ca_file: ca.map(Into::into),
        timeout_ms: 5_000,
        attempts: 1,
    };
    let client = |cfg| sinkfleet_schema_registry::RegistryClient::new(&cfg).unwrap();
    let over_tls = client(config(&password, Some(&ca)))
        .schema(id)
        .await
        .unwrap();
    assert_eq!(over_tls, registry().schema(id).await.unwrap());
    assert!(matches!(over_tls, RegistrySchema::Found { .. }));
    let refused = client(config("wrong", Some(&ca)))
        .schema(id)
        .await
        .unwrap_err();
    assert!(refused.message.contains("401"), "{refused}");
    let untrusted = client(config(&password, None))
        .schema(id)
        .await
        .unwrap_err();
    assert!(
        untrusted.message.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
}

/// The publisher's registration (`RegistryClient::register`): a schema is
/// registered under its subject and gets an id that reads back as that
/// schema; asking again gives the same id; a changed schema becomes the
/// subject's next version with its own id; an unreachable registry is a
/// retryable error (the publisher waits, produces nothing without an id).
#[tokio::test(flavor = "multi_thread")]
async fn schemas_are_registered_under_their_subject() {
    let client = registry();
    let subject = format!("{}-value", common::unique("register"));
    let v1 =
        r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"id","type":"long"}]}"#;
    let v2 = r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"id","type":"long"},{"name":"tier","type":["null","string"],"default":null}]}"#;
    let id1 = client.register(&subject, v1).await.unwrap();
    assert_eq!(client.register(&subject, v1).await.unwrap(), id1);
    let id2 = client.register(&subject, v2).await.unwrap();
    assert_ne!(id1, id2);
    match client.schema(id2).await.unwrap() {
        RegistrySchema::Found { text, .. } => assert!(text.contains("tier"), "{text}"),
        other => panic!("{other:?}"),
    }
    let away = sinkfleet_schema_registry::RegistryClient::new(
        &sinkfleet_schema_registry::RegistryConfig {
            url: format!("http://127.0.0.1:{}", free_port()),
            username: None,
            password: None,
            ca_file: None,
            timeout_ms: 500,
            attempts: 2,
        },
    )
    .unwrap();
    let err = away.register(&subject, v1).await.unwrap_err();
    assert!(err.retryable, "{err}");
}
