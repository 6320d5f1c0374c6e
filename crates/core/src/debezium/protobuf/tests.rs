//! Protobuf events decode to what their JSON twins decode to, for what
//! `ProtobufData` keeps (see [`super::plan`]). The schemas here are what
//! Kafka Connect's `ProtobufConverter` registers for a Debezium event with
//! its default settings; the integration tests use records written by
//! Confluent's own serializer.

use super::*;
use crate::Value;
use crate::change::{ColumnType, Op, Row};
use crate::debezium::format::{Format, Formats, TopicFormats};
use crate::debezium::{DecodeOptions, Decoder, RegistrySchema};
use prost::Message as _;
use prost_reflect::{ReflectMessage, Value as Proto};

const VALUE_SCHEMA: &str = r#"syntax = "proto3";
package app.public.items;

import "confluent/meta.proto";
import "confluent/type/decimal.proto";
import "google/protobuf/timestamp.proto";
import "google/type/date.proto";
import "google/type/timeofday.proto";

message Envelope {
  Value before = 1;
  Value after = 2;
  Source source = 3;
  string op = 4;
  int64 ts_ms = 5;

  message Value {
    int32 id = 1 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int16" }] }];
    string name = 2;
    confluent.type.Decimal price = 3 [(confluent.field_meta) = { params: [{ key: "precision", value: "10" }, { key: "scale", value: "2" }] }];
    int64 seen = 4;
    VariableScaleDecimal exact = 5;
    bytes blob = 6;
    repeated string tags = 7;
    google.type.Date day = 8;
    google.type.TimeOfDay at = 9;
    google.protobuf.Timestamp stamp = 10;
    optional int64 maybe = 11;
    float ratio = 12;

    message VariableScaleDecimal {
      int32 scale = 1;
      bytes value = 2;
    }
  }
  message Source {
    string version = 1;
    int64 ts_ms = 2;
    string schema = 3;
    string table = 4;
    string sequence = 5;
    int64 lsn = 6;
  }
}
"#;

const KEY_SCHEMA: &str = r#"syntax = "proto3";
package app.public.items;
import "confluent/meta.proto";
message Key {
  int32 id = 1 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int16" }] }];
}
"#;

fn decoder() -> Decoder {
    let protobuf = Formats {
        key: Format::Protobuf,
        value: Format::Protobuf,
    };
    let mut d = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([("^app\\..*".to_owned(), protobuf)]).unwrap(),
        ..DecodeOptions::default()
    });
    for (id, text) in [(1, VALUE_SCHEMA), (2, KEY_SCHEMA)] {
        d.add_schema(
            id,
            RegistrySchema::Found {
                schema_type: "PROTOBUF".into(),
                text: text.into(),
            },
        );
    }
    d
}

fn framed(id: u32, message: &DynamicMessage) -> Vec<u8> {
    let mut r = vec![0];
    r.extend_from_slice(&id.to_be_bytes());
    r.push(0);
    r.extend_from_slice(&message.encode_to_vec());
    r
}

fn new(schema: &ProtobufSchema, name: &str) -> DynamicMessage {
    let desc = schema.file.parent_pool().get_message_by_name(name).unwrap();
    DynamicMessage::new(desc)
}

fn sub(parent: &DynamicMessage, field: &str) -> DynamicMessage {
    let f = parent.descriptor().get_field_by_name(field).unwrap();
    match f.kind() {
        prost_reflect::Kind::Message(m) => DynamicMessage::new(m),
        _ => panic!("{field}"),
    }
}

fn set(m: &mut DynamicMessage, field: &str, v: Proto) {
    m.set_field_by_name(field, v);
}

fn row(schema: &ProtobufSchema) -> DynamicMessage {
    let mut row = new(schema, "app.public.items.Envelope.Value");
    set(&mut row, "id", Proto::I32(7));
    set(&mut row, "name", Proto::String("widget".into()));
    let mut price = sub(&row, "price");
    set(&mut price, "value", Proto::Bytes(vec![0x04, 0xd2].into()));
    set(&mut price, "precision", Proto::U32(10));
    set(&mut price, "scale", Proto::I32(2));
    set(&mut row, "price", Proto::Message(price));
    set(&mut row, "seen", Proto::I64(1_700_000_000_123_456));
    let mut exact = sub(&row, "exact");
    set(&mut exact, "scale", Proto::I32(3));
    set(&mut exact, "value", Proto::Bytes(vec![0x85].into()));
    set(&mut row, "exact", Proto::Message(exact));
    set(&mut row, "blob", Proto::Bytes(vec![0, 1, 255].into()));
    set(
        &mut row,
        "tags",
        Proto::List(vec![Proto::String("a".into()), Proto::String("b".into())]),
    );
    let mut day = sub(&row, "day");
    set(&mut day, "year", Proto::I32(2024));
    set(&mut day, "month", Proto::I32(2));
    set(&mut day, "day", Proto::I32(29));
    set(&mut row, "day", Proto::Message(day));
    let mut at = sub(&row, "at");
    set(&mut at, "hours", Proto::I32(13));
    set(&mut at, "minutes", Proto::I32(5));
    set(&mut at, "nanos", Proto::I32(250_000_000));
    set(&mut row, "at", Proto::Message(at));
    let mut stamp = sub(&row, "stamp");
    set(&mut stamp, "seconds", Proto::I64(1_700_000_000));
    set(&mut stamp, "nanos", Proto::I32(5_000_000));
    set(&mut row, "stamp", Proto::Message(stamp));
    set(&mut row, "ratio", Proto::F32(1.1));
    row
}

fn envelope(schema: &ProtobufSchema, op: &str, row: DynamicMessage) -> DynamicMessage {
    let mut e = new(schema, "app.public.items.Envelope");
    set(
        &mut e,
        if op == "d" { "before" } else { "after" },
        Proto::Message(row),
    );
    let mut source = sub(&e, "source");
    set(&mut source, "version", Proto::String("2.7".into()));
    set(&mut source, "ts_ms", Proto::I64(1_700_000_000_000));
    set(&mut source, "schema", Proto::String("public".into()));
    set(&mut source, "table", Proto::String("items".into()));
    set(
        &mut source,
        "sequence",
        Proto::String("[\"100\",\"120\"]".into()),
    );
    set(&mut source, "lsn", Proto::I64(120));
    set(&mut e, "source", Proto::Message(source));
    set(&mut e, "op", Proto::String(op.into()));
    e
}

fn key(schema: &ProtobufSchema) -> Vec<u8> {
    let mut k = new(schema, "app.public.items.Key");
    set(&mut k, "id", Proto::I32(7));
    framed(2, &k)
}

fn schemas() -> (ProtobufSchema, ProtobufSchema) {
    (
        ProtobufSchema::parse(VALUE_SCHEMA).unwrap(),
        ProtobufSchema::parse(KEY_SCHEMA).unwrap(),
    )
}

#[test]
fn events_decode_with_the_connect_types_protobuf_data_keeps() {
    let (vs, ks) = schemas();
    let mut d = decoder();
    for op in ["c", "d"] {
        let value = framed(1, &envelope(&vs, op, row(&vs)));
        let change = d
            .decode_record("app.public.items", Some(&key(&ks)), Some(&value), 5)
            .unwrap()
            .unwrap();
        assert_eq!(change.op, if op == "c" { Op::Create } else { Op::Delete });
        assert_eq!(change.table.to_string(), "public.items");
        assert_eq!(change.key.get("id"), Some(&Value::Int(7)));
        assert_eq!(change.version, crate::Version::new(100, 120));
        assert_eq!(change.source_ts_ms, Some(1_700_000_000_000));
        let schema = change.schema.unwrap();
        let ty = |name: &str| {
            schema
                .columns
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.ty.clone())
                .unwrap()
        };
        assert_eq!(ty("id"), ColumnType::Int16);
        assert_eq!(
            ty("price"),
            ColumnType::Decimal {
                precision: Some(10),
                scale: 2
            }
        );
        assert_eq!(ty("exact"), ColumnType::VariableDecimal);
        assert_eq!(ty("day"), ColumnType::Date);
        assert_eq!(ty("at"), ColumnType::Time);
        assert_eq!(ty("stamp"), ColumnType::Timestamp);
        // Debezium's MicroTimestamp name is not kept: its carrier.
        assert_eq!(ty("seen"), ColumnType::Int64);
        if op == "d" {
            assert!(change.row.is_none());
            continue;
        }
        let row: Row = change.row.unwrap();
        let get = |name: &str| row.get(name).cloned().unwrap();
        assert_eq!(get("name"), Value::Text("widget".into()));
        assert_eq!(get("price"), Value::Decimal("12.34".into()));
        assert_eq!(get("exact"), Value::Decimal("-0.123".into()));
        assert_eq!(get("blob"), Value::Bytes(vec![0, 1, 255]));
        assert_eq!(get("ratio"), Value::Float(1.1));
        assert_eq!(get("seen"), Value::Int(1_700_000_000_123_456));
        assert_eq!(format!("{:?}", get("day")), "Date(2024-02-29)");
        assert_eq!(format!("{:?}", get("at")), "Time(13:05:00.250)");
        assert_eq!(
            format!("{:?}", get("stamp")),
            "Timestamp(2023-11-14T22:13:20.005)"
        );
        // Presence: an absent `optional` field is null.
        assert_eq!(get("maybe"), Value::Null);
        assert!(matches!(get("tags"), Value::Array(a) if a.len() == 2));
    }
}

/// `KEY_SCHEMA` as the Python serializer registers it: base64 of the
/// serialized `FileDescriptorProto` (made with Python's protobuf).
const KEY_DESCRIPTOR: &str = "ChphcHAucHVibGljLml0ZW1zLktleS5wcm90bxIQYXBwLnB1YmxpYy5pdGVtcxoUY29uZmx1ZW50L21ldGEucHJvdG8iLQoDS2V5EiYKAmlkGAEgASgFQhqCRBcSFQoMY29ubmVjdC50eXBlEgVpbnQxNmIGcHJvdG8z";

#[test]
fn the_python_serializers_base64_descriptor_is_read_too() {
    let schema = ProtobufSchema::parse(KEY_DESCRIPTOR).unwrap();
    let message = schema.message(&[0]).unwrap();
    assert_eq!(
        message.row_codec().schema.columns[0].ty,
        ColumnType::Int16,
        "field_meta params survive the serialized form"
    );
}

#[test]
fn bad_records_and_schemas_are_refused_naming_what_is_wrong() {
    let (vs, ks) = schemas();
    let mut d = decoder();
    let value = framed(1, &envelope(&vs, "c", row(&vs)));
    let reason = |d: &mut Decoder, key: &[u8], value: &[u8]| {
        d.decode_record("app.public.items", Some(key), Some(value), 5)
            .unwrap_err()
            .to_string()
    };
    let k = key(&ks);
    // The key's bytes under the envelope's id: undecodable or mismatched.
    let mut wrong = value.clone();
    wrong.truncate(value.len() - 4);
    let e = reason(&mut d, &k, &wrong);
    assert!(e.contains("undecodable payload"), "{e}");
    let e = reason(&mut d, &k, &[0, 0, 0, 0, 1]);
    assert!(e.contains("truncated"), "{e}");
    let e = reason(&mut d, &k, &[0, 0, 0, 0, 1, 2, 8]);
    assert!(e.contains("name no message"), "{e}");
    // A field the schema does not declare.
    let mut unknown = value.clone();
    unknown.extend_from_slice(&[0xf8, 0x06, 0x01]); // field 111, varint 1
    let e = reason(&mut d, &k, &unknown);
    assert!(e.contains("does not match its schema"), "{e}");
    // A decimal whose scale is not its column's.
    let mut r = row(&vs);
    let mut price = sub(&r, "price");
    set(&mut price, "value", Proto::Bytes(vec![1].into()));
    set(&mut price, "scale", Proto::I32(3));
    set(&mut r, "price", Proto::Message(price));
    let e = reason(&mut d, &k, &framed(1, &envelope(&vs, "c", r)));
    assert!(e.contains("scale 3 in a column of scale 2"), "{e}");
    // A schema importing another subject's file is refused, clearly.
    d.add_schema(
        9,
        RegistrySchema::Found {
            schema_type: "PROTOBUF".into(),
            text: "syntax = \"proto3\"; import \"other.proto\"; message M { int32 a = 1; }".into(),
        },
    );
    let mut other = vec![0, 0, 0, 0, 9, 0];
    other.extend_from_slice(b"\x08\x01");
    let e = reason(&mut d, &k, &other);
    assert!(e.contains("references are not resolved"), "{e}");
    // An Avro id under a protobuf topic.
    d.add_schema(
        10,
        RegistrySchema::Found {
            schema_type: "AVRO".into(),
            text: r#"{"type":"record","name":"K","fields":[{"name":"id","type":"int"}]}"#.into(),
        },
    );
    let e = reason(&mut d, &k, &[0, 0, 0, 0, 10, 0]);
    assert!(e.contains("is a AVRO schema"), "{e}");
}

#[test]
fn declared_columns_give_back_the_logical_types_protobuf_data_dropped() {
    let (vs, ks) = schemas();
    let mut d = decoder();
    let tables = std::collections::BTreeMap::from([(
        "public.items".to_owned(),
        std::collections::BTreeMap::from([
            (
                "seen".to_owned(),
                "io.debezium.time.MicroTimestamp".to_owned(),
            ),
            // Not a carrier: the schema's own Decimal type stays.
            ("price".to_owned(), "string".to_owned()),
        ]),
    )]);
    d.opts.columns = crate::debezium::DeclaredColumns::parse(&tables).unwrap();
    let value = framed(1, &envelope(&vs, "c", row(&vs)));
    let change = d
        .decode_record("app.public.items", Some(&key(&ks)), Some(&value), 5)
        .unwrap()
        .unwrap();
    let row = change.row.unwrap();
    assert_eq!(
        format!("{:?}", row.get("seen").unwrap()),
        "Timestamp(2023-11-14T22:13:20.123456)"
    );
    assert_eq!(row.get("price"), Some(&Value::Decimal("12.34".into())));
    let schema = change.schema.unwrap();
    assert_eq!(schema.columns[3].ty, ColumnType::Timestamp);
}

/// With the converter's defaults a null scalar is not written: it reads as
/// proto3's zero value, as `ProtobufConverter` reads it; messages and
/// `optional` fields read as null; an unset `repeated` as an empty array.
#[test]
fn unset_fields_read_as_protobuf_converter_reads_them() {
    let (vs, ks) = schemas();
    let mut d = decoder();
    let mut r = new(&vs, "app.public.items.Envelope.Value");
    set(&mut r, "id", Proto::I32(7));
    let value = framed(1, &envelope(&vs, "c", r));
    let change = d
        .decode_record("app.public.items", Some(&key(&ks)), Some(&value), 5)
        .unwrap()
        .unwrap();
    let row = change.row.unwrap();
    let get = |name: &str| row.get(name).cloned().unwrap();
    assert_eq!(get("name"), Value::Text(String::new()));
    assert_eq!(get("seen"), Value::Int(0));
    assert_eq!(get("blob"), Value::Bytes(Vec::new()));
    assert_eq!(get("ratio"), Value::Float(0.0));
    assert_eq!(get("price"), Value::Null);
    assert_eq!(get("day"), Value::Null);
    assert_eq!(get("maybe"), Value::Null);
    assert_eq!(get("tags"), Value::Array(Vec::new()));
}
