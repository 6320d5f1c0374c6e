//! End to end: records flattened by Debezium's `ExtractNewRecordState` on a
//! real broker → `sinkfleet run` → a real Postgres, next to their
//! unflattened twins through a second worker. Both targets must end in the
//! same state, replays and stale records included.

use crate::common;

use common::{Pipeline, free_port};
use serde_json::{Value, json};
use sinkfleet_testkit::kafka::Record;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(120);

/// One source change of `public.items (id, name, qty)`.
#[derive(Clone, Copy)]
struct Event {
    id: i64,
    /// `c`, `u` or `d`.
    op: &'static str,
    /// The change's LSN; its transaction commits at `lsn + 8`.
    lsn: u64,
    qty: i64,
}

impl Event {
    fn name(&self) -> String {
        format!("item{}-{}", self.id, self.qty)
    }

    fn image(&self) -> Value {
        json!({"id": self.id, "name": self.name(), "qty": self.qty})
    }

    fn source(&self) -> Value {
        json!({"schema": "public", "table": "items", "lsn": self.lsn,
               "sequence": format!("[\"{}\",\"{}\"]", self.lsn + 8, self.lsn),
               "ts_ms": 1_700_000_000_000i64 + self.lsn as i64})
    }

    fn key(&self) -> Option<Vec<u8>> {
        Some(json!({"id": self.id}).to_string().into_bytes())
    }
}

fn row_fields() -> Vec<Value> {
    vec![
        json!({"field": "id", "type": "int64", "optional": false}),
        json!({"field": "name", "type": "string", "optional": true}),
        json!({"field": "qty", "type": "int64", "optional": true}),
    ]
}

/// The Debezium change event (`schemas.enable=true`).
fn envelope(e: &Event) -> Record {
    let row = json!({"type": "struct", "optional": true, "fields": row_fields()});
    let mut before = row.clone();
    before["field"] = json!("before");
    let mut after = row;
    after["field"] = json!("after");
    let source = json!({"field": "source", "type": "struct", "optional": false, "fields": [
        {"field": "schema", "type": "string", "optional": false},
        {"field": "table", "type": "string", "optional": false},
        {"field": "lsn", "type": "int64", "optional": true},
        {"field": "sequence", "type": "string", "optional": true},
        {"field": "ts_ms", "type": "int64", "optional": false}]});
    let schema = json!({"type": "struct", "name": "x.public.items.Envelope", "fields": [
        before, after, source, {"field": "op", "type": "string", "optional": false}]});
    let (b, a) = if e.op == "d" {
        (json!({"id": e.id, "name": null, "qty": null}), Value::Null)
    } else {
        (Value::Null, e.image())
    };
    let payload = json!({"before": b, "after": a, "source": e.source(), "op": e.op});
    Record {
        key: e.key(),
        value: Some(
            json!({"schema": schema, "payload": payload})
                .to_string()
                .into_bytes(),
        ),
    }
}

/// The same event through `ExtractNewRecordState` with
/// `add.fields=op,table,schema,lsn,source.sequence,source.ts_ms` and
/// `delete.tombstone.handling.mode=rewrite` (`schemas.enable=true`).
fn rewritten(e: &Event) -> Record {
    let mut fields = row_fields();
    for (name, ty) in [
        ("__op", "string"),
        ("__table", "string"),
        ("__schema", "string"),
        ("__lsn", "int64"),
        ("__source_sequence", "string"),
        ("__source_ts_ms", "int64"),
        ("__deleted", "string"),
    ] {
        fields.push(json!({"field": name, "type": ty, "optional": true}));
    }
    let source = e.source();
    let mut row = if e.op == "d" {
        json!({"id": e.id, "name": null, "qty": null})
    } else {
        e.image()
    };
    row["__op"] = json!(e.op);
    row["__table"] = source["table"].clone();
    row["__schema"] = source["schema"].clone();
    row["__lsn"] = source["lsn"].clone();
    row["__source_sequence"] = source["sequence"].clone();
    row["__source_ts_ms"] = source["ts_ms"].clone();
    row["__deleted"] = json!(if e.op == "d" { "true" } else { "false" });
    let schema = json!({"type": "struct", "name": "x.public.items.Value", "fields": fields});
    Record {
        key: e.key(),
        value: Some(
            json!({"schema": schema, "payload": row})
                .to_string()
                .into_bytes(),
        ),
    }
}

/// [`rewritten`] with its key in a JsonConverter envelope (the Avro
/// converter's input needs the key's schema).
fn rewritten_with_key_schema(e: &Event) -> Record {
    let schema = json!({"type": "struct", "name": "x.public.items.Key",
                        "fields": [{"field": "id", "type": "int64", "optional": false}]});
    Record {
        key: Some(
            json!({"schema": schema, "payload": {"id": e.id}})
                .to_string()
                .into_bytes(),
        ),
        ..rewritten(e)
    }
}

/// The same event with `delete.tombstone.handling.mode=tombstone` and no
/// `add.fields`, schema-less: a delete is a null value.
fn tombstoned(e: &Event) -> Record {
    Record {
        key: e.key(),
        value: (e.op != "d").then(|| e.image().to_string().into_bytes()),
    }
}

/// The changes: creates, updates, deletes, a re-create after a delete.
fn history() -> Vec<Event> {
    let mut lsn = 1_000;
    let mut next = |id, op, qty| {
        lsn += 16;
        Event { id, op, lsn, qty }
    };
    let mut events = Vec::new();
    for id in 1..=6 {
        events.push(next(id, "c", id));
        events.push(next(id, "u", id * 10));
    }
    events.push(next(2, "d", 0));
    events.push(next(4, "d", 0));
    events.push(next(6, "d", 0));
    events.push(next(4, "c", 400));
    events.push(next(5, "u", 500));
    events
}

/// `(name, qty, deleted, version)` of one target row.
type TargetRow = (Option<String>, Option<i64>, bool, String);

/// Every row by id (soft-deleted ones too).
type Snapshot = BTreeMap<i64, TargetRow>;

async fn snapshot(pool: &sqlx::PgPool, schema: &str) -> Snapshot {
    let sql = format!(
        "SELECT id, name, qty, __sinkfleet_deleted, __sinkfleet_version::text FROM \"{schema}\".items"
    );
    // `(id, name, qty, deleted, version)`; no table yet reads as empty.
    type DbRow = (i64, Option<String>, Option<i64>, bool, String);
    let rows: Vec<DbRow> = match sqlx::query_as(&sql).fetch_all(pool).await {
        Ok(rows) => rows,
        Err(_) => return Snapshot::new(),
    };
    rows.into_iter()
        .map(|(id, name, qty, deleted, version)| (id, (name, qty, deleted, version)))
        .collect()
}

/// Live rows `(name, qty)` and deleted ids of a snapshot.
fn state(s: &Snapshot) -> (BTreeMap<i64, (String, i64)>, BTreeSet<i64>) {
    let mut live = BTreeMap::new();
    let mut deleted = BTreeSet::new();
    for (id, (name, qty, del, _)) in s {
        if *del {
            deleted.insert(*id);
        } else {
            live.insert(*id, (name.clone().unwrap_or_default(), qty.unwrap_or(-1)));
        }
    }
    (live, deleted)
}

/// What the last event of each key (by `order`) leaves.
fn expected(
    events: &[Event],
    order: impl Fn(usize, &Event) -> (u64, u64),
) -> (BTreeMap<i64, (String, i64)>, BTreeSet<i64>) {
    let mut last: BTreeMap<i64, ((u64, u64), Event)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let v = order(i, e);
        if last.get(&e.id).is_none_or(|(seen, _)| v > *seen) {
            last.insert(e.id, (v, *e));
        }
    }
    let mut live = BTreeMap::new();
    let mut deleted = BTreeSet::new();
    for (id, (_, e)) in last {
        if e.op == "d" {
            deleted.insert(id);
        } else {
            live.insert(id, (e.name(), e.qty));
        }
    }
    (live, deleted)
}

async fn wait_state(
    pool: &sqlx::PgPool,
    p: &Pipeline,
    want: &(BTreeMap<i64, (String, i64)>, BTreeSet<i64>),
) -> Snapshot {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let got = snapshot(pool, &p.schema).await;
        if state(&got) == *want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} never converged: got {:?}, want {want:?}",
            p.schema,
            state(&got)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn config(p: &Pipeline, port: u16, decode: &str) -> String {
    p.config("", "", port) + "decode:\n" + decode
}

/// Rewritten deletes, versions from `__source_sequence`: creates, updates,
/// deletes, then every record again (a replay), then older versions after
/// newer ones. The flattened targets, JSON and Avro (written by Confluent's
/// serializer as `AvroConverter` would), end exactly as their unflattened
/// twin's, versions included.
#[tokio::test(flavor = "multi_thread")]
async fn rewritten_deletes_converge_like_unflattened_twins() {
    let flat = Pipeline::new("flat_rw", 2).await;
    let plain = Pipeline::new("plain_rw", 2).await;
    let avro = Pipeline::new("flat_avro_rw", 2).await;
    let events = history();
    let stale: Vec<Event> = events
        .iter()
        .filter(|e| e.op != "d" && e.qty < 100)
        .copied()
        .collect();
    let (flat_port, plain_port, avro_port) = (free_port(), free_port(), free_port());
    let flattened = "  version: { source: debezium_lsn }\n  flattened:\n    deletes: rewrite\n";
    let mut flat_worker = flat.spawn("w", &config(&flat, flat_port, flattened), flat_port);
    let avro_decode = format!(
        "{flattened}  formats: [{{ topics: {}, key: avro, value: avro }}]\n  registry: {{ url: \"{}\" }}\n",
        avro.topic,
        common::avro::registry_url()
    );
    let mut avro_worker = avro.spawn("w", &config(&avro, avro_port, &avro_decode), avro_port);
    let mut plain_worker = plain.spawn(
        "w",
        &config(&plain, plain_port, "  version: { source: debezium_lsn }\n"),
        plain_port,
    );
    let want = expected(&events, |_, e| (e.lsn + 8, e.lsn));
    let pool = flat.pool().await;
    for round in [&events, &events, &stale] {
        flat.produce(&round.iter().map(rewritten).collect::<Vec<_>>())
            .await;
        plain
            .produce(&round.iter().map(envelope).collect::<Vec<_>>())
            .await;
        let json: Vec<Record> = round.iter().map(rewritten_with_key_schema).collect();
        avro.produce(&common::avro::to_avro(&avro.topic, &json))
            .await;
    }
    for p in [&flat, &plain, &avro] {
        p.wait_committed_to_end(&p.group, CONVERGE).await;
    }
    let flat_rows = wait_state(&pool, &flat, &want).await;
    let plain_rows = wait_state(&pool, &plain, &want).await;
    let avro_rows = wait_state(&pool, &avro, &want).await;
    assert_eq!(flat_rows, plain_rows, "flattened and unflattened targets");
    assert_eq!(
        avro_rows, plain_rows,
        "flattened Avro and unflattened targets"
    );
    for worker in [&flat_worker, &avro_worker] {
        assert_eq!(
            worker.metric("sinkfleet_records_dead_lettered_total"),
            0.0,
            "nothing dead-lettered"
        );
        assert!(
            worker.metric("sinkfleet_records_skipped_stale_total") > 0.0,
            "the replay and the older versions were skipped as stale"
        );
    }
    assert!(flat_worker.terminate(Duration::from_secs(30)).success());
    assert!(avro_worker.terminate(Duration::from_secs(30)).success());
    assert!(plain_worker.terminate(Duration::from_secs(30)).success());
}

/// Tombstone deletes, versions from Kafka offsets, the table configured:
/// the target matches the unflattened twin's (with its Debezium tombstones,
/// which are skipped); a replay of the whole topic by a new consumer group
/// changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn tombstone_deletes_converge_like_unflattened_twins() {
    let flat = Pipeline::new("flat_ts", 2).await;
    let plain = Pipeline::new("plain_ts", 2).await;
    let mut events = history();
    // An older state after a newer one: with offsets as versions it is
    // simply the latest record, for both twins.
    events.push(events[0]);
    let flat_decode = "  version: { source: kafka_offset }\n  flattened:\n    deletes: tombstone\n    table: public.items\n";
    let (flat_port, plain_port) = (free_port(), free_port());
    let mut flat_worker = flat.spawn("w", &config(&flat, flat_port, flat_decode), flat_port);
    let mut plain_worker = plain.spawn(
        "w",
        &config(&plain, plain_port, "  version: { source: kafka_offset }\n"),
        plain_port,
    );
    flat.produce(&events.iter().map(tombstoned).collect::<Vec<_>>())
        .await;
    let mut twins = Vec::new();
    for e in &events {
        twins.push(envelope(e));
        if e.op == "d" {
            // Debezium's own compaction tombstone after a delete.
            twins.push(Record {
                key: e.key(),
                value: None,
            });
        }
    }
    plain.produce(&twins).await;
    // Records of a key are in produce order within their partition.
    let want = expected(&events, |i, _| (i as u64, 0));
    let pool = flat.pool().await;
    flat.wait_committed_to_end(&flat.group, CONVERGE).await;
    plain.wait_committed_to_end(&plain.group, CONVERGE).await;
    let flat_rows = wait_state(&pool, &flat, &want).await;
    let plain_rows = wait_state(&pool, &plain, &want).await;
    // Offsets differ (the twin topic has Debezium's tombstones too): the
    // rows, not their versions, must agree.
    let unversioned = |s: &Snapshot| {
        s.iter()
            .map(|(id, (n, q, d, _))| (*id, (n.clone(), *q, *d)))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(unversioned(&flat_rows), unversioned(&plain_rows));
    assert!(flat_worker.terminate(Duration::from_secs(30)).success());
    assert!(plain_worker.terminate(Duration::from_secs(30)).success());

    // The whole topic again, from offset 0: same offsets, same versions.
    let replay_group = format!("{}-replay", flat.group);
    let port = free_port();
    let mut replay = flat.spawn(
        "replay",
        &config(&flat, port, flat_decode).replace(&flat.group, &replay_group),
        port,
    );
    flat.wait_committed_to_end(&replay_group, CONVERGE).await;
    assert_eq!(
        replay.metric("sinkfleet_records_applied_total"),
        0.0,
        "a replay applies nothing"
    );
    assert!(replay.terminate(Duration::from_secs(30)).success());
    assert_eq!(snapshot(&pool, &flat.schema).await, flat_rows);
}
