#![allow(clippy::unwrap_used)] // tests may panic: that fails the test

use super::*;
use apache_avro::types::Value as A;

/// What `scripts/testdata/connect_avro.py` (checked against Confluent's
/// serializer) makes of the publisher's own key and envelope schemas and
/// of the script's self-test schema (every Connect type and option).
fn golden() -> Value {
    serde_json::from_str(include_str!("connect_avro_golden.json")).unwrap()
}

#[test]
fn schemas_are_the_ones_confluents_avro_data_makes() {
    let g = golden();
    for (connect, expected) in [
        ("key_connect", "key"),
        ("value_connect", "value"),
        ("selftest_schema", "selftest_value"),
    ] {
        assert_eq!(
            avro_schema(&g[connect]).unwrap(),
            g[expected].as_str().unwrap(),
            "{connect}"
        );
    }
}

fn decode(connect: &Value, payload: &Value) -> A {
    let schema = apache_avro::Schema::parse_str(&avro_schema(connect).unwrap()).unwrap();
    let mut body = Vec::new();
    write_value(connect, payload, "", &mut body).unwrap();
    let mut reader = body.as_slice();
    let value = apache_avro::from_avro_datum(&schema, &mut reader, None).unwrap();
    assert!(reader.is_empty(), "the whole body is read");
    value
}

fn field<'a>(record: &'a A, name: &str) -> &'a A {
    match record {
        A::Record(fields) => &fields.iter().find(|(n, _)| n == name).unwrap().1,
        other => panic!("not a record: {other:?}"),
    }
}

/// The body is the Avro binary of the schema: Avro's own reader takes it
/// whole, with the values, unions, defaults, maps and decimals in place.
#[test]
fn payloads_are_avro_binary_of_their_schema() {
    let g = golden();
    let schema = &g["selftest_schema"];
    let payloads = g["selftest_payloads"].as_array().unwrap();
    let first = decode(schema, &payloads[0]);
    assert_eq!(field(&first, "i8"), &A::Int(-5));
    assert_eq!(field(&first, "i16"), &A::Union(1, Box::new(A::Int(300))));
    assert_eq!(field(&first, "i32d"), &A::Int(7), "null takes the default");
    assert_eq!(field(&first, "i64"), &A::Long(1 << 40));
    assert_eq!(
        field(&first, "b"),
        &A::Union(0, Box::new(A::Boolean(false)))
    );
    assert_eq!(field(&first, "s"), &A::String("é ü".into()));
    match field(&first, "dec") {
        A::Decimal(d) => assert_eq!(Vec::<u8>::try_from(d.clone()).unwrap(), vec![0x30, 0x39]),
        other => panic!("{other:?}"),
    }
    assert_eq!(field(&first, "date"), &A::Date(19279));
    assert_eq!(field(&first, "ts"), &A::TimestampMillis(1665791731989));
    match field(&first, "intmap") {
        A::Union(1, entries) => match entries.as_ref() {
            A::Array(items) => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let second = decode(schema, &payloads[1]);
    assert_eq!(
        field(&second, "b"),
        &A::Union(0, Box::new(A::Boolean(true))),
        "the default"
    );
    assert_eq!(field(&second, "nested"), &A::Union(0, Box::new(A::Null)));
}

#[test]
fn non_finite_doubles_are_doubles() {
    let schema = json!({"type": "struct", "name": "t.V", "fields": [
        {"field": "d", "type": "double", "optional": true}]});
    let v = decode(&schema, &json!({"d": "NaN"}));
    assert!(matches!(field(&v, "d"), A::Union(1, d) if matches!(**d, A::Double(x) if x.is_nan())));
    let v = decode(&schema, &json!({"d": "-Infinity"}));
    assert_eq!(
        field(&v, "d"),
        &A::Union(1, Box::new(A::Double(f64::NEG_INFINITY)))
    );
}

/// Decimals are written as Java's `BigInteger.toByteArray` gives them.
#[test]
fn decimal_bytes_are_minimal_twos_complement() {
    assert_eq!(java_bytes(&[]), vec![0]);
    assert_eq!(java_bytes(&[0, 0, 1]), vec![1]);
    assert_eq!(java_bytes(&[0, 0x80]), vec![0, 0x80]);
    assert_eq!(java_bytes(&[0xff, 0xff, 0x80]), vec![0x80]);
    assert_eq!(java_bytes(&[0xff, 0x7f]), vec![0xff, 0x7f]);
    assert_eq!(java_bytes(&[0xff]), vec![0xff]);
}

#[test]
fn what_avro_cannot_carry_is_an_error() {
    let schema = json!({"type": "struct", "name": "t.V", "fields": [
        {"field": "n", "type": "int64", "optional": false}]});
    let mut out = Vec::new();
    assert!(
        write_value(&schema, &json!({"n": null}), "", &mut out)
            .is_err_and(|e| e.contains("required"))
    );
    assert!(write_value(&schema, &json!({"n": "x"}), "", &mut out).is_err());
    let bad_name = json!({"type": "struct", "name": "t.V", "fields": [
        {"field": "a-b", "type": "int64", "optional": false}]});
    assert!(
        avro_schema(&bad_name).is_err(),
        "field names Avro rejects fail, as in Confluent's"
    );
}

/// Heartbeats carry Debezium's heartbeat schemas when a part is Avro, so
/// the converter can write them; schemaless JSON otherwise, as before.
#[test]
fn heartbeats_have_schemas_when_a_part_is_avro() {
    let props = |avro: bool| {
        let mut p: std::collections::BTreeMap<String, String> = [
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.password", ""),
            ("database.dbname", "app"),
            ("topic.prefix", "app"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if avro {
            p.insert(
                "value.converter".into(),
                "io.confluent.connect.avro.AvroConverter".into(),
            );
            p.insert(
                "value.converter.schema.registry.url".into(),
                "http://r:8081".into(),
            );
        }
        crate::config::ConnectorConfig::from_properties(&p).unwrap()
    };
    let (key, value) = crate::stream::heartbeat_record(&props(false), 5);
    assert_eq!(
        (key.as_str(), value.as_str()),
        (r#"{"serverName":"app"}"#, r#"{"ts_ms":5}"#)
    );
    let (key, value) = crate::stream::heartbeat_record(&props(true), 5);
    for (record, text) in [
        (
            key,
            r#"{"type":"record","name":"ServerNameKey","namespace":"io.debezium.connector.common","fields":[{"name":"serverName","type":"string"}],"connect.name":"io.debezium.connector.common.ServerNameKey"}"#,
        ),
        (
            value,
            r#"{"type":"record","name":"Heartbeat","namespace":"io.debezium.connector.common","fields":[{"name":"ts_ms","type":"long"}],"connect.name":"io.debezium.connector.common.Heartbeat"}"#,
        ),
    ] {
        let envelope: Value = serde_json::from_str(&record).unwrap();
        assert_eq!(avro_schema(&envelope["schema"]).unwrap(), text);
        decode(&envelope["schema"], &envelope["payload"]);
    }
}
