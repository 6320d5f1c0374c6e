//! JSON Schema events decode to what their JSON twins decode to.
//!
//! The schemas here are what Kafka Connect's `JsonSchemaConverter`
//! registers for a Debezium event under its default settings (`title` for
//! the Connect name, `connect.type`, `connect.index`, `connect.parameters`,
//! optional fields as `oneOf` with null); the integration tests use records
//! written by Confluent's own serializer.

use super::json_schema::JsonSchema;
use super::*;
use crate::Value;
use serde_json::json;

fn row_schema() -> Json {
    json!({"type": "object", "title": "app.public.items.Value", "properties": {
        "id": {"type": "integer", "connect.index": 0, "connect.type": "int16"},
        "name": {"oneOf": [{"type": "null"}, {"type": "string"}], "connect.index": 1},
        "price": {"oneOf": [{"type": "null"}, {"type": "string", "title": "org.apache.kafka.connect.data.Decimal",
            "connect.version": 1, "connect.type": "bytes",
            "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"}}], "connect.index": 2},
        "born": {"oneOf": [{"type": "null"}, {"type": "integer", "title": "io.debezium.time.Date",
            "connect.version": 1, "connect.type": "int32"}], "connect.index": 3},
        "seen": {"oneOf": [{"type": "null"}, {"type": "integer", "title": "io.debezium.time.MicroTimestamp",
            "connect.version": 1, "connect.type": "int64"}], "connect.index": 4},
        "at": {"oneOf": [{"type": "null"}, {"type": "string", "title": "io.debezium.time.ZonedTimestamp",
            "connect.version": 1}], "connect.index": 5},
        "ratio": {"oneOf": [{"type": "null"}, {"type": "number", "connect.type": "float32"}], "connect.index": 6},
        "exact": {"oneOf": [{"type": "null"}, {"type": "object", "title": "io.debezium.data.VariableScaleDecimal",
            "connect.version": 1, "description": "Variable scaled decimal", "properties": {
                "scale": {"type": "integer", "connect.index": 0, "connect.type": "int32"},
                "value": {"type": "string", "connect.index": 1, "connect.type": "bytes"}}}],
            "connect.index": 7},
        "blob": {"oneOf": [{"type": "null"}, {"type": "string", "connect.type": "bytes"}], "connect.index": 8},
        "tags": {"oneOf": [{"type": "null"}, {"type": "array",
            "items": {"oneOf": [{"type": "null"}, {"type": "string"}]}}], "connect.index": 9}
    }})
}

fn value_schema() -> String {
    let row = row_schema();
    json!({"type": "object", "title": "app.public.items.Envelope", "connect.version": 2, "properties": {
        "before": {"oneOf": [{"type": "null"}, row.clone()], "connect.index": 0},
        "after": {"oneOf": [{"type": "null"}, row], "connect.index": 1},
        "source": {"type": "object", "title": "io.debezium.connector.postgresql.Source", "connect.index": 2,
            "properties": {
                "version": {"type": "string", "connect.index": 0},
                "ts_ms": {"type": "integer", "connect.index": 1, "connect.type": "int64"},
                "schema": {"type": "string", "connect.index": 2},
                "table": {"type": "string", "connect.index": 3},
                "sequence": {"oneOf": [{"type": "null"}, {"type": "string"}], "connect.index": 4},
                "lsn": {"oneOf": [{"type": "null"}, {"type": "integer", "connect.type": "int64"}],
                    "connect.index": 5}}},
        "op": {"type": "string", "connect.index": 3},
        "ts_ms": {"oneOf": [{"type": "null"}, {"type": "integer", "connect.type": "int64"}], "connect.index": 4}
    }})
    .to_string()
}

const KEY_SCHEMA: &str = r#"{"type": "object", "title": "app.public.items.Key", "properties": {
  "id": {"type": "integer", "connect.index": 0, "connect.type": "int16"}}}"#;

fn row() -> Json {
    json!({"id": 7, "name": "Zoë", "price": "BNI=", "born": -1, "seen": 1_700_000_000_123_456i64,
           "at": "2024-01-02T03:04:05.123456Z", "ratio": 1.1,
           "exact": {"scale": 3, "value": "/4U="}, "blob": "AAEC/w==", "tags": ["a", null]})
}

fn payload(op: &str, row: Json) -> Json {
    let (before, after) = if op == "d" {
        (row, json!(null))
    } else {
        (json!(null), row)
    };
    json!({"before": before, "after": after,
        "source": {"version": "3.0.0", "ts_ms": 1700000000000i64, "schema": "public", "table": "items",
                   "sequence": "[\"100\",\"120\"]", "lsn": 120},
        "op": op, "ts_ms": 1700000000500i64})
}

/// The Connect schema and payload `JsonConverter` writes for the same event.
fn json_twin(op: &str, row: Json) -> (Vec<u8>, Vec<u8>) {
    let fields = json!([
        {"field": "id", "type": "int16", "optional": false},
        {"field": "name", "type": "string", "optional": true},
        {"field": "price", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
         "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
        {"field": "born", "type": "int32", "optional": true, "name": "io.debezium.time.Date", "version": 1},
        {"field": "seen", "type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1},
        {"field": "at", "type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "version": 1},
        {"field": "ratio", "type": "float", "optional": true},
        {"field": "exact", "type": "struct", "optional": true, "name": "io.debezium.data.VariableScaleDecimal",
         "version": 1, "fields": [{"field": "scale", "type": "int32", "optional": false},
                                  {"field": "value", "type": "bytes", "optional": false}]},
        {"field": "blob", "type": "bytes", "optional": true},
        {"field": "tags", "type": "array", "optional": true, "items": {"type": "string", "optional": true}}
    ]);
    let id = row["id"].clone();
    let row_schema = json!({"type": "struct", "fields": fields, "optional": true, "name": "app.public.items.Value"});
    let mut before = row_schema.clone();
    before["field"] = json!("before");
    let mut after = row_schema;
    after["field"] = json!("after");
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
        "payload": payload(op, row)
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

fn framed(id: u32, json: &Json) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(serde_json::to_vec(json).unwrap());
    out
}

fn decoder(key: Format) -> Decoder {
    let formats = Formats {
        key,
        value: Format::JsonSchema,
    };
    let mut d = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([("^app\\..*".to_owned(), formats)]).unwrap(),
        ..DecodeOptions::default()
    });
    for (id, text) in [(1, value_schema()), (2, KEY_SCHEMA.to_owned())] {
        d.add_schema(
            id,
            RegistrySchema::Found {
                schema_type: "JSON".into(),
                text,
            },
        );
    }
    d
}

#[test]
fn events_decode_as_their_json_twins() {
    for op in ["c", "u", "d", "r"] {
        let (json_key, json_value) = json_twin(op, row());
        let twin = Decoder::new(DecodeOptions::default())
            .decode(Some(&json_key), Some(&json_value), 5)
            .unwrap()
            .unwrap();
        let mut d = decoder(Format::JsonSchema);
        let key = framed(2, &json!({"id": 7}));
        let value = framed(1, &payload(op, row()));
        let change = d
            .decode_record("app.public.items", Some(&key), Some(&value), 5)
            .unwrap()
            .unwrap();
        assert_eq!(change.op, twin.op, "{op}");
        assert_eq!(change.key, twin.key, "{op}");
        assert_eq!(change.row, twin.row, "{op}");
        assert_eq!(change.version, twin.version, "{op}");
        assert_eq!(change.schema, twin.schema, "{op}");
        assert_eq!(change.source_ts_ms, twin.source_ts_ms, "{op}");
        // A JSON key with a JSON Schema value.
        let mut d = decoder(Format::Json);
        let change = d
            .decode_record("app.public.items", Some(&json_key), Some(&value), 5)
            .unwrap()
            .unwrap();
        assert_eq!(change.key, twin.key, "{op}");
    }
}

/// A JSON Schema key with a JsonConverter value.
#[test]
fn a_json_schema_key_with_a_json_value() {
    let (json_key, json_value) = json_twin("u", row());
    let twin = Decoder::new(DecodeOptions::default())
        .decode(Some(&json_key), Some(&json_value), 0)
        .unwrap()
        .unwrap();
    let mut d = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([(
            "app.public.items".to_owned(),
            Formats {
                key: Format::JsonSchema,
                value: Format::Json,
            },
        )])
        .unwrap(),
        ..DecodeOptions::default()
    });
    d.add_schema(
        2,
        RegistrySchema::Found {
            schema_type: "JSON".into(),
            text: KEY_SCHEMA.into(),
        },
    );
    let key = framed(2, &json!({"id": 7}));
    let change = d
        .decode_record("app.public.items", Some(&key), Some(&json_value), 0)
        .unwrap()
        .unwrap();
    assert_eq!(change.key, twin.key);
    assert_eq!(change.row, twin.row);
    let err = d
        .decode_record("app.public.items", Some(&json_key), Some(&json_value), 0)
        .unwrap_err();
    assert!(
        err.to_string().contains("record key is not framed"),
        "{err}"
    );
}

#[test]
fn values_keep_their_exact_form() {
    let mut d = decoder(Format::JsonSchema);
    let key = framed(2, &json!({"id": 7}));
    let value = framed(1, &payload("c", row()));
    let change = d
        .decode_record("app.public.items", Some(&key), Some(&value), 0)
        .unwrap()
        .unwrap();
    let row = change.row.unwrap();
    assert_eq!(row.get("price"), Some(&Value::Decimal("12.34".into())));
    assert_eq!(row.get("exact"), Some(&Value::Decimal("-0.123".into())));
    assert_eq!(row.get("blob"), Some(&Value::Bytes(vec![0, 1, 2, 255])));
    assert_eq!(row.get("ratio"), Some(&Value::Float(1.1)));
}

#[test]
fn the_translation_is_jsonconverters_schema() {
    let schema = JsonSchema::parse(&value_schema()).unwrap();
    assert!(schema.is_envelope());
    let (_, json_value) = json_twin("c", row());
    let twin: Json = serde_json::from_slice(&json_value).unwrap();
    let after = &twin["schema"]["fields"][1];
    let expected = schema::parse_struct(after, "schema.after").unwrap();
    assert_eq!(schema.row_codec().schema, expected.schema);
    assert_eq!(schema.row_codec().codecs, expected.codecs);
}

#[test]
fn other_producers_schemas_map_where_unambiguous() {
    let schema = JsonSchema::parse(
        r##"{"type": "object", "required": ["id"], "additionalProperties": false,
            "definitions": {"name": {"type": ["string", "null"]}},
            "properties": {"id": {"type": "integer"}, "name": {"$ref": "#/definitions/name"},
                           "score": {"type": "number"}, "kind": {"enum": ["a", "b"]}}}"##,
    )
    .unwrap();
    assert!(!schema.is_envelope());
    let columns: Vec<_> = schema
        .row_codec()
        .schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty.clone(), c.optional))
        .collect();
    use crate::change::ColumnType as T;
    assert_eq!(
        columns,
        [
            ("id", T::Int64, false),
            ("kind", T::Text, false),
            ("name", T::Text, true),
            ("score", T::Float64, false),
        ]
    );
    assert!(
        schema
            .validate("key", 1, br#"{"id": 1, "name": null}"#)
            .is_ok()
    );
    let err = schema.validate("key", 1, br#"{"name": "x"}"#).unwrap_err();
    assert!(
        err.to_string().contains("required field `id` is missing"),
        "{err}"
    );
    let err = schema
        .validate("key", 1, br#"{"id": 1, "x": 2}"#)
        .unwrap_err();
    assert!(err.to_string().contains("`x` is not a property"), "{err}");

    for (refused, why) in [
        (
            r#"{"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}"#,
            "oneOf",
        ),
        (
            r#"{"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}}"#,
            "allOf",
        ),
        (
            r#"{"type": "object", "properties": {"a": {}}}"#,
            "without `type`",
        ),
        (
            r#"{"type": "object", "properties": {"a": {"$ref": "https://x/y.json"}}}"#,
            "not local",
        ),
        (
            r##"{"type": "object", "properties": {"a": {"$ref": "#"}}}"##,
            "recursive",
        ),
        (r#"{"type": "string"}"#, "not an object"),
        (
            r#"{"type": "object", "properties": {"a": {"type": "array", "connect.type": "map",
                "items": {"type": "object", "properties": {"key": {"type": "integer"}, "value": {"type": "string"}}}}}}"#,
            "keys that are not strings",
        ),
    ] {
        let err = JsonSchema::parse(refused).unwrap_err();
        assert!(err.contains(why), "{refused}: {err}");
    }
}

#[test]
fn payloads_not_matching_their_schema_are_refused_with_the_reason() {
    let key = framed(2, &json!({"id": 7}));
    let decode = |value: &[u8]| {
        decoder(Format::JsonSchema)
            .decode_record("app.public.items", Some(&key), Some(value), 0)
            .unwrap_err()
            .to_string()
    };
    let mut wrong_type = payload("c", row());
    wrong_type["after"]["id"] = json!("seven");
    let mut null_required = payload("c", row());
    null_required["after"]["id"] = json!(null);
    let mut missing = payload("c", row());
    missing.as_object_mut().unwrap().remove("op");
    let mut number_as_text = payload("c", row());
    number_as_text["after"]["name"] = json!(5);
    let mut item = payload("c", row());
    item["after"]["tags"] = json!(["a", 1]);
    for (value, reason) in [
        (
            framed(1, &wrong_type),
            "`after.id` must be an integer, found \"seven\"",
        ),
        (framed(1, &null_required), "`after.id` is null"),
        (framed(1, &missing), "required field `op` is missing"),
        (
            framed(1, &number_as_text),
            "`after.name` must be a string, found 5",
        ),
        (framed(1, &item), "`after.tags[1]` must be a string"),
    ] {
        let err = decode(&value);
        assert!(
            err.contains("does not match its schema (id 1)") && err.contains(reason),
            "{err}"
        );
    }
    let mut not_json = vec![0, 0, 0, 0, 1];
    not_json.extend_from_slice(b"{\"op\": ");
    assert!(
        decode(&not_json).contains("is not JSON"),
        "{}",
        decode(&not_json)
    );
    assert!(decode(b"{\"op\":\"c\"}").contains("wrong magic byte"));
    assert!(decode(&[0, 0, 0]).contains("truncated"));
    assert!(decode(&framed(9, &payload("c", row()))).contains("not fetched"));
    // The key schema is no envelope.
    assert!(decode(&framed(2, &json!({"id": 7}))).contains("no Debezium change event envelope"));
    // A key that does not match its schema.
    let err = decoder(Format::JsonSchema)
        .decode_record(
            "app.public.items",
            Some(&framed(2, &json!({"id": "x"}))),
            Some(&framed(1, &payload("c", row()))),
            0,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("record key does not match its schema (id 2): `id` must be an integer"),
        "{err}"
    );
}

#[test]
fn wrong_schema_types_and_tombstones() {
    let mut d = decoder(Format::JsonSchema);
    d.add_schema(
        3,
        RegistrySchema::Found {
            schema_type: "AVRO".into(),
            text: r#"{"type": "record", "name": "K", "fields": [{"name": "id", "type": "int"}]}"#
                .into(),
        },
    );
    let err = d
        .decode_record("app.public.items", None, Some(&framed(3, &json!({}))), 0)
        .unwrap_err();
    assert!(err.to_string().contains("is a AVRO schema"), "{err}");
    d.add_schema(
        4,
        RegistrySchema::Found {
            schema_type: "JSON".into(),
            text: r#"{"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}"#.into(),
        },
    );
    let err = d
        .decode_record("app.public.items", None, Some(&framed(4, &json!({}))), 0)
        .unwrap_err();
    assert!(
        matches!(err, DecodeError::UnusableSchema { id: 4, .. }),
        "{err}"
    );
    assert_eq!(d.decode_record("app.public.items", None, None, 0), Ok(None));
    assert_eq!(
        d.missing_schemas(
            "app.public.items",
            Some(&framed(2, &json!({}))),
            Some(&framed(8, &json!({})))
        ),
        vec![8]
    );
}

/// `decimal.format=NUMERIC`: a Decimal is a JSON number, read exactly from
/// its text at any length (never through a double), or refused when the
/// column's scale cannot hold it.
#[test]
fn numeric_decimals_are_exact_or_refused() {
    let schema = r#"{"type": "object", "properties": {
        "id": {"type": "integer", "connect.index": 0, "connect.type": "int32"},
        "price": {"oneOf": [{"type": "null"}, {"type": "number", "title": "org.apache.kafka.connect.data.Decimal",
            "connect.version": 1, "connect.type": "bytes", "connect.parameters": {"scale": "2"}}], "connect.index": 1},
        "amounts": {"type": "object", "connect.type": "map", "connect.index": 2,
            "additionalProperties": {"type": "integer", "connect.type": "int64"}}}}"#;
    let mut d = Decoder::new(DecodeOptions {
        formats: TopicFormats::new([(
            "t".to_owned(),
            Formats {
                key: Format::JsonSchema,
                value: Format::JsonSchema,
            },
        )])
        .unwrap(),
        ..DecodeOptions::default()
    });
    d.add_schema(
        5,
        RegistrySchema::Found {
            schema_type: "JSON".into(),
            text: schema.into(),
        },
    );
    let mut key = |row: Json| d.json_schema_key(&framed(5, &row));
    let row = key(json!({"id": 1, "price": 12.34, "amounts": {"a": 1}})).unwrap();
    assert_eq!(row.get("price"), Some(&Value::Decimal("12.34".into())));
    assert_eq!(row.get("amounts"), Some(&Value::Json(r#"{"a":1}"#.into())));
    // serde_json's `json!` would round a long number: framed by hand.
    let mut long = vec![0, 0, 0, 0, 5];
    long.extend_from_slice(
        br#"{"id": 1, "price": -123456789012345678901234567890.10, "amounts": {}}"#,
    );
    let row = d.json_schema_key(&long).unwrap();
    assert_eq!(
        row.get("price"),
        Some(&Value::Decimal("-123456789012345678901234567890.10".into()))
    );
    let mut key = |row: Json| d.json_schema_key(&framed(5, &row));
    let err = key(json!({"id": 1, "price": 1.234, "amounts": {}})).unwrap_err();
    assert!(
        err.to_string()
            .contains("`price`: 1.234 has more fractional digits than the column's scale 2"),
        "{err}"
    );
    let err = key(json!({"id": 1, "price": "BNI=", "amounts": {}})).unwrap_err();
    assert!(
        err.to_string().contains("`price` must be a number"),
        "{err}"
    );
    let err = key(json!({"id": 1, "amounts": {"a": "x"}})).unwrap_err();
    assert!(
        err.to_string().contains("`amounts.a` must be an integer"),
        "{err}"
    );
    let err = key(json!({"id": 1})).unwrap_err();
    assert!(
        err.to_string()
            .contains("required field `amounts` is missing"),
        "{err}"
    );
}
