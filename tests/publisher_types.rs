//! The publisher against Debezium's PostgreSQL connector contract, type by
//! type and option by option: the events it writes for every type family
//! (snapshot and stream, edge values), compared field by field with the
//! output written out in `publisher_types/cases.rs`; each representation
//! option changing what it should; a value the mapping cannot carry
//! stopping it before its transaction is confirmed; and every type
//! arriving in a Postgres target as the source had it.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

#[path = "publisher_types/cases.rs"]
mod cases;
use crate::common;

use cases::Table;
use common::source::{CONVERGE, Source};
use common::{Worker, brokers, free_port, wait_until};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// Runs a future to completion from a sync closure (used in wait_until).
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Creates the hstore extension if missing. Concurrent `CREATE EXTENSION`s
/// collide on the catalog's unique index (the second does not see the
/// first's uncommitted row): a transaction-scoped lock, held until the
/// creating transaction commits, puts them in line.
async fn create_hstore(src: &Source) {
    src.sql("SELECT pg_advisory_xact_lock(22022); CREATE EXTENSION IF NOT EXISTS hstore;")
        .await;
}

/// Creates the cases' types and tables in the source's schema.
async fn create_tables(src: &Source, tables: &[Table]) {
    let s = &src.schema;
    create_hstore(src).await;
    src.sql(&format!(
        "CREATE TYPE {s}.mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN {s}.posint AS int CHECK (VALUE > 0);"
    ))
    .await;
    for t in tables {
        let columns: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.ddl.replace("{s}", s)))
            .collect();
        src.sql(&format!(
            "CREATE TABLE {s}.{} (id int PRIMARY KEY, {})",
            t.name,
            columns.join(", ")
        ))
        .await;
    }
}

/// Inserts every row of every table, ids from `first_id`, one transaction
/// per table.
async fn insert_rows(src: &Source, tables: &[Table], first_id: i32) {
    for t in tables {
        let names: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
        let rows: Vec<String> = t
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let values: Vec<&str> = row.iter().map(|(sql, _)| *sql).collect();
                format!("({}, {})", first_id + i as i32, values.join(", "))
            })
            .collect();
        src.sql(&format!(
            "INSERT INTO {}.{} (id, {}) VALUES {}",
            src.schema,
            t.name,
            names.join(", "),
            rows.join(", ")
        ))
        .await;
    }
}

/// The harness's publisher config with Debezium's defaults where the
/// harness sets the project's (truncates skipped, context headers on).
fn debezium_defaults(config: String) -> String {
    config
        .replace("  skipped.operations: none\n", "")
        .replace("  extended.headers.enabled: false\n", "")
}

/// Adds connector properties to a harness config.
fn with_properties(config: String, properties: &str) -> String {
    config.replace(
        "  plugin.name: pgoutput\n",
        &format!("  plugin.name: pgoutput\n{properties}"),
    )
}

/// One record of a table's topic.
struct Event {
    key: Value,
    value: Option<Value>,
    headers: HashMap<String, String>,
}

impl Event {
    fn op(&self) -> Option<&str> {
        self.value.as_ref()?["payload"]["op"].as_str()
    }

    fn payload(&self) -> &Value {
        &self.value.as_ref().unwrap()["payload"]
    }

    /// The `id` of the row the event is about.
    fn id(&self) -> i64 {
        self.key["payload"]["id"].as_i64().unwrap()
    }
}

fn events(src: &Source, table: &str) -> Vec<Event> {
    let topic = format!("{}.{}.{table}", src.prefix, src.schema);
    sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE)
        .unwrap()
        .into_iter()
        .map(|r| Event {
            key: r
                .key
                .map(|k| serde_json::from_slice(&k).unwrap())
                .unwrap_or(Value::Null),
            value: r.value.map(|v| serde_json::from_slice(&v).unwrap()),
            headers: r.headers,
        })
        .collect()
}

/// Waits until the slot confirmed everything written so far.
async fn wait_confirmed(src: &Source) {
    let end = src.current_lsn().await;
    wait_until("the slot confirms the last commit", CONVERGE, || {
        block(src.confirmed_lsn()) >= end
    })
    .await;
}

/// The `after` of `event` equals the table's expected row, column by
/// column; a column without a schema in the cases is absent.
fn assert_row(table: &Table, row: usize, event: &Event) {
    let after = &event.payload()["after"];
    for (column, (sql, expected)) in table.columns.iter().zip(&table.rows[row]) {
        if column.schema.is_null() {
            assert!(
                after.get(column.name).is_none(),
                "{}.{}: a column without a mapping is left out",
                table.name,
                column.name
            );
            continue;
        }
        assert_eq!(
            &after[column.name],
            expected,
            "{}.{} = {sql} (op {:?})",
            table.name,
            column.name,
            event.op()
        );
    }
}

/// The `after` struct's field schemas equal `id`'s and the cases'.
fn assert_schema(table: &Table, event: &Event) {
    let envelope = &event.value.as_ref().unwrap()["schema"];
    let after = &envelope["fields"][1];
    assert_eq!(after["field"], "after");
    let mut want = vec![json!({"type": "int32", "optional": false, "field": "id"})];
    for c in table.columns.iter().filter(|c| !c.schema.is_null()) {
        let mut field = c.schema.clone();
        field["field"] = json!(c.name);
        want.push(field);
    }
    let got = after["fields"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{}: {got:?}", table.name);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{}.{}", table.name, w["field"]);
    }
    let key = &event.key["schema"];
    assert_eq!(
        key["fields"],
        json!([{"type": "int32", "optional": false, "field": "id"}])
    );
    assert_eq!(envelope["version"], json!(2));
}

/// Snapshot and streamed rows of every type family, compared field by
/// field with Debezium's output; the envelope, the snapshot markers, the
/// headers of a key change, and truncates skipped by default.
#[tokio::test(flavor = "multi_thread")]
async fn events_follow_debeziums_type_mapping() {
    let src = Source::new("dbztypes").await;
    let tables = cases::tables();
    create_tables(&src, &tables).await;
    insert_rows(&src, &tables, 1).await;
    let names: Vec<&str> = tables.iter().map(|t| t.name).collect();
    let pp = free_port();
    let config = debezium_defaults(src.publisher_config(&names, &brokers(), "", pp));
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("snapshot complete", CONVERGE, || {
        block(src.confirmed_lsn()) > 0
    })
    .await;
    insert_rows(&src, &tables, 1001).await;
    let s = &src.schema;
    src.sql(&format!("UPDATE {s}.t_num SET id = 999 WHERE id = 1"))
        .await;
    src.sql(&format!("TRUNCATE {s}.t_unknown")).await;
    wait_confirmed(&src).await;

    let mut markers = Vec::new();
    for table in &tables {
        let events = events(&src, table.name);
        for (row, _) in table.rows.iter().enumerate() {
            let id = row as i64 + 1;
            let read = events
                .iter()
                .find(|e| e.op() == Some("r") && e.id() == id)
                .unwrap_or_else(|| panic!("{}: no snapshot event of id {id}", table.name));
            assert_row(table, row, read);
            assert_schema(table, read);
            markers.push((table.name, id, read.payload()["source"]["snapshot"].clone()));
            let streamed = events
                .iter()
                .find(|e| e.op() == Some("c") && e.id() == id + 1000)
                .unwrap_or_else(|| panic!("{}: no streamed event of id {}", table.name, id + 1000));
            assert_row(table, row, streamed);
        }
        assert!(
            !events.iter().any(|e| e.op() == Some("t")),
            "{}: truncates are skipped by default (skipped.operations=t)",
            table.name
        );
    }
    // Debezium's markers: `first`/`last` of the whole snapshot, a table's
    // first and last rows, `true` in between (tables in name order).
    let want = [
        ("t_arrays", 1, "first"),
        ("t_arrays", 2, "last_in_data_collection"),
        ("t_bits", 1, "last_in_data_collection"),
        ("t_num", 1, "first_in_data_collection"),
        ("t_num", 2, "last_in_data_collection"),
        ("t_text", 1, "first_in_data_collection"),
        ("t_text", 2, "last_in_data_collection"),
        ("t_time", 1, "first_in_data_collection"),
        ("t_time", 2, "true"),
        ("t_time", 3, "last_in_data_collection"),
        ("t_unknown", 1, "last"),
    ];
    let got: Vec<(&str, i64, String)> = markers
        .into_iter()
        .map(|(t, id, m)| (t, id, m.as_str().unwrap().to_owned()))
        .collect();
    let want: Vec<(&str, i64, String)> = want
        .iter()
        .map(|(t, id, m)| (*t, *id, m.to_string()))
        .collect();
    assert_eq!(got, want);

    // The envelope and source block of a snapshot row and a streamed one.
    let num = events(&src, "t_num");
    let read = num.iter().find(|e| e.op() == Some("r")).unwrap().payload();
    let source = &read["source"];
    assert!(
        source["txId"].is_i64(),
        "the snapshot transaction's id: {source}"
    );
    let sequence: Vec<String> = serde_json::from_str(source["sequence"].as_str().unwrap()).unwrap();
    assert_eq!(source["lsn"].as_u64().unwrap().to_string(), sequence[0]);
    let streamed = num
        .iter()
        .find(|e| e.op() == Some("c") && e.id() == 1001)
        .unwrap();
    let p = streamed.payload();
    let source = &p["source"];
    assert_eq!(source["snapshot"], "false");
    assert_eq!(source["connector"], "postgresql");
    assert!(source["txId"].is_i64() && source["lsn"].is_i64());
    assert_eq!(source["origin"], Value::Null);
    assert_eq!(
        source["ts_ns"].as_u64().unwrap(),
        source["ts_us"].as_u64().unwrap() * 1000
    );
    assert_eq!(
        source["ts_ms"].as_u64().unwrap(),
        source["ts_us"].as_u64().unwrap() / 1000
    );
    assert!(p["ts_us"].as_u64().unwrap() >= source["ts_us"].as_u64().unwrap());
    assert_eq!(
        streamed
            .headers
            .get("__debezium.context.connectorLogicalName"),
        Some(&src.prefix)
    );
    assert_eq!(
        streamed
            .headers
            .get("__debezium.context.connectorName")
            .map(String::as_str),
        Some("postgresql")
    );

    // The key change: a delete of id 1 naming the new key, its tombstone,
    // a create of 999 naming the old.
    let delete = num.iter().find(|e| e.op() == Some("d")).unwrap();
    assert_eq!(delete.id(), 1);
    assert_eq!(
        delete.headers.get("__debezium.newkey").map(String::as_str),
        Some(r#"{"id":999}"#)
    );
    let tombstone = num.iter().find(|e| e.value.is_none()).unwrap();
    assert_eq!(tombstone.id(), 1);
    assert_eq!(
        tombstone
            .headers
            .get("__debezium.newkey")
            .map(String::as_str),
        Some(r#"{"id":999}"#)
    );
    let create = num
        .iter()
        .find(|e| e.op() == Some("c") && e.id() == 999)
        .unwrap();
    assert_eq!(
        create.headers.get("__debezium.oldkey").map(String::as_str),
        Some(r#"{"id":1}"#)
    );
    // A key-only `before` fits its schema: the NOT NULL column gets its
    // default (i2 DEFAULT 7) where pgoutput sent no value.
    assert_eq!(delete.payload()["before"]["id"], json!(1));

    src.stop(publisher).await;
}

#[path = "publisher_types/options.rs"]
mod options;
#[path = "publisher_types/target.rs"]
mod target;
