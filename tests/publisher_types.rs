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
mod common;

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

/// Creates the cases' types and tables in the source's schema.
async fn create_tables(src: &Source, tables: &[Table]) {
    let s = &src.schema;
    // One CREATE EXTENSION at a time: concurrent ones collide.
    src.sql(
        "SELECT pg_advisory_lock(22022); CREATE EXTENSION IF NOT EXISTS hstore; SELECT pg_advisory_unlock(22022);",
    )
    .await;
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

/// One table of one column per option, snapshotted with each option in
/// turn (`snapshot.mode: initial_only`: the publisher stops after it).
#[tokio::test(flavor = "multi_thread")]
async fn each_representation_option_changes_the_output() {
    let src = Source::new("dbzopts").await;
    let s = &src.schema;
    src.sql(
        "SELECT pg_advisory_lock(22022); CREATE EXTENSION IF NOT EXISTS hstore; SELECT pg_advisory_unlock(22022);",
    )
    .await;
    src.sql(&format!(
        "CREATE TABLE {s}.opt (id int PRIMARY KEY, n numeric(6,2), nv numeric, m money, t3 time(3),
                               ts timestamp, d date, iv interval, h hstore, b bytea, l pg_lsn);
         INSERT INTO {s}.opt VALUES (1, 22.22, 22.2200, '1234.56', '00:00:00.5', '2016-11-04 13:51:30.123',
                                     '2016-11-04', '1 year 2 mons 3 days 04:05:06.78', '\"a\"=>\"1\", \"b\"=>NULL',
                                     '\\xfbff', '0/16B3748');"
    ))
    .await;
    // (properties, column, expected value, expected schema `type` and `name`)
    type OptionCase = (
        &'static str,
        &'static str,
        Value,
        (&'static str, Option<&'static str>),
    );
    let cases: Vec<OptionCase> = vec![
        (
            "",
            "n",
            json!("CK4="),
            ("bytes", Some("org.apache.kafka.connect.data.Decimal")),
        ),
        (
            "decimal.handling.mode: double",
            "n",
            json!(22.22),
            ("double", None),
        ),
        (
            "decimal.handling.mode: string",
            "n",
            json!("22.22"),
            ("string", None),
        ),
        (
            "",
            "nv",
            json!({"scale": 2, "value": "CK4="}),
            ("struct", Some("io.debezium.data.VariableScaleDecimal")),
        ),
        (
            "decimal.handling.mode: double",
            "nv",
            json!(22.22),
            ("double", None),
        ),
        (
            "decimal.handling.mode: string",
            "nv",
            json!("22.2200"),
            ("string", None),
        ),
        (
            "",
            "m",
            json!("AeJA"),
            ("bytes", Some("org.apache.kafka.connect.data.Decimal")),
        ),
        (
            "money.fraction.digits: 4",
            "m",
            json!("ALxhAA=="),
            ("bytes", Some("org.apache.kafka.connect.data.Decimal")),
        ),
        (
            "decimal.handling.mode: string",
            "m",
            json!("1234.56"),
            ("string", None),
        ),
        (
            "",
            "t3",
            json!(500),
            ("int32", Some("io.debezium.time.Time")),
        ),
        (
            "time.precision.mode: adaptive_time_microseconds",
            "t3",
            json!(500_000),
            ("int64", Some("io.debezium.time.MicroTime")),
        ),
        (
            "time.precision.mode: connect",
            "t3",
            json!(500),
            ("int32", Some("org.apache.kafka.connect.data.Time")),
        ),
        (
            "",
            "ts",
            json!(1_478_267_490_123_000i64),
            ("int64", Some("io.debezium.time.MicroTimestamp")),
        ),
        (
            "time.precision.mode: connect",
            "ts",
            json!(1_478_267_490_123i64),
            ("int64", Some("org.apache.kafka.connect.data.Timestamp")),
        ),
        (
            "time.precision.mode: connect",
            "d",
            json!(17109),
            ("int32", Some("org.apache.kafka.connect.data.Date")),
        ),
        (
            "",
            "iv",
            json!(37_091_106_780_000i64),
            ("int64", Some("io.debezium.time.MicroDuration")),
        ),
        (
            "interval.handling.mode: string",
            "iv",
            json!("P1Y2M3DT4H5M6.78S"),
            ("string", Some("io.debezium.time.Interval")),
        ),
        (
            "",
            "h",
            json!(r#"{"a":"1","b":null}"#),
            ("string", Some("io.debezium.data.Json")),
        ),
        (
            "hstore.handling.mode: map",
            "h",
            json!({"a": "1", "b": null}),
            ("map", None),
        ),
        ("", "b", json!("+/8="), ("bytes", None)),
        (
            "binary.handling.mode: base64",
            "b",
            json!("+/8="),
            ("string", None),
        ),
        (
            "binary.handling.mode: base64-url-safe",
            "b",
            json!("-_8="),
            ("string", None),
        ),
        (
            "binary.handling.mode: hex",
            "b",
            json!("fbff"),
            ("string", None),
        ),
        ("", "l", Value::Null, ("", None)),
        (
            "include.unknown.datatypes: true",
            "l",
            json!("MC8xNkIzNzQ4"),
            ("bytes", None),
        ),
    ];
    for (run, (properties, column, want, (ty, name))) in cases.into_iter().enumerate() {
        let pp = free_port();
        let prefix = format!("{}_{run}", src.prefix);
        let config = with_properties(
            src.publisher_config(&["opt"], &brokers(), "", pp)
                .replace(&src.prefix, &prefix)
                .replace(&src.slot, &format!("{}_{run}", src.slot)),
            &format!("  snapshot.mode: initial_only\n  {properties}\n"),
        );
        let mut publisher = Worker::start(&prefix, "publish", &config, pp);
        wait_until("the snapshot-only publisher stops", CONVERGE, || {
            publisher.exited().is_some()
        })
        .await;
        assert!(
            publisher.exited().unwrap().success(),
            "{properties}: {}",
            publisher.log_text()
        );
        sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(format!("{}_{run}", src.slot))
            .execute(&src.pool)
            .await
            .unwrap();
        let topic = format!("{prefix}.{s}.opt");
        let records = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
        let value: Value = serde_json::from_slice(records[0].value.as_deref().unwrap()).unwrap();
        let after = &value["payload"]["after"];
        if ty.is_empty() {
            assert!(
                after.get(column).is_none(),
                "{properties}: {column} is left out"
            );
            continue;
        }
        assert_eq!(&after[column], &want, "{properties}: {column}");
        let field = value["schema"]["fields"][1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == column)
            .cloned()
            .unwrap();
        assert_eq!(
            (
                field["type"].as_str().unwrap(),
                field.get("name").and_then(Value::as_str)
            ),
            (ty, name),
            "{properties}: {column} schema {field}"
        );
    }
    src.cleanup().await;
}

/// The streaming options against Debezium's defaults (which the type
/// mapping test runs with): truncates published, no tombstones, no
/// context headers, and no schemas.
#[tokio::test(flavor = "multi_thread")]
async fn streaming_options_change_what_is_published() {
    let src = Source::new("dbzstream").await;
    let s = &src.schema;
    src.sql(&format!("CREATE TABLE {s}.t (id int PRIMARY KEY, v text)"))
        .await;
    let pp = free_port();
    let config = with_properties(
        debezium_defaults(src.publisher_config(&["t"], &brokers(), "", pp)),
        "  skipped.operations: u\n  tombstones.on.delete: false\n  extended.headers.enabled: false\n  value.converter.schemas.enable: false\n",
    );
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || block(src.confirmed_lsn()) > 0).await;
    src.sql(&format!(
        "INSERT INTO {s}.t VALUES (1, 'a'); UPDATE {s}.t SET v = 'b'; DELETE FROM {s}.t; TRUNCATE {s}.t;"
    ))
    .await;
    wait_confirmed(&src).await;
    let topic = format!("{}.{s}.t", src.prefix);
    let records = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
    let ops: Vec<String> = records
        .iter()
        .map(|r| {
            assert!(r.headers.is_empty(), "no context headers: {:?}", r.headers);
            let v: Value =
                serde_json::from_slice(r.value.as_deref().expect("no tombstone")).unwrap();
            assert!(v.get("schema").is_none(), "no schema: {v}");
            v["op"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ops,
        ["c", "d", "t"],
        "the update is skipped, the truncate published"
    );
    src.stop(publisher).await;
}

/// A `numeric` NaN in precise mode stops the publisher, naming the table,
/// column, LSN and the option that carries it, before anything of its
/// transaction is confirmed; with that option the same WAL is published.
/// In the snapshot it stops the publisher before the slot gets its name.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_the_mapping_cannot_carry_stops_the_publisher() {
    let src = Source::new("nan").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.price (id int PRIMARY KEY, n numeric(6,2)); INSERT INTO {s}.price VALUES (1, 1.50)"
    ))
    .await;
    let pp = free_port();
    let config = src.publisher_config(&["price"], &brokers(), "", pp);
    let mut publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || block(src.confirmed_lsn()) > 0).await;
    src.sql(&format!("INSERT INTO {s}.price VALUES (2, 2.50)"))
        .await;
    wait_confirmed(&src).await;
    let before = src.confirmed_lsn().await;
    src.sql(&format!("INSERT INTO {s}.price VALUES (3, 'NaN')"))
        .await;
    let after_nan = src.current_lsn().await;
    wait_until("the publisher stops", CONVERGE, || {
        publisher.exited().is_some()
    })
    .await;
    assert!(!publisher.exited().unwrap().success());
    let log = publisher.log_text();
    for said in [
        &format!("{s}.price"),
        "column n",
        "LSN ",
        "decimal.handling.mode=string",
        "nothing of this transaction is confirmed",
    ] {
        assert!(log.contains(said), "`{said}` in {log}");
    }
    let confirmed = src.confirmed_lsn().await;
    assert!(
        confirmed >= before && confirmed < after_nan,
        "confirmed {confirmed:X}: the NaN's transaction (ending before {after_nan:X}) is not"
    );

    // The option that carries it: the same transaction, published.
    let pp = free_port();
    let strings = with_properties(
        src.publisher_config(&["price"], &brokers(), "", pp),
        "  decimal.handling.mode: string\n",
    );
    let second = Worker::start(&format!("{}-2", src.prefix), "publish", &strings, pp);
    wait_confirmed(&src).await;
    let records = events(&src, "price");
    let nan = records
        .iter()
        .filter_map(|e| e.value.as_ref())
        .find(|v| v["payload"]["after"]["id"] == 3)
        .unwrap();
    assert_eq!(nan["payload"]["after"]["n"], "NAN");
    src.stop(second).await;

    // In the snapshot: the publisher stops, and the slot never gets its name.
    let src = Source::new("nansnap").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.price (id int PRIMARY KEY, n numeric); INSERT INTO {s}.price VALUES (1, 'NaN')"
    ))
    .await;
    let pp = free_port();
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["price"], &brokers(), "", pp),
        pp,
    );
    wait_until("the publisher stops", CONVERGE, || {
        publisher.exited().is_some()
    })
    .await;
    assert!(!publisher.exited().unwrap().success());
    let log = publisher.log_text();
    assert!(
        log.contains("snapshot at LSN") && log.contains("column n"),
        "{log}"
    );
    assert_eq!(src.confirmed_lsn().await, 0, "no slot under the real name");
    src.cleanup().await;
}

/// Publisher → worker → Postgres: every type family, snapshot and stream,
/// arrives as the source had it (`interval.handling.mode: string`, the
/// representation that carries intervals exactly).
#[tokio::test(flavor = "multi_thread")]
async fn every_type_reaches_a_postgres_target_as_the_source_had_it() {
    let src = Source::new("typese2e").await;
    let tables: Vec<Table> = cases::tables()
        .into_iter()
        .filter(|t| t.columns.iter().all(|c| !c.schema.is_null()))
        .collect();
    create_tables(&src, &tables).await;
    insert_rows(&src, &tables, 1).await;
    let names: Vec<&str> = tables.iter().map(|t| t.name).collect();
    let (pp, wp) = (free_port(), free_port());
    let config = with_properties(
        src.publisher_config(&names, &brokers(), "", pp),
        "  interval.handling.mode: string\n",
    );
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("snapshot complete", CONVERGE, || {
        block(src.confirmed_lsn()) > 0
    })
    .await;
    let worker = src.sink_worker(&names, wp);
    insert_rows(&src, &tables, 1001).await;
    for table in &tables {
        let checks: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let (s, d) = (format!("s.{}", c.name), format!("d.{}", c.name));
                let compare = c
                    .compare
                    .unwrap_or("{s}::text = {d}::text")
                    .replace("{s}", &s)
                    .replace("{d}", &d);
                format!("(({s} IS NULL AND {d} IS NULL) OR coalesce({compare}, false))")
            })
            .collect();
        let sql = format!(
            "SELECT count(*) FROM {src}.{t} s FULL JOIN \"{dst}\".{t} d USING (id)
              WHERE d.__sinkfleet_deleted IS DISTINCT FROM false OR NOT ({checks})",
            src = src.schema,
            dst = src.target,
            t = table.name,
            checks = checks.join(" AND ")
        );
        let deadline = std::time::Instant::now() + CONVERGE;
        loop {
            let differ = sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&src.pool)
                .await;
            if matches!(differ, Ok(0)) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: not identical in the target: {differ:?}\n{sql}",
                table.name
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    src.finish(publisher, worker).await;
}
