//! The ClickHouse sink against a real server (Debian's 18.16 here, started
//! by `scripts/services.sh start`; URL from `SINKFLEET_CLICKHOUSE_URL`).

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use sinkfleet_core::debezium::{DecodeOptions, Decoder};
use sinkfleet_core::{Position, Sink, SinkError, SinkRecord};
use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_sink_clickhouse::{ClickHouseSink, ClickHouseSinkConfig};
use sinkfleet_testkit::records::sink_records;
use sinkfleet_testkit::services::clickhouse_url;
use sinkfleet_testkit::workload::{self, Options};
use std::collections::BTreeMap;
use std::sync::Arc;

fn records(w: &workload::Workload) -> Vec<SinkRecord> {
    let mut decoder = Decoder::new(DecodeOptions::default());
    sink_records(&w.records, 0, &Arc::from("customers"), &mut decoder)
}

/// A sink writing into database `ch_<name>_<pid>`, and a client for it.
fn sink_in(name: &str) -> (String, Client, ClickHouseSink) {
    let db = format!("ch_{name}_{}", std::process::id());
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(db.clone());
    (
        db,
        Client::new(&cfg).unwrap(),
        ClickHouseSink::new(cfg).unwrap(),
    )
}

/// A decimal's text without trailing fraction zeros: `toString` writes
/// `12.340` on 18.16 and `12.34` on current servers, the same value of the
/// same `Decimal(P, 3)` column (tests assert the column's type apart).
fn decimal(text: &str) -> String {
    match text.split_once('.') {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => whole.to_owned(),
            fraction => format!("{whole}.{fraction}"),
        },
        None => text.to_owned(),
    }
}

async fn drop_database(client: &Client, db: &str) {
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}

/// A record at `offset` of topic `items`, decoded from a Debezium value.
fn decoded(key: &serde_json::Value, value: &serde_json::Value, offset: i64) -> SinkRecord {
    SinkRecord {
        position: Position {
            topic: Arc::from("items"),
            partition: 0,
            offset,
        },
        change: sinkfleet_core::debezium::decode(
            Some(key.to_string().as_bytes()),
            Some(value.to_string().as_bytes()),
            offset,
            &DecodeOptions::default(),
        )
        .unwrap()
        .unwrap(),
    }
}

/// `id → (name, balance, bio, tier)` of the current state.
async fn current(
    client: &Client,
    db: &str,
) -> BTreeMap<i64, (String, String, Option<String>, Option<String>)> {
    let sql = format!(
        "SELECT id, name, toString(balance) AS balance, bio, tier FROM `{db}`.customers FINAL
          WHERE __sinkfleet_deleted = 0 ORDER BY id FORMAT JSONEachRow"
    );
    let body = client.execute(&sql, None, &[]).await.unwrap();
    body.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["id"]
                .as_i64()
                .or_else(|| v["id"].as_str().and_then(|s| s.parse().ok()))
                .unwrap();
            (
                id,
                (
                    v["name"].as_str().unwrap().to_owned(),
                    decimal(v["balance"].as_str().unwrap()),
                    v["bio"].as_str().map(str::to_owned),
                    v["tier"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

/// Duplicates, a replayed range, older versions after newer, deletes then
/// stale inserts, TOAST-partial updates and a new column mid-stream:
/// `SELECT … FINAL` filtered on the deleted flag equals the expected state.
#[tokio::test]
async fn disorderly_stream_converges() {
    converges(true).await;
}

/// The same without schemas in the events: a partial row cannot be told
/// from one missing a column, so every absent column is read back.
/// (`balance` is then Debezium's unscaled decimal bytes, which no sink can
/// scale without the schema: compared as stored.)
#[tokio::test]
async fn disorderly_stream_without_schemas_converges() {
    converges(false).await;
}

async fn converges(with_schema: bool) {
    let db = format!("ch_{}_{with_schema}", std::process::id());
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(db.clone());
    let client = Client::new(&cfg).unwrap();
    client
        .features()
        .await
        .expect("ClickHouse not reachable: run scripts/services.sh start (or scripts/test.sh)");
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    let w = workload::generate(&Options {
        keys: 200,
        changes: 3_000,
        seed: 31,
        with_schema,
        ..Options::default()
    });
    for batch in records(&w).chunks(700) {
        sink.write(batch).await.unwrap();
    }
    let got = current(&client, &db).await;
    let want: BTreeMap<i64, (String, String, Option<String>, Option<String>)> = w
        .expected
        .iter()
        .map(|(id, r)| {
            let balance = match (with_schema, got.get(id)) {
                (false, Some((_, stored, _, _))) => stored.clone(),
                _ => decimal(&r.balance),
            };
            (
                *id,
                (r.name.clone(), balance, r.bio.clone(), r.tier.clone()),
            )
        })
        .collect();
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(k) != Some(v))
        .take(3)
        .collect();
    assert!(
        wrong.is_empty(),
        "first wrong rows: {wrong:?}; got {:?}",
        wrong.iter().map(|(k, _)| got.get(k)).collect::<Vec<_>>()
    );
    assert_eq!(got.len(), want.len());

    // A whole replay, as one large batch, changes nothing (also: a long
    // key list for partial rows, sent in the body, not the URL).
    sink.write(&records(&w)).await.unwrap();
    assert_eq!(current(&client, &db).await, got);
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}

fn event(op: &str, id: i64, commit: u64, name: Option<&str>) -> SinkRecord {
    let value = serde_json::json!({
        "op": op,
        "source": {"schema": "public", "table": "items", "lsn": commit, "sequence": format!("[\"{commit}\",\"{commit}\"]")},
        "after": name.map(|n| serde_json::json!({"id": id, "name": n})),
    });
    decoded(&serde_json::json!({ "id": id }), &value, commit as i64)
}

fn sequenced(id: i64, commit: Option<u64>, change: u64, name: &str) -> SinkRecord {
    let commit = commit.map_or("null".to_owned(), |c| format!("\"{c}\""));
    let value = serde_json::json!({
        "op": "u",
        "source": {"schema": "public", "table": "items", "lsn": change, "sequence": format!("[{commit},\"{change}\"]")},
        "after": {"id": id, "name": name},
    });
    decoded(&serde_json::json!({ "id": id }), &value, change as i64)
}

/// Two changes of a key with the same commit LSN (one transaction updating
/// the row twice; snapshot rows, whose commit LSN is null) differ only in
/// their change LSN. Where the version column cannot hold both (18.16 has
/// no UInt128), a replayed older change must still lose, and a table
/// created before the change LSN was kept gains its column.
#[tokio::test]
async fn changes_sharing_a_commit_lsn_keep_their_order() {
    let (db, client, mut sink) = sink_in("ties");
    client
        .execute(&format!("CREATE DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
    // The shape an earlier release created on old servers.
    let version_type = if sink_features(&client).await.uint128() {
        "UInt128"
    } else {
        "UInt64"
    };
    client
        .execute(
            &format!(
                "CREATE TABLE `{db}`.items (id Int64, name Nullable(String), __sinkfleet_version {version_type}, \
                 __sinkfleet_deleted UInt8) ENGINE = ReplacingMergeTree(__sinkfleet_version) ORDER BY (id)"
            ),
            None,
            &[],
        )
        .await
        .unwrap();
    sink.write(&[
        sequenced(1, Some(100), 102, "second"),
        sequenced(2, None, 60, "snapshot new"),
    ])
    .await
    .unwrap();
    // Replays of the older changes, each in its own insert.
    sink.write(&[sequenced(1, Some(100), 101, "first")])
        .await
        .unwrap();
    sink.write(&[sequenced(2, None, 50, "snapshot old")])
        .await
        .unwrap();
    // A newer change of the same transaction still applies.
    sink.write(&[
        sequenced(3, Some(100), 101, "a"),
        sequenced(3, Some(100), 103, "b"),
    ])
    .await
    .unwrap();
    sink.write(&[sequenced(3, Some(100), 104, "c")])
        .await
        .unwrap();
    assert_eq!(
        live_items(&client, &db).await,
        "{\"id\":1,\"name\":\"second\"}\n{\"id\":2,\"name\":\"snapshot new\"}\n{\"id\":3,\"name\":\"c\"}"
    );
    drop_database(&client, &db).await;
}

/// A writer remembers the versions it read and wrote, so a replay is
/// checked without reading the key back; a revoke makes it forget, since
/// the partition's next owner writes the key meanwhile. Here that owner
/// (another sink instance) stores a newer change of the same transaction,
/// and a late replay of an older one reaches the first writer after its
/// partition came back: it must lose. (On servers with `UInt128` the
/// engine alone keeps the newest.)
#[tokio::test]
async fn a_revoke_forgets_the_versions_a_writer_knew() {
    let (db, client, mut first) = sink_in("revoked");
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(db.clone());
    let mut next_owner = ClickHouseSink::new(cfg).unwrap();
    first
        .write(&[sequenced(1, Some(100), 102, "first owner")])
        .await
        .unwrap();
    next_owner
        .write(&[sequenced(1, Some(100), 105, "next owner")])
        .await
        .unwrap();
    first.revoke(&[(Arc::from("customers"), 0)]).await;
    first
        .write(&[sequenced(1, Some(100), 104, "late replay")])
        .await
        .unwrap();
    assert_eq!(
        live_items(&client, &db).await,
        "{\"id\":1,\"name\":\"next owner\"}"
    );
    drop_database(&client, &db).await;
}

async fn sink_features(client: &Client) -> sinkfleet_sink_clickhouse::client::ServerFeatures {
    client.features().await.unwrap()
}

/// A truncate tombstones every row older than it; a late older update of a
/// truncated row stays deleted; rows newer than the truncate survive. A row
/// the truncate never saw (its older insert arrives later, from another
/// partition, at another worker) stays out too: the table's floor.
#[tokio::test]
async fn truncate_is_versioned() {
    let db = format!("ch_trunc_{}", std::process::id());
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(db.clone());
    let client = Client::new(&cfg).unwrap();
    let mut other_worker = ClickHouseSink::new(cfg.clone()).unwrap();
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    sink.write(&[event("c", 1, 10, Some("a")), event("c", 2, 30, Some("b"))])
        .await
        .unwrap();
    let truncate = serde_json::json!({"op": "t", "source": {"schema": "public", "table": "items", "lsn": 20, "sequence": "[\"20\",\"20\"]"}});
    let change = sinkfleet_core::debezium::decode(
        None,
        Some(truncate.to_string().as_bytes()),
        0,
        &DecodeOptions::default(),
    )
    .unwrap()
    .unwrap();
    let t = SinkRecord {
        position: Position {
            topic: Arc::from("items"),
            partition: 0,
            offset: 2,
        },
        change,
    };
    sink.write(std::slice::from_ref(&t)).await.unwrap();
    sink.write(&[t]).await.unwrap(); // a replayed truncate changes nothing
    sink.write(&[event("u", 1, 15, Some("late"))])
        .await
        .unwrap();
    other_worker
        .write(&[
            event("c", 3, 12, Some("removed at the source")),
            event("c", 4, 25, Some("after")),
        ])
        .await
        .unwrap();
    assert_eq!(
        live_items(&client, &db).await,
        "{\"id\":2,\"name\":\"b\"}\n{\"id\":4,\"name\":\"after\"}"
    );
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}

/// `<db>.items` after `FINAL`, live rows only, as JSONEachRow `{id, name}` lines.
async fn live_items(client: &Client, db: &str) -> String {
    let sql = format!(
        "SELECT id, name FROM `{db}`.items FINAL WHERE __sinkfleet_deleted = 0 ORDER BY id FORMAT JSONEachRow"
    );
    client
        .execute(
            &sql,
            None,
            &[("output_format_json_quote_64bit_integers", "0".into())],
        )
        .await
        .unwrap()
        .trim()
        .to_owned()
}

/// A batch holding events from before and after an `ALTER COLUMN TYPE`
/// (numeric(12,2) → numeric(14,3)), and the same change arriving for an
/// existing table: the column is created or widened to hold every value,
/// and none is rounded.
#[tokio::test]
async fn a_batch_straddling_a_type_change_widens_the_column() {
    let db = format!("ch_widen_{}", std::process::id());
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(db.clone());
    let client = Client::new(&cfg).unwrap();
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    let event = |id: i64, lsn: u64, precision: &str, scale: &str, unscaled: &str| {
        let value = serde_json::json!({
            "schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "optional": true, "fields": [
                {"field": "id", "type": "int64", "optional": false},
                {"field": "amount", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
                 "parameters": {"scale": scale, "connect.decimal.precision": precision}}]}]},
            "payload": {"op": "u", "source": {"schema": "public", "table": "items", "lsn": lsn},
                        "after": {"id": id, "amount": unscaled}}
        });
        decoded(&serde_json::json!({ "id": id }), &value, lsn as i64)
    };
    // Created from a straddling batch: 12.34 (old type) and 12.345 (new).
    sink.write(&[
        event(1, 10, "12", "2", "BNI="),
        event(2, 20, "14", "3", "MDk="),
    ])
    .await
    .unwrap();
    // An old-type event after the widening still fits.
    sink.write(&[event(3, 30, "12", "2", "BNI=")])
        .await
        .unwrap();
    let sql = format!(
        "SELECT toString(amount) AS a, toTypeName(amount) AS t FROM `{db}`.items FINAL ORDER BY id FORMAT JSONEachRow"
    );
    let body = client.execute(&sql, None, &[]).await.unwrap();
    let amounts = |body: &str| -> Vec<(String, String)> {
        body.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let t = v["t"].as_str().unwrap_or_default().to_owned();
                (decimal(v["a"].as_str().unwrap()), t)
            })
            .collect()
    };
    let widened = "Nullable(Decimal(14, 3))".to_owned();
    assert_eq!(
        amounts(&body),
        [
            ("12.34".to_owned(), widened.clone()),
            ("12.345".to_owned(), widened.clone()),
            ("12.34".to_owned(), widened.clone()),
        ]
    );

    // Now a table created narrow (from one old-type event) meets the new type.
    let narrow_db = format!("ch_widen2_{}", std::process::id());
    let mut cfg = ClickHouseSinkConfig::with_url(clickhouse_url());
    cfg.database = Some(narrow_db.clone());
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    sink.write(&[event(1, 10, "12", "2", "BNI=")])
        .await
        .unwrap();
    sink.write(&[event(2, 20, "14", "3", "MDk=")])
        .await
        .unwrap();
    let sql = format!(
        "SELECT toString(amount) AS a, toTypeName(amount) AS t FROM `{narrow_db}`.items FINAL ORDER BY id FORMAT JSONEachRow"
    );
    let body = client.execute(&sql, None, &[]).await.unwrap();
    assert_eq!(
        amounts(&body),
        [
            ("12.34".to_owned(), widened.clone()),
            ("12.345".to_owned(), widened)
        ]
    );
    for d in [&db, &narrow_db] {
        client
            .execute(&format!("DROP DATABASE `{d}`"), None, &[])
            .await
            .unwrap();
    }
}

/// HTTPS to a server whose certificate comes from a private CA: refused
/// without `ca_cert` (the error names the certificate, and it is retryable:
/// nothing about the records is wrong), written with it.
#[tokio::test]
async fn https_with_a_private_ca() {
    let (url, ca) = sinkfleet_testkit::services::clickhouse_https();
    let db = format!("ch_tls_{}", std::process::id());
    let mut cfg = ClickHouseSinkConfig::with_url(url);
    cfg.database = Some(db.clone());

    let mut untrusting = ClickHouseSink::new(cfg.clone()).unwrap();
    let refused = untrusting
        .write(&[event("c", 1, 10, Some("a"))])
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, SinkError::Retryable(m) if m.to_lowercase().contains("certificate")),
        "{refused}"
    );

    cfg.ca_cert = Some(ca);
    let client = Client::new(&cfg).unwrap();
    let mut sink = ClickHouseSink::new(cfg).unwrap();
    sink.write(&[event("c", 1, 10, Some("a")), event("c", 2, 11, Some("b"))])
        .await
        .unwrap();
    assert_eq!(
        live_items(&client, &db).await,
        "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b\"}"
    );
    client
        .execute(&format!("DROP DATABASE `{db}`"), None, &[])
        .await
        .unwrap();
}

/// A record the server refuses leaves no trace, though ClickHouse DDL is
/// not transactional: the batch's values are checked against the planned
/// table before any column is added or widened. Keys are checked per record.
#[tokio::test]
async fn a_refused_record_adds_and_widens_nothing() {
    let (db, client, mut sink) = sink_in("refused");
    let declared = |id: i64, lsn: u64, after: serde_json::Value, key: serde_json::Value| {
        let value = serde_json::json!({
            "schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "optional": true, "fields": [
                {"field": "id", "type": "int64", "optional": false},
                {"field": "n", "type": "int16", "optional": true}]}]},
            "payload": {"op": "c", "source": {"schema": "public", "table": "items", "lsn": lsn},
                        "after": after}
        });
        decoded(&key, &value, id)
    };
    let columns = || async {
        client
            .execute(
                &format!("SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'items' FORMAT TSV"),
                None,
                &[],
            )
            .await
            .unwrap()
    };
    let id = |id: i64| serde_json::json!({ "id": id });
    sink.write(&[declared(1, 10, serde_json::json!({"id": 1, "n": 1}), id(1))])
        .await
        .unwrap();
    let before = columns().await;
    assert!(before.contains("n\tNullable(Int16)"), "{before}");

    // Schema-less (no declared type): an extra column, and text where the
    // table holds numbers. Planned: add `extra`; refused by the probe.
    let schemaless = |n: i64| {
        let value = serde_json::json!({"op": "c", "source": {"schema": "public", "table": "items", "lsn": 20 + n},
            "after": {"id": n, "n": "not a number", "extra": 7}});
        decoded(&id(n), &value, n)
    };
    let good = declared(2, 15, serde_json::json!({"id": 2, "n": 2}), id(2));
    let odd_key = declared(
        4,
        16,
        serde_json::json!({"id": 4, "n": 4}),
        serde_json::json!({"n": 4}),
    );
    for batch in [
        vec![good.clone(), schemaless(3)],
        vec![schemaless(3)],
        vec![good.clone(), odd_key.clone()],
    ] {
        match sink.write(&batch).await {
            Err(SinkError::Permanent { .. }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(columns().await, before, "no DDL stayed");
    }
    sink.write(&[good]).await.unwrap();
    assert_eq!(columns().await, before);
    let live = client
        .execute(
            &format!("SELECT id FROM `{db}`.items FINAL ORDER BY id FORMAT TSV"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(live, "1\n2\n");
    drop_database(&client, &db).await;
}

/// A database, table or column name from events outside the identifier
/// policy is refused before anything is created.
#[tokio::test]
async fn event_names_outside_the_identifier_policy_are_refused() {
    let (db, client, mut sink) = sink_in("names");
    let mut hostile = event("c", 1, 10, Some("a"));
    hostile.change.table.table = "x`; DROP DATABASE default; --".into();
    let mut spaced = event("c", 2, 11, Some("b"));
    if let Some(row) = spaced.change.row.as_mut() {
        row.set("first name", sinkfleet_core::Value::Text("b".into()));
    }
    for record in [hostile, spaced] {
        match sink.write(&[record]).await {
            Err(SinkError::Permanent { message, .. }) => {
                assert!(message.contains("identifier policy"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let exists = client
        .execute(
            &format!("SELECT count() FROM system.databases WHERE name = '{db}' FORMAT TSV"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(exists.trim(), "0", "nothing was created");
}

/// Values 18.16 has no exact type for are kept exactly or refused, never
/// changed: a sub-second timestamp (before 1970 too) is stored as its
/// exact text, NaN stays NaN, bytes that are not UTF-8 are stored as hex;
/// a date outside `Date`'s range is refused (ClickHouse would store
/// `0000-00-00`).
#[tokio::test]
async fn values_without_an_exact_type_are_kept_as_text_or_refused() {
    let (db, client, mut sink) = sink_in("exact");
    let value = |id: i64, days: i64| {
        serde_json::json!({
            "schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "optional": true, "fields": [
                {"field": "id", "type": "int64", "optional": false},
                {"field": "at", "type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp"},
                {"field": "day", "type": "int32", "optional": true, "name": "io.debezium.time.Date"},
                {"field": "ratio", "type": "float64", "optional": true},
                {"field": "raw", "type": "bytes", "optional": true}]}]},
            "payload": {"op": "c", "source": {"schema": "public", "table": "items", "lsn": 10 + id},
                        "after": {"id": id, "at": -1, "day": days, "ratio": "NaN", "raw": "3q0A/w=="}}
        })
    };
    let key = |id: i64| serde_json::json!({ "id": id });
    sink.write(&[decoded(&key(1), &value(1, 19_000), 1)])
        .await
        .unwrap();
    let stored = client
        .execute(
            &format!(
                "SELECT at, toTypeName(at) AS at_type, toString(day) AS day, toString(ratio) AS ratio, raw
                   FROM `{db}`.items FINAL FORMAT JSONEachRow"
            ),
            None,
            &[],
        )
        .await
        .unwrap();
    // A server with DateTime64 (20.1+) stores the timestamp exactly in it.
    let at_type = if sink_features(&client).await.datetime64() {
        "Nullable(DateTime64(6, 'UTC'))"
    } else {
        "Nullable(String)"
    };
    assert_eq!(
        stored.trim(),
        format!(
            r#"{{"at":"1969-12-31 23:59:59.999999","at_type":"{at_type}","day":"2022-01-08","ratio":"nan","raw":"dead00ff"}}"#
        )
    );
    // 1969-12-31: outside Date's range.
    match sink.write(&[decoded(&key(2), &value(2, -1), 2)]).await {
        Err(SinkError::Permanent { message, .. }) => {
            assert!(
                message.contains("day") && message.contains("Date range"),
                "{message}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop_database(&client, &db).await;
}

#[path = "clickhouse/history.rs"]
mod history;

/// A row completed from the stored one (an event without some of the
/// table's columns) keeps its calendar values: the stored `Date` and
/// timestamp come back as what writes them again, not as text a calendar
/// column refuses.
#[tokio::test]
async fn a_partial_row_keeps_the_stored_dates_and_timestamps() {
    let (db, client, mut sink) = sink_in("partial_dates");
    let full = serde_json::json!({
        "schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "optional": true, "fields": [
            {"field": "id", "type": "int64", "optional": false},
            {"field": "name", "type": "string", "optional": true},
            {"field": "at", "type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp"},
            {"field": "day", "type": "int32", "optional": true, "name": "io.debezium.time.Date"}]}]},
        "payload": {"op": "c", "source": {"schema": "public", "table": "items", "lsn": 10},
                    "after": {"id": 1, "name": "first", "at": 1_700_000_000_123_456i64, "day": 19_000}}
    });
    // Schema-less, and without `at` and `day`: they are read back.
    let partial = serde_json::json!({"op": "u", "source": {"schema": "public", "table": "items", "lsn": 20},
                                     "after": {"id": 1, "name": "second"}});
    let key = serde_json::json!({"id": 1});
    sink.write(&[decoded(&key, &full, 1)]).await.unwrap();
    sink.write(&[decoded(&key, &partial, 2)]).await.unwrap();
    let stored = client
        .execute(
            &format!(
                "SELECT name, toString(at) AS at, toString(day) AS day FROM `{db}`.items FINAL FORMAT JSONEachRow"
            ),
            None,
            &[],
        )
        .await
        .unwrap();
    // 18.16 keeps the timestamp as its exact text, a current server in
    // DateTime64(6): the same text either way.
    assert_eq!(
        stored.trim(),
        r#"{"name":"second","at":"2023-11-14 22:13:20.123456","day":"2022-01-08"}"#
    );
    drop_database(&client, &db).await;
}
