//! Debezium's own test vectors, and its PostgreSQL connector's documented
//! examples on one table.

use super::*;
use crate::config::ConnectorConfig;
use crate::event::{ColumnFacts, Snapshot, Source, TableCodec};
use crate::pgoutput::{Relation, RelationColumn, ReplicaIdentity, TupleValue};
use std::collections::HashMap;

fn hash(algorithm: &str, salt: &str, v2: bool, value: &str) -> String {
    let key = format!(
        "column.mask.hash.{}{algorithm}.with.salt.{salt}",
        if v2 { "v2." } else { "" }
    );
    let (_, mapper) = parse_key(&key).unwrap();
    let bound = ColumnMapper::bind(&mapper, Carrier::CharString, None).unwrap();
    bound.apply(&json!(value)).as_str().unwrap().to_owned()
}

/// From Debezium's `MaskStringsTest`, `ColumnMappersTest` and
/// `PostgresConnectorIT`, and (the last three) a JDK 17 run of the same
/// algorithm: V1 digests the Java serialization (modified UTF-8, so a
/// character outside the BMP is two 3-byte sequences).
#[test]
fn hashes_match_debeziums_vectors() {
    let cases = [
        (
            "SHA-256",
            "salt",
            false,
            "hello",
            "af5843a0f0e728ab0332c8888b6e1190bfb79e584f0d40538de8f10df6ef29c6",
        ),
        (
            "MD5",
            "salt",
            false,
            "hello",
            "46f48a7a5ea32efba87cbff49d46d35a",
        ),
        (
            "SHA-256",
            "salt",
            true,
            "hello",
            "cd31b3b98ece60cb739c0bf770b2de892ae0ad133f645513c3d83f08757a843a",
        ),
        (
            "MD5",
            "salt",
            true,
            "hello",
            "06decc8b095724f80103712c235586be",
        ),
        (
            "SHA-256",
            "salt123",
            false,
            "12345678901234567890",
            "5944c66655670e4ce234df8529d452ba1cae10a641b9cd1583abf62585b8515a",
        ),
        (
            "SHA-256",
            "salt123",
            true,
            "12345678901234567890",
            "b65875d34a3dedf070f3a012970bf3b5da424560d7be3d2c23b986b525d2d7f3",
        ),
        (
            "SHA-256",
            "CzQMA0cB5K",
            false,
            "hello",
            "b4d39ab0d198fb4cac8b2f023da74f670bcaf192dcc79b5d6361b7ae6b2fafdf",
        ),
        (
            "sha-256",
            "CzQMA0cB5K",
            true,
            "hello",
            "c4bf2f9ebc99b7f64add45103e81eb4ca483649064e3e1398b21f41786360c7b",
        ),
        (
            "SHA-256",
            "CzQMA0cB5K",
            false,
            "café",
            "1b903210ac54d9f4a3db946f63a767ce06ce0119d068632c774acac388f5ca3d",
        ),
        (
            "SHA-256",
            "CzQMA0cB5K",
            false,
            "😀",
            "66b1667db79ffd03a7281908607c2221f3b406ae066649885b1a79a73e38a2d1",
        ),
    ];
    for (algorithm, salt, v2, value, want) in cases {
        assert_eq!(
            hash(algorithm, salt, v2, value),
            want,
            "{algorithm} {salt} v2={v2} {value}"
        );
    }
}

#[test]
fn property_names_are_read_as_debezium_reads_them() {
    let props = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (m, problems) = ColumnMappers::from_properties(&props(&[
        ("column.mask.hash.v2.SHA-256.with.salt.a.b.c", "s.t.h2"),
        ("column.mask.hash.MD5.with.salt.x", "s.t.h1, s.t.both"),
        ("column.mask.with.0.chars", "s.t.m0,s.t.both"),
        ("column.truncate.to.3.chars", r"s\.t\.(tr|both)"),
        ("table.include.list", "s.t"),
    ]));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(m.for_column("s.t.m0"), Some(&Mapper::Mask(0)));
    assert_eq!(m.for_column("S.T.TR"), Some(&Mapper::Truncate(3)));
    // Debezium's order: truncation before masks before V1 before V2.
    assert_eq!(m.for_column("s.t.both"), Some(&Mapper::Truncate(3)));
    assert!(matches!(
        m.for_column("s.t.h2"),
        Some(Mapper::Hash { v2: true, algorithm: Algorithm::Sha256, salt }) if salt == b"a.b.c"
    ));
    assert_eq!(m.for_column("s.t.other"), None);

    let (_, problems) = ColumnMappers::from_properties(&props(&[
        ("column.mask.hash.SHA3-256.with.salt.x", "s.t.c"),
        ("column.mask.with.-1.chars", "s.t.c"),
        ("column.truncate.to.3.chars", ""),
        ("column.mask.everything", "s.t.c"),
        ("column.mask.with.2.chars", "s.t.(c"),
    ]));
    let named: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        named,
        [
            "column.mask.everything",
            "column.mask.hash.SHA3-256.with.salt.x",
            "column.mask.with.-1.chars",
            "column.mask.with.2.chars",
            "column.truncate.to.3.chars",
        ]
    );
    assert!(problems[1].1.contains("SHA-256"), "{problems:?}");
}

#[test]
fn truncation_counts_utf16_units_and_bytes() {
    let chars = ColumnMapper::bind(&Mapper::Truncate(3), Carrier::OtherString, None).unwrap();
    assert_eq!(chars.apply(&json!("hello")), json!("hel"));
    assert_eq!(chars.apply(&json!("hé")), json!("hé"));
    // "a😀b": the emoji is two UTF-16 units; a cut inside it goes before it.
    assert_eq!(chars.apply(&json!("😀😀")), json!("😀"));
    assert_eq!(chars.apply(&Value::Null), Value::Null);
    let bytes = ColumnMapper::bind(&Mapper::Truncate(2), Carrier::Bytes, None).unwrap();
    assert_eq!(
        bytes.apply(&json!(BASE64.encode("abcd"))),
        json!(BASE64.encode("ab"))
    );
    // A truncation no shorter than the declared length changes nothing.
    assert!(ColumnMapper::bind(&Mapper::Truncate(20), Carrier::CharString, Some(20)).is_none());
    assert!(ColumnMapper::bind(&Mapper::Truncate(19), Carrier::CharString, Some(20)).is_some());
    // Numbers and structs pass.
    assert_eq!(chars.apply(&json!(12345)), json!(12345));
}

#[test]
fn the_toast_placeholder_is_masked_but_never_hashed_or_cut() {
    let placeholder = json!(UNAVAILABLE_VALUE);
    let mask = ColumnMapper::bind(&Mapper::Mask(3), Carrier::CharString, None).unwrap();
    assert_eq!(mask.apply(&placeholder), json!("***"));
    let cut = ColumnMapper::bind(&Mapper::Truncate(3), Carrier::CharString, None).unwrap();
    assert_eq!(cut.apply(&placeholder), placeholder);
    let (_, sha) = parse_key("column.mask.hash.SHA-256.with.salt.s").unwrap();
    let sha = ColumnMapper::bind(&sha, Carrier::CharString, None).unwrap();
    assert_eq!(sha.apply(&placeholder), placeholder);
    let bytes = ColumnMapper::bind(&Mapper::Truncate(3), Carrier::Bytes, None).unwrap();
    let b64 = json!(BASE64.encode(UNAVAILABLE_VALUE));
    assert_eq!(bytes.apply(&b64), b64);
}

/// Mapping a value's JSON text gives what mapping its `Value` gives, and
/// copies what no mapper changes as written (a float is not re-read).
#[test]
fn mapping_json_text_matches_mapping_values() {
    let (_, sha) = parse_key("column.mask.hash.SHA-256.with.salt.s").unwrap();
    let mappers = [
        ColumnMapper::bind(&Mapper::Mask(3), Carrier::CharString, None).unwrap(),
        ColumnMapper::bind(&Mapper::Truncate(3), Carrier::CharString, None).unwrap(),
        ColumnMapper::bind(&Mapper::Truncate(2), Carrier::Bytes, None).unwrap(),
        ColumnMapper::bind(&Mapper::Mask(4), Carrier::Other, None).unwrap(),
        ColumnMapper::bind(&sha, Carrier::CharString, None).unwrap(),
    ];
    let values = [
        json!("hello \"world\""),
        json!("😀😀"),
        json!(UNAVAILABLE_VALUE),
        json!(BASE64.encode("abcd")),
        Value::Null,
        json!(12345),
        json!({ "x": 1.5, "y": -2.25 }),
    ];
    for mapper in &mappers {
        for value in &values {
            let mut out = Vec::new();
            mapper.apply_json(&serde_json::to_vec(value).unwrap(), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                mapper.apply(value).to_string(),
                "{mapper:?} on {value}"
            );
        }
    }
    let mut out = Vec::new();
    mappers[1].apply_json(b"0.30000000000000004", &mut out);
    assert_eq!(out, b"0.30000000000000004");
}

/// `public.customers (id int PRIMARY KEY, email varchar(20), name text,
/// ssn varchar(255), age int, photo bytea)`.
fn customers(extra: &[(&str, &str)]) -> Result<TableCodec, String> {
    let mut props: BTreeMap<String, String> = [
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
    .collect();
    props.insert("snapshot.mode".into(), "no_data".into());
    let cfg = ConnectorConfig::from_properties(&props).map_err(|e| format!("{e:?}"))?;
    let col = |name: &str, oid, typmod| RelationColumn {
        key: name == "id",
        name: name.into(),
        type_oid: oid,
        type_modifier: typmod,
    };
    let rel = Relation {
        oid: 1,
        namespace: "public".into(),
        name: "customers".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            col("id", 23, -1),
            col("email", 1043, 24),
            col("name", 25, -1),
            col("ssn", 1043, 259),
            col("age", 23, -1),
            col("photo", 17, -1),
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
        &rel,
        &facts,
        &["id".into()],
        &cfg,
        &crate::types::registry::TypeRegistry::builtin(),
    )
    .map_err(|e| e.to_string())
}

fn text(s: &str) -> TupleValue {
    TupleValue::Text(s.as_bytes().to_vec())
}

/// The event's `after` and the value schema's `after` fields, by name.
fn event(codec: &TableCodec, tuple: &[TupleValue]) -> (Value, Value, HashMap<String, Value>) {
    let row = codec.row(tuple).unwrap();
    let src = Source {
        db: "app",
        commit_lsn: 900,
        lsn: 880,
        ts_us: 1_700_000_000_000_000,
        tx_id: Some(7),
        snapshot: Snapshot::False,
        origin: None,
        transaction: None,
    };
    let value: Value = serde_json::from_slice(&codec.value("c", None, Some(&row), &src)).unwrap();
    let key: Value = serde_json::from_slice(&codec.key(&row)).unwrap();
    let fields = value["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "after")
        .unwrap()["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap().to_owned(), f.clone()))
        .collect();
    (
        value["payload"]["after"].clone(),
        key["payload"].clone(),
        fields,
    )
}

/// The connector documentation's worked examples (E2-E6 of the notes),
/// through the codec: values, schema parameters, and the key left clear.
#[test]
fn masks_hashes_and_truncation_on_a_table() {
    let row = [
        text("1"),
        text("test"),
        text("hello"),
        text("hello"),
        text("30"),
        text("\\x01020304"),
    ];

    // E2: a fixed mask, NULL included; the key is clear.
    let codec = customers(&[(
        "column.mask.with.5.chars",
        "public.customers.email,public.customers.age",
    )])
    .unwrap();
    let (after, key, fields) = event(&codec, &row);
    assert_eq!(after["email"], "*****");
    assert_eq!(after["age"], 30, "not a character type: unchanged");
    assert_eq!(fields["email"]["parameters"]["masked"], "true");
    assert_eq!(
        fields["age"]["parameters"]["masked"], "true",
        "as Debezium, whatever the type"
    );
    assert_eq!(key, json!({"id": 1}));
    let nulls = [
        text("2"),
        TupleValue::Null,
        text("x"),
        TupleValue::Null,
        TupleValue::Null,
        TupleValue::Null,
    ];
    assert_eq!(event(&codec, &nulls).0["email"], "*****");

    // E3: a V1 hash cut to varchar(20), whole in varchar(255); NULL stays.
    let codec = customers(&[(
        "column.mask.hash.SHA-256.with.salt.CzQMA0cB5K",
        "public.customers.email,public.customers.ssn",
    )])
    .unwrap();
    let (after, _, fields) = event(&codec, &row);
    assert_eq!(after["email"], "8e68c68edbbac316dfe2");
    assert_eq!(
        after["ssn"],
        "b4d39ab0d198fb4cac8b2f023da74f670bcaf192dcc79b5d6361b7ae6b2fafdf"
    );
    assert_eq!(fields["ssn"]["parameters"]["masked"], "true");
    assert_eq!(event(&codec, &nulls).0["email"], Value::Null);

    // E5: truncation, of text and of bytes; none where the column is shorter.
    let codec = customers(&[
        (
            "column.truncate.to.3.chars",
            "public.customers.(name|photo)",
        ),
        ("column.truncate.to.30.chars", "public.customers.email"),
    ])
    .unwrap();
    let (after, _, fields) = event(&codec, &row);
    assert_eq!(after["name"], "hel");
    assert_eq!(after["photo"], BASE64.encode([1u8, 2, 3]));
    assert_eq!(after["email"], "test");
    assert_eq!(fields["name"]["parameters"]["truncateLength"], "3");
    assert!(fields["email"].get("parameters").is_none());

    // E6: truncation wins over a mask of the same column.
    let codec = customers(&[
        ("column.truncate.to.3.chars", "public.customers.name"),
        ("column.mask.with.5.chars", "public.customers.name"),
    ])
    .unwrap();
    let (after, _, fields) = event(&codec, &row);
    assert_eq!(after["name"], "hel");
    assert_eq!(fields["name"]["parameters"], json!({"truncateLength": "3"}));

    // A masked key column would leave Kafka in the clear: refused.
    let refused = customers(&[("column.mask.with.5.chars", "public.customers.id")]).unwrap_err();
    assert!(refused.contains("key column `id`"), "{refused}");
}
