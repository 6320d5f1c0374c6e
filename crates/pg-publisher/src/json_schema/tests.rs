#![allow(clippy::unwrap_used)] // tests may panic: that fails the test

use super::*;

fn connect() -> Value {
    serde_json::from_str(include_str!("../avro/connect_avro_golden.json")).unwrap()
}

fn golden() -> Value {
    serde_json::from_str(include_str!("connect_json_schema_golden.json")).unwrap()
}

/// The publisher's own key and envelope schemas and the self-test schema
/// (every Connect type and option) give the reviewed texts.
#[test]
fn schemas_are_the_ones_json_schema_data_makes() {
    let (c, g) = (connect(), golden());
    for (connect, expected) in [
        ("key_connect", "key"),
        ("value_connect", "value"),
        ("selftest_schema", "selftest"),
    ] {
        assert_eq!(
            json_schema(&c[connect]).unwrap(),
            g[expected].as_str().unwrap(),
            "{connect}"
        );
    }
}

#[test]
fn payloads_are_the_ones_json_schema_data_writes() {
    let (c, g) = (connect(), golden());
    let payloads = c["selftest_payloads"].as_array().unwrap();
    let expected = g["selftest_payloads"].as_array().unwrap();
    assert_eq!(payloads.len(), expected.len());
    for (p, e) in payloads.iter().zip(expected) {
        assert_eq!(
            json_text(&c["selftest_schema"], p).unwrap(),
            e.as_str().unwrap()
        );
    }
}

/// Rule by rule, as `rawSchemaFromConnectSchema` and everit's
/// `ToStringVisitor` write them (hand-derived from the Java source).
#[test]
fn each_rule_of_from_connect_schema() {
    let cases = [
        // Integers: "integer" + connect.type; the index of a required
        // field on the field's own schema, before connect.type (HashMap
        // order).
        (
            json!({"type": "struct", "name": "n.K", "fields": [
                {"field": "a", "type": "int16", "optional": false}]}),
            r#"{"type":"object","title":"n.K","properties":{"a":{"type":"integer","connect.index":0,"connect.type":"int16"}}}"#,
        ),
        // Optional: oneOf [null, T], the index on the oneOf; a boolean's
        // "type" comes after the common keywords.
        (
            json!({"type": "struct", "fields": [
                {"field": "b", "type": "boolean", "optional": true},
                {"field": "f", "type": "float", "optional": false}]}),
            r#"{"type":"object","properties":{"b":{"connect.index":0,"oneOf":[{"type":"null"},{"type":"boolean"}]},"f":{"type":"number","connect.index":1,"connect.type":"float32"}}}"#,
        ),
        // Decimal (decimal.format=BASE64): a string with connect.type
        // bytes; title, version, parameters.
        (
            json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                   "version": 1, "optional": false, "parameters": {"scale": "2"}}),
            r#"{"type":"string","title":"org.apache.kafka.connect.data.Decimal","connect.version":1,"connect.type":"bytes","connect.parameters":{"scale":"2"}}"#,
        ),
        // Map with string keys: an object whose additionalProperties are
        // the values; other keys: an array of {key, value} objects (the
        // properties in HashMap order: "value" first).
        (
            json!({"type": "map", "optional": false,
                   "keys": {"type": "string", "optional": false},
                   "values": {"type": "string", "optional": true}}),
            r#"{"type":"object","connect.type":"map","additionalProperties":{"oneOf":[{"type":"null"},{"type":"string"}]}}"#,
        ),
        (
            json!({"type": "map", "optional": false,
                   "keys": {"type": "int32", "optional": false},
                   "values": {"type": "bytes", "optional": false}}),
            r#"{"type":"array","connect.type":"map","items":{"type":"object","properties":{"value":{"type":"string","connect.index":1,"connect.type":"bytes"},"key":{"type":"integer","connect.index":0,"connect.type":"int32"}}}}"#,
        ),
        // An optional struct: oneOf [null, object], the name inside.
        (
            json!({"type": "struct", "name": "n.V", "optional": true, "fields": []}),
            r#"{"oneOf":[{"type":"null"},{"type":"object","title":"n.V"}]}"#,
        ),
        // Doc and default: description, default (a double without a
        // fraction as org.json prints it).
        (
            json!({"type": "double", "optional": false, "doc": "d", "default": 2.0}),
            r#"{"type":"number","description":"d","default":2,"connect.type":"float64"}"#,
        ),
    ];
    for (schema, expected) in cases {
        assert_eq!(json_schema(&schema).unwrap(), expected, "{schema}");
    }
}

/// The text Confluent pins as a JsonSchemaConverter schema
/// (`SchemaValuesTest.testSchemaValueComplexJsonMD5` in
/// confluentinc/schema-registry): a struct of every primitive type, an
/// array and a map, fields `int8` ... `map` in this order. The properties
/// come in Java HashMap order, a boolean's `type` after its index.
#[test]
fn the_schema_confluent_pins() {
    let field = |name: &str, t: &str| json!({"field": name, "type": t, "optional": false});
    let mut fs: Vec<Value> = [
        ("int8", "int8"),
        ("int16", "int16"),
        ("int32", "int32"),
        ("int64", "int64"),
        ("float32", "float"),
        ("float64", "double"),
        ("boolean", "boolean"),
        ("string", "string"),
        ("bytes", "bytes"),
    ]
    .iter()
    .map(|(n, t)| field(n, t))
    .collect();
    fs.push(json!({"field": "array", "type": "array", "optional": false,
                   "items": {"type": "string", "optional": false}}));
    fs.push(json!({"field": "map", "type": "map", "optional": false,
                   "keys": {"type": "string", "optional": false},
                   "values": {"type": "int32", "optional": false}}));
    let schema = json!({"type": "struct", "optional": false, "fields": fs});
    let pinned = r#"{"type":"object","properties":{"boolean":{"connect.index":6,"type":"boolean"},"string":{"type":"string","connect.index":7},"int32":{"type":"integer","connect.index":2,"connect.type":"int32"},"array":{"type":"array","connect.index":9,"items":{"type":"string"}},"int64":{"type":"integer","connect.index":3,"connect.type":"int64"},"bytes":{"type":"string","connect.index":8,"connect.type":"bytes"},"int8":{"type":"integer","connect.index":0,"connect.type":"int8"},"float32":{"type":"number","connect.index":4,"connect.type":"float32"},"float64":{"type":"number","connect.index":5,"connect.type":"float64"},"map":{"type":"object","connect.index":10,"connect.type":"map","additionalProperties":{"type":"integer","connect.type":"int32"}},"int16":{"type":"integer","connect.index":1,"connect.type":"int16"}}}"#;
    assert_eq!(json_schema(&schema).unwrap(), pinned);
}

/// The iteration order of a `java.util.HashMap`, checked against what
/// Java prints for these keys.
#[test]
fn java_hash_map_order() {
    // "hello".hashCode() is 99162322; "Ω" is one UTF-16 unit.
    assert_eq!(java_hash("hello"), 99_162_322);
    assert_eq!(java_hash("Ω"), 0x3a9);
    let keys = |v: Vec<(String, J)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let entries = |ks: &[&str]| {
        ks.iter()
            .map(|k| ((*k).to_owned(), J::V(Value::Null)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(unprocessed_order(entries(&[
            "connect.type",
            "connect.version",
            "connect.parameters",
            "connect.index"
        ]))),
        [
            "connect.index",
            "connect.version",
            "connect.type",
            "connect.parameters"
        ]
    );
    assert_eq!(
        keys(parameters_order(entries(&[
            "connect.decimal.precision",
            "scale"
        ]))),
        ["scale", "connect.decimal.precision"]
    );
}

#[test]
fn values_are_checked_and_reshaped() {
    let s = json!({"type": "struct", "name": "n.V", "fields": [
        {"field": "n", "type": "int64", "optional": false},
        {"field": "d", "type": "int32", "optional": false, "default": 4},
        {"field": "m", "type": "map", "optional": true,
         "keys": {"type": "int64", "optional": false},
         "values": {"type": "string", "optional": true}},
        {"field": "x", "type": "double", "optional": true}]});
    // Fields in schema order, defaults for nulls, map entries as objects,
    // non-finite doubles as Jackson's strings.
    assert_eq!(
        json_text(
            &s,
            &json!({"x": "NaN", "m": [[1, "a"], [2, null]], "d": null, "n": 9})
        )
        .unwrap(),
        r#"{"n":9,"d":4,"m":[{"key":1,"value":"a"},{"key":2,"value":null}],"x":"NaN"}"#
    );
    assert!(json_text(&s, &json!({"n": null})).is_err_and(|e| e.contains("required")));
    assert!(json_text(&s, &json!({"n": "9"})).is_err_and(|e| e.contains(".n")));
    assert!(json_text(&s, &json!({"n": 1.5})).is_err());
    let bytes = json!({"type": "bytes", "optional": false});
    assert!(json_text(&bytes, &json!("not base64!")).is_err());
    assert_eq!(json_text(&bytes, &json!("AP8=")).unwrap(), r#""AP8=""#);
}

#[test]
fn what_json_schema_data_writes_and_sinkfleet_does_not_is_refused() {
    let union = json!({"type": "struct", "name": "io.confluent.connect.json.OneOf",
                       "optional": false, "fields": []});
    assert!(json_schema(&union).is_err());
    let map_default = json!({"type": "map", "optional": false, "default": {},
        "keys": {"type": "string", "optional": false},
        "values": {"type": "string", "optional": false}});
    assert!(json_schema(&map_default).is_err_and(|e| e.contains("default")));
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

const JSON_SCHEMA: &str = "io.confluent.connect.json.JsonSchemaConverter";

#[test]
fn json_schema_converter_is_configured_like_avro() {
    let c = connector(&[
        ("value.converter", JSON_SCHEMA),
        ("value.converter.schema.registry.url", "https://r:8081"),
        ("value.converter.basic.auth.credentials.source", "USER_INFO"),
        ("value.converter.basic.auth.user.info", "me:secret"),
        ("value.converter.decimal.format", "BASE64"),
        ("value.converter.json.fail.invalid.schema", "false"),
    ])
    .unwrap();
    match &c.value_converter {
        crate::config::Converter::JsonSchema(r) => {
            assert_eq!(r.url, "https://r:8081");
            assert_eq!(r.username.as_deref(), Some("me"));
        }
        other => panic!("{other:?}"),
    }
    assert!(c.schemas_enable, "the writer puts schemas in");
    assert!(!c.key_converter.uses_registry() && c.value_converter.uses_registry());
    // Heartbeats carry schemas for the converter.
    let (_, value) = crate::stream::heartbeat_record(&c, 5);
    let envelope: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        json_schema(&envelope["schema"]).unwrap(),
        r#"{"type":"object","title":"io.debezium.connector.common.Heartbeat","properties":{"ts_ms":{"type":"integer","connect.index":0,"connect.type":"int64"}}}"#
    );
}

#[test]
fn json_schema_options_off_their_defaults_are_refused_by_name() {
    let errs = connector(&[
        ("key.converter", JSON_SCHEMA),
        ("value.converter", JSON_SCHEMA),
        ("value.converter.schema.registry.url", "http://r:8081"),
        ("value.converter.decimal.format", "NUMERIC"),
        ("value.converter.json.fail.invalid.schema", "true"),
        ("value.converter.object.additional.properties", "false"),
        ("key.converter.json.indent.output", "true"),
        ("key.converter.json.schema.scan.packages", "com.x"),
    ])
    .unwrap_err();
    for p in [
        "key.converter.schema.registry.url", // required
        "value.converter.decimal.format",
        "value.converter.json.fail.invalid.schema",
        "value.converter.object.additional.properties",
        "key.converter.json.indent.output",
        "key.converter.json.schema.scan.packages",
    ] {
        assert!(errs.iter().any(|e| e == p), "{p} not refused: {errs:?}");
    }
}

#[test]
#[ignore = "prints the golden texts (cargo test -- --ignored print_golden --nocapture)"]
fn print_golden() {
    let g = connect();
    for k in ["key_connect", "value_connect", "selftest_schema"] {
        println!("{k}: {}", json_schema(&g[k]).unwrap());
    }
    for p in g["selftest_payloads"].as_array().unwrap() {
        println!("payload: {}", json_text(&g["selftest_schema"], p).unwrap());
    }
}
