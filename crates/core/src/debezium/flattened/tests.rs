//! Flattened records against their unflattened twins: real Debezium events
//! (the shared fixtures) flattened here as `ExtractNewRecordState` would,
//! both decoded, the changes compared.

use super::*;
use crate::debezium::{DecodeOptions, Decoder, decode};
use serde_json::json;

fn fixture(name: &str) -> Option<Json> {
    let bytes = sinkfleet_testkit::fixtures::debezium(name)?;
    Some(serde_json::from_slice(&bytes).expect("fixture JSON"))
}

/// `event` as `ExtractNewRecordState` with `add.fields=<add>` (default
/// prefix) and `delete.tombstone.handling.mode=<rewrite or tombstone>`
/// writes it: the row image, the added fields (in `source`, or the envelope
/// for `op`/`ts_ms`; qualified names as `__<struct>_<field>`), then
/// `__deleted`. `None` for a null value (a delete in tombstone mode). With a
/// schema envelope, the schema is the row struct plus the added fields
/// (their source schemas, optional) and `__deleted` (an optional string).
fn flatten(event: &Json, add: &[&str], rewrite: bool) -> Option<Json> {
    let (schema, payload) = match event.get("payload") {
        Some(payload) => (event.get("schema"), payload),
        None => (None, event),
    };
    let deleted = payload["after"].is_null();
    if deleted && !rewrite {
        return None;
    }
    let mut row = payload[if deleted { "before" } else { "after" }].clone();
    let envelope_fields = schema.and_then(|s| s["fields"].as_array());
    let envelope_field = |name: &str| {
        envelope_fields.and_then(|fields| fields.iter().find(|f| f["field"] == name).cloned())
    };
    let mut row_schema = envelope_field(if deleted { "before" } else { "after" });
    for entry in add {
        let (parent, name, new_name) = match entry.split_once('.') {
            Some((parent, name)) => (Some(parent), name, format!("__{parent}_{name}")),
            None if matches!(*entry, "op" | "ts_ms") => (None, *entry, format!("__{entry}")),
            None => (Some("source"), *entry, format!("__{entry}")),
        };
        let value = match parent {
            Some(parent) => payload[parent][name].clone(),
            None => payload[name].clone(),
        };
        row[&new_name] = value;
        if let Some(row_schema) = &mut row_schema {
            let source = match parent {
                Some(parent) => envelope_field(parent).and_then(|s| {
                    s["fields"]
                        .as_array()
                        .and_then(|f| f.iter().find(|f| f["field"] == name).cloned())
                }),
                None => envelope_field(name),
            };
            if let Some(mut field) = source {
                field["field"] = json!(new_name);
                field["optional"] = json!(true);
                row_schema["fields"]
                    .as_array_mut()
                    .expect("fields")
                    .push(field);
            }
        }
    }
    if rewrite {
        row[DELETED_FIELD] = json!(if deleted { "true" } else { "false" });
        if let Some(row_schema) = &mut row_schema {
            row_schema["fields"]
                .as_array_mut()
                .expect("fields")
                .push(json!({"type": "string", "optional": true, "field": DELETED_FIELD}));
        }
    }
    Some(match row_schema {
        Some(mut s) => {
            if let Some(o) = s.as_object_mut() {
                o.remove("field");
            }
            json!({"schema": s, "payload": row})
        }
        None => row,
    })
}

fn flat_opts(version: VersionSource, flat: FlattenedOptions) -> DecodeOptions {
    DecodeOptions {
        version,
        record: RecordShape::Flattened(flat),
        ..DecodeOptions::default()
    }
}

fn with_id_key(mut opts: DecodeOptions) -> DecodeOptions {
    opts.key_columns.insert("*".into(), vec!["id".into()]);
    opts
}

fn bytes(json: &Json) -> Vec<u8> {
    json.to_string().into_bytes()
}

/// Decodes `name` and its flattened twin; asserts they are the same change.
fn assert_twins(name: &str, key: Option<&Json>, add: &[&str], opts: &DecodeOptions) {
    let Some(event) = fixture(name) else { return };
    let flat_opts = DecodeOptions {
        record: RecordShape::Flattened(FlattenedOptions::default()),
        ..opts.clone()
    };
    let key = key.map(bytes);
    let plain = decode(key.as_deref(), Some(&bytes(&event)), 7, opts)
        .expect("unflattened decodes")
        .expect("a change");
    let twin = flatten(&event, add, true).expect("rewritten");
    let flat = decode(key.as_deref(), Some(&bytes(&twin)), 7, &flat_opts)
        .expect("flattened decodes")
        .expect("a change");
    assert_eq!(flat.version, plain.version, "{name}: version");
    assert_eq!(flat.table, plain.table, "{name}: table");
    assert_eq!(flat.key, plain.key, "{name}: key");
    assert_eq!(flat.op, plain.op, "{name}: op");
    assert_eq!(flat.row, plain.row, "{name}: row");
    assert_eq!(flat.schema, plain.schema, "{name}: schema without metadata");
    assert_eq!(
        flat.source_ts_ms, plain.source_ts_ms,
        "{name}: source_ts_ms"
    );
    assert_eq!(flat.unchanged, plain.unchanged, "{name}: unchanged");
}

const ADD: &[&str] = &["op", "table", "schema", "lsn", "source.ts_ms"];
const ADD_SEQUENCE: &[&str] = &[
    "op",
    "table",
    "schema",
    "lsn",
    "source.sequence",
    "source.ts_ms",
];

#[test]
fn twins_with_schema_create_update_delete() {
    let keyed = |columns: &[&str]| {
        let mut opts = DecodeOptions::default();
        opts.key_columns
            .insert("*".into(), columns.iter().map(|c| c.to_string()).collect());
        opts
    };
    for (name, key) in [
        ("04-create-with-schema.value.json", &["id"][..]),
        ("05-update-full-before-with-schema.value.json", &["id"]),
        ("06-delete-full-before-with-schema.value.json", &["id"]),
        (
            "21-delete-composite-pk-default-identity-with-schema.value.json",
            &["actor_id", "film_id"],
        ),
        (
            "20-read-array-enum-decimal-with-schema.value.json",
            &["film_id"],
        ),
    ] {
        assert_twins(name, None, ADD, &keyed(key));
    }
    // Its source has a sequence: the twin needs `source.sequence` too.
    assert_twins(
        "22-read-microtimestamp-date-microtime-with-schema.value.json",
        None,
        ADD_SEQUENCE,
        &keyed(&["id"]),
    );
}

/// Without `source.sequence` a flattened record has only its LSN: `(lsn,
/// lsn)`, where its unflattened twin (Debezium 1.4+) is `(commit_lsn,
/// lsn)`. A snapshot row is `(0, lsn)` unflattened but `(lsn, lsn)` here,
/// above a change of a transaction that began before the snapshot and
/// committed after it: that change would be rejected as stale. Hence the
/// advice of docs/formats.md: add `source.sequence`.
#[test]
fn without_the_sequence_the_version_is_the_lsn_alone() {
    let Some(event) = fixture("22-read-microtimestamp-date-microtime-with-schema.value.json")
    else {
        return;
    };
    let twin = flatten(&event, ADD, true).expect("row");
    let opts = with_id_key(lsn_opts());
    let flat = decode(None, Some(&bytes(&twin)), 0, &opts)
        .unwrap()
        .unwrap();
    assert_eq!(flat.version, Version::new(25503568, 25503568));
    let twin = flatten(&event, ADD_SEQUENCE, true).expect("row");
    let flat = decode(None, Some(&bytes(&twin)), 0, &opts)
        .unwrap()
        .unwrap();
    assert_eq!(flat.version, Version::new(0, 25503568));
}

#[test]
fn twins_without_schema_version_from_the_sequence() {
    let opts = with_id_key(DecodeOptions::default());
    for name in [
        "07-create-no-schema.value.json",
        "08-update-before-null-no-schema.value.json",
        "09-delete-default-identity-no-schema.value.json",
        "10-update-full-before-no-schema.value.json",
    ] {
        assert_twins(name, None, ADD_SEQUENCE, &opts);
    }
    // The sequence's commit LSN is the version's major part, as unflattened.
    let Some(event) = fixture("07-create-no-schema.value.json") else {
        return;
    };
    let twin = flatten(&event, ADD_SEQUENCE, true).expect("row");
    let change = decode(
        None,
        Some(&bytes(&twin)),
        0,
        &with_id_key(flat_opts(
            VersionSource::DebeziumLsn,
            FlattenedOptions::default(),
        )),
    )
    .unwrap()
    .unwrap();
    assert_eq!(change.version, Version::new(247967255240, 247967257096));
}

#[test]
fn twins_with_a_schema_key() {
    let (Some(key), Some(_)) = (
        fixture("01-read-snapshot-with-schema.key.json"),
        fixture("01-read-snapshot-with-schema.value.json"),
    ) else {
        return;
    };
    assert_twins(
        "01-read-snapshot-with-schema.value.json",
        Some(&key),
        ADD_SEQUENCE,
        &DecodeOptions::default(),
    );
}

fn flat_decode(
    value: Option<Json>,
    key: Option<Json>,
    offset: i64,
    opts: &DecodeOptions,
) -> Result<Option<Change>, DecodeError> {
    let value = value.map(|v| bytes(&v));
    let key = key.map(|k| bytes(&k));
    Decoder::new(opts.clone()).decode(key.as_deref(), value.as_deref(), offset)
}

fn lsn_opts() -> DecodeOptions {
    flat_opts(VersionSource::DebeziumLsn, FlattenedOptions::default())
}

#[test]
fn metadata_is_stripped_from_row_schema_and_key() {
    let value = json!({
        "schema": {"type": "struct", "fields": [
            {"field": "id", "type": "int32", "optional": false},
            {"field": "name", "type": "string", "optional": true},
            {"field": "__op", "type": "string", "optional": true},
            {"field": "__table", "type": "string", "optional": true},
            {"field": "__schema", "type": "string", "optional": true},
            {"field": "__lsn", "type": "int64", "optional": true},
            {"field": "__source_ts_ms", "type": "int64", "optional": true},
            {"field": "__db", "type": "string", "optional": true},
            {"field": "__deleted", "type": "string", "optional": true}
        ]},
        "payload": {"id": 1, "name": "a", "__op": "c", "__table": "t", "__schema": "s",
                    "__lsn": 100, "__source_ts_ms": 1700000000000i64, "__db": "db",
                    "__deleted": "false"}
    });
    // ByLogicalTableRouter puts a field of its own into keys.
    let key = json!({"id": 1, "__dbz__physicalTableIdentifier": "x.s.t"});
    let c = flat_decode(Some(value), Some(key), 3, &lsn_opts())
        .unwrap()
        .unwrap();
    assert_eq!(c.op, Op::Create);
    assert_eq!(c.table, TableId::new("s", "t"));
    assert_eq!(c.version, Version::new(100, 100));
    assert_eq!(c.source_ts_ms, Some(1700000000000));
    let mut names: Vec<_> = c.row.as_ref().unwrap().names().collect();
    names.sort_unstable();
    assert_eq!(names, vec!["id", "name"]);
    assert_eq!(c.key.names().collect::<Vec<_>>(), vec!["id"]);
    let schema = c.schema.unwrap();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["id", "name"]);
}

#[test]
fn records_of_one_schema_share_one_stripped_schema() {
    let value = |id: i64| {
        json!({"schema": {"type": "struct", "fields": [
                {"field": "id", "type": "int64", "optional": false},
                {"field": "__lsn", "type": "int64", "optional": true},
                {"field": "__table", "type": "string", "optional": true},
                {"field": "__schema", "type": "string", "optional": true}]},
               "payload": {"id": id, "__lsn": id, "__table": "t", "__schema": "s"}})
    };
    let mut decoder = Decoder::new(lsn_opts());
    let mut decode = |id: i64| {
        decoder
            .decode(
                Some(&bytes(&json!({"id": id}))),
                Some(&bytes(&value(id))),
                id,
            )
            .unwrap()
            .unwrap()
            .schema
            .unwrap()
    };
    let (a, b) = (decode(1), decode(2));
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn rewritten_deletes_with_and_without_op() {
    let row = |deleted: Json, op: Option<&str>| {
        let mut v = json!({"id": 5, "name": null, "__table": "t", "__schema": "s",
                           "__lsn": 900, "__deleted": deleted});
        if let Some(op) = op {
            v["__op"] = json!(op);
        }
        v
    };
    let key = Some(json!({"id": 5}));
    for (deleted, op) in [
        (json!("true"), Some("d")),
        (json!("true"), None),
        (json!(true), None),
    ] {
        let c = flat_decode(Some(row(deleted, op)), key.clone(), 0, &lsn_opts())
            .unwrap()
            .unwrap();
        assert_eq!(c.op, Op::Delete);
        assert_eq!(c.row, None);
        assert_eq!(c.version, Version::new(900, 900));
        assert_eq!(c.key.get("id"), Some(&Value::Int(5)));
    }
    // Not deleted, no `__op`: an upsert.
    for deleted in [json!("false"), json!(false), Json::Null] {
        let c = flat_decode(Some(row(deleted, None)), key.clone(), 0, &lsn_opts())
            .unwrap()
            .unwrap();
        assert!(c.op.is_upsert());
    }
    // Contradictions and other markers are refused.
    for (deleted, op) in [
        (json!("true"), Some("u")),
        (json!("false"), Some("d")),
        (json!("yes"), None),
    ] {
        let e = flat_decode(Some(row(deleted, op)), key.clone(), 0, &lsn_opts()).unwrap_err();
        assert!(e.to_string().contains("__deleted"), "{e}");
    }
}

#[test]
fn tombstones_are_deletes_only_in_tombstone_mode() {
    let key = Some(json!({"id": 5}));
    // Rewrite mode: a tombstone after a rewritten delete is a compaction
    // marker.
    assert_eq!(
        flat_decode(None, key.clone(), 9, &lsn_opts()).unwrap(),
        None
    );
    let tombstones = flat_opts(
        VersionSource::KafkaOffset,
        FlattenedOptions {
            deletes: FlatDeletes::Tombstone,
            table: Some("public.orders".into()),
            ..FlattenedOptions::default()
        },
    );
    let c = flat_decode(None, key.clone(), 9, &tombstones)
        .unwrap()
        .unwrap();
    assert_eq!(c.op, Op::Delete);
    assert_eq!(c.table, TableId::new("public", "orders"));
    assert_eq!(c.version, Version::new(9, 0));
    assert_eq!(c.key.get("id"), Some(&Value::Int(5)));
    // The envelope's null payload too.
    let envelope = json!({"schema": null, "payload": null});
    let c = flat_decode(Some(envelope), key.clone(), 10, &tombstones)
        .unwrap()
        .unwrap();
    assert_eq!(c.version, Version::new(10, 0));
    // A tombstone without a key is no delete of anything.
    assert!(matches!(
        flat_decode(None, None, 9, &tombstones),
        Err(DecodeError::MissingKey(_))
    ));
    // Built by hand past the config check: refused, not guessed.
    let unversioned = flat_opts(
        VersionSource::DebeziumLsn,
        FlattenedOptions {
            deletes: FlatDeletes::Tombstone,
            table: Some("public.orders".into()),
            ..FlattenedOptions::default()
        },
    );
    let e = flat_decode(None, key, 9, &unversioned).unwrap_err();
    assert!(e.to_string().contains("kafka_offset"), "{e}");
}

#[test]
fn a_missing_version_field_is_refused_naming_the_add_fields_entry() {
    let value = json!({"id": 1, "__op": "c", "__table": "t", "__schema": "s"});
    let e = flat_decode(Some(value.clone()), Some(json!({"id": 1})), 0, &lsn_opts()).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("field `__lsn`: missing"), "{text}");
    assert!(
        text.contains("add `lsn` to the transform's add.fields"),
        "{text}"
    );
    // A configured version column likewise.
    let opts = flat_opts(
        VersionSource::Field {
            field: "updated_at".into(),
        },
        FlattenedOptions::default(),
    );
    let e = flat_decode(Some(value.clone()), Some(json!({"id": 1})), 0, &opts).unwrap_err();
    assert!(e.to_string().contains("version.updated_at"), "{e}");
    // A metadata field may be the configured version.
    let opts = flat_opts(
        VersionSource::Field {
            field: "__source_ts_ms".into(),
        },
        FlattenedOptions::default(),
    );
    let mut v = value;
    v["__source_ts_ms"] = json!(42);
    let c = flat_decode(Some(v), Some(json!({"id": 1})), 0, &opts)
        .unwrap()
        .unwrap();
    assert_eq!(c.version, Version::from_i64(42));
    assert!(!c.row.unwrap().contains("__source_ts_ms"));
    // A malformed sequence is refused under its flat name.
    let v = json!({"id": 1, "__table": "t", "__schema": "s", "__lsn": 5,
                   "__source_sequence": "[\"1\"]"});
    let e = flat_decode(Some(v), Some(json!({"id": 1})), 0, &lsn_opts()).unwrap_err();
    assert!(e.to_string().contains("`__source_sequence`"), "{e}");
}

#[test]
fn unknown_ops_are_refused() {
    let value =
        |op: &str| json!({"id": 1, "__op": op, "__table": "t", "__schema": "s", "__lsn": 1});
    let key = Some(json!({"id": 1}));
    assert_eq!(
        flat_decode(Some(value("x")), key.clone(), 0, &lsn_opts()),
        Err(DecodeError::UnknownOp("x".into()))
    );
    let e = flat_decode(Some(value("t")), key, 0, &lsn_opts()).unwrap_err();
    assert!(e.to_string().contains("truncate"), "{e}");
}

#[test]
fn table_from_fields_or_configuration_else_refused() {
    let key = Some(json!({"id": 1}));
    let bare = json!({"id": 1, "__lsn": 1});
    let e = flat_decode(Some(bare.clone()), key.clone(), 0, &lsn_opts()).unwrap_err();
    assert!(e.to_string().contains("add `table,schema`"), "{e}");
    let configured = flat_opts(
        VersionSource::DebeziumLsn,
        FlattenedOptions {
            table: Some("public.orders".into()),
            ..FlattenedOptions::default()
        },
    );
    let c = flat_decode(Some(bare), key.clone(), 0, &configured)
        .unwrap()
        .unwrap();
    assert_eq!(c.table, TableId::new("public", "orders"));
    // `__table` alone: completed by the configured table of that name,
    // refused without one.
    let table_only = json!({"id": 1, "__lsn": 1, "__table": "orders"});
    let c = flat_decode(Some(table_only.clone()), key.clone(), 0, &configured)
        .unwrap()
        .unwrap();
    assert_eq!(c.table, TableId::new("public", "orders"));
    let e = flat_decode(Some(table_only), key.clone(), 0, &lsn_opts()).unwrap_err();
    assert!(e.to_string().contains("field `__schema`"), "{e}");
    // A record of another table than the configured one.
    let other = json!({"id": 1, "__lsn": 1, "__table": "items", "__source_schema": "public"});
    let e = flat_decode(Some(other.clone()), key.clone(), 0, &configured).unwrap_err();
    assert!(e.to_string().contains("decode.flattened.table says"), "{e}");
    let c = flat_decode(Some(other), key, 0, &lsn_opts())
        .unwrap()
        .unwrap();
    assert_eq!(c.table, TableId::new("public", "items"));
}

#[test]
fn another_prefix_and_other_version_sources() {
    let opts = flat_opts(
        VersionSource::KafkaOffset,
        FlattenedOptions {
            field_prefix: "meta_".into(),
            ..FlattenedOptions::default()
        },
    );
    // `__deleted` keeps its name whatever the prefix.
    let value = json!({"id": 1, "__x": 2, "meta_op": "u", "meta_table": "t",
                       "meta_schema": "s", "__deleted": "false"});
    let c = flat_decode(Some(value), Some(json!({"id": 1})), 41, &opts)
        .unwrap()
        .unwrap();
    assert_eq!(c.op, Op::Update);
    assert_eq!(c.version, Version::new(41, 0));
    // A column with another prefix is a column (`json!` sorts keys).
    assert_eq!(
        c.row.unwrap().names().collect::<Vec<_>>(),
        vec!["__x", "id"]
    );
}

#[test]
fn configuration_problems() {
    let tombstone = FlattenedOptions {
        deletes: FlatDeletes::Tombstone,
        ..FlattenedOptions::default()
    };
    let paths = |p: Vec<(String, String)>| p.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
    assert_eq!(
        paths(tombstone.problems(&VersionSource::DebeziumLsn, true, false)),
        vec!["flattened.deletes", "flattened.table", "key_columns"]
    );
    let ok = FlattenedOptions {
        table: Some("public.orders".into()),
        ..tombstone
    };
    assert!(
        ok.problems(&VersionSource::KafkaOffset, false, false)
            .is_empty()
    );
    let bad = FlattenedOptions {
        field_prefix: String::new(),
        table: Some("orders".into()),
        ..FlattenedOptions::default()
    };
    assert_eq!(
        paths(bad.problems(&VersionSource::DebeziumLsn, false, true)),
        vec!["flattened.field_prefix", "flattened.table", "columns"]
    );
}

#[test]
fn unflattened_topics_keep_skipping_tombstones() {
    assert_eq!(
        decode(Some(b"{\"id\":1}"), None, 0, &DecodeOptions::default()).unwrap(),
        None
    );
}

/// The JsonConverter writes `schema` first: the second record of a schema
/// takes the prefix path (no schema scan), and decodes the same.
#[test]
fn repeated_schema_prefix_path() {
    let schema = r#"{"type":"struct","fields":[{"field":"id","type":"int64","optional":false},{"field":"__lsn","type":"int64","optional":true},{"field":"__table","type":"string","optional":true},{"field":"__schema","type":"string","optional":true}]}"#;
    let record = |id: i64| {
        format!(
            r#"{{"schema":{schema},"payload":{{"id":{id},"__lsn":{id},"__table":"t","__schema":"s"}}}}"#
        )
    };
    let mut decoder = Decoder::new(lsn_opts());
    for id in [1, 2] {
        let c = decoder
            .decode(
                Some(format!(r#"{{"id":{id}}}"#).as_bytes()),
                Some(record(id).as_bytes()),
                0,
            )
            .unwrap()
            .unwrap();
        assert_eq!(c.version, Version::new(id as u64, id as u64));
        assert_eq!(c.row.unwrap().names().collect::<Vec<_>>(), vec!["id"]);
        assert_eq!(decoder.value_prefixes.len(), 1);
    }
}
