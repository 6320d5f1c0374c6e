//! The Parquet sink against a local directory and a real S3 server (moto,
//! started by `scripts/services.sh start`; endpoint from
//! `SINKFLEET_S3_ENDPOINT`). Files are read back with the parquet crate.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Int32Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sinkfleet_core::debezium::{DecodeOptions, Decoder};
use sinkfleet_core::{DurableRange, FlushMode, Position, Sink, SinkError, SinkRecord};
use sinkfleet_sink_s3_parquet::config::{S3Target, Target};
use sinkfleet_sink_s3_parquet::{ParquetSink, ParquetSinkConfig};
use sinkfleet_testkit::records::sink_records;
use sinkfleet_testkit::workload::{self, Options};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn s3_config(prefix: &str) -> ParquetSinkConfig {
    let mut cfg = ParquetSinkConfig::local("unused");
    let endpoint = sinkfleet_testkit::services::s3_endpoint();
    cfg.target = Target::S3(S3Target::compatible(
        "sinkfleet",
        &endpoint,
        "sinkfleet",
        "sinkfleet",
    ));
    cfg.prefix = prefix.into();
    cfg
}

fn local_config(name: &str) -> ParquetSinkConfig {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("parquet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ParquetSinkConfig::local(dir.to_str().unwrap())
}

fn records(w: &workload::Workload) -> Vec<SinkRecord> {
    let mut decoder = Decoder::new(DecodeOptions::default());
    sink_records(
        &w.records,
        0,
        &Arc::from("app.public.customers"),
        &mut decoder,
    )
}

/// Every object under `prefix`: name → (bytes, record batches).
async fn objects(
    store: &dyn ObjectStore,
    prefix: &str,
) -> BTreeMap<String, (Vec<u8>, Vec<RecordBatch>)> {
    let listing: Vec<_> = store
        .list((!prefix.is_empty()).then(|| Path::from(prefix)).as_ref())
        .try_collect()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for meta in listing {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        let batches = reader.collect::<Result<Vec<_>, _>>().unwrap();
        out.insert(meta.location.to_string(), (bytes.to_vec(), batches));
    }
    out
}

/// One stored row of `public.customers`, as a reader sees it.
#[derive(Debug, Clone)]
struct Stored {
    id: i64,
    version: (u64, u64),
    deleted: bool,
    offset: i64,
    columns: BTreeMap<&'static str, Option<String>>,
    unchanged: Vec<String>,
}

fn stored_rows(batches: &[RecordBatch]) -> Vec<Stored> {
    let mut out = Vec::new();
    for b in batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let id = col("id");
        let id = id.as_primitive::<Int64Type>();
        let commit = col("__commit_lsn");
        let change = col("__change_lsn");
        let deleted = col("__deleted");
        let offset = col("__offset");
        let unchanged = col("__unchanged");
        let unchanged = unchanged.as_list::<i32>();
        let balance = col("balance");
        let balance = balance.as_primitive::<Decimal128Type>();
        for i in 0..b.num_rows() {
            let text = |name: &str| {
                b.column_by_name(name)
                    .filter(|c| c.is_valid(i))
                    .map(|c| c.as_string::<i32>().value(i).to_owned())
            };
            let mut columns = BTreeMap::new();
            columns.insert("name", text("name"));
            columns.insert("bio", text("bio"));
            columns.insert("tier", text("tier"));
            columns.insert(
                "balance",
                balance.is_valid(i).then(|| {
                    let v = balance.value(i);
                    let sign = if v < 0 { "-" } else { "" };
                    format!("{sign}{}.{:02}", v.abs() / 100, v.abs() % 100)
                }),
            );
            out.push(Stored {
                id: id.value(i),
                version: (
                    commit.as_primitive::<UInt64Type>().value(i),
                    change.as_primitive::<UInt64Type>().value(i),
                ),
                deleted: deleted.as_boolean().value(i),
                offset: offset.as_primitive::<Int64Type>().value(i),
                columns,
                unchanged: if unchanged.is_valid(i) {
                    let names = unchanged.value(i);
                    let names = names.as_string::<i32>();
                    (0..names.len())
                        .map(|j| names.value(j).to_owned())
                        .collect()
                } else {
                    Vec::new()
                },
            });
        }
    }
    out
}

/// Dedup on read, as the queries of docs/sinks/parquet.md do: per key the newest version
/// wins, a deleted newest version means no row, and a column the newest
/// version left out (`__unchanged`) comes from the newest older version
/// that has it.
fn current_state(rows: &[Stored]) -> BTreeMap<i64, BTreeMap<&'static str, Option<String>>> {
    let mut by_key: BTreeMap<i64, Vec<&Stored>> = BTreeMap::new();
    for r in rows {
        by_key.entry(r.id).or_default().push(r);
    }
    let mut out = BTreeMap::new();
    for (id, mut versions) in by_key {
        versions.sort_by_key(|r| std::cmp::Reverse(r.version));
        let newest = versions[0];
        if newest.deleted {
            continue;
        }
        let mut columns = newest.columns.clone();
        for name in &newest.unchanged {
            let older = versions
                .iter()
                .skip(1)
                .find(|v| !v.unchanged.contains(name))
                .and_then(|v| v.columns.get(name.as_str()).cloned())
                .flatten();
            columns.insert(
                *["name", "bio", "tier", "balance"]
                    .iter()
                    .find(|n| *n == name)
                    .unwrap(),
                older,
            );
        }
        out.insert(id, columns);
    }
    out
}

fn expected(w: &workload::Workload) -> BTreeMap<i64, BTreeMap<&'static str, Option<String>>> {
    w.expected
        .iter()
        .map(|(id, r)| {
            let mut c = BTreeMap::new();
            c.insert("name", Some(r.name.clone()));
            c.insert("bio", r.bio.clone());
            c.insert("tier", r.tier.clone());
            c.insert("balance", Some(r.balance.clone()));
            (*id, c)
        })
        .collect()
}

/// Offsets named by durable ranges, each at most once.
fn covered(ranges: &[DurableRange]) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for r in ranges {
        for o in r.first..=r.last {
            out.insert(o);
        }
    }
    out
}

async fn write_all(
    sink: &mut ParquetSink,
    records: &[SinkRecord],
    batch: usize,
) -> Vec<DurableRange> {
    let mut durable = Vec::new();
    for chunk in records.chunks(batch) {
        sink.write(chunk).await.unwrap();
        durable.extend(sink.flush(FlushMode::Due).await.unwrap());
    }
    durable.extend(sink.flush(FlushMode::All).await.unwrap());
    durable
}

/// The disorderly workload (duplicates, replays, older versions after newer,
/// deletes then stale inserts, TOAST-partial rows, a new column) reads back
/// as the expected state; every Kafka record is in exactly one object; a
/// whole replay through a fresh sink (a restart with no committed offsets)
/// leaves the set of objects and their bytes unchanged.
async fn converges_and_replay_is_a_no_op(mut cfg: ParquetSinkConfig) {
    cfg.rotation.max_rows = 400;
    let w = workload::generate(&Options {
        keys: 150,
        changes: 2_500,
        seed: 5,
        ..Options::default()
    });
    let records = records(&w);
    let mut sink = ParquetSink::new(cfg.clone()).unwrap();
    let durable = write_all(&mut sink, &records, 300).await;
    let offsets: BTreeSet<i64> = records.iter().map(|r| r.position.offset).collect();
    assert_eq!(covered(&durable), offsets, "every record reported durable");

    let store = sink.store();
    let before = objects(store.as_ref(), &cfg.prefix).await;
    assert!(
        before.len() >= 5,
        "rotation by rows: {} objects",
        before.len()
    );
    let rows: Vec<Stored> = before.values().flat_map(|(_, b)| stored_rows(b)).collect();
    let mut seen = BTreeSet::new();
    for r in &rows {
        assert!(seen.insert(r.offset), "offset {} stored twice", r.offset);
    }
    assert_eq!(seen, offsets);
    assert_eq!(current_state(&rows), expected(&w));

    let mut replay = ParquetSink::new(cfg.clone()).unwrap();
    let durable = write_all(&mut replay, &records, 1000).await;
    assert_eq!(covered(&durable), offsets, "a replay is durable at once");
    let after = objects(store.as_ref(), &cfg.prefix).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(
        after.iter().zip(&before).all(|(a, b)| a.1.0 == b.1.0),
        "bytes unchanged"
    );
}

#[tokio::test]
async fn local_directory_converges_and_replay_is_a_no_op() {
    converges_and_replay_is_a_no_op(local_config("converge")).await;
}

#[tokio::test]
async fn s3_converges_and_replay_is_a_no_op() {
    converges_and_replay_is_a_no_op(s3_config(&format!("converge-{}", std::process::id()))).await;
}

/// The same over `https://` to a server whose certificate comes from a
/// private CA (`ca_cert`); without the CA the store is refused, as a
/// retryable error (the records are not at fault).
#[tokio::test]
async fn s3_over_https_with_a_private_ca_converges() {
    let (endpoint, ca) = sinkfleet_testkit::services::s3_tls();
    let mut cfg = s3_config(&format!("https-{}", std::process::id()));
    if let Target::S3(s3) = &mut cfg.target {
        s3.endpoint = Some(endpoint);
        s3.allow_http = false;
    }
    let w = workload::generate(&Options {
        keys: 10,
        changes: 20,
        seed: 9,
        ..Options::default()
    });
    let mut untrusting = ParquetSink::new(cfg.clone()).unwrap();
    match untrusting.write(&records(&w)).await {
        Err(SinkError::Retryable(message)) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}");
        }
        other => panic!("expected a retryable certificate error, got {other:?}"),
    }
    if let Target::S3(s3) = &mut cfg.target {
        s3.ca_cert = Some(ca);
    }
    converges_and_replay_is_a_no_op(cfg).await;
}

/// The same through multipart uploads (every object, one 5 MiB part):
/// S3's CreateMultipartUpload / UploadPart / Complete on a real server.
#[tokio::test]
async fn s3_multipart_uploads_converge() {
    let mut cfg = s3_config(&format!("multipart-{}", std::process::id()));
    cfg.multipart_threshold_bytes = 0;
    converges_and_replay_is_a_no_op(cfg).await;
}

/// A crash after some files were uploaded but before any offset was
/// committed: the next process replays from the start, skips what the
/// store holds and writes the rest. No record lands in two objects.
#[tokio::test]
async fn crash_between_upload_and_commit_duplicates_nothing() {
    let mut cfg = s3_config(&format!("crash-{}", std::process::id()));
    cfg.rotation.max_rows = 250;
    let w = workload::generate(&Options {
        keys: 100,
        changes: 1_500,
        seed: 9,
        ..Options::default()
    });
    let records = records(&w);
    let mut first = ParquetSink::new(cfg.clone()).unwrap();
    // Some files rotate (uploaded), the tail stays buffered; then "SIGKILL".
    first
        .write(&records[..records.len() * 2 / 3])
        .await
        .unwrap();
    let store = first.store();
    let uploaded = objects(store.as_ref(), &cfg.prefix).await.len();
    assert!(uploaded >= 2, "{uploaded} objects before the crash");
    drop(first);

    let mut second = ParquetSink::new(cfg.clone()).unwrap();
    write_all(&mut second, &records, 500).await;
    let rows: Vec<Stored> = objects(store.as_ref(), &cfg.prefix)
        .await
        .values()
        .flat_map(|(_, b)| stored_rows(b))
        .collect();
    let mut seen = BTreeSet::new();
    for r in &rows {
        assert!(seen.insert(r.offset), "offset {} stored twice", r.offset);
    }
    assert_eq!(seen.len(), records.len());
    assert_eq!(current_state(&rows), expected(&w));
}

/// `tier` appears halfway (a new field in the declared schema): the file
/// open at that moment is closed and the next one has the new column.
#[tokio::test]
async fn schema_change_mid_stream_starts_a_file_with_the_new_schema() {
    let cfg = local_config("schema-change");
    let w = workload::generate(&Options {
        keys: 50,
        changes: 400,
        seed: 3,
        disorder: false,
        new_column_at: Some(0.5),
        ..Options::default()
    });
    let mut sink = ParquetSink::new(cfg.clone()).unwrap();
    write_all(&mut sink, &records(&w), 1000).await;
    let objects = objects(sink.store().as_ref(), &cfg.prefix).await;
    let shapes: Vec<bool> = objects
        .values()
        .map(|(_, b)| b[0].schema().column_with_name("tier").is_some())
        .collect();
    assert_eq!(shapes, vec![false, true], "one file per schema, in order");
}

fn fixture(name: &str, offset: i64) -> Option<SinkRecord> {
    let value = sinkfleet_testkit::fixtures::debezium(name)?;
    // Value-only fixtures: the key columns come from configuration.
    let mut opts = DecodeOptions::default();
    for (table, key) in [
        ("public.payment", "payment_id"),
        ("public.film", "film_id"),
        ("public.t", "id"),
    ] {
        opts.key_columns.insert(table.into(), vec![key.into()]);
    }
    let change = sinkfleet_core::debezium::decode(None, Some(&value), offset, &opts)
        .unwrap()
        .unwrap();
    Some(SinkRecord {
        position: Position {
            topic: Arc::from("fixtures"),
            partition: 0,
            offset,
        },
        change,
    })
}

/// Real Debezium events (`../shared/fixtures/debezium`, skipped when absent)
/// read back with the Parquet logical types and the values their README
/// documents.
#[tokio::test]
async fn debezium_fixtures_read_back_with_their_types_and_values() {
    let names = [
        "19-read-decimal-microtimestamp-with-schema.value.json",
        "20-read-array-enum-decimal-with-schema.value.json",
        "22-read-microtimestamp-date-microtime-with-schema.value.json",
    ];
    let mut batch = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match fixture(name, i as i64) {
            Some(r) => batch.push(r),
            None => return,
        }
    }
    let cfg = local_config("fixtures");
    let mut sink = ParquetSink::new(cfg.clone()).unwrap();
    sink.write(&batch).await.unwrap();
    sink.flush(FlushMode::All).await.unwrap();
    let objects = objects(sink.store().as_ref(), "").await;
    let table = |t: &str| {
        objects
            .iter()
            .find(|(name, _)| name.contains(&format!("/{t}/")))
            .map(|(_, (_, b))| b[0].clone())
            .unwrap()
    };

    let payment = table("payment");
    let amount = payment.column_by_name("amount").unwrap();
    assert_eq!(amount.data_type(), &DataType::Decimal128(5, 2));
    assert_eq!(amount.as_primitive::<Decimal128Type>().value(0), 299);
    let date = payment.column_by_name("payment_date").unwrap();
    assert_eq!(
        date.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        date.as_primitive::<TimestampMicrosecondType>().value(0),
        1_179_150_269_996_577
    );
    let id = payment.column_by_name("payment_id").unwrap();
    assert_eq!(id.as_primitive::<Int32Type>().value(0), 32098);

    let film = table("film");
    assert_eq!(
        film.column_by_name("replacement_cost")
            .unwrap()
            .as_primitive::<Decimal128Type>()
            .value(0),
        2499
    );
    let features = film.column_by_name("special_features").unwrap();
    let features = features.as_list::<i32>().value(0);
    let features = features.as_string::<i32>();
    assert_eq!(
        (0..features.len())
            .map(|i| features.value(i))
            .collect::<Vec<_>>(),
        vec!["Trailers", "Commentaries"]
    );
    assert_eq!(
        film.column_by_name("rating")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "G"
    );

    let t = table("t");
    assert_eq!(
        t.column_by_name("d")
            .unwrap()
            .as_primitive::<Date32Type>()
            .value(0),
        19279
    );
    assert_eq!(
        t.column_by_name("t")
            .unwrap()
            .as_primitive::<Time64MicrosecondType>()
            .value(0),
        86_131_989_360
    );
    assert_eq!(
        t.column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        1_665_791_731_989_360
    );
}

fn item(offset: i64, id: i64, price: &str) -> SinkRecord {
    use sinkfleet_core::{
        Change, ColumnSchema, ColumnType, Op, Row, TableId, TableSchema, Value, Version,
    };
    let schema = Arc::new(TableSchema {
        columns: vec![
            ColumnSchema {
                name: "id".into(),
                ty: ColumnType::Int64,
                optional: false,
            },
            ColumnSchema {
                name: "price".into(),
                ty: ColumnType::Decimal {
                    precision: Some(4),
                    scale: 2,
                },
                optional: true,
            },
        ],
    });
    let mut key = Row::default();
    key.set("id", Value::Int(id));
    let mut row = key.clone();
    row.set("price", Value::Decimal(price.into()));
    SinkRecord {
        position: Position {
            topic: Arc::from("items"),
            partition: 0,
            offset,
        },
        change: Change {
            table: TableId::new("public", "items"),
            op: Op::Create,
            key,
            row: Some(row),
            version: Version::new(offset as u64 + 1, 0),
            schema: Some(schema),
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        },
    }
}

/// A value that does not fit its column fails the batch permanently and
/// appends nothing of it; the runtime then splits the batch, and the
/// halves that encode are stored once (the records already accepted are
/// not appended again). What reaches the file is exactly the good records.
#[tokio::test]
async fn a_value_that_does_not_fit_fails_permanently_and_the_rest_is_stored_once() {
    let cfg = local_config("poison");
    let mut sink = ParquetSink::new(cfg.clone()).unwrap();
    let batch = vec![item(0, 1, "1.50"), item(1, 2, "123.45"), item(2, 3, "2.25")];
    let err = sink.write(&batch).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("price"), "{err}");
    // What the writer does next: halves, then the bad record alone.
    sink.write(&batch[..1]).await.unwrap();
    assert!(sink.write(&batch[1..]).await.is_err());
    sink.write(&batch[1..2]).await.unwrap_err();
    sink.write(&batch[2..]).await.unwrap();
    sink.write(&batch[..1]).await.unwrap(); // a retry of an accepted record
    let durable = sink.flush(FlushMode::All).await.unwrap();
    assert_eq!(covered(&durable), BTreeSet::from([0, 2]));
    let objects = objects(sink.store().as_ref(), "").await;
    let batches: Vec<RecordBatch> = objects.values().flat_map(|(_, b)| b.clone()).collect();
    let offsets: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let o = b
                .column_by_name("__offset")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            (0..o.len()).map(move |i| o.value(i))
        })
        .collect();
    assert_eq!(offsets, vec![0, 2]);
}

/// Debezium's documented truncate event (fixture 26) is stored as a row with
/// `__op = t`, `__deleted` set and no key: readers drop older rows of the table.
#[tokio::test]
async fn a_truncate_is_stored_as_a_versioned_marker_row() {
    let Some(truncate) = fixture("26-truncate-docs-payload-only.value.json", 0) else {
        return;
    };
    let cfg = local_config("truncate");
    let mut sink = ParquetSink::new(cfg.clone()).unwrap();
    sink.write(&[truncate]).await.unwrap();
    sink.flush(FlushMode::All).await.unwrap();
    let objects = objects(sink.store().as_ref(), "").await;
    let b = &objects.values().next().unwrap().1[0];
    assert_eq!(b.num_rows(), 1);
    assert_eq!(
        b.column_by_name("__op")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "t"
    );
    assert!(b.column_by_name("__deleted").unwrap().as_boolean().value(0));
    assert!(
        b.column_by_name("__commit_lsn")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .value(0)
            > 0
    );
}

/// A refused record leaves no trace in the files: it brought a new column
/// (closing the open file, whose schema lacked it) and a value that does
/// not fit; the file opened for it is dropped, so later records are not
/// written under a schema holding the refused record's column.
#[tokio::test]
async fn a_refused_record_leaves_no_column_in_later_files() {
    use sinkfleet_core::{ColumnSchema, ColumnType, TableSchema, Value};
    let cfg = local_config("refused-column");
    let mut sink = ParquetSink::new(cfg).unwrap();
    sink.write(&[item(0, 1, "1.50")]).await.unwrap();
    let mut bad = item(1, 2, "123.45"); // more digits than Decimal(4, 2)
    let mut schema = TableSchema::clone(bad.change.schema.as_ref().unwrap());
    schema.columns.push(ColumnSchema {
        name: "note".into(),
        ty: ColumnType::Text,
        optional: true,
    });
    bad.change.schema = Some(Arc::new(schema));
    if let Some(row) = bad.change.row.as_mut() {
        row.set("note", Value::Text("refused".into()));
    }
    assert!(!sink.write(&[bad]).await.unwrap_err().is_retryable());
    sink.write(&[item(2, 3, "2.25")]).await.unwrap();
    let durable = sink.flush(FlushMode::All).await.unwrap();
    assert_eq!(covered(&durable), BTreeSet::from([0, 2]));
    for (name, (_, batches)) in objects(sink.store().as_ref(), "").await {
        for b in batches {
            assert!(
                b.schema().field_with_name("note").is_err(),
                "{name} has the refused record's column"
            );
        }
    }
}

/// Schema and table names become directories: a name outside the
/// identifier policy (a path traversal, a space) is refused before any
/// listing or file, and no object is written for it.
#[tokio::test]
async fn event_names_outside_the_identifier_policy_are_refused() {
    let cfg = local_config("identifiers");
    let mut sink = ParquetSink::new(cfg).unwrap();
    let mut traversal = item(0, 1, "1.50");
    traversal.change.table.schema = "..".into();
    let mut spaced = item(1, 2, "1.50");
    if let Some(row) = spaced.change.row.as_mut() {
        row.set("unit price", sinkfleet_core::Value::Text("x".into()));
    }
    spaced.change.schema = None;
    for record in [traversal, spaced] {
        let err = sink.write(&[record]).await.unwrap_err();
        assert!(err.to_string().contains("identifier policy"), "{err}");
    }
    sink.flush(FlushMode::All).await.unwrap();
    assert!(objects(sink.store().as_ref(), "").await.is_empty());
}

/// Without a declared schema (`schemas.enable=false`) a TOAST-unchanged
/// column is still named in `__unchanged`, so a reader tells it from a
/// real NULL and takes the older value.
#[tokio::test]
async fn schemaless_unchanged_columns_are_named() {
    let cfg = local_config("schemaless-toast");
    let mut sink = ParquetSink::new(cfg).unwrap();
    let mut decoder = Decoder::new(DecodeOptions::default());
    let event = |offset: i64, op: &str, bio: &str, note: serde_json::Value| {
        let value = serde_json::json!({"op": op, "source": {"schema": "public", "table": "people", "lsn": 100 + offset},
            "after": {"id": 1, "bio": bio, "note": note}});
        (offset, value.to_string())
    };
    let records: Vec<SinkRecord> = [
        event(0, "c", "a long biography", serde_json::json!("first")),
        event(
            1,
            "u",
            "__debezium_unavailable_value",
            serde_json::Value::Null,
        ),
    ]
    .into_iter()
    .map(|(offset, value)| SinkRecord {
        position: Position {
            topic: Arc::from("people"),
            partition: 0,
            offset,
        },
        change: decoder
            .decode(Some(br#"{"id":1}"#), Some(value.as_bytes()), offset)
            .unwrap()
            .unwrap(),
    })
    .collect();
    sink.write(&records).await.unwrap();
    sink.flush(FlushMode::All).await.unwrap();
    let batches: Vec<RecordBatch> = objects(sink.store().as_ref(), "")
        .await
        .into_values()
        .flat_map(|(_, b)| b)
        .collect();
    let mut unchanged = Vec::new();
    let mut bios = Vec::new();
    for b in &batches {
        let list = b.column_by_name("__unchanged").unwrap().as_list::<i32>();
        let bio = b.column_by_name("bio").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let names = list.is_valid(i).then(|| {
                let v = list.value(i);
                let v = v.as_string::<i32>();
                (0..v.len())
                    .map(|j| v.value(j).to_owned())
                    .collect::<Vec<_>>()
            });
            unchanged.push(names);
            bios.push(bio.is_valid(i).then(|| bio.value(i).to_owned()));
        }
    }
    assert_eq!(unchanged, vec![None, Some(vec!["bio".to_owned()])]);
    assert_eq!(bios, vec![Some("a long biography".to_owned()), None]);
}

/// Valid Postgres numerics Parquet's Decimal128 cannot hold are stored
/// exactly, not refused: a scale above the precision (`numeric(5,6)`),
/// 39 to 76 digits (Decimal256), and beyond 76 digits (the exact text).
#[tokio::test]
async fn wide_and_odd_decimals_are_stored_exactly() {
    use arrow_array::types::Decimal256Type;
    use sinkfleet_core::{
        Change, ColumnSchema, ColumnType, Op, Row, TableId, TableSchema, Value, Version,
    };
    let columns = [("small", 5, 6), ("wide", 39, 2), ("huge", 80, 10)];
    let values = [
        "0.012345",
        "1234567890123456789012345678901234567.89",
        &format!("-{}.{}", "7".repeat(70), "3".repeat(10)),
    ];
    let schema = Arc::new(TableSchema {
        columns: std::iter::once(ColumnSchema {
            name: "id".into(),
            ty: ColumnType::Int64,
            optional: false,
        })
        .chain(columns.iter().map(|(name, p, s)| ColumnSchema {
            name: (*name).into(),
            ty: ColumnType::Decimal {
                precision: Some(*p),
                scale: *s,
            },
            optional: true,
        }))
        .collect(),
    });
    let mut key = Row::default();
    key.set("id", Value::Int(1));
    let mut row = key.clone();
    for ((name, _, _), value) in columns.iter().zip(values) {
        row.set(*name, Value::Decimal(value.to_owned()));
    }
    let record = SinkRecord {
        position: Position {
            topic: Arc::from("amounts"),
            partition: 0,
            offset: 0,
        },
        change: Change {
            table: TableId::new("public", "amounts"),
            op: Op::Create,
            key,
            row: Some(row),
            version: Version::new(1, 0),
            schema: Some(schema),
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        },
    };
    let mut sink = ParquetSink::new(local_config("decimals")).unwrap();
    sink.write(&[record]).await.unwrap();
    sink.flush(FlushMode::All).await.unwrap();
    let objects = objects(sink.store().as_ref(), "").await;
    let (_, batches) = objects.values().next().unwrap();
    let b = &batches[0];
    let column = |n: &str| b.column_by_name(n).unwrap();
    assert_eq!(column("small").data_type(), &DataType::Decimal128(6, 6));
    assert_eq!(
        column("small").as_primitive::<Decimal128Type>().value(0),
        12_345
    );
    assert_eq!(column("wide").data_type(), &DataType::Decimal256(39, 2));
    assert_eq!(
        column("wide")
            .as_primitive::<Decimal256Type>()
            .value(0)
            .to_string(),
        "123456789012345678901234567890123456789"
    );
    assert_eq!(column("huge").data_type(), &DataType::Utf8);
    assert_eq!(column("huge").as_string::<i32>().value(0), values[2]);
}
