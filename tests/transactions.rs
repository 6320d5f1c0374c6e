//! Source transactions across tables: the publisher's transaction metadata
//! (`provide.transaction.metadata`, as Debezium writes it).

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;

use common::source::{CONVERGE, Source};
use common::{Worker, brokers, free_port, wait_until};
use serde_json::{Value, json};
use sinkfleet_testkit::kafka::read_to_end;
use std::time::Duration;

/// The publisher's config with transaction metadata on.
fn publisher_config(src: &Source, tables: &[&str], port: u16) -> String {
    src.publisher_config(tables, &brokers(), "", port).replace(
        "  plugin.name: pgoutput\n",
        "  plugin.name: pgoutput\n  provide.transaction.metadata: \"true\"\n",
    )
}

/// Every JSON value on `topic` (all partitions), in partition order; the
/// payload of values that carry a schema.
fn values(topic: &str, partitions: i32) -> Vec<Value> {
    read_to_end(&brokers(), topic, partitions, Duration::from_secs(10))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| serde_json::from_slice::<Value>(r.value.as_deref()?).ok())
        .map(|v| match v.get("payload") {
            Some(payload) => payload.clone(),
            None => v,
        })
        .collect()
}

/// A transfer touching two tables comes with a BEGIN and an END record
/// that count its events in total and per table, and every event names its
/// place in the transaction.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_across_tables_is_framed_by_begin_and_end() {
    let src = Source::new("txmeta").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.accounts (id int PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE {s}.ledger (id int PRIMARY KEY, amount bigint NOT NULL);
         INSERT INTO {s}.accounts VALUES (1, 100), (2, 100);"
    ))
    .await;
    let port = free_port();
    let publisher = Worker::start(
        &src.prefix,
        "publish",
        &publisher_config(&src, &["accounts", "ledger"], port),
        port,
    );
    wait_until("the snapshot is published", CONVERGE, || {
        publisher.metric("sinkfleet_publisher_snapshot_rows_done") >= 2.0
    })
    .await;
    src.sql(&format!(
        "BEGIN;
         UPDATE {s}.accounts SET balance = balance - 30 WHERE id = 1;
         UPDATE {s}.accounts SET balance = balance + 30 WHERE id = 2;
         INSERT INTO {s}.ledger VALUES (1, 30);
         COMMIT;"
    ))
    .await;

    let topic = format!("{}.transaction", src.prefix);
    let mut markers = Vec::new();
    wait_until("BEGIN and END are published", CONVERGE, || {
        markers = values(&topic, 1);
        markers.len() >= 2
    })
    .await;
    assert_eq!(
        markers.len(),
        2,
        "one transaction, no snapshot markers: {markers:?}"
    );
    let id = markers[1]["id"].clone();
    assert_eq!(markers[0]["status"], "BEGIN");
    assert_eq!(markers[0]["id"], id);
    let accounts = format!("{s}.accounts");
    let ledger = format!("{s}.ledger");
    assert_eq!(markers[1]["status"], "END");
    assert_eq!(markers[1]["event_count"], 3);
    assert_eq!(
        markers[1]["data_collections"],
        json!([
            {"data_collection": accounts, "event_count": 2},
            {"data_collection": ledger, "event_count": 1},
        ])
    );

    let mut framed: Vec<Value> = ["accounts", "ledger"]
        .iter()
        .flat_map(|t| values(&format!("{}.{s}.{t}", src.prefix), 3))
        .filter(|e| e["op"] != "r")
        .map(|e| e["transaction"].clone())
        .collect();
    framed.sort_by_key(|t| t["total_order"].as_u64());
    assert_eq!(
        framed,
        vec![
            json!({"id": id, "total_order": 1, "data_collection_order": 1}),
            json!({"id": id, "total_order": 2, "data_collection_order": 2}),
            json!({"id": id, "total_order": 3, "data_collection_order": 1}),
        ]
    );
    let mut publisher = publisher;
    assert!(publisher.terminate(Duration::from_secs(30)).success());
    src.cleanup().await;
}
