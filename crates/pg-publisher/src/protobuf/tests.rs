#![allow(clippy::unwrap_used)] // tests may panic: that fails the test

use super::*;
use serde_json::json;
use sinkfleet_core::debezium::format::{Format, Formats, TopicFormats};
use sinkfleet_core::debezium::{DecodeOptions, Decoder, RegistrySchema};

fn connect() -> Value {
    serde_json::from_str(include_str!("../avro/connect_avro_golden.json")).unwrap()
}

/// The Debezium envelope's `.proto`, as `ProtobufData.fromConnectSchema`
/// makes it (read from the Java source: package from the name, `block` for
/// Debezium's `event.block` transaction struct, numbering in order, Decimal
/// params `precision`/`scale`).
#[test]
fn debezium_value_schema_is_the_one_protobuf_data_makes() {
    let text = proto_schema(&connect()["value_connect"], Options::default()).unwrap();
    let expected = r#"syntax = "proto3";
package app.public.orders;

import "confluent/meta.proto";
import "confluent/type/decimal.proto";

message Envelope {
  Value before = 1;
  Value after = 2;
  Source source = 3;
  block transaction = 4;
  string op = 5;
  int64 ts_ms = 6;
  int64 ts_us = 7;
  int64 ts_ns = 8;
  message Value {
    int64 id = 1;
    confluent.type.Decimal amount = 2 [(confluent.field_meta) = {params: [{key: "precision", value: "10"}, {key: "scale", value: "2"}]}];
    string note = 3;
    int32 qty = 4;
  }
"#;
    assert!(text.starts_with(expected), "{text}");
}

fn field(name: &str, s: Value) -> Value {
    let mut s = s;
    s["field"] = json!(name);
    s
}

/// A Debezium-like envelope over every Connect type the publisher writes.
fn envelope_schema() -> Value {
    let row = json!({"type": "struct", "name": "t.public.all.Value", "optional": true, "fields": [
        field("id", json!({"type": "int16", "optional": false})),
        field("i32", json!({"type": "int32", "optional": true})),
        field("i64", json!({"type": "int64", "optional": true})),
        field("f32", json!({"type": "float", "optional": true})),
        field("f64", json!({"type": "double", "optional": true})),
        field("flag", json!({"type": "boolean", "optional": true})),
        field("txt", json!({"type": "string", "optional": true})),
        field("raw", json!({"type": "bytes", "optional": true})),
        field("amount", json!({"type": "bytes", "optional": true, "name": DECIMAL, "version": 1,
            "parameters": {"scale": "3", "connect.decimal.precision": "30"}})),
        field("day", json!({"type": "int32", "optional": true, "name": DATE, "version": 1})),
        field("at", json!({"type": "int32", "optional": true, "name": TIME, "version": 1})),
        field("stamp", json!({"type": "int64", "optional": true, "name": TIMESTAMP, "version": 1})),
        field("small", json!({"type": "array", "optional": true, "items": {"type": "int16", "optional": true}})),
        field("words", json!({"type": "array", "optional": true, "items": {"type": "string", "optional": true}})),
        field("micros", json!({"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1})),
    ]});
    json!({"type": "struct", "name": "t.public.all.Envelope", "optional": false, "fields": [
        field("before", row.clone()),
        field("after", row),
        field("source", json!({"type": "struct", "name": "io.debezium.connector.postgresql.Source", "optional": false, "fields": [
            field("ts_ms", json!({"type": "int64", "optional": false})),
            field("snapshot", json!({"type": "string", "optional": true, "default": "false"})),
            field("schema", json!({"type": "string", "optional": false})),
            field("table", json!({"type": "string", "optional": false})),
            field("lsn", json!({"type": "int64", "optional": true})),
        ]})),
        field("op", json!({"type": "string", "optional": false})),
        field("ts_ms", json!({"type": "int64", "optional": true})),
    ]})
}

fn key_schema() -> Value {
    json!({"type": "struct", "name": "t.public.all.Key", "optional": false,
           "fields": [field("id", json!({"type": "int16", "optional": false}))]})
}

fn framed(id: u32, schema: &Value, payload: &Value) -> Vec<u8> {
    framed_with(id, schema, payload, Options::default())
}

fn framed_with(id: u32, schema: &Value, payload: &Value, options: Options) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.push(0);
    write_message(schema, payload, options, &mut out).unwrap();
    out
}

fn decoder(vs: &Value, ks: &Value, options: Options) -> Decoder {
    let mut d = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([(
            "^t\\..*".to_owned(),
            Formats {
                key: Format::Protobuf,
                value: Format::Protobuf,
            },
        )])
        .unwrap(),
        ..DecodeOptions::default()
    });
    for (id, s) in [(1, vs), (2, ks)] {
        d.add_schema(
            id,
            RegistrySchema::Found {
                schema_type: "PROTOBUF".into(),
                text: proto_schema(s, options).unwrap(),
            },
        );
    }
    d
}

/// What the publisher writes decodes, through the worker's Protobuf reader
/// (protox-compiled registry text, `nulls: zero` as ProtobufData's default
/// writes them), to the values the JSON twin carries.
#[test]
fn records_read_back_through_the_workers_protobuf_reader() {
    use sinkfleet_core::Value as V;
    let (vs, ks) = (envelope_schema(), key_schema());
    let mut d = decoder(&vs, &ks, Options::default());
    // -1234567890123456789012.345 as Connect's Decimal bytes.
    let unscaled: i128 = -1_234_567_890_123_456_789_012_345;
    let bytes = unscaled.to_be_bytes();
    let minimal = &bytes[5..];
    assert_eq!(i128::from_be_bytes(bytes), unscaled);
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let after = json!({"id": -3, "i32": -7, "i64": -9_000_000_000i64, "f32": 1.5, "f64": -2.25,
        "flag": true, "txt": "héllo", "raw": b64(&[0, 1, 255]), "amount": b64(minimal),
        "day": -1, "at": 45_296_789, "stamp": -1_500, "small": [1, 0, -2], "words": ["a", "", "c"],
        "micros": 1_700_000_000_123_456i64});
    let payload = json!({"before": null, "after": after,
        "source": {"ts_ms": 1_700_000_000_000i64, "snapshot": null, "schema": "public", "table": "all", "lsn": 42},
        "op": "c", "ts_ms": 1_700_000_000_001i64});
    let value = framed(1, &vs, &payload);
    let key = framed(2, &ks, &json!({"id": -3}));
    let change = d
        .decode_record("t.public.all", Some(&key), Some(&value), 0)
        .unwrap()
        .unwrap();
    assert_eq!(change.key.get("id"), Some(&V::Int(-3)));
    let row = change.row.unwrap();
    let get = |name: &str| format!("{:?}", row.get(name).unwrap());
    assert_eq!(get("id"), "Int(-3)");
    assert_eq!(get("i32"), "Int(-7)");
    assert_eq!(get("i64"), "Int(-9000000000)");
    assert_eq!(get("f32"), "Float(1.5)");
    assert_eq!(get("f64"), "Float(-2.25)");
    assert_eq!(get("flag"), "Bool(true)");
    assert_eq!(get("txt"), "Text(\"héllo\")");
    assert_eq!(get("raw"), "Bytes([0, 1, 255])");
    assert_eq!(get("amount"), "Decimal(\"-1234567890123456789012.345\")");
    assert_eq!(get("day"), "Date(1969-12-31)");
    assert_eq!(get("at"), "Time(12:34:56.789)");
    assert_eq!(get("stamp"), "Timestamp(1969-12-31T23:59:58.500)");
    assert_eq!(get("micros"), "Int(1700000000123456)");
    assert!(get("small").contains("Int(1)") && get("small").contains("Int(-2)"));
    assert!(get("words").contains("Text(\"\")"));
    assert_eq!(change.source_ts_ms, Some(1_700_000_000_000));
}

#[test]
fn decimal_precision_is_the_unscaled_digit_count() {
    assert_eq!(encode::digits(&[0]), 1);
    assert_eq!(encode::digits(&[0xff]), 1);
    assert_eq!(encode::digits(&[0x80]), 3);
    assert_eq!(encode::digits(&[0x27, 0x10]), 5);
    assert_eq!(encode::digits(&[0xd8, 0xf0]), 5);
}

#[test]
fn what_protobuf_data_cannot_write_is_refused() {
    let map = json!({"type": "struct", "name": "a.B", "fields": [
        field("m", json!({"type": "map", "keys": {"type": "string"}, "values": {"type": "string"}}))]});
    assert!(
        proto_schema(&map, Options::default())
            .unwrap_err()
            .contains("maps")
    );
    let bad = json!({"type": "struct", "name": "a.B", "fields": [field("a-b", json!({"type": "string"}))]});
    assert!(
        proto_schema(&bad, Options::default())
            .unwrap_err()
            .contains("identifier")
    );
    let arr = json!({"type": "struct", "name": "a.B", "fields": [
        field("xs", json!({"type": "array", "items": {"type": "int32", "optional": true}}))]});
    let err = write_message(
        &arr,
        &json!({"xs": [1, null]}),
        Options::default(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.contains("null array element"), "{err}");
}

/// Field names equal to their struct's name get `Message` appended
/// (`dataTypeFromConnectSchema`), and a struct used twice is defined once.
#[test]
fn nested_names_follow_protobuf_data() {
    let inner = json!({"type": "struct", "name": "x.y.point", "optional": true, "fields": [
        field("x", json!({"type": "int8", "optional": false}))]});
    let s =
        json!({"type": "struct", "fields": [field("point", inner.clone()), field("other", inner)]});
    let text = proto_schema(&s, Options::default()).unwrap();
    assert!(text.contains("\nmessage ConnectDefault1 {\n"), "{text}");
    assert!(text.contains("  pointMessage point = 1;\n"), "{text}");
    assert!(text.contains("  point other = 2;\n"), "{text}");
    assert_eq!(text.matches("message point {").count(), 1, "{text}");
    assert_eq!(text.matches("message pointMessage {").count(), 1, "{text}");
}

fn connector(extra: &[(&str, &str)]) -> Result<crate::config::ConnectorConfig, Vec<String>> {
    let p: std::collections::BTreeMap<String, String> = [
        ("database.hostname", "h"),
        ("database.user", "u"),
        ("database.password", ""),
        ("database.dbname", "app"),
        ("topic.prefix", "app"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    crate::config::ConnectorConfig::from_properties(&p)
        .map_err(|errs| errs.iter().map(|e| e.property.clone()).collect())
}

const PROTOBUF: &str = "io.confluent.connect.protobuf.ProtobufConverter";

#[test]
fn protobuf_converter_is_configured_like_avro() {
    let c = connector(&[
        ("key.converter", PROTOBUF),
        ("key.converter.schema.registry.url", "https://r:8081"),
        ("key.converter.basic.auth.credentials.source", "USER_INFO"),
        ("key.converter.basic.auth.user.info", "me:secret"),
        ("key.converter.optional.for.nullables", "false"),
        ("key.converter.wrapper.for.raw.primitives", "true"),
    ])
    .unwrap();
    match &c.key_converter {
        crate::config::Converter::Protobuf(r, options) => {
            assert!(!options.optional_for_nullables);
            assert_eq!(r.url, "https://r:8081");
            assert_eq!(r.username.as_deref(), Some("me"));
        }
        other => panic!("{other:?}"),
    }
    assert!(c.schemas_enable, "the writer puts schemas in");
    assert!(c.key_converter.uses_registry() && !c.value_converter.uses_registry());
    // Heartbeats carry schemas for the converter.
    let (_, value) = crate::stream::heartbeat_record(&c, 5);
    let envelope: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        proto_schema(&envelope["schema"], Options::default()).unwrap(),
        "syntax = \"proto3\";\npackage io.debezium.connector.common;\n\nmessage Heartbeat {\n  int64 ts_ms = 1;\n}\n"
    );
}

#[test]
fn protobuf_options_off_their_defaults_are_refused_by_name() {
    let errs = connector(&[
        ("key.converter", PROTOBUF),
        ("value.converter", PROTOBUF),
        ("value.converter.schema.registry.url", "http://r:8081"),
        ("value.converter.optional.for.nullables", "yes"),
        ("value.converter.wrapper.for.nullables", "true"),
        ("value.converter.enhanced.protobuf.schema.support", "true"),
        ("value.converter.scrub.invalid.names", "true"),
        ("key.converter.int.for.enums", "true"),
        ("key.converter.generate.struct.for.nulls", "true"),
    ])
    .unwrap_err();
    for p in [
        "key.converter.schema.registry.url", // required
        "value.converter.optional.for.nullables",
        "value.converter.wrapper.for.nullables",
        "value.converter.enhanced.protobuf.schema.support",
        "value.converter.scrub.invalid.names",
        "key.converter.int.for.enums",
        "key.converter.generate.struct.for.nulls",
    ] {
        assert!(errs.iter().any(|e| e == p), "{p} not refused: {errs:?}");
    }
}

/// `optional.for.nullables=true`: optional fields are proto3 `optional`
/// (not repeated ones), so a zero is written and read back as a zero and a
/// null stays null, through the worker's reader.
#[test]
fn optional_for_nullables_keeps_nulls_apart_from_zeros() {
    use sinkfleet_core::Value as V;
    let options = Options {
        optional_for_nullables: true,
    };
    let (vs, ks) = (envelope_schema(), key_schema());
    let text = proto_schema(&vs, options).unwrap();
    assert!(text.contains("  optional Value before = 1;\n"), "{text}");
    assert!(text.contains("  optional string txt = 7;\n"), "{text}");
    assert!(text.contains("  repeated int32 small = 13 ["), "{text}");
    assert!(text.contains("  int32 id = 1 ["), "{text}");
    let mut d = decoder(&vs, &ks, options);
    let after = json!({"id": 0, "i32": 0, "i64": null, "f64": 0.0, "flag": false, "txt": "",
        "raw": "", "txt2": null, "small": [0, 0]});
    let payload = json!({"before": null, "after": after,
        "source": {"ts_ms": 0, "snapshot": "false", "schema": "public", "table": "all", "lsn": 42},
        "op": "c", "ts_ms": null});
    let value = framed_with(1, &vs, &payload, options);
    let key = framed_with(2, &ks, &json!({"id": 0}), options);
    let change = d
        .decode_record("t.public.all", Some(&key), Some(&value), 0)
        .unwrap()
        .unwrap();
    let row = change.row.unwrap();
    let get = |name: &str| row.get(name).cloned().unwrap_or(V::Null);
    assert_eq!(get("i32"), V::Int(0));
    assert_eq!(get("i64"), V::Null);
    assert_eq!(get("f64"), V::Float(0.0));
    assert_eq!(get("flag"), V::Bool(false));
    assert_eq!(get("txt"), V::Text(String::new()));
    assert_eq!(get("raw"), V::Bytes(Vec::new()));
    assert_eq!(get("f32"), V::Null);
    assert_eq!(get("amount"), V::Null);
    assert!(format!("{:?}", get("small")).matches("Int(0)").count() == 2);
}

#[test]
fn values_protobuf_data_would_change_are_refused() {
    let s = json!({"type": "struct", "name": "a.B", "fields": [
        field("d", json!({"type": "int32", "optional": true, "name": DATE, "version": 1})),
        field("t", json!({"type": "int32", "optional": true, "name": TIME, "version": 1})),
        field("ts", json!({"type": "int64", "optional": true, "name": TIMESTAMP, "version": 1}))]});
    let write = |v: Value| write_message(&s, &v, Options::default(), &mut Vec::new());
    assert!(write(json!({"d": -141_427})).is_ok());
    assert!(
        write(json!({"d": -141_428}))
            .unwrap_err()
            .contains("1582-10-15")
    );
    assert!(write(json!({"t": 86_399_999})).is_ok());
    assert!(write(json!({"t": 86_400_000})).is_err());
    assert!(write(json!({"ts": -62_135_596_800_000i64})).is_ok());
    assert!(
        write(json!({"ts": -62_135_596_800_001i64}))
            .unwrap_err()
            .contains("range")
    );
}
