//! One table of Debezium values through every sink, read back from the real
//! servers: Postgres, ClickHouse (18.16 here), Parquet on a local directory
//! and on S3 (moto).
//!
//! Each case is one column type and one edge value, sent five times: with
//! the `{"schema", "payload"}` envelope, schema-less with the column's type
//! declared in `decode.columns`, and in Avro as Confluent's serializer
//! writes the envelope's Connect schema through a Schema Registry (a value
//! that does not fit its schema has no Avro record: those cases are left
//! out of the Avro run, and counted), and in Protobuf as Confluent's
//! ProtobufSerializer writes what `ProtobufData` makes of it (with
//! `optional.for.nullables`, and the case's type in `decode.columns`: the
//! Protobuf schema drops Debezium's logical names; arrays with null elements
//! have no Protobuf form), and in JSON Schema as Confluent's JSONSerializer
//! writes what `JsonSchemaData` makes of it (cases whose value does not
//! match its own schema, a float as the text "NaN", have no record). All
//! must end the same way, and every
//! sink must store the value exactly (as its type renders it, written out
//! below rather than computed by the code under test) or refuse the record.
//! A refusal is the sink's error for the batch, which the runtime turns
//! into a dead-lettered record naming the column.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;
#[path = "conformance/cases.rs"]
mod conformance_cases;

use common::parquet;
use conformance_cases::{Case, Want, cases};
use serde_json::json;
use sinkfleet_core::debezium::{DeclaredColumns, DecodeOptions, Decoder};
use sinkfleet_core::{FlushMode, Position, Sink, SinkRecord};
use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_sink_clickhouse::{ClickHouseSink, ClickHouseSinkConfig};
use sinkfleet_sink_postgres::{PostgresSink, PostgresSinkConfig, WritePath};
use sinkfleet_sink_s3_parquet::config::{S3Target, Target};
use sinkfleet_sink_s3_parquet::{ParquetSink, ParquetSinkConfig};
use sinkfleet_testkit::kafka::Record;
use sqlx::Connection;
use std::collections::BTreeMap;
use std::sync::Arc;

/// With or without the schema envelope, or Avro, Protobuf, JSON Schema.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Envelope,
    Declared,
    Avro,
    Protobuf,
    JsonSchema,
}

const SHAPES: [Shape; 5] = [
    Shape::Envelope,
    Shape::Declared,
    Shape::Avro,
    Shape::Protobuf,
    Shape::JsonSchema,
];

/// Options declaring every case's type (for the schema-less runs, and for
/// the Protobuf run, whose schemas drop Debezium's logical names).
fn declared_options() -> DecodeOptions {
    let mut tables = BTreeMap::new();
    for c in cases() {
        tables.insert(
            format!("src.{}", c.name),
            BTreeMap::from([("v".to_owned(), c.declared.to_owned())]),
        );
    }
    DecodeOptions {
        columns: DeclaredColumns::parse(&tables).unwrap(),
        ..DecodeOptions::default()
    }
}

/// A decoder knowing every case's declared type (for the schema-less runs).
fn decoder() -> Decoder {
    Decoder::new(declared_options())
}

/// The Kafka record of a case: key `{"id": 1}`, `op = c`, source table
/// `src.<case>`.
fn record(case: &Case, shape: Shape) -> SinkRecord {
    let payload = json!({
        "op": "c",
        "source": {"schema": "src", "table": case.name, "lsn": 100, "sequence": "[\"100\",\"100\"]"},
        "after": {"id": 1, "v": case.wire},
    });
    let value = match shape {
        Shape::Declared => payload,
        Shape::Avro | Shape::Protobuf | Shape::JsonSchema => {
            unreachable!("registry records are made apart")
        }
        Shape::Envelope => {
            let mut field = case.field.clone();
            field["field"] = json!("v");
            field["optional"] = json!(true);
            let after = json!({"field": "after", "type": "struct", "optional": true, "fields": [
                {"field": "id", "type": "int32", "optional": false}, field]});
            json!({"schema": {"type": "struct", "fields": [after]}, "payload": payload})
        }
    };
    let change = DECODER
        .with_borrow_mut(|d| d.decode(Some(br#"{"id":1}"#), Some(value.to_string().as_bytes()), 0))
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        .unwrap();
    SinkRecord {
        position: Position {
            topic: Arc::from(format!("conformance.{}", case.name)),
            partition: 0,
            offset: 0,
        },
        change,
    }
}

/// The whole JsonConverter envelope of a case (the Avro serializer needs
/// every field's schema), and its key.
fn envelope(case: &Case) -> Record {
    let mut field = case.field.clone();
    field["field"] = json!("v");
    field["optional"] = json!(true);
    let row = json!({"type": "struct", "optional": true, "name": format!("src.{}.Value", case.name),
        "fields": [{"field": "id", "type": "int32", "optional": false}, field]});
    let (mut before, mut after) = (row.clone(), row);
    before["field"] = json!("before");
    after["field"] = json!("after");
    let value = json!({
        "schema": {"type": "struct", "optional": false, "name": format!("src.{}.Envelope", case.name),
            "fields": [before, after,
                {"field": "source", "type": "struct", "optional": false, "fields": [
                    {"field": "schema", "type": "string", "optional": false},
                    {"field": "table", "type": "string", "optional": false},
                    {"field": "lsn", "type": "int64", "optional": true},
                    {"field": "sequence", "type": "string", "optional": true}]},
                {"field": "op", "type": "string", "optional": false}]},
        "payload": {"before": null, "after": {"id": 1, "v": case.wire}, "op": "c",
            "source": {"schema": "src", "table": case.name, "lsn": 100, "sequence": "[\"100\",\"100\"]"}},
    });
    let key = json!({"schema": {"type": "struct", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false}]}, "payload": {"id": 1}});
    Record {
        key: Some(key.to_string().into_bytes()),
        value: Some(value.to_string().into_bytes()),
    }
}

/// Every case the Avro serializer accepts, decoded from Avro: the same
/// decoder, through the registry. Made once per test binary.
async fn avro_records() -> &'static BTreeMap<&'static str, SinkRecord> {
    static RECORDS: tokio::sync::OnceCell<BTreeMap<&'static str, SinkRecord>> =
        tokio::sync::OnceCell::const_new();
    RECORDS
        .get_or_init(|| async {
            let topic = common::unique("conformance-avro");
            let json: Vec<Record> = cases().iter().map(envelope).collect();
            let avro = common::avro::try_to_avro(&topic, &json);
            let good: Vec<Record> = avro.iter().filter_map(|r| r.clone().ok()).collect();
            let mut decoder =
                common::avro::decoder_for(&topic, &good, DecodeOptions::default()).await;
            let mut out = BTreeMap::new();
            for (case, record) in cases().iter().zip(avro) {
                let record = match record {
                    Ok(record) => record,
                    Err(e) => {
                        eprintln!("{}: no Avro record ({e})", case.name);
                        continue;
                    }
                };
                let change = common::avro::decode(&mut decoder, &topic, &record)
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name))
                    .unwrap();
                let position = Position {
                    topic: Arc::from(format!("conformance.{}", case.name)),
                    partition: 0,
                    offset: 0,
                };
                out.insert(case.name, SinkRecord { position, change });
            }
            // Most cases have an Avro twin: a case Avro cannot carry is one
            // whose JSON value does not fit its own schema.
            assert!(
                out.len() * 10 >= cases().len() * 8,
                "only {} of {} cases in Avro",
                out.len(),
                cases().len()
            );
            out
        })
        .await
}

/// Every case the Protobuf serializer accepts, decoded from Protobuf as
/// `ProtobufConverter` writes it with `optional.for.nullables=true` (with
/// the defaults a NULL is not written at all), each case's type declared in
/// `decode.columns` (Protobuf schemas drop Debezium's logical names). Made
/// once per test binary.
async fn protobuf_records() -> &'static BTreeMap<&'static str, SinkRecord> {
    static RECORDS: tokio::sync::OnceCell<BTreeMap<&'static str, SinkRecord>> =
        tokio::sync::OnceCell::const_new();
    RECORDS
        .get_or_init(|| async {
            let topic = common::unique("conformance-protobuf");
            let json: Vec<Record> = cases().iter().map(envelope).collect();
            let protobuf = common::protobuf::try_to_protobuf(
                &topic,
                &json,
                common::protobuf::Nullables::Optional,
            );
            let good: Vec<Record> = protobuf.iter().filter_map(|r| r.clone().ok()).collect();
            let mut decoder =
                common::protobuf::decoder_for(&topic, &good, declared_options()).await;
            let mut out = BTreeMap::new();
            for (case, record) in cases().iter().zip(protobuf) {
                let record = match record {
                    Ok(record) => record,
                    Err(e) => {
                        eprintln!("{}: no Protobuf record ({e})", case.name);
                        continue;
                    }
                };
                let change = common::avro::decode(&mut decoder, &topic, &record)
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name))
                    .unwrap();
                let position = Position {
                    topic: Arc::from(format!("conformance.{}", case.name)),
                    partition: 0,
                    offset: 0,
                };
                out.insert(case.name, SinkRecord { position, change });
            }
            eprintln!("{} of {} cases in Protobuf", out.len(), cases().len());
            assert!(
                out.len() * 10 >= cases().len() * 8,
                "only {} of {} cases in Protobuf",
                out.len(),
                cases().len()
            );
            out
        })
        .await
}

/// Every case Confluent's JSONSerializer accepts (it validates the value
/// against the JSON Schema JsonSchemaConverter makes of the Connect schema),
/// decoded from JSON Schema through the registry. Made once per test binary.
async fn json_schema_records() -> &'static BTreeMap<&'static str, SinkRecord> {
    static RECORDS: tokio::sync::OnceCell<BTreeMap<&'static str, SinkRecord>> =
        tokio::sync::OnceCell::const_new();
    RECORDS
        .get_or_init(|| async {
            let topic = common::unique("conformance-jsonschema");
            let json: Vec<Record> = cases().iter().map(envelope).collect();
            let framed = common::json_schema::try_to_json_schema(&topic, &json);
            let good: Vec<Record> = framed.iter().filter_map(|r| r.clone().ok()).collect();
            let mut decoder =
                common::json_schema::decoder_for(&topic, &good, DecodeOptions::default()).await;
            let mut out = BTreeMap::new();
            let mut differ = Vec::new();
            for (case, record) in cases().iter().zip(framed) {
                let record = match record {
                    Ok(record) => record,
                    Err(e) => {
                        eprintln!("{}: no JSON Schema record ({e})", case.name);
                        continue;
                    }
                };
                let change = common::avro::decode(&mut decoder, &topic, &record)
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name))
                    .unwrap();
                // The very change its JSON twin decodes to.
                let twin = self::record(case, Shape::Envelope).change;
                if (&change.row, &change.schema) != (&twin.row, &twin.schema) {
                    differ.push(format!(
                        "  {}: {:?} {:?}\n  twin {:?} {:?}",
                        case.name, change.row, change.schema, twin.row, twin.schema
                    ));
                }
                let position = Position {
                    topic: Arc::from(format!("conformance.{}", case.name)),
                    partition: 0,
                    offset: 0,
                };
                out.insert(case.name, SinkRecord { position, change });
            }
            assert!(
                differ.is_empty(),
                "JSON Schema decodes differ from their JSON twins:\n{}",
                differ.join("\n")
            );
            // A case JSON Schema cannot carry is one whose JSON value does
            // not match its own schema (a float as the text "NaN", ...).
            eprintln!("{} of {} cases in JSON Schema", out.len(), cases().len());
            assert!(
                out.len() * 10 >= cases().len() * 8,
                "only {} of {} cases in JSON Schema",
                out.len(),
                cases().len()
            );
            out
        })
        .await
}

/// The cases of a run and their records.
async fn records(shape: Shape) -> Vec<(&'static Case, SinkRecord)> {
    match shape {
        Shape::Avro => {
            let avro = avro_records().await;
            cases()
                .iter()
                .filter_map(|c| avro.get(c.name).map(|r| (c, r.clone())))
                .collect()
        }
        Shape::JsonSchema => {
            let framed = json_schema_records().await;
            cases()
                .iter()
                .filter_map(|c| framed.get(c.name).map(|r| (c, r.clone())))
                .collect()
        }
        Shape::Protobuf => {
            let protobuf = protobuf_records().await;
            cases()
                .iter()
                .filter_map(|c| protobuf.get(c.name).map(|r| (c, r.clone())))
                .collect()
        }
        _ => cases().iter().map(|c| (c, record(c, shape))).collect(),
    }
}

thread_local! {
    static DECODER: std::cell::RefCell<Decoder> = std::cell::RefCell::new(decoder());
}

/// What a sink made of every case: stored text, or the refusal's message.
type Outcomes = BTreeMap<&'static str, Result<String, String>>;

/// Compares outcomes with the table; every mismatch is reported at once.
fn check(sink: &str, shape: Shape, got: &Outcomes, want: impl Fn(&Case) -> &Want) {
    let mut wrong = Vec::new();
    for case in cases().iter().filter(|c| got.contains_key(c.name)) {
        let outcome = &got[case.name];
        let ok = match (want(case), outcome) {
            (Want::Is(text), Ok(stored)) => text == stored,
            // A refusal names the column (`column \`v\``, or `schema.table.v`).
            (Want::Refused, Err(message)) => {
                message.contains("`v`") || message.contains(&format!("{}.v:", case.name))
            }
            _ => false,
        };
        if !ok {
            wrong.push(format!(
                "  {}: want {:?}, got {outcome:?}",
                case.name,
                want(case)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{sink} ({shape:?}) differs from the conformance table:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn postgres_stores_every_value_exactly_or_refuses_it() {
    let paths = [WritePath::Unnest, WritePath::Copy];
    for (shape, path) in SHAPES.into_iter().flat_map(|s| paths.map(|p| (s, p))) {
        let schema = common::unique("conf_pg");
        let mut cfg = PostgresSinkConfig::with_url(common::pg_url());
        cfg.write_path = path;
        cfg.target_schema = Some(schema.clone());
        cfg.meta_schema = format!("{schema}_meta");
        let mut sink = PostgresSink::new(cfg).unwrap();
        let mut conn = sqlx::PgConnection::connect(&common::pg_url())
            .await
            .unwrap();
        sqlx::query("SET TIME ZONE 'UTC'")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut got = Outcomes::new();
        for (case, record) in records(shape).await {
            let outcome = match sink.write(&[record]).await {
                Err(e) => Err(e.to_string()),
                Ok(_) => {
                    let sql = format!("SELECT v::text FROM \"{schema}\".\"{}\"", case.name);
                    let v: Option<String> =
                        sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap();
                    Ok(v.unwrap_or_else(|| "NULL".into()))
                }
            };
            got.insert(case.name, outcome);
        }
        check(&format!("postgres, {path:?}"), shape, &got, |c| &c.pg);
    }
}

#[tokio::test]
async fn clickhouse_stores_every_value_exactly_or_refuses_it() {
    let url = sinkfleet_testkit::services::clickhouse_url();
    for shape in SHAPES {
        let db = common::unique("conf_ch");
        let mut cfg = ClickHouseSinkConfig::with_url(&url);
        cfg.database = Some(db.clone());
        let client = Client::new(&cfg).unwrap();
        // The suite runs on 18.16 and on a current engine (26.9).
        let current = client.features().await.unwrap().version >= (20, 7);
        let mut sink = ClickHouseSink::new(cfg).unwrap();
        let mut got = Outcomes::new();
        for (case, record) in records(shape).await {
            let outcome = match sink.write(&[record]).await {
                Err(e) => Err(e.to_string()),
                Ok(_) => {
                    // TSV: the server's own text of the value (`\N` is NULL).
                    let sql = format!("SELECT v FROM `{db}`.`{}` FINAL FORMAT TSV", case.name);
                    let body = client.execute(&sql, None, &[]).await.unwrap();
                    let text = body.strip_suffix('\n').unwrap_or(&body);
                    Ok(if text == "\\N" {
                        "NULL".into()
                    } else {
                        text.to_owned()
                    })
                }
            };
            got.insert(case.name, outcome);
        }
        check("clickhouse", shape, &got, |c| {
            match (&c.ch_current, current) {
                (Some(want), true) => want,
                _ => &c.ch,
            }
        });
        client
            .execute(&format!("DROP DATABASE `{db}`"), None, &[])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn parquet_on_a_local_directory_stores_every_value_exactly_or_refuses_it() {
    let dir = std::env::temp_dir().join(common::unique("conf_pq"));
    for shape in SHAPES {
        let cfg = ParquetSinkConfig::local(dir.join(format!("{shape:?}")).to_str().unwrap());
        parquet_conformance("parquet (local)", shape, cfg).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn parquet_on_s3_stores_every_value_exactly_or_refuses_it() {
    let endpoint = sinkfleet_testkit::services::s3_endpoint();
    for shape in SHAPES {
        let mut cfg = ParquetSinkConfig::local("unused");
        cfg.target = Target::S3(S3Target::compatible(
            "sinkfleet",
            &endpoint,
            "sinkfleet",
            "sinkfleet",
        ));
        cfg.prefix = common::unique("conf_pq");
        parquet_conformance("parquet (S3)", shape, cfg).await;
    }
}

/// Writes every case (one batch each), closes the files, reads each
/// table's file back.
async fn parquet_conformance(sink_name: &str, shape: Shape, cfg: ParquetSinkConfig) {
    let mut sink = ParquetSink::new(cfg.clone()).unwrap();
    let mut got = Outcomes::new();
    let records = records(shape).await;
    for (case, record) in &records {
        if let Err(e) = sink.write(std::slice::from_ref(record)).await {
            got.insert(case.name, Err(e.to_string()));
        }
    }
    sink.flush(FlushMode::All).await.unwrap();
    for (name, batches) in parquet::read_back(cfg).await {
        // `<prefix>/src/<table>/...`: the table is a path segment.
        let case = cases()
            .iter()
            .find(|c| name.split('/').any(|segment| segment == c.name))
            .unwrap_or_else(|| panic!("{name} belongs to no case"));
        let batch = &batches[0];
        let column = batch.column_by_name("v").unwrap();
        assert!(
            got.insert(case.name, Ok(parquet::render(column, 0)))
                .is_none(),
            "{}: stored and refused, or stored twice",
            case.name
        );
    }
    for (case, _) in &records {
        got.entry(case.name)
            .or_insert_with(|| Err("neither stored nor refused".into()));
    }
    check(sink_name, shape, &got, |c| &c.pq);
}

/// An unchanged TOASTed column (Debezium's placeholder) is never written:
/// Postgres and ClickHouse keep the stored value, Parquet leaves the column
/// null and names it in `__unchanged` (null when nothing was left out).
/// With and without the envelope.
#[tokio::test]
async fn unchanged_toast_columns_keep_their_value_in_every_sink() {
    let placeholder = sinkfleet_core::debezium::UNAVAILABLE_VALUE;
    let shapes = [
        (Shape::Envelope, "toast_env"),
        (Shape::Declared, "toast_bare"),
    ];
    for (shape, table) in shapes {
        let event = |version: u64, v: &str, doc: &str| {
            let payload = json!({
                "op": "u",
                "source": {"schema": "src", "table": table, "lsn": version,
                           "sequence": format!("[\"{version}\",\"{version}\"]")},
                "after": {"id": 1, "v": v, "doc": doc},
            });
            let value = match shape {
                Shape::Declared => payload,
                Shape::Avro | Shape::Protobuf | Shape::JsonSchema => {
                    unreachable!("the TOAST runs are JSON")
                }
                Shape::Envelope => json!({"schema": {"type": "struct", "fields": [
                    {"field": "after", "type": "struct", "optional": true, "fields": [
                        {"field": "id", "type": "int32", "optional": false},
                        {"field": "v", "type": "string", "optional": true},
                        {"field": "doc", "type": "string", "optional": true}]}]},
                    "payload": payload}),
            };
            let change = Decoder::new(DecodeOptions::default())
                .decode(Some(br#"{"id":1}"#), Some(value.to_string().as_bytes()), 0)
                .unwrap()
                .unwrap();
            SinkRecord {
                position: Position {
                    topic: Arc::from("toast"),
                    partition: 0,
                    offset: version as i64,
                },
                change,
            }
        };
        let batches = [
            vec![event(10, "first", "big document")],
            vec![event(20, "second", placeholder)],
        ];
        // Postgres.
        let schema = common::unique("conf_toast");
        let mut cfg = PostgresSinkConfig::with_url(common::pg_url());
        cfg.target_schema = Some(schema.clone());
        cfg.meta_schema = format!("{schema}_meta");
        let mut pg = PostgresSink::new(cfg).unwrap();
        for batch in &batches {
            pg.write(batch).await.unwrap();
        }
        let mut conn = sqlx::PgConnection::connect(&common::pg_url())
            .await
            .unwrap();
        let row: (String, String) =
            sqlx::query_as(&format!("SELECT v, doc FROM \"{schema}\".\"{table}\""))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(row, ("second".into(), "big document".into()), "{shape:?}");
        // ClickHouse.
        let url = sinkfleet_testkit::services::clickhouse_url();
        let db = common::unique("conf_toast");
        let mut cfg = ClickHouseSinkConfig::with_url(&url);
        cfg.database = Some(db.clone());
        let client = Client::new(&cfg).unwrap();
        let mut ch = ClickHouseSink::new(cfg).unwrap();
        for batch in &batches {
            ch.write(batch).await.unwrap();
        }
        let sql = format!("SELECT v, doc FROM `{db}`.`{table}` FINAL FORMAT TSV");
        let body = client.execute(&sql, None, &[]).await.unwrap();
        assert_eq!(body, "second\tbig document\n", "{shape:?}");
        client
            .execute(&format!("DROP DATABASE `{db}`"), None, &[])
            .await
            .unwrap();
        // Parquet.
        let dir = std::env::temp_dir().join(common::unique("conf_toast"));
        let cfg = ParquetSinkConfig::local(dir.to_str().unwrap());
        let mut pq = ParquetSink::new(cfg.clone()).unwrap();
        for batch in &batches {
            pq.write(batch).await.unwrap();
        }
        pq.flush(FlushMode::All).await.unwrap();
        let mut rows = Vec::new();
        for (_, batches) in parquet::read_back(cfg).await {
            for b in batches {
                let (v, doc, unchanged) = (
                    b.column_by_name("v").unwrap(),
                    b.column_by_name("doc").unwrap(),
                    b.column_by_name("__unchanged").unwrap(),
                );
                for i in 0..b.num_rows() {
                    rows.push((
                        parquet::render(v, i),
                        parquet::render(doc, i),
                        parquet::render(unchanged, i),
                    ));
                }
            }
        }
        let want = |v: &str, doc: &str, unchanged: &str| (v.into(), doc.into(), unchanged.into());
        assert_eq!(
            rows,
            vec![
                want("first", "big document", "NULL"),
                want("second", "NULL", "[\"doc\"]")
            ],
            "{shape:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
