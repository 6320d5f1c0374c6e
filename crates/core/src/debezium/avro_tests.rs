//! Avro events decode to what their JSON twins decode to.
//!
//! The schemas here are what Kafka Connect's `AvroConverter` registers for
//! a Debezium event (`connect.name`, `connect.parameters`, optional fields
//! as `["null", T]` unions); the integration tests use records written by
//! Confluent's own serializers.

use super::*;
use crate::Value;
use apache_avro::types::Value as Avro;
use serde_json::json;

const ROW_FIELDS: &str = r#"[
  {"name": "id", "type": {"type": "int", "connect.type": "int16"}},
  {"name": "name", "type": ["null", "string"], "default": null},
  {"name": "price", "type": ["null", {"type": "bytes", "scale": 2, "precision": 10,
     "connect.version": 1, "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
     "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}], "default": null},
  {"name": "born", "type": ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}], "default": null},
  {"name": "seen", "type": ["null", {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTimestamp"}], "default": null},
  {"name": "at", "type": ["null", {"type": "string", "connect.version": 1, "connect.name": "io.debezium.time.ZonedTimestamp"}], "default": null},
  {"name": "ratio", "type": ["null", "float"], "default": null},
  {"name": "exact", "type": ["null", {"type": "record", "name": "VariableScaleDecimal", "namespace": "io.debezium.data",
     "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
     "connect.doc": "Variable scaled decimal", "connect.version": 1, "connect.name": "io.debezium.data.VariableScaleDecimal"}], "default": null},
  {"name": "blob", "type": ["null", "bytes"], "default": null},
  {"name": "tags", "type": ["null", {"type": "array", "items": ["null", "string"]}], "default": null}
]"#;

fn value_schema() -> String {
    format!(
        r#"{{"type": "record", "name": "Envelope", "namespace": "app.public.items",
  "fields": [
    {{"name": "before", "type": ["null", {{"type": "record", "name": "Value", "fields": {ROW_FIELDS},
       "connect.name": "app.public.items.Value"}}], "default": null}},
    {{"name": "after", "type": ["null", "Value"], "default": null}},
    {{"name": "source", "type": {{"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql",
       "fields": [
         {{"name": "version", "type": "string"}},
         {{"name": "ts_ms", "type": "long"}},
         {{"name": "schema", "type": "string"}},
         {{"name": "table", "type": "string"}},
         {{"name": "sequence", "type": ["null", "string"], "default": null}},
         {{"name": "lsn", "type": ["null", "long"], "default": null}}
       ], "connect.name": "io.debezium.connector.postgresql.Source"}}}},
    {{"name": "op", "type": "string"}},
    {{"name": "ts_ms", "type": ["null", "long"], "default": null}}
  ], "connect.version": 2, "connect.name": "app.public.items.Envelope"}}"#
    )
}

const KEY_SCHEMA: &str = r#"{"type": "record", "name": "Key", "namespace": "app.public.items",
  "fields": [{"name": "id", "type": {"type": "int", "connect.type": "int16"}}],
  "connect.name": "app.public.items.Key"}"#;

/// The Connect schema and payload `JsonConverter` writes for the same row.
fn json_twin(op: &str, row: serde_json::Value) -> (Vec<u8>, Vec<u8>) {
    let fields = json!([
        {"field": "id", "type": "int16", "optional": false},
        {"field": "name", "type": "string", "optional": true},
        {"field": "price", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
        {"field": "born", "type": "int32", "optional": true, "name": "io.debezium.time.Date"},
        {"field": "seen", "type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp"},
        {"field": "at", "type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp"},
        {"field": "ratio", "type": "float", "optional": true},
        {"field": "exact", "type": "struct", "optional": true, "name": "io.debezium.data.VariableScaleDecimal",
         "fields": [{"field": "scale", "type": "int32"}, {"field": "value", "type": "bytes"}]},
        {"field": "blob", "type": "bytes", "optional": true},
        {"field": "tags", "type": "array", "optional": true, "items": {"type": "string", "optional": true}}
    ]);
    let id = row["id"].clone();
    let row_schema = json!({"type": "struct", "fields": fields, "optional": true, "name": "app.public.items.Value"});
    let mut before = row_schema.clone();
    before["field"] = json!("before");
    let mut after = row_schema;
    after["field"] = json!("after");
    let (b, a) = if op == "d" {
        (row.clone(), json!(null))
    } else {
        (json!(null), row)
    };
    let value = json!({
        "schema": {"type": "struct", "name": "app.public.items.Envelope", "fields": [
            before, after,
            {"field": "source", "type": "struct", "fields": [
                {"field": "version", "type": "string"}, {"field": "ts_ms", "type": "int64"},
                {"field": "schema", "type": "string"}, {"field": "table", "type": "string"},
                {"field": "sequence", "type": "string", "optional": true},
                {"field": "lsn", "type": "int64", "optional": true}]},
            {"field": "op", "type": "string"},
            {"field": "ts_ms", "type": "int64", "optional": true}]},
        "payload": {"before": b, "after": a,
            "source": {"version": "3.0.0", "ts_ms": 1700000000000i64, "schema": "public", "table": "items",
                       "sequence": "[\"100\",\"120\"]", "lsn": 120},
            "op": op, "ts_ms": 1700000000500i64}
    });
    let key = json!({
        "schema": {"type": "struct", "name": "app.public.items.Key",
                   "fields": [{"field": "id", "type": "int16", "optional": false}]},
        "payload": {"id": id}
    });
    (
        serde_json::to_vec(&key).unwrap(),
        serde_json::to_vec(&value).unwrap(),
    )
}

fn framed(id: u32, schema: &str, value: Avro) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema).unwrap();
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(&schema, value).unwrap());
    out
}

fn some(v: Avro) -> Avro {
    Avro::Union(1, Box::new(v))
}

fn avro_row() -> Avro {
    Avro::Record(vec![
        ("id".into(), Avro::Int(7)),
        ("name".into(), some(Avro::String("Zoë".into()))),
        (
            "price".into(),
            some(Avro::Decimal(apache_avro::Decimal::from(vec![0x04, 0xd2]))),
        ),
        ("born".into(), some(Avro::Int(-1))),
        ("seen".into(), some(Avro::Long(1_700_000_000_123_456))),
        (
            "at".into(),
            some(Avro::String("2024-01-02T03:04:05.123456Z".into())),
        ),
        ("ratio".into(), some(Avro::Float(1.1))),
        (
            "exact".into(),
            some(Avro::Record(vec![
                ("scale".into(), Avro::Int(3)),
                ("value".into(), Avro::Bytes(vec![0xff, 0x85])),
            ])),
        ),
        ("blob".into(), some(Avro::Bytes(vec![0, 1, 2, 255]))),
        (
            "tags".into(),
            some(Avro::Array(vec![
                some(Avro::String("a".into())),
                Avro::Union(0, Box::new(Avro::Null)),
            ])),
        ),
    ])
}

fn json_row() -> serde_json::Value {
    json!({"id": 7, "name": "Zoë", "price": "BNI=", "born": -1, "seen": 1_700_000_000_123_456i64,
           "at": "2024-01-02T03:04:05.123456Z", "ratio": 1.1,
           "exact": {"scale": 3, "value": "/4U="}, "blob": "AAEC/w==", "tags": ["a", null]})
}

fn envelope(op: &str, row: Avro) -> Avro {
    let (before, after) = if op == "d" {
        (some(row), Avro::Union(0, Box::new(Avro::Null)))
    } else {
        (Avro::Union(0, Box::new(Avro::Null)), some(row))
    };
    Avro::Record(vec![
        ("before".into(), before),
        ("after".into(), after),
        (
            "source".into(),
            Avro::Record(vec![
                ("version".into(), Avro::String("3.0.0".into())),
                ("ts_ms".into(), Avro::Long(1_700_000_000_000)),
                ("schema".into(), Avro::String("public".into())),
                ("table".into(), Avro::String("items".into())),
                (
                    "sequence".into(),
                    some(Avro::String("[\"100\",\"120\"]".into())),
                ),
                ("lsn".into(), some(Avro::Long(120))),
            ]),
        ),
        ("op".into(), Avro::String(op.into())),
        ("ts_ms".into(), some(Avro::Long(1_700_000_000_500))),
    ])
}

fn avro_decoder() -> Decoder {
    let avro = Formats {
        key: Format::Avro,
        value: Format::Avro,
    };
    let mut d = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([("^app\\..*".to_owned(), avro)]).unwrap(),
        ..DecodeOptions::default()
    });
    for (id, text) in [(1, value_schema()), (2, KEY_SCHEMA.to_owned())] {
        d.add_schema(
            id,
            RegistrySchema::Found {
                schema_type: "AVRO".into(),
                text,
            },
        );
    }
    d
}

#[test]
fn avro_events_decode_like_their_json_twins() {
    for op in ["c", "u", "d"] {
        let key = framed(
            2,
            KEY_SCHEMA,
            Avro::Record(vec![("id".into(), Avro::Int(7))]),
        );
        let value = framed(1, &value_schema(), envelope(op, avro_row()));
        let mut d = avro_decoder();
        assert!(
            d.missing_schemas("app.public.items", Some(&key), Some(&value))
                .is_empty()
        );
        let from_avro = d
            .decode_record("app.public.items", Some(&key), Some(&value), 5)
            .unwrap()
            .unwrap();
        let (jkey, jvalue) = json_twin(op, json_row());
        let from_json = decode(Some(&jkey), Some(&jvalue), 5, &DecodeOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(from_avro.op, from_json.op, "{op}");
        assert_eq!(from_avro.table, from_json.table);
        assert_eq!(from_avro.key, from_json.key);
        // `json!` sorts object keys: compare rows by name.
        let sorted = |row: &Option<Row>| {
            row.as_ref().map(|r| {
                let mut c = r.columns.clone();
                c.sort_by(|a, b| a.0.cmp(&b.0));
                c
            })
        };
        assert_eq!(sorted(&from_avro.row), sorted(&from_json.row), "{op}");
        assert_eq!(from_avro.version, from_json.version);
        assert_eq!(from_avro.version, Version::new(100, 120));
        assert_eq!(from_avro.source_ts_ms, from_json.source_ts_ms);
        let (a, j) = (from_avro.schema.unwrap(), from_json.schema.unwrap());
        for (ca, cj) in a.columns.iter().zip(&j.columns) {
            assert_eq!(
                (&ca.name, &ca.ty, ca.optional),
                (&cj.name, &cj.ty, cj.optional)
            );
        }
        if op != "d" {
            let row = from_avro.row.unwrap();
            assert_eq!(row.get("price"), Some(&Value::Decimal("12.34".into())));
            assert_eq!(row.get("exact"), Some(&Value::Decimal("-0.123".into())));
            assert_eq!(row.get("ratio"), Some(&Value::Float(1.1)));
        }
    }
}

#[test]
fn the_toast_placeholder_leaves_the_column_out() {
    let Avro::Record(mut fields) = avro_row() else {
        unreachable!()
    };
    fields[1].1 = some(Avro::String(UNAVAILABLE_VALUE.into()));
    fields[8].1 = some(Avro::Bytes(UNAVAILABLE_VALUE.as_bytes().to_vec()));
    let key = framed(
        2,
        KEY_SCHEMA,
        Avro::Record(vec![("id".into(), Avro::Int(7))]),
    );
    let value = framed(1, &value_schema(), envelope("u", Avro::Record(fields)));
    let change = avro_decoder()
        .decode_record("app.public.items", Some(&key), Some(&value), 0)
        .unwrap()
        .unwrap();
    assert_eq!(change.unchanged, vec!["name".to_owned(), "blob".to_owned()]);
    assert!(!change.row.unwrap().contains("name"));
}

#[test]
fn bad_records_are_refused_naming_what_is_wrong() {
    let key = framed(
        2,
        KEY_SCHEMA,
        Avro::Record(vec![("id".into(), Avro::Int(7))]),
    );
    let value = framed(1, &value_schema(), envelope("c", avro_row()));
    let mut d = avro_decoder();
    let refuse = |d: &mut Decoder, value: &[u8]| {
        d.decode_record("app.public.items", Some(&key), Some(value), 0)
            .unwrap_err()
            .to_string()
    };
    let json = br#"{"schema":null,"payload":{}}"#;
    assert!(
        refuse(&mut d, json).contains("wrong magic byte 0x7b"),
        "{}",
        refuse(&mut d, json)
    );
    assert!(refuse(&mut d, &value[..3]).contains("truncated: 3 bytes"));
    let cut = &value[..value.len() - 4];
    assert!(
        refuse(&mut d, cut).contains("does not match its schema (id 1)"),
        "{}",
        refuse(&mut d, cut)
    );
    let mut longer = value.clone();
    longer.push(0);
    assert!(refuse(&mut d, &longer).contains("1 bytes left after the record"));
    // Written with the key's schema, framed with the value's id.
    let mut other = value[..5].to_vec();
    other.extend_from_slice(&key[5..]);
    assert!(refuse(&mut d, &other).contains("does not match its schema"));

    let mut unknown = value.clone();
    unknown[4] = 9;
    assert_eq!(
        d.missing_schemas("app.public.items", Some(&key), Some(&unknown)),
        vec![9]
    );
    d.add_schema(9, RegistrySchema::NotFound);
    assert!(
        d.missing_schemas("app.public.items", Some(&key), Some(&unknown))
            .is_empty()
    );
    assert!(refuse(&mut d, &unknown).contains("schema id 9 does not exist in the registry"));
    unknown[4] = 10;
    d.add_schema(
        10,
        RegistrySchema::Found {
            schema_type: "PROTOBUF".into(),
            text: "syntax = \"proto3\";".into(),
        },
    );
    assert!(refuse(&mut d, &unknown).contains("is a PROTOBUF schema"));

    // A value the column's type cannot hold is refused as in JSON.
    let Avro::Record(mut fields) = avro_row() else {
        unreachable!()
    };
    fields[3].1 = some(Avro::Int(i32::MAX));
    let far = framed(1, &value_schema(), envelope("c", Avro::Record(fields)));
    let message = refuse(&mut d, &far);
    assert!(message.starts_with("field `after.born`"), "{message}");
}

#[test]
fn plain_avro_logical_types_map_to_the_same_column_types() {
    let schema = r#"{"type": "record", "name": "K", "fields": [
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "n", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 1}},
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}}]}"#;
    let parsed = avro::AvroSchema::parse(schema).unwrap();
    let types: Vec<_> = parsed
        .row_codec()
        .schema
        .columns
        .iter()
        .map(|c| c.ty.clone())
        .collect();
    assert_eq!(
        types,
        vec![
            crate::ColumnType::Date,
            crate::ColumnType::Timestamp,
            crate::ColumnType::Decimal {
                precision: Some(5),
                scale: 1
            },
            crate::ColumnType::Uuid,
        ]
    );
}
