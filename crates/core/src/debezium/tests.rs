//! Decoding tests against real Debezium connector output.
//!
//! The fixtures live in `../shared/fixtures/debezium` (captured from other
//! projects, not copied into this repository). When that folder is absent
//! these tests say so and skip.

use super::*;
use crate::{ColumnType, Value};

fn fixture(name: &str) -> Option<Vec<u8>> {
    sinkfleet_testkit::fixtures::debezium(name)
}

fn id_key() -> DecodeOptions {
    let mut opts = DecodeOptions::default();
    opts.key_columns.insert("*".into(), vec!["id".into()]);
    opts
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn snapshot_with_schema_and_schema_key() {
    let (Some(value), Some(key)) = (
        fixture("01-read-snapshot-with-schema.value.json"),
        fixture("01-read-snapshot-with-schema.key.json"),
    ) else {
        return;
    };
    let change = decode(Some(&key), Some(&value), 0, &DecodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(change.op, Op::Read);
    assert_eq!(change.table, TableId::new("inventory", "customers"));
    assert_eq!(change.key.columns, vec![("id".into(), Value::Int(1002))]);
    let row = change.row.unwrap();
    assert_eq!(row.get("first_name"), Some(&text("George")));
    assert_eq!(row.get("email"), Some(&text("gbailey@foobar.com")));
    // sequence is "[null,\"36313560\"]": no commit LSN yet.
    assert_eq!(change.version, Version::new(0, 36313560));
    let schema = change.schema.unwrap();
    assert_eq!(schema.column("id").unwrap().ty, crate::ColumnType::Int32);
}

#[test]
fn update_after_snapshot_is_newer_without_sequence() {
    let (Some(snap), Some(upd)) = (
        fixture("02-read-snapshot-no-schema.value.json"),
        fixture("03-update-full-before-no-schema.value.json"),
    ) else {
        return;
    };
    let opts = id_key();
    let a = decode(None, Some(&snap), 0, &opts).unwrap().unwrap();
    let b = decode(None, Some(&upd), 1, &opts).unwrap().unwrap();
    assert_eq!(a.identity(), b.identity());
    assert!(b.version > a.version);
    assert_eq!(
        b.row.unwrap().get("description"),
        Some(&text("18oz carpenter hammer"))
    );
    assert_eq!(a.row.unwrap().get("weight"), Some(&Value::Float(1.0)));
}

#[test]
fn create_update_delete_with_schema() {
    let (Some(c), Some(u), Some(d)) = (
        fixture("04-create-with-schema.value.json"),
        fixture("05-update-full-before-with-schema.value.json"),
        fixture("06-delete-full-before-with-schema.value.json"),
    ) else {
        return;
    };
    let opts = id_key();
    let c = decode(None, Some(&c), 0, &opts).unwrap().unwrap();
    let u = decode(None, Some(&u), 1, &opts).unwrap().unwrap();
    let d = decode(None, Some(&d), 2, &opts).unwrap().unwrap();
    assert_eq!(
        c.row.as_ref().unwrap().get("description"),
        Some(&text("Big 2-wheel scooter "))
    );
    assert_eq!(
        u.row.as_ref().unwrap().get("weight"),
        Some(&Value::Float(5.17))
    );
    assert_eq!(d.op, Op::Delete);
    assert!(d.row.is_none());
    assert_eq!(d.key.columns, vec![("id".into(), Value::Int(111))]);
    assert!(c.version < u.version && u.version < d.version);
}

#[test]
fn schemaless_create_update_and_default_identity_delete() {
    let (Some(c), Some(u), Some(d), Some(full)) = (
        fixture("07-create-no-schema.value.json"),
        fixture("08-update-before-null-no-schema.value.json"),
        fixture("09-delete-default-identity-no-schema.value.json"),
        fixture("10-update-full-before-no-schema.value.json"),
    ) else {
        return;
    };
    let opts = id_key();
    let c = decode(None, Some(&c), 0, &opts).unwrap().unwrap();
    assert_eq!(c.version, Version::new(247967255240, 247967257096));
    let row = c.row.unwrap();
    // Without a schema a Debezium date is its raw day count.
    assert_eq!(row.get("date"), Some(&Value::Int(13693)));
    assert_eq!(row.get("addr2"), Some(&text("")));
    let u = decode(None, Some(&u), 1, &opts).unwrap().unwrap();
    assert_eq!(u.op, Op::Update);
    assert_eq!(u.row.unwrap().get("town"), Some(&text("LEE-ON-THE-SOLENT")));
    // The nulls in a default-identity `before` are fillers: only the key is read.
    let d = decode(None, Some(&d), 2, &opts).unwrap().unwrap();
    assert_eq!(d.key.columns, vec![("id".into(), Value::Int(50419765))]);
    assert!(d.row.is_none());
    let full = decode(None, Some(&full), 3, &opts).unwrap().unwrap();
    assert_eq!(full.row.unwrap().get("type"), Some(&text("terraced")));
}

#[test]
fn decimal_and_micro_timestamp() {
    let Some(v) = fixture("19-read-decimal-microtimestamp-with-schema.value.json") else {
        return;
    };
    let mut opts = DecodeOptions::default();
    opts.key_columns
        .insert("public.payment".into(), vec!["payment_id".into()]);
    let c = decode(None, Some(&v), 0, &opts).unwrap().unwrap();
    let row = c.row.unwrap();
    assert_eq!(row.get("amount"), Some(&Value::Decimal("2.99".into())));
    match row.get("payment_date") {
        Some(Value::Timestamp(t)) => assert_eq!(t.to_string(), "2007-05-14 13:44:29.996577"),
        other => panic!("payment_date: {other:?}"),
    }
    assert_eq!(c.version, Version::new(31227904, 31227904));
    assert_eq!(
        c.schema.unwrap().column("amount").unwrap().ty,
        crate::ColumnType::Decimal {
            precision: Some(5),
            scale: 2
        }
    );
}

#[test]
fn arrays_enums_and_decimals() {
    let Some(v) = fixture("20-read-array-enum-decimal-with-schema.value.json") else {
        return;
    };
    let mut opts = DecodeOptions::default();
    opts.key_columns.insert("*".into(), vec!["film_id".into()]);
    let c = decode(None, Some(&v), 0, &opts).unwrap().unwrap();
    let row = c.row.as_ref().unwrap();
    assert_eq!(row.get("rental_rate"), Some(&Value::Decimal("4.99".into())));
    assert_eq!(
        row.get("replacement_cost"),
        Some(&Value::Decimal("24.99".into()))
    );
    assert_eq!(row.get("rating"), Some(&text("G")));
    assert_eq!(
        row.get("special_features"),
        Some(&Value::Array(vec![text("Trailers"), text("Commentaries")]))
    );
    match row.get("last_update") {
        Some(Value::Timestamp(t)) => assert_eq!(t.to_string(), "2013-05-26 14:50:58.951"),
        other => panic!("last_update: {other:?}"),
    }
    let schema = c.schema.unwrap();
    assert_eq!(schema.column("rating").unwrap().ty, crate::ColumnType::Enum);
    assert_eq!(
        schema.column("special_features").unwrap().ty,
        crate::ColumnType::Array(Box::new(crate::ColumnType::Text))
    );
}

#[test]
fn composite_key_delete_reads_only_key_columns() {
    let Some(v) = fixture("21-delete-composite-pk-default-identity-with-schema.value.json") else {
        return;
    };
    let mut opts = DecodeOptions::default();
    opts.key_columns.insert(
        "public.film_actor".into(),
        vec!["actor_id".into(), "film_id".into()],
    );
    let d = decode(None, Some(&v), 0, &opts).unwrap().unwrap();
    assert_eq!(d.op, Op::Delete);
    assert_eq!(
        d.key.columns,
        vec![
            ("actor_id".into(), Value::Int(1)),
            ("film_id".into(), Value::Int(23))
        ]
    );
    assert!(
        d.row.is_none(),
        "the filler last_update=0 must not become data"
    );
}

#[test]
fn micro_timestamp_date_and_micro_time() {
    let Some(v) = fixture("22-read-microtimestamp-date-microtime-with-schema.value.json") else {
        return;
    };
    let c = decode(None, Some(&v), 0, &id_key()).unwrap().unwrap();
    let row = c.row.unwrap();
    let show = |n: &str| match row.get(n) {
        Some(Value::Timestamp(t)) => t.to_string(),
        Some(Value::Date(d)) => d.to_string(),
        Some(Value::Time(t)) => t.to_string(),
        other => panic!("{n}: {other:?}"),
    };
    assert_eq!(show("ts"), "2022-10-14 23:55:31.989360");
    assert_eq!(show("d"), "2022-10-14");
    assert_eq!(show("t"), "23:55:31.989360");
}

#[test]
fn docs_3x_create_with_boolean_snapshot_and_truncate() {
    let (Some(c), Some(t)) = (
        fixture("25-create-with-schema-docs-3x.value.json"),
        fixture("26-truncate-docs-payload-only.value.json"),
    ) else {
        return;
    };
    let c = decode(None, Some(&c), 0, &id_key()).unwrap().unwrap();
    assert_eq!(c.op, Op::Create);
    assert_eq!(c.row.unwrap().get("first_name"), Some(&text("Anne")));
    assert_eq!(c.version, Version::new(24023119, 24023128));
    // Truncate has a null Kafka key and no row.
    let t = decode(None, Some(&t), 1, &DecodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(t.op, Op::Truncate);
    assert!(t.key.columns.is_empty());
    // Without a sequence the LSN orders it: after 25's (24023119, 24023128).
    assert_eq!(t.version, Version::new(46523128, 46523128));
    assert!(t.version > c.version);
}

#[test]
fn tombstones_and_malformed_records() {
    let opts = id_key();
    assert_eq!(decode(Some(b"{\"id\":1}"), None, 0, &opts).unwrap(), None);
    assert_eq!(
        decode(None, Some(b"{\"schema\":null,\"payload\":null}"), 0, &opts).unwrap(),
        None
    );
    assert!(matches!(
        decode(None, Some(b"{not json"), 0, &opts),
        Err(DecodeError::Json { .. })
    ));
    let bad_op = br#"{"op":"x","source":{"schema":"s","table":"t","lsn":1},"after":{"id":1}}"#;
    assert!(matches!(
        decode(None, Some(bad_op), 0, &opts),
        Err(DecodeError::UnknownOp(_))
    ));
    let no_key = br#"{"op":"c","source":{"schema":"s","table":"t","lsn":1},"after":{"id":1}}"#;
    assert!(matches!(
        decode(None, Some(no_key), 0, &DecodeOptions::default()),
        Err(DecodeError::MissingKey(_))
    ));
}

/// A record that is JSON but no change event says what it holds.
#[test]
fn a_record_that_is_no_event_names_what_arrived() {
    let opts = id_key();
    for (record, part, said) in [
        (
            &br#"{"payload":{"op":"c","after":{"id":1}}}"#[..],
            "value",
            "its top-level keys are `payload` (a `payload` without `schema` is no JsonConverter envelope)",
        ),
        (
            br#"{"id":1,"name":"x"}"#,
            "value",
            "its top-level keys are `id`, `name`",
        ),
        (
            br#"{"schema":{"type":"struct"},"payload":{"after":{"id":1},"ts_ms":1}}"#,
            "payload",
            "its top-level keys are `after`, `ts_ms`",
        ),
        (br#"{}"#, "value", "an empty object"),
    ] {
        let err = decode(Some(b"{\"id\":1}"), Some(record), 0, &opts).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{part} is not a Debezium change event: {said};")),
            "{message}"
        );
        assert!(message.contains("expected `op`, `source`"), "{message}");
    }
}

#[test]
fn toast_placeholder_leaves_the_column_out() {
    let v = br#"{"op":"u","source":{"schema":"s","table":"t","lsn":9},
        "after":{"id":1,"body":"__debezium_unavailable_value","n":2}}"#;
    let c = decode(Some(br#"{"id":1}"#), Some(v), 0, &DecodeOptions::default())
        .unwrap()
        .unwrap();
    let row = c.row.unwrap();
    assert!(!row.contains("body"));
    assert_eq!(row.get("n"), Some(&Value::Int(2)));
}

#[test]
fn field_and_offset_versions() {
    let v = br#"{"op":"u","source":{"schema":"s","table":"t"},"after":{"id":1,"rev":-3}}"#;
    let opts = DecodeOptions {
        version: VersionSource::Field {
            field: "rev".into(),
        },
        ..id_key()
    };
    let c = decode(None, Some(v), 0, &opts).unwrap().unwrap();
    assert_eq!(c.version, Version::from_i64(-3));
    let opts = DecodeOptions {
        version: VersionSource::KafkaOffset,
        ..id_key()
    };
    assert_eq!(
        decode(None, Some(v), 42, &opts).unwrap().unwrap().version,
        Version::new(42, 0)
    );
}

/// Versions are exact or refused: a malformed commit LSN is not 0, and a
/// sequence that is not a pair does not fall back to the plain LSN.
#[test]
fn malformed_versions_are_refused_not_defaulted() {
    let event = |source: &str| {
        format!(r#"{{"op":"c","source":{{"schema":"s","table":"t",{source}}},"after":{{"id":1}}}}"#)
    };
    let version = |source: &str| {
        decode(
            Some(br#"{"id":1}"#),
            Some(event(source).as_bytes()),
            0,
            &DecodeOptions::default(),
        )
        .map(|c| c.map(|c| c.version))
    };
    // Legal shapes.
    assert_eq!(
        version(r#""lsn":7,"sequence":"[null,\"7\"]""#),
        Ok(Some(Version::new(0, 7)))
    );
    assert_eq!(
        version(r#""lsn":7,"sequence":["5","7"]"#),
        Ok(Some(Version::new(5, 7)))
    );
    assert_eq!(
        version(r#""lsn":7,"sequence":null"#),
        Ok(Some(Version::new(7, 7)))
    );
    assert_eq!(version(r#""lsn":"7""#), Ok(Some(Version::new(7, 7))));
    // Refused, each naming the field.
    for (source, path) in [
        (
            r#""lsn":7,"sequence":"[\"not-an-lsn\",\"7\"]""#,
            "source.sequence[0]",
        ),
        (r#""lsn":7,"sequence":"[\"5\",null]""#, "source.sequence[1]"),
        (
            r#""lsn":7,"sequence":"[\"-5\",\"7\"]""#,
            "source.sequence[0]",
        ),
        (r#""lsn":7,"sequence":{}"#, "source.sequence"),
        (r#""lsn":7,"sequence":[1]"#, "source.sequence"),
        (r#""lsn":7,"sequence":"[1,2,3]""#, "source.sequence"),
        (r#""lsn":7,"sequence":"{}""#, "source.sequence"),
        (r#""lsn":7,"sequence":"oops""#, "source.sequence"),
        (r#""lsn":"not-an-lsn""#, "source.lsn"),
        (r#""lsn":-1"#, "source.lsn"),
        (r#""lsn":1.5"#, "source.lsn"),
        (r#""other":1"#, "source.lsn"),
    ] {
        match version(source) {
            Err(DecodeError::Field { path: got, .. }) => assert_eq!(got, path, "{source}"),
            other => panic!("{source}: expected a refusal at {path}, got {other:?}"),
        }
    }
}

/// Well-formed LSNs are read without a JSON tree; anything else leaves
/// the fast path for the slow one, which names the field (above).
#[test]
fn well_formed_lsns_take_the_fast_path() {
    let fast = |json: &str| {
        let source: wire::Source<'_> = serde_json::from_str(json).expect("a source block");
        wire::fast_lsn_version(&source)
    };
    assert_eq!(
        fast(r#"{"lsn":7,"sequence":"[\"5\",\"7\"]"}"#),
        Some((5, 7))
    );
    assert_eq!(fast(r#"{"lsn":7,"sequence":"[null,\"7\"]"}"#), Some((0, 7)));
    assert_eq!(fast(r#"{"lsn":7,"sequence":["5",7]}"#), Some((5, 7)));
    assert_eq!(fast(r#"{"lsn":7,"sequence":null}"#), Some((7, 7)));
    assert_eq!(fast(r#"{"lsn":"7"}"#), Some((7, 7)));
    for refused in [
        r#"{"lsn":7,"sequence":"[\"5\",null]"}"#,
        r#"{"lsn":7,"sequence":"[1,2,3]"}"#,
        r#"{"lsn":-1}"#,
        r#"{"lsn":1.5}"#,
        r#"{"lsn":null}"#,
        r#"{}"#,
    ] {
        assert_eq!(fast(refused), None, "{refused}");
    }
}

/// An empty base64 Decimal is not 0.
#[test]
fn empty_decimal_bytes_are_refused() {
    let value = br#"{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
        {"field":"id","type":"int32"},
        {"field":"amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}]}]},
      "payload":{"op":"c","source":{"schema":"s","table":"t","lsn":1},"after":{"id":1,"amount":""}}}"#;
    match decode(
        Some(br#"{"id":1}"#),
        Some(value),
        0,
        &DecodeOptions::default(),
    ) {
        Err(DecodeError::Field { path, message }) => {
            assert_eq!(path, "after.amount");
            assert!(message.contains("empty Decimal"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Declared columns make a schema-less event decode as if it had carried
/// its schema; undeclared columns keep their JSON type, and an event with a
/// schema is described by it alone.
#[test]
fn declared_columns_type_schema_less_events() {
    use std::collections::BTreeMap;
    let declared = BTreeMap::from([(
        "public.t".to_owned(),
        BTreeMap::from([
            ("born".to_owned(), "date".to_owned()),
            ("seen".to_owned(), "timestamp_micros".to_owned()),
            ("photo".to_owned(), "bytes".to_owned()),
            ("price".to_owned(), "decimal(5,2)".to_owned()),
        ]),
    )]);
    let opts = DecodeOptions {
        columns: crate::debezium::DeclaredColumns::parse(&declared).unwrap(),
        ..id_key()
    };
    let mut decoder = crate::debezium::Decoder::new(opts);
    let bare = br#"{"op":"c","source":{"schema":"public","table":"t","lsn":5},
        "after":{"id":1,"born":13693,"seen":-1,"photo":"AAE=","price":"MDk=","note":"x",
        "doc":"__debezium_unavailable_value"}}"#;
    let c = decoder.decode(None, Some(bare), 0).unwrap().unwrap();
    let row = c.row.as_ref().unwrap();
    assert_eq!(
        row.get("born"),
        Some(&Value::Date(
            chrono::NaiveDate::from_ymd_opt(2007, 6, 29).unwrap()
        ))
    );
    assert_eq!(
        row.get("seen").map(|v| format!("{v:?}")),
        Some("Timestamp(1969-12-31T23:59:59.999999)".to_owned())
    );
    assert_eq!(row.get("photo"), Some(&Value::Bytes(vec![0, 1])));
    assert_eq!(row.get("price"), Some(&Value::Decimal("123.45".into())));
    assert_eq!(row.get("note"), Some(&text("x")));
    assert_eq!(row.get("id"), Some(&Value::Int(1)));
    let schema = c.schema.as_ref().expect("declared columns give a schema");
    assert_eq!(schema.column("born").unwrap().ty, ColumnType::Date);
    assert_eq!(schema.column("note").unwrap().ty, ColumnType::Inferred);
    assert_eq!(c.unchanged_columns(), Some(vec!["doc"]));
    // The same shape shares one schema, as schema-carrying events do.
    let again = decoder.decode(None, Some(bare), 1).unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(
        again.schema.as_ref().unwrap(),
        c.schema.as_ref().unwrap()
    ));
    // A declared type the value does not match is a field error.
    let wrong = br#"{"op":"c","source":{"schema":"public","table":"t","lsn":5},
        "after":{"id":1,"born":"2007-06-29"}}"#;
    let err = decoder
        .decode(None, Some(wrong), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("after.born"), "{err}");
    // Another table is not declared: inferred as before.
    let other = br#"{"op":"c","source":{"schema":"public","table":"u","lsn":5},
        "after":{"id":1,"born":13693}}"#;
    let c = decoder.decode(None, Some(other), 3).unwrap().unwrap();
    assert_eq!(c.row.unwrap().get("born"), Some(&Value::Int(13693)));
    assert!(c.schema.is_none());
}

#[test]
fn a_repeated_envelope_decodes_like_the_first_record() {
    // Every fixture with a schema, decoded twice by one decoder: for the
    // compact ones (as the JsonConverter writes) the second decode takes the
    // remembered-prefix path and must give the same change.
    let names = [
        "01-read-snapshot-with-schema.value.json",
        "04-create-with-schema.value.json",
        "05-update-full-before-with-schema.value.json",
        "06-delete-full-before-with-schema.value.json",
        "19-read-decimal-microtimestamp-with-schema.value.json",
        "20-read-array-enum-decimal-with-schema.value.json",
        "22-read-microtimestamp-date-microtime-with-schema.value.json",
        "25-create-with-schema-docs-3x.value.json",
    ];
    let keys = [
        fixture("01-read-snapshot-with-schema.key.json"),
        Some(br#"{"k":1}"#.to_vec()),
    ];
    for name in names {
        let Some(value) = fixture(name) else { return };
        let key = keys[usize::from(!name.starts_with("01"))].as_deref();
        let mut decoder = Decoder::new(DecodeOptions::default());
        let first = decoder.decode(key, Some(&value), 0).unwrap();
        let second = decoder.decode(key, Some(&value), 0).unwrap();
        // Pretty-printed fixtures take the general path both times.
        let compact = value.starts_with(br#"{"schema":"#);
        assert_eq!(
            decoder.value_prefixes.len(),
            usize::from(compact),
            "{name}: the prefix path was not taken"
        );
        assert_eq!(first, second, "{name}");
        assert!(first.is_some(), "{name}");
    }
}

#[test]
fn a_remembered_prefix_never_hides_a_different_record() {
    let schema = r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},{"type":"int32","optional":true,"field":"n"}],"optional":true,"field":"after"}],"optional":false}"#;
    let record = |payload: &str| format!(r#"{{"schema":{schema},"payload":{payload}}}"#);
    let source = r#""source":{"schema":"s","table":"t","lsn":7}"#;
    let mut decoder = Decoder::new(id_key());
    let ok = record(&format!(
        r#"{{"op":"c",{source},"after":{{"id":1,"n":2}}}}"#
    ));
    let first = decoder
        .decode(None, Some(ok.as_bytes()), 0)
        .unwrap()
        .unwrap();
    assert_eq!(first.row.unwrap().get("n"), Some(&Value::Int(2)));
    // Same prefix, then a payload that is not valid for the schema: refused,
    // with the column named, not decoded by inference.
    let wrong = record(&format!(
        r#"{{"op":"c",{source},"after":{{"id":1,"n":"x"}}}}"#
    ));
    assert!(matches!(
        decoder.decode(None, Some(wrong.as_bytes()), 0),
        Err(DecodeError::Field { path, .. }) if path == "after.n"
    ));
    // Same prefix, then a tombstone payload.
    assert_eq!(
        decoder
            .decode(None, Some(record("null").as_bytes()), 0)
            .unwrap(),
        None
    );
    // Same prefix, then trailing garbage after the envelope: not JSON.
    let trailing = format!("{}x", ok);
    assert!(matches!(
        decoder.decode(None, Some(trailing.as_bytes()), 0),
        Err(DecodeError::Json { .. })
    ));
    // Same prefix, then a second `schema` field: the general path decides.
    let third = format!(
        r#"{{"schema":{schema},"payload":{{"op":"c",{source},"after":{{"id":3}}}},"schema":null}}"#
    );
    assert!(decoder.decode(None, Some(third.as_bytes()), 0).is_err());
}

#[test]
fn columns_keep_source_order_and_a_repeated_column_is_refused() {
    let v = br#"{"op":"c","source":{"schema":"s","table":"t","lsn":9},
        "after":{"id":1,"zeta":2,"alpha":3}}"#;
    let c = decode(None, Some(v), 0, &id_key()).unwrap().unwrap();
    assert_eq!(
        c.row.unwrap().names().collect::<Vec<_>>(),
        ["id", "zeta", "alpha"]
    );
    let twice = br#"{"op":"c","source":{"schema":"s","table":"t","lsn":9},
        "after":{"id":1,"n":2,"n":3}}"#;
    assert!(matches!(
        decode(None, Some(twice), 0, &id_key()),
        Err(DecodeError::Field { path, .. }) if path == "after.n"
    ));
}

/// Rows of one table share their column names; a row with other names, or
/// with a TOAST placeholder shifting its columns, still gets its own names
/// right.
#[test]
fn rows_share_repeated_column_names() {
    let event = |after: &str| {
        format!(r#"{{"op":"u","source":{{"schema":"s","table":"t","lsn":9}},"after":{after}}}"#)
    };
    let mut decoder = Decoder::new(id_key());
    let mut row = |after: &str| {
        let value = event(after);
        let change = decoder
            .decode(None, Some(value.as_bytes()), 0)
            .expect("decodes")
            .expect("a change");
        change.row.expect("a row")
    };
    let first = row(r#"{"id":1,"name":"a","bio":"x"}"#);
    let second = row(r#"{"id":2,"name":"b","bio":"y"}"#);
    for ((a, _), (b, _)) in first.columns.iter().zip(&second.columns) {
        assert!(Arc::ptr_eq(a, b), "`{a}` is shared");
    }
    let partial = row(r#"{"id":3,"name":"__debezium_unavailable_value","bio":"z"}"#);
    assert_eq!(partial.names().collect::<Vec<_>>(), ["id", "bio"]);
    assert!(Arc::ptr_eq(&partial.columns[1].0, &first.columns[2].0));
    let other = row(r#"{"id":4,"title":"c","bio":"w"}"#);
    assert_eq!(other.names().collect::<Vec<_>>(), ["id", "title", "bio"]);
    assert_eq!(other.get("title"), Some(&text("c")));
}

#[test]
fn the_transaction_block_names_the_source_transaction() {
    let event = |transaction: &str| {
        format!(
            r#"{{"op":"c","source":{{"schema":"s","table":"t","lsn":5}},"after":{{"id":1}},"transaction":{transaction}}}"#
        )
    };
    let decoded = |transaction: &str| {
        decode(None, Some(event(transaction).as_bytes()), 0, &id_key())
            .unwrap()
            .unwrap()
            .transaction
    };
    assert_eq!(
        decoded(r#"{"id":"571:53195832","total_order":1,"data_collection_order":1}"#).as_deref(),
        Some("571:53195832")
    );
    assert_eq!(decoded("null"), None);
    assert!(decode(None, Some(event(r#""x""#).as_bytes()), 0, &id_key()).is_err());
}

/// JsonConverter names Connect's FLOAT32/FLOAT64 `float` and `double`.
#[test]
fn float_and_double_fields_are_floats() {
    let value = br#"{"schema":{"type":"struct","fields":[
        {"type":"struct","optional":true,"field":"after","fields":[
          {"type":"int32","optional":false,"field":"id"},
          {"type":"float","optional":true,"field":"f4"},
          {"type":"double","optional":true,"field":"f8"}]},
        {"type":"struct","optional":false,"field":"source","fields":[]}]},
      "payload":{"op":"c","source":{"schema":"s","table":"t","lsn":1},
        "after":{"id":1,"f4":1.5,"f8":"NaN"}}}"#;
    let change = decode(
        Some(b"{\"id\":1}"),
        Some(value),
        0,
        &DecodeOptions::default(),
    )
    .unwrap()
    .unwrap();
    let schema = change.schema.unwrap();
    let ty = |name: &str| {
        schema
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .ty
            .clone()
    };
    assert_eq!(ty("f4"), ColumnType::Float32);
    assert_eq!(ty("f8"), ColumnType::Float64);
    let row = change.row.unwrap();
    assert_eq!(row.get("f4"), Some(&Value::Float(1.5)));
    assert!(matches!(row.get("f8"), Some(Value::Float(f)) if f.is_nan()));
}

/// A logical decoding message event (`op` m, Debezium's MessageValue) on a
/// topic a worker reads is refused by name, with or without its schema:
/// it is not a table change, and no sink applies it.
#[test]
fn logical_decoding_messages_are_refused_by_name() {
    let source = r#"{"version":"3.6.1.Final","connector":"postgresql","name":"app","ts_ms":1,"snapshot":"false","db":"app","sequence":"[\"10\",\"10\"]","ts_us":1000,"ts_ns":1000000,"schema":"","table":"","txId":null,"lsn":10,"xmin":null,"origin":null,"origin_lsn":null}"#;
    let payload = format!(
        r#"{{"op":"m","ts_ms":1,"source":{source},"transaction":null,"message":{{"prefix":"outbox","content":"eyJpZCI6MX0="}}}}"#
    );
    let schema = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"},{"type":"bytes","optional":true,"field":"content"}],"optional":false,"name":"io.debezium.connector.postgresql.Message","version":1,"field":"message"}],"optional":false,"name":"io.debezium.connector.postgresql.MessageValue","version":1}"#;
    let enveloped = format!(r#"{{"schema":{schema},"payload":{payload}}}"#);
    let key = br#"{"prefix":"outbox"}"#;
    for value in [payload.as_bytes(), enveloped.as_bytes()] {
        let refused = decode(Some(key), Some(value), 0, &DecodeOptions::default()).unwrap_err();
        assert!(matches!(refused, DecodeError::LogicalMessage), "{refused}");
        assert!(
            refused.to_string().contains("not a table change"),
            "{refused}"
        );
    }
}
