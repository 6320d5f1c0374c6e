//! Reading a Parquet sink's objects back: what a reader of the bucket sees.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use sinkfleet_sink_s3_parquet::{ParquetSink, ParquetSinkConfig, read};
use sinkfleet_testkit::workload::Workload;
use std::collections::BTreeMap;

/// `(commit LSN, change LSN)`.
pub type Version = (u64, u64);
/// `(id, version, deleted, name)` of one stored row.
pub type StoredRow = (i64, Version, bool, Option<String>);

/// Every stored row as `(partition, offset) → (id, version, deleted, name)`,
/// failing on a record stored twice.
pub fn stored(objects: &[(String, Vec<RecordBatch>)]) -> BTreeMap<(i32, i64), StoredRow> {
    let mut out = BTreeMap::new();
    let mut holder: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    for (name, batches) in objects {
        for b in batches {
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let (partition, offset, id) = (col("__partition"), col("__offset"), col("id"));
            let (commit, change, deleted, names) = (
                col("__commit_lsn"),
                col("__change_lsn"),
                col("__deleted"),
                col("name"),
            );
            for i in 0..b.num_rows() {
                let at = (
                    partition.as_primitive::<Int32Type>().value(i),
                    offset.as_primitive::<Int64Type>().value(i),
                );
                let row = (
                    id.as_primitive::<Int64Type>().value(i),
                    (
                        commit.as_primitive::<UInt64Type>().value(i),
                        change.as_primitive::<UInt64Type>().value(i),
                    ),
                    deleted.as_boolean().value(i),
                    names
                        .is_valid(i)
                        .then(|| names.as_string::<i32>().value(i).to_owned()),
                );
                if let Some(first) = holder.insert(at, name) {
                    panic!("{at:?} stored twice: in {first} and in {name}");
                }
                out.insert(at, row);
            }
        }
    }
    out
}

/// Newest version per key, deleted keys dropped: `id → name`.
pub fn names(rows: &BTreeMap<(i32, i64), StoredRow>) -> BTreeMap<i64, String> {
    let mut newest: BTreeMap<i64, (Version, bool, Option<String>)> = BTreeMap::new();
    for (id, version, deleted, name) in rows.values() {
        if newest.get(id).is_none_or(|(v, _, _)| version > v) {
            newest.insert(*id, (*version, *deleted, name.clone()));
        }
    }
    newest
        .into_iter()
        .filter(|(_, (_, deleted, _))| !deleted)
        .map(|(id, (_, _, name))| (id, name.unwrap()))
        .collect()
}

pub fn want(w: &Workload) -> BTreeMap<i64, String> {
    w.expected
        .values()
        .map(|r| (r.id, r.name.clone()))
        .collect()
}

/// Records the sink stores: everything but Kafka tombstones.
pub fn stored_records(w: &Workload) -> usize {
    w.records.iter().filter(|r| r.value.is_some()).count()
}

pub async fn read_back(cfg: ParquetSinkConfig) -> Vec<(String, Vec<RecordBatch>)> {
    let prefix = cfg.prefix.clone();
    let sink = ParquetSink::new(cfg).unwrap();
    read::objects(sink.store().as_ref(), &prefix).await.unwrap()
}

/// Reads the objects back and asserts what every test here promises: each
/// Kafka record in exactly one object, the newest version of every key
/// equal to the source's final state. Returns the objects.
pub async fn assert_stored_once(
    cfg: ParquetSinkConfig,
    w: &Workload,
) -> Vec<(String, Vec<RecordBatch>)> {
    let objects = read_back(cfg).await;
    let rows = stored(&objects);
    assert_eq!(rows.len(), stored_records(w));
    assert_eq!(names(&rows), want(w));
    objects
}

/// The test's own text of an Arrow value: timestamps `YYYY-MM-DD
/// HH:MM:SS[.frac]`, bytes as lowercase hex, lists `[a,NULL,"text"]`.
pub fn render(array: &ArrayRef, i: usize) -> String {
    if array.is_null(i) {
        return "NULL".into();
    }
    match array.data_type() {
        DataType::Boolean => array.as_boolean().value(i).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).to_string(),
        DataType::Float32 => array.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::Utf8 => array.as_string::<i32>().value(i).to_owned(),
        DataType::Binary => array
            .as_binary::<i32>()
            .value(i)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        DataType::Decimal128(..) => array.as_primitive::<Decimal128Type>().value_as_string(i),
        DataType::Decimal256(..) => array.as_primitive::<Decimal256Type>().value_as_string(i),
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .value_as_date(i)
            .unwrap()
            .to_string(),
        DataType::Time64(TimeUnit::Microsecond) => array
            .as_primitive::<Time64MicrosecondType>()
            .value_as_time(i)
            .unwrap()
            .format("%H:%M:%S%.f")
            .to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<TimestampMicrosecondType>()
            .value_as_datetime(i)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.f")
            .to_string(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .value_as_datetime(i)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.f")
            .to_string(),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            let rendered: Vec<String> = (0..items.len())
                .map(|j| match (items.data_type(), items.is_null(j)) {
                    (DataType::Utf8, false) => format!("{:?}", render(&items, j)),
                    _ => render(&items, j),
                })
                .collect();
            format!("[{}]", rendered.join(","))
        }
        other => panic!("no rendering for {other}"),
    }
}
