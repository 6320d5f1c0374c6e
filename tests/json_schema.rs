//! JSON Schema topics through a Schema Registry, end to end.
//!
//! Records are written by Confluent's own JSONSerializer (Python
//! `confluent-kafka`, `scripts/testdata/connect_json_schema.py`), from
//! Debezium's JsonConverter events converted the way Kafka Connect's
//! `JsonSchemaConverter` converts a Connect schema and value.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::avro::{registry, registry_url};
use common::json_schema::{
    decoder_for, json_schema_formats, to_json_schema, to_json_schema_numeric,
};
use common::{Pipeline, free_port};
use serde_json::Value as Json;
use sinkfleet_core::debezium::{DecodeOptions, Decoder};
use sinkfleet_testkit::kafka::{self, Record};
use sinkfleet_testkit::workload::{self, Options};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

/// The YAML that makes `topic` a JSON Schema topic.
fn decode_section(topic: &str, registry: &str) -> String {
    format!(
        "decode:
  formats:
    - {{ topics: {topic}, key: json_schema, value: json_schema }}
  registry: {{ url: \"{registry}\", timeout_ms: 1000 }}
"
    )
}

/// Every real Debezium event of `../shared` that carries its schema,
/// written by Confluent's JSONSerializer, decodes to exactly the change its
/// JSON original decodes to: same op, table, key, version, row values and
/// column types. What a sink stores is a function of that change, so each
/// sink stores a JSON Schema event as it stores the JSON one.
#[tokio::test(flavor = "multi_thread")]
async fn fixtures_in_json_schema_decode_to_the_changes_of_their_json_originals() {
    let with_schema: Vec<_> = sinkfleet_testkit::fixtures::STEPS
        .iter()
        .filter(|(value, _, _)| value.contains("-with-schema"))
        .collect();
    let topic = common::unique("jsonschema-fixtures");
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
        let framed = to_json_schema(&topic, std::slice::from_ref(&json_record)).remove(0);
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
            formats: json_schema_formats(&topic),
            ..opts
        });
        for id in decoder.missing_schemas(&topic, framed.key.as_deref(), framed.value.as_deref()) {
            decoder.add_schema(id, client.schema(id).await.unwrap());
        }
        let from_framed = decoder
            .decode_record(&topic, framed.key.as_deref(), framed.value.as_deref(), 0)
            .unwrap_or_else(|e| panic!("{value_file}: {e}"))
            .unwrap();
        assert_eq!(from_framed.op, from_json.op, "{value_file}");
        assert_eq!(from_framed.table, from_json.table, "{value_file}");
        assert_eq!(from_framed.key, from_json.key, "{value_file}");
        if value_file.starts_with("25-") {
            // Its `source.sequence` is not in its schema (the docs' example
            // was edited by hand): a Connect record cannot carry it, so the
            // JSON Schema twin has none and orders by its LSN alone.
            let lsn = from_json.version.minor;
            assert_eq!(from_framed.version, sinkfleet_core::Version::new(lsn, lsn));
        } else {
            assert_eq!(from_framed.version, from_json.version, "{value_file}");
        }
        assert_eq!(from_framed.row, from_json.row, "{value_file}");
        assert_eq!(from_framed.unchanged, from_json.unchanged, "{value_file}");
        assert_eq!(
            from_framed.source_ts_ms, from_json.source_ts_ms,
            "{value_file}"
        );
        assert_eq!(from_framed.schema, from_json.schema, "{value_file}");
        compared += 1;
    }
    assert_eq!(compared, with_schema.len());
    assert!(compared >= 9, "{compared} fixtures with a schema");
}

/// A worker on a JSON Schema topic converges in Postgres like on JSON.
#[tokio::test(flavor = "multi_thread")]
async fn json_schema_topic_converges() {
    let p = Pipeline::new("jsonschema-converge", 3).await;
    let w = workload::generate(&Options {
        keys: 200,
        changes: 2_000,
        seed: 29,
        ..Options::default()
    });
    let records = to_json_schema(&p.topic, &w.records);
    let port = free_port();
    let config = p.config(&decode_section(&p.topic, &registry_url()), "", port);
    let mut worker = p.spawn("w", &config, port);
    p.produce(&records).await;
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 0.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// `record`'s JSON body, changed by `edit`, framed again with its id.
fn edited(record: &[u8], edit: impl FnOnce(&mut Json)) -> Vec<u8> {
    let mut body: Json = serde_json::from_slice(&record[5..]).unwrap();
    edit(&mut body);
    let mut out = record[..5].to_vec();
    out.extend(serde_json::to_vec(&body).unwrap());
    out
}

/// Records a JSON Schema topic cannot decode are dead-lettered, each with
/// the reason that names what is wrong, and change nothing in the target.
#[tokio::test(flavor = "multi_thread")]
async fn bad_json_schema_records_are_dead_lettered_with_their_reason() {
    let p = Pipeline::new("jsonschema-bad", 1).await;
    let w = workload::generate(&Options {
        keys: 1,
        changes: 1,
        seed: 5,
        ..Options::default()
    });
    let good = to_json_schema(&p.topic, &w.records[..1]).remove(0);
    let value = good.value.clone().unwrap();
    let key = good.key.clone();
    let with_value = |value: Vec<u8>| Record {
        key: key.clone(),
        value: Some(value),
    };
    let mut unknown_id = value.clone();
    unknown_id[1..5].copy_from_slice(&999_999u32.to_be_bytes());
    // The key's body framed with the value's schema id: no `source`, no `op`.
    let mut key_body = value[..5].to_vec();
    key_body.extend_from_slice(&key.as_ref().unwrap()[5..]);
    let wrong_type = edited(&value, |v| {
        let after = v["after"].as_object_mut().unwrap();
        let (name, _) = after.iter().find(|(_, v)| v.is_i64()).unwrap();
        let name = name.clone();
        after.insert(name, Json::from("seven"));
    });
    p.produce(&[
        with_value(w.records[0].value.clone().unwrap()), // JSON on a JSON Schema topic
        with_value(unknown_id),
        with_value(value[..3].to_vec()),
        with_value(value[..value.len() / 2].to_vec()),
        with_value(key_body),
        with_value(wrong_type),
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
    for (offset, why) in [
        ("0", "wrong magic byte 0x7b"),
        ("1", "schema id 999999 does not exist in the registry"),
        ("2", "truncated: 3 bytes"),
        ("3", "is not JSON"),
        ("4", "required field `source` is missing"),
        ("5", "must be an integer, found \"seven\""),
    ] {
        assert!(reason(offset).contains(why), "{offset}: {}", reason(offset));
    }
    assert!(reason("4").contains("does not match its schema"));
    assert!(reason("5").contains("does not match its schema"));
    // Only the good record reached the target.
    let pool = p.pool().await;
    let sql = format!("SELECT count(*) FROM \"{}\".customers", p.schema);
    let rows: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 1);
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 6.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// With the converter's `decimal.format=NUMERIC` a Decimal is a JSON number
/// (BigDecimal's text, any length): it decodes exactly to its JSON twin's
/// value (base64 there), never through a double.
#[tokio::test(flavor = "multi_thread")]
async fn numeric_decimals_decode_exactly_as_their_json_twins() {
    let topic = common::unique("jsonschema-numeric");
    let row = serde_json::json!({"type": "struct", "optional": true, "name": "src.nums.Value", "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "d", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
         "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "40"}},
        {"field": "big", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
         "version": 1, "parameters": {"scale": "0"}}]});
    let (mut before, mut after) = (row.clone(), row);
    before["field"] = serde_json::json!("before");
    after["field"] = serde_json::json!("after");
    // Unscaled values as JsonConverter writes them (BigInteger.toByteArray).
    let values = [
        ("AJvTCjxkWUPdFpCgOhQ=", "123456789012345678901234567890.12"),
        ("/w==", "-0.01"),
        ("AA==", "0.00"),
        ("BM4=", "12.30"),
    ];
    let json: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, (d, _))| {
            let value = serde_json::json!({
                "schema": {"type": "struct", "optional": false, "name": "src.nums.Envelope", "fields": [
                    before, after,
                    {"field": "source", "type": "struct", "optional": false, "fields": [
                        {"field": "schema", "type": "string", "optional": false},
                        {"field": "table", "type": "string", "optional": false},
                        {"field": "lsn", "type": "int64", "optional": true}]},
                    {"field": "op", "type": "string", "optional": false}]},
                "payload": {"before": null, "op": "c",
                    "after": {"id": i, "d": d, "big": "9rZPCQ/9zOw7tm+vIccMsg=="},
                    "source": {"schema": "src", "table": "nums", "lsn": 100 + i}}});
            let key = serde_json::json!({"schema": {"type": "struct", "optional": false, "fields": [
                {"field": "id", "type": "int32", "optional": false}]}, "payload": {"id": i}});
            Record {
                key: Some(key.to_string().into_bytes()),
                value: Some(value.to_string().into_bytes()),
            }
        })
        .collect();
    let framed = to_json_schema_numeric(&topic, &json);
    let mut decoder = decoder_for(&topic, &framed, DecodeOptions::default()).await;
    for ((json, framed), (_, text)) in json.iter().zip(&framed).zip(values) {
        let body = String::from_utf8_lossy(&framed.value.as_ref().unwrap()[5..]).into_owned();
        assert!(
            body.contains(&format!(r#""d":{text}"#))
                && body.contains(r#""big":-12345678901234567890123456789012345678"#),
            "not NUMERIC: {body}"
        );
        let change = decoder
            .decode_record(&topic, framed.key.as_deref(), framed.value.as_deref(), 0)
            .unwrap()
            .unwrap();
        let twin = Decoder::new(DecodeOptions::default())
            .decode(json.key.as_deref(), json.value.as_deref(), 0)
            .unwrap()
            .unwrap();
        let row = change.row.unwrap();
        assert_eq!(
            row.get("d"),
            Some(&sinkfleet_core::Value::Decimal(text.into()))
        );
        // `json!` sorted the twin's columns by name.
        let sorted = |mut r: sinkfleet_core::Row| {
            r.columns.sort_by(|a, b| a.0.cmp(&b.0));
            r
        };
        assert_eq!(Some(sorted(row)), twin.row.map(sorted));
        assert_eq!(change.key, twin.key);
        assert_eq!(change.schema, twin.schema);
    }
}
