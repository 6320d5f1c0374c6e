//! The Postgres sink against a real Postgres (started by
//! `scripts/services.sh start`; URL from `SINKFLEET_PG_URL`).
//!
//! Each test writes into its own target schema, so tests run in parallel.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use serde_json::{Value, json};
use sinkfleet_core::debezium::{DecodeOptions, decode};
use sinkfleet_core::{Durability, Position, Sink, SinkError, SinkRecord};
use sinkfleet_sink_postgres::{DeleteMode, PostgresSink, PostgresSinkConfig, WritePath};
use sinkfleet_testkit::services::pg_url;
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh target schema and a sink writing into it.
async fn setup(mode: DeleteMode, path: WritePath) -> (PostgresSink, PgPool, String) {
    let schema = format!(
        "t_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    let pool = PgPool::connect(&pg_url())
        .await
        .expect("Postgres is not reachable: run `scripts/services.sh start` (or scripts/test.sh)");
    let mut cfg = PostgresSinkConfig::with_url(pg_url());
    cfg.target_schema = Some(schema.clone());
    cfg.delete_mode = mode;
    cfg.write_path = path;
    cfg.meta_schema = format!("{schema}_meta");
    (PostgresSink::new(cfg).unwrap(), pool, schema)
}

fn event(op: &str, id: i64, version: (u64, u64), after: Option<Value>) -> Value {
    json!({
        "op": op,
        "source": {"schema": "public", "table": "items", "lsn": version.1,
                   "sequence": format!("[\"{}\",\"{}\"]", version.0, version.1)},
        "before": if op == "d" { json!({"id": id}) } else { Value::Null },
        "after": after,
    })
}

fn record(value: &Value, id: i64, offset: i64) -> SinkRecord {
    let key = json!({"id": id}).to_string();
    let change = decode(
        Some(key.as_bytes()),
        Some(value.to_string().as_bytes()),
        offset,
        &DecodeOptions::default(),
    )
    .unwrap()
    .unwrap();
    SinkRecord {
        position: Position {
            topic: Arc::from("items"),
            partition: 0,
            offset,
        },
        change,
    }
}

async fn write(sink: &mut PostgresSink, records: &[SinkRecord]) {
    assert_eq!(sink.write(records).await.unwrap(), Durability::Durable);
}

/// Live rows as `(id, name, note)`.
async fn rows(pool: &PgPool, schema: &str) -> Vec<(i64, Option<String>, Option<String>)> {
    let sql = format!(
        "SELECT id, name, note FROM \"{schema}\".items WHERE NOT __sinkfleet_deleted ORDER BY id"
    );
    sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn item(id: i64, name: &str, note: &str) -> Value {
    json!({"id": id, "name": name, "note": note})
}

#[tokio::test]
async fn newer_wins_equal_is_noop_older_is_ignored() {
    for path in [WritePath::Unnest, WritePath::Copy] {
        let (mut sink, pool, schema) = setup(DeleteMode::Soft, path).await;
        write(
            &mut sink,
            &[record(
                &event("c", 1, (10, 11), Some(item(1, "v10", "a"))),
                1,
                0,
            )],
        )
        .await;
        write(
            &mut sink,
            &[record(
                &event("u", 1, (20, 21), Some(item(1, "v20", "b"))),
                1,
                1,
            )],
        )
        .await;
        // Replay of v20 with different content would be a bug upstream; equal version is a no-op.
        write(
            &mut sink,
            &[record(
                &event("u", 1, (20, 21), Some(item(1, "replayed", "x"))),
                1,
                2,
            )],
        )
        .await;
        // Older version after newer.
        write(
            &mut sink,
            &[record(
                &event("u", 1, (15, 16), Some(item(1, "v15", "c"))),
                1,
                3,
            )],
        )
        .await;
        assert_eq!(
            rows(&pool, &schema).await,
            vec![(1, Some("v20".into()), Some("b".into()))],
            "{path:?}"
        );
    }
}

#[tokio::test]
async fn in_batch_collapse_keeps_newest() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    write(
        &mut sink,
        &[
            record(&event("c", 1, (30, 31), Some(item(1, "v30", "a"))), 1, 0),
            record(&event("c", 1, (10, 11), Some(item(1, "v10", "a"))), 1, 1),
            record(&event("c", 2, (10, 11), Some(item(2, "two", "a"))), 2, 2),
            record(&event("u", 1, (20, 21), Some(item(1, "v20", "a"))), 1, 3),
        ],
    )
    .await;
    let got = rows(&pool, &schema).await;
    assert_eq!(
        got,
        vec![
            (1, Some("v30".into()), Some("a".into())),
            (2, Some("two".into()), Some("a".into()))
        ]
    );
}

async fn no_resurrection(mode: DeleteMode) {
    let (mut sink, pool, schema) = setup(mode, WritePath::Unnest).await;
    write(
        &mut sink,
        &[record(
            &event("c", 1, (10, 11), Some(item(1, "v10", "a"))),
            1,
            0,
        )],
    )
    .await;
    write(&mut sink, &[record(&event("d", 1, (20, 21), None), 1, 1)]).await;
    // A late, older insert must not bring it back...
    write(
        &mut sink,
        &[record(
            &event("c", 1, (15, 16), Some(item(1, "stale", "a"))),
            1,
            2,
        )],
    )
    .await;
    // ...also for a key whose delete arrived before any insert.
    write(&mut sink, &[record(&event("d", 2, (50, 51), None), 2, 3)]).await;
    write(
        &mut sink,
        &[record(
            &event("c", 2, (40, 41), Some(item(2, "stale", "a"))),
            2,
            4,
        )],
    )
    .await;
    assert_eq!(rows(&pool, &schema).await, vec![], "{mode:?}");
    // A newer insert after the delete is a real re-create.
    write(
        &mut sink,
        &[record(
            &event("c", 1, (30, 31), Some(item(1, "again", "n"))),
            1,
            5,
        )],
    )
    .await;
    assert_eq!(
        rows(&pool, &schema).await,
        vec![(1, Some("again".into()), Some("n".into()))],
        "{mode:?}"
    );
    if mode == DeleteMode::Hard {
        let sql = format!("SELECT count(*) FROM \"{schema}\".items");
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
        assert_eq!(n, 1, "hard deletes remove rows");
    }
}

#[tokio::test]
async fn delete_then_stale_insert_soft() {
    no_resurrection(DeleteMode::Soft).await;
}

#[tokio::test]
async fn delete_then_stale_insert_hard() {
    no_resurrection(DeleteMode::Hard).await;
}

#[tokio::test]
async fn toast_placeholder_keeps_stored_value() {
    for path in [WritePath::Unnest, WritePath::Copy] {
        let (mut sink, pool, schema) = setup(DeleteMode::Soft, path).await;
        write(
            &mut sink,
            &[record(
                &event("c", 1, (10, 11), Some(item(1, "v10", "large text"))),
                1,
                0,
            )],
        )
        .await;
        let partial = json!({"id": 1, "name": "v20", "note": "__debezium_unavailable_value"});
        write(
            &mut sink,
            &[record(&event("u", 1, (20, 21), Some(partial)), 1, 1)],
        )
        .await;
        assert_eq!(
            rows(&pool, &schema).await,
            vec![(1, Some("v20".into()), Some("large text".into()))]
        );
    }
}

#[tokio::test]
async fn new_column_mid_stream_and_safe_widening() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    write(
        &mut sink,
        &[record(
            &event("c", 1, (10, 11), Some(item(1, "a", "n"))),
            1,
            0,
        )],
    )
    .await;
    let mut wider = item(2, "b", "n");
    wider["score"] = json!(7);
    write(
        &mut sink,
        &[record(&event("c", 2, (20, 21), Some(wider)), 2, 1)],
    )
    .await;
    let sql = format!("SELECT id, score FROM \"{schema}\".items ORDER BY id");
    let got: Vec<(i64, Option<i64>)> = sqlx::query_as(&sql).fetch_all(&pool).await.unwrap();
    assert_eq!(got, vec![(1, None), (2, Some(7))]);

    // An int32 column widens to bigint when events declare int64.
    let declared = |ty: &str, v: i64, version: u64| {
        json!({
            "schema": {"type": "struct", "fields": [
                {"field": "after", "type": "struct", "optional": true, "fields": [
                    {"field": "id", "type": "int64", "optional": false},
                    {"field": "qty", "type": ty, "optional": true}]}]},
            "payload": {"op": "c", "source": {"schema": "public", "table": "items", "lsn": version},
                        "after": {"id": 3, "qty": v}}
        })
    };
    write(&mut sink, &[record(&declared("int32", 5, 30), 3, 2)]).await;
    write(
        &mut sink,
        &[record(&declared("int64", 5_000_000_000, 40), 3, 3)],
    )
    .await;
    let sql = format!(
        "SELECT qty::text, format_type(atttypid, atttypmod) FROM \"{schema}\".items, pg_attribute WHERE attrelid = '\"{schema}\".items'::regclass AND attname = 'qty' AND id = 3"
    );
    let (qty, ty): (String, String) = sqlx::query_as(&sql).fetch_one(&pool).await.unwrap();
    assert_eq!((qty.as_str(), ty.as_str()), ("5000000000", "bigint"));
}

#[tokio::test]
async fn a_bad_value_fails_the_batch_permanently() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    write(
        &mut sink,
        &[record(
            &event("c", 1, (10, 11), Some(json!({"id": 1, "n": 5}))),
            1,
            0,
        )],
    )
    .await;
    // `n` is a bigint column now; text that is not a number cannot go in.
    let bad = record(
        &event("u", 2, (20, 21), Some(json!({"id": 2, "n": "five"}))),
        2,
        1,
    );
    let good = record(
        &event("u", 3, (20, 21), Some(json!({"id": 3, "n": 6}))),
        3,
        2,
    );
    let err = sink.write(&[good.clone(), bad.clone()]).await.unwrap_err();
    assert!(matches!(err, SinkError::Permanent { .. }), "{err:?}");
    // Nothing of the failed batch was applied; alone, the good record goes in.
    write(&mut sink, &[good]).await;
    let sql = format!("SELECT id FROM \"{schema}\".items ORDER BY id");
    let ids: Vec<i64> = sqlx::query_scalar(&sql).fetch_all(&pool).await.unwrap();
    assert_eq!(ids, vec![1, 3]);
    assert!(matches!(
        sink.write(&[bad]).await,
        Err(SinkError::Permanent { .. })
    ));
}

/// Under the `printable` identifier policy odd names are accepted and
/// always quoted: nothing in them runs; control characters are refused.
#[tokio::test]
async fn printable_identifiers_are_quoted_or_refused() {
    let (_, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    let mut cfg = PostgresSinkConfig::with_url(pg_url());
    cfg.target_schema = Some(schema.clone());
    cfg.meta_schema = format!("{schema}_meta");
    cfg.identifiers = sinkfleet_core::IdentifierPolicy::Printable;
    let mut sink = PostgresSink::new(cfg).unwrap();
    let v = json!({"op": "c", "source": {"schema": "public", "table": "x\"; DROP TABLE y; --", "lsn": 5},
                   "after": {"id": 1, "we\"ird col": "ok"}});
    write(&mut sink, &[record(&v, 1, 0)]).await;
    let sql = format!("SELECT \"we\"\"ird col\" FROM \"{schema}\".\"x\"\"; DROP TABLE y; --\"");
    let got: String = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
    assert_eq!(got, "ok");
    let v = json!({"op": "c", "source": {"schema": "public", "table": "t", "lsn": 5},
                   "after": {"id": 1, "bad\ncolumn": 1}});
    assert!(matches!(
        sink.write(&[record(&v, 1, 1)]).await,
        Err(SinkError::Permanent { .. })
    ));
}

#[tokio::test]
async fn truncate_is_versioned() {
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let (mut sink, pool, schema) = setup(mode, WritePath::Unnest).await;
        write(
            &mut sink,
            &[
                record(&event("c", 1, (10, 11), Some(item(1, "a", "n"))), 1, 0),
                record(&event("c", 2, (30, 31), Some(item(2, "b", "n"))), 2, 1),
            ],
        )
        .await;
        let t = json!({"op": "t", "source": {"schema": "public", "table": "items", "lsn": 21,
                       "sequence": "[\"20\",\"21\"]"}});
        let change = decode(
            None,
            Some(t.to_string().as_bytes()),
            2,
            &DecodeOptions::default(),
        )
        .unwrap()
        .unwrap();
        let rec = SinkRecord {
            position: Position {
                topic: Arc::from("items"),
                partition: 0,
                offset: 2,
            },
            change,
        };
        write(&mut sink, &[rec]).await;
        // A late insert older than the truncate stays out.
        write(
            &mut sink,
            &[record(
                &event("c", 3, (15, 16), Some(item(3, "late", "n"))),
                3,
                3,
            )],
        )
        .await;
        // Row 2 (committed after the truncate's LSN) survives.
        assert_eq!(
            rows(&pool, &schema).await,
            vec![(2, Some("b".into()), Some("n".into()))],
            "{mode:?}"
        );
    }
}

// ---- Real Debezium connector output (../shared/fixtures/debezium) -------

fn fixture(name: &str) -> Option<Vec<u8>> {
    sinkfleet_testkit::fixtures::debezium(name)
}

fn fixture_record(
    value: &[u8],
    key: Option<&[u8]>,
    offset: i64,
    key_columns: &[&str],
) -> SinkRecord {
    let mut opts = DecodeOptions::default();
    if !key_columns.is_empty() {
        opts.key_columns.insert(
            "*".into(),
            key_columns.iter().map(|s| s.to_string()).collect(),
        );
    }
    SinkRecord {
        position: Position {
            topic: Arc::from("fixtures"),
            partition: 0,
            offset,
        },
        change: decode(key, Some(value), offset, &opts).unwrap().unwrap(),
    }
}

async fn query_text(pool: &PgPool, sql: String) -> Vec<Vec<Option<String>>> {
    sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<Option<String>, _>(i))
                .collect()
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[tokio::test]
async fn debezium_fixtures_reach_their_documented_state() {
    let names = [
        "01-read-snapshot-with-schema.value.json",
        "01-read-snapshot-with-schema.key.json",
        "02-read-snapshot-no-schema.value.json",
        "03-update-full-before-no-schema.value.json",
        "04-create-with-schema.value.json",
        "05-update-full-before-with-schema.value.json",
        "06-delete-full-before-with-schema.value.json",
        "19-read-decimal-microtimestamp-with-schema.value.json",
        "20-read-array-enum-decimal-with-schema.value.json",
        "22-read-microtimestamp-date-microtime-with-schema.value.json",
        "25-create-with-schema-docs-3x.value.json",
        "26-truncate-docs-payload-only.value.json",
    ];
    let mut f = std::collections::HashMap::new();
    for n in names {
        let Some(bytes) = fixture(n) else { return };
        f.insert(n, bytes);
    }
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    let mut offset = 0;
    let mut next = || {
        offset += 1;
        offset
    };
    let batch = vec![
        fixture_record(&f[names[0]], Some(&f[names[1]]), next(), &[]),
        fixture_record(&f[names[2]], None, next(), &["id"]),
        fixture_record(&f[names[3]], None, next(), &["id"]),
    ];
    write(&mut sink, &batch).await;
    // 04 → 05 → 06 one batch each: create, update, delete.
    for n in &names[4..7] {
        write(&mut sink, &[fixture_record(&f[n], None, next(), &["id"])]).await;
    }
    write(
        &mut sink,
        &[fixture_record(&f[names[7]], None, next(), &["payment_id"])],
    )
    .await;
    write(
        &mut sink,
        &[fixture_record(&f[names[8]], None, next(), &["film_id"])],
    )
    .await;
    write(
        &mut sink,
        &[fixture_record(&f[names[9]], None, next(), &["id"])],
    )
    .await;

    let q = |sql: &str| sql.replace("{s}", &format!("\"{schema}\""));
    assert_eq!(
        query_text(
            &pool,
            q("SELECT id::text, first_name, last_name, email FROM {s}.customers")
        )
        .await,
        vec![vec![
            s("1002"),
            s("George"),
            s("Bailey"),
            s("gbailey@foobar.com")
        ]]
    );
    assert_eq!(
        query_text(&pool, q("SELECT id::text, name, description, weight::text FROM {s}.products WHERE NOT __sinkfleet_deleted ORDER BY id")).await,
        vec![vec![s("106"), s("hammer"), s("18oz carpenter hammer"), s("1")]],
        "02 then 03 updates 106; 04→05→06 leaves 111 deleted"
    );
    assert_eq!(
        query_text(
            &pool,
            q("SELECT amount::text, payment_date::text FROM {s}.payment WHERE payment_id = 32098")
        )
        .await,
        vec![vec![s("2.99"), s("2007-05-14 13:44:29.996577")]]
    );
    assert_eq!(
        query_text(&pool, q("SELECT rental_rate::text, replacement_cost::text, rating, last_update::text, special_features::text FROM {s}.film")).await,
        vec![vec![s("4.99"), s("24.99"), s("G"), s("2013-05-26 14:50:58.951"), s("{Trailers,Commentaries}")]]
    );
    assert_eq!(
        query_text(&pool, q("SELECT ts::text, d::text, t::text FROM {s}.t")).await,
        vec![vec![
            s("2022-10-14 23:55:31.98936"),
            s("2022-10-14"),
            s("23:55:31.98936")
        ]]
    );

    // 25 creates public.customers row 1 (mapped into the same schema as 01's
    // inventory.customers here), 26 truncates it.
    write(
        &mut sink,
        &[fixture_record(&f[names[10]], None, next(), &["id"])],
    )
    .await;
    assert_eq!(
        query_text(
            &pool,
            q("SELECT first_name FROM {s}.customers WHERE id = 1")
        )
        .await,
        vec![vec![s("Anne")]]
    );
    write(
        &mut sink,
        &[fixture_record(&f[names[11]], None, next(), &[])],
    )
    .await;
    assert_eq!(
        query_text(
            &pool,
            q("SELECT id::text FROM {s}.customers WHERE NOT __sinkfleet_deleted ORDER BY id")
        )
        .await,
        Vec::<Vec<Option<String>>>::new(),
        "26 truncates customers (01's row 1002 has an older LSN than the truncate, so it goes too)"
    );
}

#[tokio::test]
async fn schemaless_fixtures_into_a_typed_table() {
    let names = [
        "07-create-no-schema.value.json",
        "08-update-before-null-no-schema.value.json",
        "09-delete-default-identity-no-schema.value.json",
        "10-update-full-before-no-schema.value.json",
        "21-delete-composite-pk-default-identity-with-schema.value.json",
    ];
    let mut f = std::collections::HashMap::new();
    for n in names {
        let Some(bytes) = fixture(n) else { return };
        f.insert(n, bytes);
    }
    let (mut sink, pool, schema) = setup(DeleteMode::Hard, WritePath::Unnest).await;
    // Schema-less events cannot say that `date` is a date: the operator
    // creates the table with the right types, and the sink converts
    // Debezium's epoch-day integers into it.
    let ddl = format!(
        "CREATE SCHEMA \"{schema}\";
         CREATE TABLE \"{schema}\".uk_price_paid (id bigint PRIMARY KEY, price bigint, date date,
           postcode1 text, postcode2 text, type text, is_new smallint, duration text, addr1 text, addr2 text,
           street text, locality text, town text, district text, county text);
         INSERT INTO \"{schema}\".uk_price_paid (id, price) VALUES (50419765, 1);
         CREATE TABLE \"{schema}\".film_actor (actor_id smallint, film_id smallint, last_update timestamp,
           PRIMARY KEY (actor_id, film_id));
         INSERT INTO \"{schema}\".film_actor VALUES (1, 23, now());"
    );
    sqlx::raw_sql(&ddl).execute(&pool).await.unwrap();
    for (i, n) in names[..4].iter().enumerate() {
        write(&mut sink, &[fixture_record(&f[n], None, i as i64, &["id"])]).await;
    }
    write(
        &mut sink,
        &[fixture_record(
            &f[names[4]],
            None,
            9,
            &["actor_id", "film_id"],
        )],
    )
    .await;
    let q = |sql: &str| sql.replace("{s}", &format!("\"{schema}\""));
    assert_eq!(
        query_text(&pool, q("SELECT id::text, price::text, date::text, type, is_new::text, addr2, locality, town FROM {s}.uk_price_paid ORDER BY id")).await,
        vec![
            vec![s("41794967"), s("205000"), s("2013-08-15"), s("detached"), s("1"), s(""), s(""), s("LEE-ON-THE-SOLENT")],
            vec![s("50658675"), s("227500"), s("2002-08-06"), s("terraced"), s("0"), s(""), s("SALISBURY"), s("SALISBURY")],
            vec![s("55507462"), s("247500"), s("2007-06-29"), s("semi-detached"), s("0"), s(""), s("WOLVERTON MILL"), s("MILTON KEYNES")],
        ],
        "09 deletes 50419765 by key only"
    );
    assert_eq!(
        query_text(&pool, q("SELECT actor_id::text FROM {s}.film_actor"))
            .await
            .len(),
        0
    );
}

/// Every Debezium logical type lands in a fitting Postgres column with its
/// exact value (created from the event schema).
#[tokio::test]
async fn logical_types_round_trip_into_created_columns() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    let f = |name: &str, ty: &str, logical: Option<&str>| {
        let mut v = json!({"field": name, "type": ty, "optional": true});
        if let Some(l) = logical {
            v["name"] = json!(l);
        }
        v
    };
    let mut amount = f(
        "amount",
        "bytes",
        Some("org.apache.kafka.connect.data.Decimal"),
    );
    amount["parameters"] = json!({"scale": "3", "connect.decimal.precision": "10"});
    let fields = json!([
        {"field": "id", "type": "int64", "optional": false},
        f("v", "struct", Some("io.debezium.data.VariableScaleDecimal")),
        amount,
        f("at", "string", Some("io.debezium.time.ZonedTimestamp")),
        f("tt", "string", Some("io.debezium.time.ZonedTime")),
        f("u", "string", Some("io.debezium.data.Uuid")),
        f("doc", "string", Some("io.debezium.data.Json")),
        f("raw", "bytes", None),
        f("old", "int64", Some("io.debezium.time.NanoTimestamp")),
        f("ok", "boolean", None),
        f("ratio", "float32", None),
    ]);
    let value = json!({
        "schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "optional": true, "fields": fields}]},
        "payload": {"op": "r", "source": {"schema": "public", "table": "items", "lsn": 7},
            "after": {"id": 1, "v": {"scale": 4, "value": "/zM="}, "amount": "/////w==",
                      "at": "2024-02-29T23:59:59.123456Z", "tt": "10:11:12.5+02:00",
                      "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "doc": "{\"k\": [1, 2]}",
                      "raw": "AAH/", "old": -1_000_001_000i64, "ok": true, "ratio": 0.5}}
    });
    write(&mut sink, &[record(&value, 1, 0)]).await;
    let got = query_text(
        &pool,
        format!(
            "SELECT v::text, amount::text, (at AT TIME ZONE 'UTC')::text, tt::text, u::text, doc->>'k', encode(raw, 'hex'),
                    old::text, ok::text, ratio::text,
                    format_type(a.atttypid, a.atttypmod)
               FROM \"{schema}\".items, pg_attribute a
              WHERE a.attrelid = '\"{schema}\".items'::regclass AND a.attname = 'amount'"
        ),
    )
    .await;
    assert_eq!(
        got,
        vec![vec![
            s("-0.0205"),                    // VariableScaleDecimal: 0xFF33 = -205, scale 4
            s("-0.001"),                     // Decimal: -1 at scale 3
            s("2024-02-29 23:59:59.123456"), // ZonedTimestamp
            s("10:11:12.5+02"),              // ZonedTime
            s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            s("[1, 2]"),
            s("0001ff"),
            s("1969-12-31 23:59:58.999999"), // -1.000001 s, from nanoseconds (finer digits are refused)
            s("true"),
            s("0.5"),
            s("numeric(10,3)"),
        ]]
    );
}

/// One batch holding events from before and after an `ALTER COLUMN TYPE`
/// (numeric(12,2) → numeric(14,3)): the column is widened, no value rounded.
#[tokio::test]
async fn a_batch_straddling_a_type_change_widens_the_column() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    let event = |id: i64, lsn: u64, precision: &str, scale: &str, unscaled: &str| {
        json!({
            "schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "optional": true, "fields": [
                {"field": "id", "type": "int64", "optional": false},
                {"field": "amount", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
                 "parameters": {"scale": scale, "connect.decimal.precision": precision}}]}]},
            "payload": {"op": "u", "source": {"schema": "public", "table": "items", "lsn": lsn},
                        "after": {"id": id, "amount": unscaled}}
        })
    };
    write(&mut sink, &[record(&event(1, 10, "12", "2", "BNI="), 1, 0)]).await; // 12.34
    write(
        &mut sink,
        &[
            record(&event(2, 20, "12", "2", "BNI="), 2, 1), // 12.34, old type
            record(&event(1, 30, "14", "3", "MDk="), 1, 2), // 12.345, new type
        ],
    )
    .await;
    let got = query_text(
        &pool,
        format!("SELECT amount::text FROM \"{schema}\".items ORDER BY id"),
    )
    .await;
    assert_eq!(got, vec![vec![s("12.345")], vec![s("12.340")]]);
}

/// `(column, type)` of `<schema>.items`, in table order.
async fn columns(pool: &PgPool, schema: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
          WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
    )
    .bind(format!("\"{schema}\".items"))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A record that cannot be applied leaves no trace: the column its extra
/// field asked for and the widening its key asked for roll back with it,
/// whatever else was in its batch. (The runtime then splits the batch and
/// dead-letters the record alone.)
#[tokio::test]
async fn a_refused_record_adds_and_widens_nothing() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{schema}\";
         CREATE TABLE \"{schema}\".items (id integer PRIMARY KEY, amount numeric(5,2),
             __sinkfleet_version numeric(39,0) NOT NULL DEFAULT 0,
             __sinkfleet_deleted boolean NOT NULL DEFAULT false)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let before = columns(&pool, &schema).await;
    let good = record(
        &event("c", 1, (10, 11), Some(json!({"id": 1, "amount": 1.5}))),
        1,
        0,
    );
    // A key that needs bigint, an extra field, and an amount no numeric holds.
    let bad = record(
        &event(
            "c",
            3_000_000_000,
            (20, 21),
            Some(json!({"id": 3_000_000_000_i64, "amount": "abc", "extra": 7})),
        ),
        3_000_000_000,
        1,
    );
    for batch in [vec![good.clone(), bad.clone()], vec![bad.clone()]] {
        match sink.write(&batch).await {
            Err(SinkError::Permanent { message, .. }) => {
                assert!(message.contains("22P02"), "{message}")
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
        assert_eq!(columns(&pool, &schema).await, before, "no DDL stayed");
    }
    write(&mut sink, &[good]).await;
    assert_eq!(columns(&pool, &schema).await, before);
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".items"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Every record's key is checked, wherever it sits in its batch: events
/// keyed by other columns than the table's key are refused, never applied.
#[tokio::test]
async fn every_record_key_must_be_the_table_key() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    write(
        &mut sink,
        &[record(
            &event("c", 1, (1, 1), Some(item(1, "a", "x"))),
            1,
            0,
        )],
    )
    .await;
    let odd = |offset: i64| {
        let mut r = record(&event("c", 2, (5, 5), Some(item(2, "odd", "y"))), 2, offset);
        r.change.key = sinkfleet_core::Row::default();
        r.change
            .key
            .set("name", sinkfleet_core::Value::Text("odd".into()));
        r
    };
    let fine = |id: i64, offset: i64| {
        record(
            &event("c", id, (6, 6), Some(item(id, "fine", "z"))),
            id,
            offset,
        )
    };
    for batch in [
        vec![odd(1), fine(3, 2)],
        vec![fine(3, 2), fine(4, 3), odd(4)],
        vec![odd(1)],
    ] {
        match sink.write(&batch).await {
            Err(SinkError::Permanent { message, .. }) => {
                assert!(message.contains("keyed by"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(rows(&pool, &schema).await.len(), 1, "nothing was applied");
}

/// Names from events pass the identifier policy or the record is refused
/// (class `schema`, so it is dead-lettered): a hostile table name is not
/// created just because it can be quoted, and a name longer than Postgres
/// keeps is never cut. `printable` accepts unusual but honest names.
#[tokio::test]
async fn event_names_outside_the_identifier_policy_are_refused() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    let named = |table: &str, column: &str| {
        let mut r = record(
            &event("c", 1, (1, 1), Some(json!({"id": 1, "v": "x"}))),
            1,
            0,
        );
        r.change.table.table = table.to_owned();
        if let Some(row) = r.change.row.as_mut() {
            row.columns.retain(|(n, _)| &**n != "v");
            row.set(column, sinkfleet_core::Value::Text("x".into()));
        }
        r
    };
    let long = "t".repeat(64);
    for (table, column) in [
        ("x\"; CREATE TABLE pwned (); --", "v"),
        (long.as_str(), "v"),
        ("items", "first name"),
    ] {
        match sink.write(&[named(table, column)]).await {
            Err(SinkError::Permanent { class, message }) => {
                assert_eq!(class, sinkfleet_core::ErrorClass::Schema);
                assert!(message.contains("identifier policy"), "{message}");
            }
            other => panic!("{table}.{column}: expected a refusal, got {other:?}"),
        }
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0, "nothing was created");

    let mut cfg = PostgresSinkConfig::with_url(pg_url());
    cfg.target_schema = Some(schema.clone());
    cfg.meta_schema = format!("{schema}_meta");
    cfg.identifiers = sinkfleet_core::IdentifierPolicy::Printable;
    let mut printable = PostgresSink::new(cfg).unwrap();
    write(&mut printable, &[named("items", "first name")]).await;
    assert!(
        printable
            .write(&[named(&long, "v")])
            .await
            .is_err_and(|e| !e.is_retryable()),
        "too long under any policy"
    );
}

/// Schema-less bytes (Debezium's base64 text) into a pre-created `bytea`
/// column are stored as the bytes they encode, not as the ASCII of the
/// base64; text that is not base64 is refused rather than reinterpreted.
#[tokio::test]
async fn schemaless_base64_into_bytea_is_stored_as_bytes() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{schema}\";
         CREATE TABLE \"{schema}\".items (id bigint PRIMARY KEY, payload bytea,
             __sinkfleet_version numeric(39,0) NOT NULL DEFAULT 0,
             __sinkfleet_deleted boolean NOT NULL DEFAULT false)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    write(
        &mut sink,
        &[record(
            &event(
                "c",
                1,
                (1, 1),
                Some(json!({"id": 1, "payload": "3q2+7w=="})),
            ),
            1,
            0,
        )],
    )
    .await;
    let stored: Vec<u8> = sqlx::query_scalar(&format!(
        "SELECT payload FROM \"{schema}\".items WHERE id = 1"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, vec![0xde, 0xad, 0xbe, 0xef]);
    let bad = record(
        &event(
            "c",
            2,
            (2, 2),
            Some(json!({"id": 2, "payload": "not base64!"})),
        ),
        2,
        1,
    );
    match sink.write(&[bad]).await {
        Err(SinkError::Permanent { message, .. }) => {
            assert!(
                message.contains("payload") && message.contains("base64"),
                "{message}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Schema-less epoch integers into pre-created temporal columns take
/// Debezium's adaptive unit of the column's precision (milliseconds for
/// precision 0-3, microseconds for 4-6); a value the column would round
/// after that conversion is refused, and so is an integer for a zoned
/// column (the unit is then declared in `decode.columns`).
#[tokio::test]
async fn schemaless_epoch_integers_take_the_unit_of_the_columns_precision() {
    let (mut sink, pool, schema) = setup(DeleteMode::Soft, WritePath::Unnest).await;
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{schema}\";
         CREATE TABLE \"{schema}\".items (id bigint PRIMARY KEY, t0 timestamp(0), t3 timestamp(3),
             t6 timestamp, tm3 time(3), tz timestamptz,
             __sinkfleet_version numeric(39,0) NOT NULL DEFAULT 0,
             __sinkfleet_deleted boolean NOT NULL DEFAULT false)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let row = |id: i64, after: serde_json::Value, offset: i64| {
        record(
            &event("c", id, (id as u64, id as u64), Some(after)),
            id,
            offset,
        )
    };
    write(
        &mut sink,
        &[row(
            1,
            json!({"id": 1, "t0": 1_321_009_871_000i64, "t3": 1_321_009_871_123i64,
                   "t6": 1_321_009_871_123_456i64, "tm3": 49_890_123}),
            0,
        )],
    )
    .await;
    assert_eq!(
        query_text(
            &pool,
            format!("SELECT t0::text, t3::text, t6::text, tm3::text FROM \"{schema}\".items")
        )
        .await,
        vec![vec![
            s("2011-11-11 11:11:11"),
            s("2011-11-11 11:11:11.123"),
            s("2011-11-11 11:11:11.123456"),
            s("13:51:30.123"),
        ]]
    );
    for (column, value, said) in [
        ("t0", json!(1_321_009_871_871i64), "round"),
        ("tz", json!(1_321_009_871_000i64), "decode.columns"),
    ] {
        let refused = row(2, json!({"id": 2, column: value}), 1);
        match sink.write(&[refused]).await {
            Err(SinkError::Permanent { message, .. }) => {
                assert!(
                    message.contains(column) && message.contains(said),
                    "{message}"
                )
            }
            other => panic!("{column}: expected a refusal, got {other:?}"),
        }
    }
}

#[path = "postgres/history.rs"]
mod history;
#[path = "postgres/offsets.rs"]
mod offsets;

/// Every binary form the COPY path sends is the server's own: the bytes
/// of `<type>send(<literal>)` for the same value.
#[tokio::test]
async fn binary_forms_are_the_servers_own() {
    use chrono::{NaiveDate, NaiveDateTime};
    use sinkfleet_core::Value as V;
    use sinkfleet_sink_postgres::binary::{Refusal, encode_value};
    let pool = PgPool::connect(&pg_url()).await.unwrap();
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let at = |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let text = |s: &str| s.to_owned();
    // (target type, send function, literal, value)
    let cases: Vec<(&str, &str, &str, V)> = vec![
        ("smallint", "int2send", "-32768", V::Int(-32768)),
        ("integer", "int4send", "2147483647", V::Int(2_147_483_647)),
        (
            "bigint",
            "int8send",
            "-9223372036854775808",
            V::Int(i64::MIN),
        ),
        ("double precision", "float8send", "1.1", V::Float(1.1)),
        ("double precision", "float8send", "-0", V::Float(-0.0)),
        (
            "double precision",
            "float8send",
            "-Infinity",
            V::Float(f64::NEG_INFINITY),
        ),
        ("double precision", "float8send", "NaN", V::Float(f64::NAN)),
        ("boolean", "boolsend", "true", V::Bool(true)),
        (
            "numeric",
            "numeric_send",
            "12345.678",
            V::Decimal(text("12345.678")),
        ),
        (
            "numeric",
            "numeric_send",
            "-12.50",
            V::Decimal(text("-12.50")),
        ),
        (
            "numeric",
            "numeric_send",
            "0.0001",
            V::Decimal(text("0.0001")),
        ),
        (
            "numeric",
            "numeric_send",
            "-0.00",
            V::Decimal(text("-0.00")),
        ),
        (
            "numeric",
            "numeric_send",
            "100000000",
            V::Decimal(text("100000000")),
        ),
        (
            "numeric",
            "numeric_send",
            "123456789012345678901234567890.000000000000000000000000000001",
            V::Decimal(text(
                "123456789012345678901234567890.000000000000000000000000000001",
            )),
        ),
        ("numeric", "numeric_send", "NaN", V::Decimal(text("NaN"))),
        (
            "numeric",
            "numeric_send",
            "-Infinity",
            V::Decimal(text("-Infinity")),
        ),
        ("numeric", "numeric_send", "42", V::Int(42)),
        (
            "bytea",
            "byteasend",
            "\\x00ff10",
            V::Bytes(vec![0, 255, 16]),
        ),
        ("bytea", "byteasend", "\\x00ff10", V::Text(text("AP8Q"))),
        (
            "date",
            "date_send",
            "2024-02-29",
            V::Date(date(2024, 2, 29)),
        ),
        (
            "date",
            "date_send",
            "0044-03-15 BC",
            V::Date(date(-43, 3, 15)),
        ),
        ("date", "date_send", "1970-01-11", V::Int(10)),
        (
            "time",
            "time_send",
            "23:59:59.999999",
            V::Time(at("2000-01-01 23:59:59.999999").time()),
        ),
        (
            "timestamp",
            "timestamp_send",
            "1999-12-31 23:59:59.5",
            V::Timestamp(at("1999-12-31 23:59:59.5")),
        ),
        (
            "timestamp",
            "timestamp_send",
            "0044-03-15 10:00:00 BC",
            V::Timestamp(at("-0043-03-15 10:00:00.0")),
        ),
        (
            "timestamp",
            "timestamp_send",
            "1970-01-01 00:00:01.5",
            V::Int(1_500_000),
        ),
        (
            "timestamp with time zone",
            "timestamptz_send",
            "2024-01-01 00:00:00.123456+02",
            V::TimestampTz(text("2024-01-01T00:00:00.123456+02:00")),
        ),
        (
            "timestamp with time zone",
            "timestamptz_send",
            "0044-03-15 10:00:00+00 BC",
            V::TimestampTz(text("-0043-03-15T10:00:00Z")),
        ),
        (
            "uuid",
            "uuid_send",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            V::Uuid(text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        ),
        ("text", "textsend", "zoë\t\\", V::Text(text("zoë\t\\"))),
    ];
    for (ty, send, literal, value) in &cases {
        let sql = format!("SELECT {send}($1::{ty})");
        let mut server: Vec<u8> = sqlx::query_scalar(&sql)
            .bind(*literal)
            .fetch_one(&pool)
            .await
            .unwrap();
        if literal.ends_with("Infinity") && *send == "numeric_send" {
            // The server sends its header's bits as the display scale of
            // an infinity (32); its receiver ignores the scale of one.
            server[6..8].copy_from_slice(&[0, 0]);
        }
        let ours = encode_value(value, ty).unwrap().unwrap();
        assert_eq!(ours, server, "{ty} {literal}");
    }
    // No binary form: the column travels as text for the server to read.
    assert_eq!(
        encode_value(&V::Decimal(text("1E+5")), "numeric"),
        Err(Refusal::NotBinary)
    );
    assert_eq!(
        encode_value(
            &V::Uuid(text("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}")),
            "uuid"
        ),
        Err(Refusal::NotBinary)
    );
    // Refused as the text paths refuse it.
    assert!(matches!(
        encode_value(&V::Int(70_000), "smallint"),
        Err(Refusal::Refused(_))
    ));
    assert!(matches!(
        encode_value(&V::Decimal(text("1.234")), "numeric(5,2)"),
        Err(Refusal::Refused(_))
    ));
}

/// Array columns of types with a modifier (`numeric(10,2)[]`,
/// `timestamp(3)[]`) travel as text on every path, even when every value
/// of the statement is NULL (there is then no value to choose a form by).
#[tokio::test]
async fn null_arrays_of_types_with_modifiers_are_stored() {
    for path in [WritePath::Unnest, WritePath::Copy] {
        let (mut sink, pool, schema) = setup(DeleteMode::Soft, path).await;
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\".items (id bigint PRIMARY KEY, amounts numeric(10,2)[],
                 seen timestamp(3)[],
                 __sinkfleet_version numeric(39,0) NOT NULL DEFAULT 0,
                 __sinkfleet_deleted boolean NOT NULL DEFAULT false)"
        ))
        .execute(&pool)
        .await
        .unwrap();
        let row = json!({"id": 1, "amounts": null, "seen": null});
        write(
            &mut sink,
            &[record(&event("c", 1, (1, 1), Some(row)), 1, 0)],
        )
        .await;
        let nulls: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{schema}\".items WHERE id = 1 AND amounts IS NULL AND seen IS NULL"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(nulls, 1, "{path:?}");
    }
}

/// A schema-less integer into a pre-created floating-point column is
/// stored only if the column's type holds it exactly; past 2^53 a `double
/// precision` would round it, so it is refused, naming the column.
#[tokio::test]
async fn schemaless_integers_a_float_column_would_round_are_refused() {
    for path in [WritePath::Unnest, WritePath::Copy] {
        let (mut sink, pool, schema) = setup(DeleteMode::Soft, path).await;
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\".items (id bigint PRIMARY KEY, x double precision,
                 __sinkfleet_version numeric(39,0) NOT NULL DEFAULT 0,
                 __sinkfleet_deleted boolean NOT NULL DEFAULT false)"
        ))
        .execute(&pool)
        .await
        .unwrap();
        let exact = json!({"id": 1, "x": 9_007_199_254_740_992_i64});
        write(
            &mut sink,
            &[record(&event("c", 1, (1, 1), Some(exact)), 1, 0)],
        )
        .await;
        // 2^53, compared as a double (its text form has 15 digits).
        let exact: bool = sqlx::query_scalar(&format!(
            "SELECT x = 2::float8 ^ 53 FROM \"{schema}\".items WHERE id = 1"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(exact, "{path:?}");
        let rounded = json!({"id": 2, "x": 9_007_199_254_740_993_i64});
        match sink
            .write(&[record(&event("c", 2, (2, 2), Some(rounded)), 2, 1)])
            .await
        {
            Err(SinkError::Permanent { message, .. }) => {
                assert!(message.contains(".x:"), "{path:?}: {message}")
            }
            other => panic!("{path:?}: expected a refusal, got {other:?}"),
        }
    }
}
