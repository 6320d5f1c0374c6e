//! Every real Debezium connector event in `../shared/fixtures/debezium`
//! through the ClickHouse and Parquet sinks (the Postgres sink runs them in
//! `crates/sink-postgres/tests`), ending in the row values the fixtures'
//! README documents. The fixtures come from other projects and are read at
//! test time: without `../shared` these tests say so and skip (under `CI`
//! they fail).
//!
//! The schema-less `uk_price_paid` events declare their `date` column
//! (`decode.columns`), so it is a date in every sink, not a day count.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::parquet;
use sinkfleet_core::debezium::{DeclaredColumns, DecodeOptions, Decoder};
use sinkfleet_core::{FlushMode, Position, Sink, SinkRecord};
use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_sink_clickhouse::{ClickHouseSink, ClickHouseSinkConfig};
use sinkfleet_sink_s3_parquet::{ParquetSink, ParquetSinkConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every step as a record (one batch each), or `None` without fixtures.
fn records() -> Option<Vec<SinkRecord>> {
    let declared = BTreeMap::from([(
        "public.uk_price_paid".to_owned(),
        BTreeMap::from([("date".to_owned(), "date".to_owned())]),
    )]);
    let mut out = Vec::new();
    for (offset, (value, key, key_columns)) in sinkfleet_testkit::fixtures::STEPS.iter().enumerate()
    {
        let value = sinkfleet_testkit::fixtures::debezium(value)?;
        let key = match key {
            Some(k) => Some(sinkfleet_testkit::fixtures::debezium(k)?),
            None => None,
        };
        let mut opts = DecodeOptions {
            columns: DeclaredColumns::parse(&declared).unwrap(),
            ..DecodeOptions::default()
        };
        if !key_columns.is_empty() {
            opts.key_columns.insert(
                "*".into(),
                key_columns.iter().map(|c| c.to_string()).collect(),
            );
        }
        let change = Decoder::new(opts)
            .decode(key.as_deref(), Some(&value), offset as i64)
            .unwrap()
            .unwrap();
        out.push(SinkRecord {
            position: Position {
                topic: Arc::from("fixtures"),
                partition: 0,
                offset: offset as i64,
            },
            change,
        });
    }
    Some(out)
}

#[tokio::test]
async fn clickhouse_ends_in_the_documented_state() {
    let Some(records) = records() else { return };
    let url = sinkfleet_testkit::services::clickhouse_url();
    let db = common::unique("fixtures");
    let mut cfg = ClickHouseSinkConfig::with_url(&url);
    // Every source schema into one database, as the Postgres test maps them
    // into one schema: 25 and 26 (public.customers) meet 01's customers.
    cfg.database = Some(db.clone());
    let client = Client::new(&cfg).unwrap();
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    let (before_truncate, truncate) = records.split_at(records.len() - 1);
    for record in before_truncate {
        sink.write(std::slice::from_ref(record)).await.unwrap();
    }
    let live = |columns: &str, table: &str, order: &str| {
        let sql = format!(
            "SELECT {columns} FROM `{db}`.`{table}` FINAL WHERE __sinkfleet_deleted = 0 ORDER BY {order} FORMAT TSV"
        );
        let client = &client;
        async move { client.execute(&sql, None, &[]).await.unwrap() }
    };
    assert_eq!(
        live("id, first_name, last_name, email", "customers", "id").await,
        "1\tAnne\tKretchmar\tannek@noanswer.org\n1002\tGeorge\tBailey\tgbailey@foobar.com\n"
    );
    assert_eq!(
        live("id, name, description, weight", "products", "id").await,
        "106\thammer\t18oz carpenter hammer\t1\n",
        "02 then 03 update 106; 04, 05, 06 leave 111 deleted"
    );
    assert_eq!(
        live(
            "id, price, date, type, is_new, addr2, locality, town",
            "uk_price_paid",
            "id"
        )
        .await,
        "41794967\t205000\t2013-08-15\tdetached\t1\t\t\tLEE-ON-THE-SOLENT\n\
         50658675\t227500\t2002-08-06\tterraced\t0\t\tSALISBURY\tSALISBURY\n\
         55507462\t247500\t2007-06-29\tsemi-detached\t0\t\tWOLVERTON MILL\tMILTON KEYNES\n",
        "09 deletes 50419765 by its key only"
    );
    assert_eq!(
        live("amount, payment_date", "payment", "payment_id").await,
        "2.99\t2007-05-14 13:44:29.996577\n"
    );
    assert_eq!(
        live(
            "rental_rate, replacement_cost, rating, last_update, special_features",
            "film",
            "film_id"
        )
        .await,
        "4.99\t24.99\tG\t2013-05-26 14:50:58.951000\t['Trailers','Commentaries']\n"
    );
    assert_eq!(live("actor_id", "film_actor", "actor_id").await, "");
    assert_eq!(
        live("ts, d, t", "t", "id").await,
        "2022-10-14 23:55:31.989360\t2022-10-14\t23:55:31.989360\n"
    );
    sink.write(truncate).await.unwrap();
    assert_eq!(
        live("id", "customers", "id").await,
        "",
        "26 truncates customers (01's row is older than the truncate too)"
    );
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn parquet_ends_in_the_documented_state() {
    let Some(records) = records() else { return };
    let dir = std::env::temp_dir().join(common::unique("fixtures"));
    let cfg = ParquetSinkConfig::local(dir.to_str().unwrap());
    let mut sink = ParquetSink::new(cfg.clone()).unwrap();
    for record in &records {
        sink.write(std::slice::from_ref(record)).await.unwrap();
    }
    sink.flush(FlushMode::All).await.unwrap();
    let state = current_state(parquet::read_back(cfg).await);
    let table = |name: &str, columns: &[&str]| -> Vec<Vec<String>> {
        state
            .get(name)
            .map(|rows| {
                rows.values()
                    .map(|row| columns.iter().map(|c| row[*c].clone()).collect())
                    .collect()
            })
            .unwrap_or_default()
    };
    let rows = |text: &[&[&str]]| -> Vec<Vec<String>> {
        text.iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect())
            .collect()
    };
    assert_eq!(
        table(
            "inventory.customers",
            &["id", "first_name", "last_name", "email"]
        ),
        rows(&[&["1002", "George", "Bailey", "gbailey@foobar.com"]]),
    );
    assert_eq!(
        table("public.customers", &["id"]),
        rows(&[]),
        "26 truncates public.customers after 25 created row 1"
    );
    assert_eq!(
        table(
            "inventory.products",
            &["id", "name", "description", "weight"]
        ),
        rows(&[&["106", "hammer", "18oz carpenter hammer", "1"]]),
    );
    assert_eq!(
        table(
            "public.uk_price_paid",
            &[
                "id", "price", "date", "type", "is_new", "addr2", "locality", "town"
            ]
        ),
        rows(&[
            &[
                "41794967",
                "205000",
                "2013-08-15",
                "detached",
                "1",
                "",
                "",
                "LEE-ON-THE-SOLENT"
            ],
            &[
                "50658675",
                "227500",
                "2002-08-06",
                "terraced",
                "0",
                "",
                "SALISBURY",
                "SALISBURY"
            ],
            &[
                "55507462",
                "247500",
                "2007-06-29",
                "semi-detached",
                "0",
                "",
                "WOLVERTON MILL",
                "MILTON KEYNES"
            ],
        ]),
    );
    assert_eq!(
        table("public.payment", &["amount", "payment_date"]),
        rows(&[&["2.99", "2007-05-14 13:44:29.996577"]]),
    );
    assert_eq!(
        table(
            "public.film",
            &[
                "rental_rate",
                "replacement_cost",
                "rating",
                "last_update",
                "special_features"
            ]
        ),
        rows(&[&[
            "4.99",
            "24.99",
            "G",
            "2013-05-26 14:50:58.951",
            "[\"Trailers\",\"Commentaries\"]"
        ]]),
    );
    assert_eq!(table("public.film_actor", &["actor_id"]), rows(&[]));
    assert_eq!(
        table("public.t", &["ts", "d", "t"]),
        rows(&[&[
            "2022-10-14 23:55:31.989360",
            "2022-10-14",
            "23:55:31.989360"
        ]]),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One row: column → rendered value.
type Row = BTreeMap<String, String>;
/// A stored change: `(commit LSN, change LSN)`, `__op`, the row.
type Stored = ((u64, u64), String, Row);

/// The dedup-on-read rule of docs/sinks/parquet.md, per source table: rows in version order
/// (`__commit_lsn`, `__change_lsn`), the newest per key wins, a delete
/// removes the key, a truncate removes every key before it. Keys are the
/// rendered key columns the sink was given (`id`, `payment_id`, ...).
fn current_state(
    objects: Vec<(String, Vec<arrow_array::RecordBatch>)>,
) -> BTreeMap<String, BTreeMap<String, Row>> {
    let mut changes: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for (name, batches) in objects {
        // `<schema>/<table>/date=<day>/<file>`.
        let parts: Vec<&str> = name.split('/').collect();
        let day = parts.iter().position(|p| p.starts_with("date=")).unwrap();
        let table = format!("{}.{}", parts[day - 2], parts[day - 1]);
        for batch in batches {
            let schema = batch.schema();
            for i in 0..batch.num_rows() {
                let mut row = Row::new();
                for (field, column) in schema.fields().iter().zip(batch.columns()) {
                    row.insert(field.name().clone(), parquet::render(column, i));
                }
                let version = (
                    row["__commit_lsn"].parse().unwrap(),
                    row["__change_lsn"].parse().unwrap(),
                );
                let op = row["__op"].clone();
                changes
                    .entry(table.clone())
                    .or_default()
                    .push((version, op, row));
            }
        }
    }
    let key_of = |row: &Row| -> String {
        ["id", "payment_id", "film_id", "actor_id"]
            .iter()
            .filter_map(|k| row.get(*k).filter(|v| *v != "NULL").cloned())
            .collect::<Vec<_>>()
            .join(",")
    };
    changes
        .into_iter()
        .map(|(table, mut changes)| {
            changes.sort_by_key(|(version, _, _)| *version);
            let mut state: BTreeMap<String, Row> = BTreeMap::new();
            for (_, op, row) in changes {
                match op.as_str() {
                    "t" => state.clear(),
                    "d" => {
                        state.remove(&key_of(&row));
                    }
                    _ => {
                        state.insert(key_of(&row), row);
                    }
                }
            }
            (table, state)
        })
        .collect()
}
