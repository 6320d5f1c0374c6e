use super::*;
use crate::pgoutput::RelationColumn;
use crate::types::options::TypeOptions;
use sinkfleet_core::debezium::{DecodeOptions, decode};
use sinkfleet_core::{Op, Value as V, Version};
use std::collections::BTreeMap;

fn config(schemas: bool) -> ConnectorConfig {
    let mut p: BTreeMap<String, String> = [
        ("database.hostname", "h"),
        ("database.user", "u"),
        ("database.password", ""),
        ("database.dbname", "app"),
        ("topic.prefix", "app"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.insert("value.converter.schemas.enable".into(), schemas.to_string());
    ConnectorConfig::from_properties(&p).unwrap()
}

fn relation(identity: ReplicaIdentity) -> Relation {
    let col = |name: &str, oid, typmod| RelationColumn {
        key: name == "id",
        name: name.into(),
        type_oid: oid,
        type_modifier: typmod,
    };
    Relation {
        oid: 1,
        namespace: "public".into(),
        name: "orders".into(),
        replica_identity: identity,
        columns: vec![
            col("id", 20, -1),
            col("amount", 1700, (10 << 16 | 2) + 4),
            col("note", 25, -1),
            col("qty", 23, -1),
            col("lsn", 3220, -1), // pg_lsn: no Debezium mapping
        ],
    }
}

/// `id` and `qty` NOT NULL, `qty` defaulting to 1.
fn facts() -> HashMap<String, ColumnFacts> {
    let not_null = |default: Option<&str>| ColumnFacts {
        not_null: true,
        default: default.map(str::to_owned),
    };
    HashMap::from([
        ("id".to_owned(), not_null(None)),
        ("qty".to_owned(), not_null(Some("1"))),
    ])
}

/// The codec of `public.orders` keyed by `id`.
fn orders_with(cfg: &ConnectorConfig) -> TableCodec {
    TableCodec::new(
        &relation(ReplicaIdentity::Default),
        &facts(),
        &["id".into()],
        cfg,
        &TypeRegistry::builtin(),
    )
    .unwrap()
}

fn orders(schemas: bool) -> TableCodec {
    orders_with(&config(schemas))
}

fn text(s: &str) -> TupleValue {
    TupleValue::Text(s.as_bytes().to_vec())
}

fn source(snapshot: Snapshot) -> Source<'static> {
    Source {
        db: "app",
        commit_lsn: 900,
        lsn: 850,
        tx_id: Some(5),
        ts_us: 1_700_000_000_123_456,
        snapshot,
        origin: None,
        transaction: None,
    }
}

#[test]
fn events_decode_on_the_sink_side_with_the_right_version() {
    for schemas in [true, false] {
        let codec = orders(schemas);
        let row = codec
            .row(&[
                text("7"),
                text("12.50"),
                TupleValue::UnchangedToast,
                text("3"),
                text("0/1"),
            ])
            .unwrap();
        let key = codec.key(&row);
        let value = codec.value("u", None, Some(&row), &source(Snapshot::False));
        let change = decode(Some(&key), Some(&value), 0, &DecodeOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(change.op, Op::Update);
        assert_eq!(change.version, Version::new(900, 850));
        assert_eq!(change.key.get("id"), Some(&V::Int(7)));
        let after = change.row.unwrap();
        assert!(
            !after.contains("note"),
            "TOAST placeholder leaves the column out"
        );
        assert!(
            !after.contains("lsn"),
            "a type without a mapping is left out"
        );
        if schemas {
            assert_eq!(after.get("amount"), Some(&V::Decimal("12.50".into())));
        }
    }
}

#[test]
fn tables_without_a_key_are_refused_unless_identity_full_or_configured() {
    let registry = TypeRegistry::builtin();
    let new = |identity, key: &[String], cfg: &ConnectorConfig| {
        TableCodec::new(&relation(identity), &facts(), key, cfg, &registry)
    };
    let err = new(ReplicaIdentity::Default, &[], &config(true)).unwrap_err();
    assert!(err.reason.contains("no primary key"), "{err}");
    assert!(new(ReplicaIdentity::Full, &[], &config(true)).is_ok());
    let mut cfg = config(true);
    cfg.message_key_columns
        .insert("public.orders".into(), vec!["note".into()]);
    let codec = new(ReplicaIdentity::Default, &[], &cfg).unwrap();
    let row = codec
        .row(&[
            text("1"),
            TupleValue::Null,
            text("n"),
            text("1"),
            TupleValue::Null,
        ])
        .unwrap();
    assert!(
        String::from_utf8(codec.key(&row))
            .unwrap()
            .contains("\"note\":\"n\"")
    );
    cfg.message_key_columns
        .insert("public.orders".into(), vec!["lsn".into()]);
    let err = new(ReplicaIdentity::Default, &[], &cfg).unwrap_err();
    assert!(err.reason.contains("include.unknown.datatypes"), "{err}");
}

#[test]
fn events_are_written_in_the_connectors_layout() {
    for schemas in [true, false] {
        let codec = orders(schemas);
        let row = codec
            .row(&[
                text("7"),
                text("12.50"),
                text("a \"quoted\" note"),
                text("2"),
                TupleValue::Null,
            ])
            .unwrap();
        let value = String::from_utf8(codec.value("c", None, Some(&row), &source(Snapshot::False)))
            .unwrap();
        let json: Value = serde_json::from_str(&value).unwrap();
        let payload = if schemas {
            assert!(value.starts_with(r#"{"schema":{"#), "{value}");
            &json["payload"]
        } else {
            &json
        };
        // Debezium's order, not serde_json's sorted maps.
        let at = |field: &str| value.find(&format!("\"{field}\":")).unwrap();
        assert!(at("before") < at("after") && at("after") < at("source"));
        assert!(at("source") < at("transaction") && at("transaction") < at("op"));
        assert!(value.find(r#""id":7"#).unwrap() < at("note"));
        assert_eq!(payload["after"]["note"], json!("a \"quoted\" note"));
        let source = &payload["source"];
        assert_eq!(source["sequence"], json!("[\"900\",\"850\"]"));
        assert_eq!(source["lsn"], json!(850));
        assert_eq!(source["txId"], json!(5));
        assert_eq!(source["snapshot"], json!("false"));
        assert_eq!(source["table"], json!("orders"));
        assert_eq!(source["ts_ms"], json!(1_700_000_000_123i64));
        assert_eq!(source["ts_us"], json!(1_700_000_000_123_456i64));
        assert_eq!(source["ts_ns"], json!(1_700_000_000_123_456_000i64));
        assert_eq!(source["origin"], Value::Null);
        assert_eq!(payload["op"], json!("c"));
        let (ms, us, ns) = (&payload["ts_ms"], &payload["ts_us"], &payload["ts_ns"]);
        assert_eq!(us.as_i64().unwrap() / 1000, ms.as_i64().unwrap());
        assert_eq!(ns.as_u64().unwrap() / 1000, us.as_u64().unwrap());
        let key = String::from_utf8(codec.key(&row)).unwrap();
        let key: Value = serde_json::from_str(&key).unwrap();
        let key = if schemas { &key["payload"] } else { &key };
        assert_eq!(key, &json!({"id": 7}));
    }
}

/// NOT NULL and defaults in the field schemas; a column Debezium has no
/// mapping for is not in them; the envelope is version 2 with `ts_us`.
#[test]
fn schemas_carry_optional_and_defaults() {
    let codec = orders(true);
    let row = codec
        .row(&[
            text("7"),
            TupleValue::Null,
            TupleValue::Null,
            text("2"),
            TupleValue::Null,
        ])
        .unwrap();
    let value: Value =
        serde_json::from_slice(&codec.value("c", None, Some(&row), &source(Snapshot::False)))
            .unwrap();
    let schema = &value["schema"];
    assert_eq!(schema["version"], json!(2));
    let names: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "before",
            "after",
            "source",
            "transaction",
            "op",
            "ts_ms",
            "ts_us",
            "ts_ns"
        ]
    );
    let after = &schema["fields"][1]["fields"];
    let field = |name: &str| {
        after
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .cloned()
    };
    assert_eq!(field("id").unwrap()["optional"], json!(false));
    assert_eq!(field("amount").unwrap()["optional"], json!(true));
    assert_eq!(field("qty").unwrap()["default"], json!(1));
    assert_eq!(field("qty").unwrap()["type"], json!("int32"));
    assert!(field("lsn").is_none());
    let snapshot = &schema["fields"][2]["fields"][4];
    assert_eq!(snapshot["name"], json!("io.debezium.data.Enum"));
    assert_eq!(snapshot["default"], json!("false"));
}

/// A delete's key-only `before` (REPLICA IDENTITY DEFAULT): a NOT NULL
/// column arrives as NULL and gets its default (else the type's zero), so
/// the value fits its schema, as Debezium fills it in.
#[test]
fn a_key_only_image_fits_its_schema() {
    let codec = orders(false);
    let row = codec
        .row(&[
            text("7"),
            TupleValue::Null,
            TupleValue::Null,
            TupleValue::Null,
            TupleValue::Null,
        ])
        .unwrap();
    let value: Value =
        serde_json::from_slice(&codec.value("d", Some(&row), None, &source(Snapshot::False)))
            .unwrap();
    assert_eq!(
        value["before"],
        json!({"id": 7, "amount": null, "note": null, "qty": 1})
    );
}

/// A value the mapping cannot carry names the table and column.
#[test]
fn a_value_that_cannot_be_carried_is_an_error() {
    let codec = orders(true);
    let err = codec
        .row(&[
            text("7"),
            text("NaN"),
            TupleValue::Null,
            text("1"),
            TupleValue::Null,
        ])
        .unwrap_err();
    assert_eq!(
        (err.table.as_str(), err.column.as_str()),
        ("public.orders", "amount")
    );
    assert!(err.reason.contains("decimal.handling.mode=string"), "{err}");
    let mut cfg = config(true);
    cfg.types = TypeOptions {
        decimal: crate::types::options::DecimalMode::String,
        ..TypeOptions::default()
    };
    let row = orders_with(&cfg)
        .row(&[
            text("7"),
            text("NaN"),
            TupleValue::Null,
            text("1"),
            TupleValue::Null,
        ])
        .unwrap();
    assert_eq!(row.value(1), br#""NAN""#);
}

#[test]
fn key_headers_as_the_simple_header_converter_writes_them() {
    let mut cfg = config(true);
    cfg.message_key_columns.insert(
        "public.orders".into(),
        vec!["id".into(), "amount".into(), "note".into()],
    );
    let codec = orders_with(&cfg);
    let row = codec
        .row(&[
            text("7"),
            text("-12.50"),
            text("a\"b"),
            text("1"),
            TupleValue::Null,
        ])
        .unwrap();
    assert_eq!(
        String::from_utf8(codec.key_header(&row)).unwrap(),
        r#"{"id":7,"amount":-12.50,"note":"a\"b"}"#
    );
}

/// The publisher's events in Avro (the schema AvroConverter would register,
/// the body written for it, Confluent's framing) decode on the sink side,
/// through the workers' Avro decoder, to the very change their JSON gives.
#[test]
fn avro_events_decode_to_the_changes_of_their_json() {
    use sinkfleet_core::debezium::{Decoder, Format, Formats, RegistrySchema, TopicFormats};
    let codec = orders(true);
    let row = codec
        .row(&[text("7"), text("-12.50"), text("n"), text("3"), text("0/1")])
        .unwrap();
    let updated = codec
        .row(&[
            text("7"),
            text("-128.00"),
            TupleValue::Null,
            text("4"),
            text("0/1"),
        ])
        .unwrap();
    let formats = TopicFormats::new([(
        codec.topic.clone(),
        Formats {
            key: Format::Avro,
            value: Format::Avro,
        },
    )])
    .unwrap();
    let mut decoder = Decoder::new(DecodeOptions {
        formats,
        ..DecodeOptions::default()
    });
    let frame = |id: u32, json: &[u8], decoder: &mut Decoder| {
        let envelope: Value = serde_json::from_slice(json).unwrap();
        let text = crate::avro::avro_schema(&envelope["schema"]).unwrap();
        decoder.add_schema(
            id,
            RegistrySchema::Found {
                schema_type: "AVRO".into(),
                text,
            },
        );
        let mut out = vec![0];
        out.extend_from_slice(&id.to_be_bytes());
        crate::avro::write_value(&envelope["schema"], &envelope["payload"], "", &mut out).unwrap();
        out
    };
    for (op, before, after) in [
        ("c", None, Some(&row)),
        ("u", Some(&row), Some(&updated)),
        ("d", Some(&updated), None),
    ] {
        let key = codec.key(after.or(before).unwrap());
        let value = codec.value(op, before, after, &source(Snapshot::False));
        let json = decode(Some(&key), Some(&value), 0, &DecodeOptions::default())
            .unwrap()
            .unwrap();
        let (k, v) = (frame(1, &key, &mut decoder), frame(2, &value, &mut decoder));
        let avro = decoder
            .decode_record(&codec.topic, Some(&k), Some(&v), 0)
            .unwrap()
            .unwrap();
        assert_eq!(avro, json, "{op}");
    }
}

/// `column.exclude.list`/`column.include.list` (anchored, case-insensitive,
/// over `schema.table.column`): a filtered column is in no value, no
/// `before` image and no schema; a filtered key column is refused, since
/// it would still reach Kafka in the key.
#[test]
fn filtered_columns_are_in_no_event_and_no_schema() {
    let properties = |extra: &[(&str, &str)]| -> BTreeMap<String, String> {
        [
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.password", ""),
            ("database.dbname", "app"),
            ("topic.prefix", "app"),
            ("value.converter.schemas.enable", "true"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let with = |property: &str, list: &str| {
        ConnectorConfig::from_properties(&properties(&[(property, list)])).unwrap()
    };
    let tuple = [
        text("7"),
        text("12.50"),
        text("secret note"),
        text("2"),
        TupleValue::Null,
    ];
    for cfg in [
        with("column.exclude.list", "public.orders.NOTE"),
        with("column.include.list", "public\\.orders\\.(id|amount|qty)"),
    ] {
        let codec = orders_with(&cfg);
        let row = codec.row(&tuple).unwrap();
        let value =
            String::from_utf8(codec.value("u", Some(&row), Some(&row), &source(Snapshot::False)))
                .unwrap();
        assert!(!value.contains("note"), "{value}");
        assert!(!value.contains("secret"), "{value}");
        assert!(value.contains(r#""amount""#), "{value}");
        assert!(
            String::from_utf8(codec.key(&row))
                .unwrap()
                .contains(r#""id":7"#)
        );
    }
    let refused = TableCodec::new(
        &relation(ReplicaIdentity::Default),
        &facts(),
        &["id".into()],
        &with("column.exclude.list", "public.orders.id"),
        &TypeRegistry::builtin(),
    )
    .unwrap_err();
    assert!(refused.reason.contains("key column `id`"), "{refused}");
    let both = ConnectorConfig::from_properties(&properties(&[
        ("column.include.list", "public.orders.id"),
        ("column.exclude.list", "public.orders.note"),
    ]))
    .unwrap_err();
    assert_eq!(both[0].property, "column.exclude.list");
}
