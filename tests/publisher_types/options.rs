//! Each representation and streaming option against Debezium's
//! defaults, and a value the mapping cannot carry.

use super::*;

/// One table of one column per option, snapshotted with each option in
/// turn (`snapshot.mode: initial_only`: the publisher stops after it).
#[tokio::test(flavor = "multi_thread")]
async fn each_representation_option_changes_the_output() {
    let src = Source::new("dbzopts").await;
    let s = &src.schema;
    create_hstore(&src).await;
    src.sql(&format!(
        "CREATE TABLE {s}.opt (id int PRIMARY KEY, n numeric(6,2), nv numeric, m money, t3 time(3),
                               ts timestamp, d date, iv interval, h hstore, b bytea, l pg_lsn);
         INSERT INTO {s}.opt VALUES (1, 22.22, 22.2200, '1234.56', '00:00:00.5', '2016-11-04 13:51:30.123',
                                     '2016-11-04', '1 year 2 mons 3 days 04:05:06.78', '\"a\"=>\"1\", \"b\"=>NULL',
                                     '\\xfbff', '0/16B3748');"
    ))
    .await;
    // (properties, column, expected value, expected schema `type` and `name`)
    type OptionCase = (
        &'static str,
        &'static str,
        Value,
        (&'static str, Option<&'static str>),
    );
    let cases: Vec<OptionCase> = vec![
        (
            "",
            "n",
            json!("CK4="),
            ("bytes", Some("org.apache.kafka.connect.data.Decimal")),
        ),
        (
            "decimal.handling.mode: double",
            "n",
            json!(22.22),
            ("double", None),
        ),
        (
            "decimal.handling.mode: string",
            "n",
            json!("22.22"),
            ("string", None),
        ),
        (
            "",
            "nv",
            json!({"scale": 2, "value": "CK4="}),
            ("struct", Some("io.debezium.data.VariableScaleDecimal")),
        ),
        (
            "decimal.handling.mode: double",
            "nv",
            json!(22.22),
            ("double", None),
        ),
        (
            "decimal.handling.mode: string",
            "nv",
            json!("22.2200"),
            ("string", None),
        ),
        (
            "",
            "m",
            json!("AeJA"),
            ("bytes", Some("org.apache.kafka.connect.data.Decimal")),
        ),
        (
            "money.fraction.digits: 4",
            "m",
            json!("ALxhAA=="),
            ("bytes", Some("org.apache.kafka.connect.data.Decimal")),
        ),
        (
            "decimal.handling.mode: string",
            "m",
            json!("1234.56"),
            ("string", None),
        ),
        (
            "",
            "t3",
            json!(500),
            ("int32", Some("io.debezium.time.Time")),
        ),
        (
            "time.precision.mode: adaptive_time_microseconds",
            "t3",
            json!(500_000),
            ("int64", Some("io.debezium.time.MicroTime")),
        ),
        (
            "time.precision.mode: connect",
            "t3",
            json!(500),
            ("int32", Some("org.apache.kafka.connect.data.Time")),
        ),
        (
            "",
            "ts",
            json!(1_478_267_490_123_000i64),
            ("int64", Some("io.debezium.time.MicroTimestamp")),
        ),
        (
            "time.precision.mode: connect",
            "ts",
            json!(1_478_267_490_123i64),
            ("int64", Some("org.apache.kafka.connect.data.Timestamp")),
        ),
        (
            "time.precision.mode: connect",
            "d",
            json!(17109),
            ("int32", Some("org.apache.kafka.connect.data.Date")),
        ),
        (
            "",
            "iv",
            json!(37_091_106_780_000i64),
            ("int64", Some("io.debezium.time.MicroDuration")),
        ),
        (
            "interval.handling.mode: string",
            "iv",
            json!("P1Y2M3DT4H5M6.78S"),
            ("string", Some("io.debezium.time.Interval")),
        ),
        (
            "",
            "h",
            json!(r#"{"a":"1","b":null}"#),
            ("string", Some("io.debezium.data.Json")),
        ),
        (
            "hstore.handling.mode: map",
            "h",
            json!({"a": "1", "b": null}),
            ("map", None),
        ),
        ("", "b", json!("+/8="), ("bytes", None)),
        (
            "binary.handling.mode: base64",
            "b",
            json!("+/8="),
            ("string", None),
        ),
        (
            "binary.handling.mode: base64-url-safe",
            "b",
            json!("-_8="),
            ("string", None),
        ),
        (
            "binary.handling.mode: hex",
            "b",
            json!("fbff"),
            ("string", None),
        ),
        ("", "l", Value::Null, ("", None)),
        (
            "include.unknown.datatypes: true",
            "l",
            json!("MC8xNkIzNzQ4"),
            ("bytes", None),
        ),
    ];
    for (run, (properties, column, want, (ty, name))) in cases.into_iter().enumerate() {
        let pp = free_port();
        let prefix = format!("{}_{run}", src.prefix);
        let config = with_properties(
            src.publisher_config(&["opt"], &brokers(), "", pp)
                .replace(&src.prefix, &prefix)
                .replace(&src.slot, &format!("{}_{run}", src.slot)),
            &format!("  snapshot.mode: initial_only\n  {properties}\n"),
        );
        let mut publisher = Worker::start(&prefix, "publish", &config, pp);
        wait_until("the snapshot-only publisher stops", CONVERGE, || {
            publisher.exited().is_some()
        })
        .await;
        assert!(
            publisher.exited().unwrap().success(),
            "{properties}: {}",
            publisher.log_text()
        );
        sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(format!("{}_{run}", src.slot))
            .execute(&src.pool)
            .await
            .unwrap();
        let topic = format!("{prefix}.{s}.opt");
        let records = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
        let value: Value = serde_json::from_slice(records[0].value.as_deref().unwrap()).unwrap();
        let after = &value["payload"]["after"];
        if ty.is_empty() {
            assert!(
                after.get(column).is_none(),
                "{properties}: {column} is left out"
            );
            continue;
        }
        assert_eq!(&after[column], &want, "{properties}: {column}");
        let field = value["schema"]["fields"][1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == column)
            .cloned()
            .unwrap();
        assert_eq!(
            (
                field["type"].as_str().unwrap(),
                field.get("name").and_then(Value::as_str)
            ),
            (ty, name),
            "{properties}: {column} schema {field}"
        );
    }
    src.cleanup().await;
}

/// The streaming options against Debezium's defaults (which the type
/// mapping test runs with): truncates published, no tombstones, no
/// context headers, and no schemas.
#[tokio::test(flavor = "multi_thread")]
async fn streaming_options_change_what_is_published() {
    let src = Source::new("dbzstream").await;
    let s = &src.schema;
    src.sql(&format!("CREATE TABLE {s}.t (id int PRIMARY KEY, v text)"))
        .await;
    let pp = free_port();
    let config = with_properties(
        debezium_defaults(src.publisher_config(&["t"], &brokers(), "", pp)),
        "  skipped.operations: u\n  tombstones.on.delete: false\n  extended.headers.enabled: false\n  value.converter.schemas.enable: false\n",
    );
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || block(src.confirmed_lsn()) > 0).await;
    src.sql(&format!(
        "INSERT INTO {s}.t VALUES (1, 'a'); UPDATE {s}.t SET v = 'b'; DELETE FROM {s}.t; TRUNCATE {s}.t;"
    ))
    .await;
    wait_confirmed(&src).await;
    let topic = format!("{}.{s}.t", src.prefix);
    let records = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
    let ops: Vec<String> = records
        .iter()
        .map(|r| {
            assert!(r.headers.is_empty(), "no context headers: {:?}", r.headers);
            let v: Value =
                serde_json::from_slice(r.value.as_deref().expect("no tombstone")).unwrap();
            assert!(v.get("schema").is_none(), "no schema: {v}");
            v["op"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ops,
        ["c", "d", "t"],
        "the update is skipped, the truncate published"
    );
    src.stop(publisher).await;
}

/// A `numeric` NaN in precise mode stops the publisher, naming the table,
/// column, LSN and the option that carries it, before anything of its
/// transaction is confirmed; with that option the same WAL is published.
/// In the snapshot it stops the publisher before the slot gets its name.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_the_mapping_cannot_carry_stops_the_publisher() {
    let src = Source::new("nan").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.price (id int PRIMARY KEY, n numeric(6,2)); INSERT INTO {s}.price VALUES (1, 1.50)"
    ))
    .await;
    let pp = free_port();
    let config = src.publisher_config(&["price"], &brokers(), "", pp);
    let mut publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || block(src.confirmed_lsn()) > 0).await;
    src.sql(&format!("INSERT INTO {s}.price VALUES (2, 2.50)"))
        .await;
    wait_confirmed(&src).await;
    let before = src.confirmed_lsn().await;
    src.sql(&format!("INSERT INTO {s}.price VALUES (3, 'NaN')"))
        .await;
    let after_nan = src.current_lsn().await;
    wait_until("the publisher stops", CONVERGE, || {
        publisher.exited().is_some()
    })
    .await;
    assert!(!publisher.exited().unwrap().success());
    let log = publisher.log_text();
    for said in [
        &format!("{s}.price"),
        "column n",
        "LSN ",
        "decimal.handling.mode=string",
        "nothing of this transaction is confirmed",
    ] {
        assert!(log.contains(said), "`{said}` in {log}");
    }
    let confirmed = src.confirmed_lsn().await;
    assert!(
        confirmed >= before && confirmed < after_nan,
        "confirmed {confirmed:X}: the NaN's transaction (ending before {after_nan:X}) is not"
    );

    // The option that carries it: the same transaction, published.
    let pp = free_port();
    let strings = with_properties(
        src.publisher_config(&["price"], &brokers(), "", pp),
        "  decimal.handling.mode: string\n",
    );
    let second = Worker::start(&format!("{}-2", src.prefix), "publish", &strings, pp);
    wait_confirmed(&src).await;
    let records = events(&src, "price");
    let nan = records
        .iter()
        .filter_map(|e| e.value.as_ref())
        .find(|v| v["payload"]["after"]["id"] == 3)
        .unwrap();
    assert_eq!(nan["payload"]["after"]["n"], "NAN");
    src.stop(second).await;

    // In the snapshot: the publisher stops, and the slot never gets its name.
    let src = Source::new("nansnap").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.price (id int PRIMARY KEY, n numeric); INSERT INTO {s}.price VALUES (1, 'NaN')"
    ))
    .await;
    let pp = free_port();
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["price"], &brokers(), "", pp),
        pp,
    );
    wait_until("the publisher stops", CONVERGE, || {
        publisher.exited().is_some()
    })
    .await;
    assert!(!publisher.exited().unwrap().success());
    let log = publisher.log_text();
    assert!(
        log.contains("snapshot at LSN") && log.contains("column n"),
        "{log}"
    );
    assert_eq!(src.confirmed_lsn().await, 0, "no slot under the real name");
    src.cleanup().await;
}
