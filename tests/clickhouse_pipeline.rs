//! Kafka → `sinkfleet run` → ClickHouse (the real 18.16 server), with a
//! record ClickHouse refuses, which must land in the dead-letter topic.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;

use common::{Pipeline, free_port};
use serde_json::json;
use sinkfleet_sink_clickhouse::ClickHouseSinkConfig;
use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_testkit::kafka::{self, Record};
use sinkfleet_testkit::workload::{self, Options};
use std::time::{Duration, Instant};

fn clickhouse_url() -> String {
    std::env::var("SINKFLEET_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:58123".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_converges_in_clickhouse_and_poison_goes_to_the_dlq() {
    let p = Pipeline::new("chp", 3).await;
    let w = workload::generate(&Options {
        keys: 200,
        changes: 2_500,
        seed: 41,
        ..Options::default()
    });
    p.produce(&w.records).await;
    // `balance` is Decimal(12, 2) by now: this text cannot go in.
    let poison = json!({"op": "u", "source": {"schema": "public", "table": "customers", "lsn": 1, "sequence": "[\"9999999999999\",\"1\"]"},
                        "after": {"id": 5, "name": "bad", "balance": "not a number", "updated_at": 0}});
    p.produce(&[Record {
        key: Some(json!({"id": 5}).to_string().into_bytes()),
        value: Some(poison.to_string().into_bytes()),
    }])
    .await;
    let db = p.schema.clone();
    let port = free_port();
    let config = format!(
        "kafka:
  brokers: {brokers}
  group_id: {group}
  topics: [{topic}]
dead_letter:
  topic: {dlq}
  create_topic: false
worker:
  linger_ms: 50
  batch_max_records: 1000
  retry_initial_ms: 100
  retry_max_ms: 1000
sink:
  clickhouse:
    url: {url}
    database: {db}
metrics:
  listen: 127.0.0.1:{port}
",
        brokers = p.brokers,
        group = p.group,
        topic = p.topic,
        dlq = p.dlq,
        url = clickhouse_url(),
    );
    let mut worker = p.spawn("w", &config, port);
    p.wait_committed_to_end(&p.group, Duration::from_secs(120))
        .await;

    let client = Client::new(&ClickHouseSinkConfig::with_url(clickhouse_url())).unwrap();
    let sql = format!(
        "SELECT id, name FROM `{db}`.customers FINAL WHERE __sinkfleet_deleted = 0 ORDER BY id FORMAT JSONEachRow"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let got: Vec<(i64, String)> = loop {
        let body = client
            .execute(
                &sql,
                None,
                &[("output_format_json_quote_64bit_integers", "0".into())],
            )
            .await
            .unwrap();
        let rows: Vec<(i64, String)> = body
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_i64().unwrap(),
                    v["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if rows.len() == w.expected.len() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let want: Vec<(i64, String)> = w
        .expected
        .values()
        .map(|r| (r.id, r.name.clone()))
        .collect();
    assert_eq!(got, want);

    let dead = kafka::read_all(&p.brokers, &p.dlq, 1, Duration::from_secs(3)).unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].headers["sinkfleet.error.class"], "apply");
    assert!(
        dead[0].headers["sinkfleet.error.message"].contains("Code:"),
        "{:?}",
        dead[0].headers
    );
    assert!(worker.terminate(Duration::from_secs(30)).success());
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}
