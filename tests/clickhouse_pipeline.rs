//! Kafka → `sinkfleet run` → ClickHouse (the real 18.16 server): a record
//! ClickHouse refuses lands in the dead-letter topic, and an outage under
//! load loses nothing.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::{Pipeline, Proxy, free_port, wait_names, wait_until};
use serde_json::json;
use sinkfleet_sink_clickhouse::ClickHouseSinkConfig;
use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_testkit::kafka::{self, Record};
use sinkfleet_testkit::services::clickhouse_url;
use sinkfleet_testkit::workload::{self, Options};
use std::time::Duration;

/// The worker config for this pipeline, writing to ClickHouse at `url`.
fn config(p: &Pipeline, url: &str, db: &str, port: u16, extra_worker: &str) -> String {
    let sink = format!("  clickhouse:\n    url: {url}\n    database: {db}\n    timeout_ms: 5000");
    p.config_with_sink(extra_worker, &sink, port)
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
    // `balance` is Decimal(12, 2) by now: this text cannot go in. Its version
    // is the newest for id 5, so had it been applied the state would differ.
    let poison = json!({"op": "u", "source": {"schema": "public", "table": "customers", "lsn": 1, "sequence": "[\"9999999999999\",\"1\"]"},
                        "after": {"id": 5, "name": "bad", "balance": "not a number"}});
    p.produce(&[Record {
        key: Some(json!({"id": 5}).to_string().into_bytes()),
        value: Some(poison.to_string().into_bytes()),
    }])
    .await;
    let db = p.schema.clone();
    let port = free_port();
    let mut worker = p.spawn("w", &config(&p, &clickhouse_url(), &db, port, ""), port);
    p.wait_committed_to_end(&p.group, Duration::from_secs(120))
        .await;

    let client = Client::new(&ClickHouseSinkConfig::with_url(clickhouse_url())).unwrap();
    let want: Vec<(i64, String)> = w
        .expected
        .values()
        .map(|r| (r.id, r.name.clone()))
        .collect();
    assert_eq!(wait_names(&client, &db, &want).await, want);
    let dead = kafka::read_to_end(&p.brokers, &p.dlq, Duration::from_secs(120)).unwrap();
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

/// With ClickHouse unreachable under load (cut off through a proxy, so the
/// server other tests use keeps running), the worker pauses its partitions
/// and retries; once it is back, nothing is lost. Half the records arrive
/// during the outage, so writes fail however fast the first half went.
#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_outage_under_load_loses_nothing() {
    let p = Pipeline::new("chout", 2).await;
    let w = workload::generate(&Options {
        keys: 200,
        changes: 3_000,
        seed: 43,
        ..Options::default()
    });
    let (before, during) = w.records.split_at(w.records.len() / 2);
    p.produce(before).await;
    let proxy = Proxy::start(clickhouse_url().trim_start_matches("http://")).await;
    let port = free_port();
    let db = p.schema.clone();
    let via_proxy = format!("http://127.0.0.1:{}", proxy.port);
    let mut worker = p.spawn(
        "w",
        &config(
            &p,
            &via_proxy,
            &db,
            port,
            "  rate_limit: { rows_per_second: 1500 }",
        ),
        port,
    );
    wait_until(
        "progress before the outage",
        Duration::from_secs(120),
        || worker.metric("sinkfleet_committed_offset") > 300.0,
    )
    .await;
    proxy.down();
    p.produce(during).await;
    wait_until(
        "partitions paused while ClickHouse is unreachable",
        Duration::from_secs(60),
        || {
            worker.metric("sinkfleet_partitions_paused") == 2.0
                && worker.metric("sinkfleet_write_retries_total") > 0.0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.up().await;
    p.wait_committed_to_end(&p.group, Duration::from_secs(120))
        .await;
    let client = Client::new(&ClickHouseSinkConfig::with_url(clickhouse_url())).unwrap();
    let want: Vec<(i64, String)> = w
        .expected
        .values()
        .map(|r| (r.id, r.name.clone()))
        .collect();
    assert_eq!(wait_names(&client, &db, &want).await, want);
    assert!(worker.terminate(Duration::from_secs(30)).success());
    proxy.down();
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}
