//! Criterion benches of the publisher's per-event work without a server:
//! a pgoutput tuple turned into a row, its Kafka key and its record value,
//! for the table `publisher_e2e` inserts into, with and without the
//! schema envelope.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinkfleet_pg_publisher::config::ConnectorConfig;
use sinkfleet_pg_publisher::event::{ColumnFacts, Snapshot, Source, TableCodec};
use sinkfleet_pg_publisher::pgoutput::{Relation, RelationColumn, ReplicaIdentity, TupleValue};
use sinkfleet_pg_publisher::types::registry::TypeRegistry;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

const EVENTS: usize = 5000;

/// `events (id bigint PRIMARY KEY, amount numeric(12,2), at timestamptz,
/// note text)`, as `publisher_e2e` creates it.
fn codec(schemas: bool) -> TableCodec {
    let properties: BTreeMap<String, String> = [
        ("database.hostname", "h"),
        ("database.user", "u"),
        ("database.password", ""),
        ("database.dbname", "app"),
        ("topic.prefix", "app"),
        (
            "value.converter.schemas.enable",
            if schemas { "true" } else { "false" },
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = ConnectorConfig::from_properties(&properties).expect("valid properties");
    let column = |name: &str, type_oid, type_modifier| RelationColumn {
        key: name == "id",
        name: name.into(),
        type_oid,
        type_modifier,
    };
    let relation = Relation {
        oid: 1,
        namespace: "bench".into(),
        name: "events".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            column("id", 20, -1),
            column("amount", 1700, (12 << 16 | 2) + 4),
            column("at", 1184, -1),
            column("note", 25, -1),
        ],
    };
    let facts = HashMap::from([(
        "id".to_owned(),
        ColumnFacts {
            not_null: true,
            default: None,
        },
    )]);
    TableCodec::new(
        &relation,
        &facts,
        &["id".into()],
        &config,
        &TypeRegistry::builtin(),
    )
    .expect("a publishable table")
}

fn tuples() -> Vec<Vec<TupleValue>> {
    let text = |s: String| TupleValue::Text(s.into_bytes());
    (0..EVENTS)
        .map(|i| {
            vec![
                text(i.to_string()),
                text(format!("{i}.25")),
                text(format!(
                    "2026-12-07 15:{:02}:{:02}.{:06}+00",
                    i / 60 % 60,
                    i % 60,
                    i * 7 % 1_000_000
                )),
                text(format!("note {i}")),
            ]
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let tuples = tuples();
    let source = Source {
        db: "app",
        commit_lsn: 900,
        lsn: 850,
        tx_id: Some(5),
        ts_us: 1_700_000_000_123_456,
        snapshot: Snapshot::False,
        origin: None,
        transaction: None,
    };
    let mut group = c.benchmark_group("publisher");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, schemas) in [("encode_envelope_5000", true), ("encode_bare_5000", false)] {
        let codec = codec(schemas);
        group.bench_function(name, |b| {
            b.iter(|| {
                for tuple in &tuples {
                    let row = codec.row(tuple).expect("encodable values");
                    black_box(codec.key(&row));
                    black_box(codec.value("c", None, Some(&row), &source));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
