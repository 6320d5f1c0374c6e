//! The command line: config validation names the offending key and stops.

use std::process::Command;

fn validate(config: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sinkfleet"));
    cmd.args(["validate", "--config", config]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running sinkfleet");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn example() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/config/postgres.yaml").to_owned()
}

#[test]
fn the_example_config_is_valid() {
    let (code, text) = validate(&example(), &[]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_typo_is_reported_with_its_path() {
    let bad = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("typo.yaml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("linger_ms:", "lingr_ms:");
    std::fs::write(&bad, text).unwrap();
    let (code, text) = validate(bad.to_str().unwrap(), &[]);
    assert_eq!(code, 2);
    assert!(text.contains("worker.lingr_ms"), "{text}");
    assert!(!text.contains("backtrace"), "{text}");
}

#[test]
fn environment_overrides_are_validated_too() {
    let (code, text) = validate(&example(), &[("SINKFLEET__WORKER__BATCH_MAX_RECORDS", "0")]);
    assert_eq!(code, 2);
    assert!(text.contains("worker.batch_max_records"), "{text}");
    let (code, text) = validate(
        &example(),
        &[("SINKFLEET__SINK__POSTGRES__URL", "mysql://nope")],
    );
    assert_eq!(code, 2);
    assert!(text.contains("sink.postgres.url"), "{text}");
}

/// Postgres writers share the pool: a pool smaller than the writers, or no
/// writer at all, is refused before anything starts; an unset pool has one
/// connection per writer.
#[test]
fn writers_need_a_connection_each() {
    let (code, text) = validate(
        &example(),
        &[
            ("SINKFLEET__WORKER__WRITERS", "3"),
            ("SINKFLEET__SINK__POSTGRES__POOL_SIZE", "2"),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        text.contains("sink.postgres.pool_size") && text.contains("worker.writers (3)"),
        "{text}"
    );
    let (code, text) = validate(&example(), &[("SINKFLEET__WORKER__WRITERS", "0")]);
    assert_eq!(code, 2);
    assert!(text.contains("worker.writers: must be in 1..=64"), "{text}");
    for pool in ["3", ""] {
        let mut env = vec![("SINKFLEET__WORKER__WRITERS", "3")];
        if !pool.is_empty() {
            env.push(("SINKFLEET__SINK__POSTGRES__POOL_SIZE", pool));
        }
        let (code, text) = validate(&example(), &env);
        assert_eq!(code, 0, "pool_size {pool:?}: {text}");
    }
}

/// The Parquet buffer bound is the process's: with more writers each gets
/// a smaller share, and a share too small for one file is refused.
#[test]
fn parquet_writers_share_the_buffer() {
    let path = format!("{}/config/s3-parquet.yaml", env!("CARGO_MANIFEST_DIR"));
    let (code, text) = validate(&path, &[("SINKFLEET__WORKER__WRITERS", "4")]);
    assert_eq!(code, 0, "4 x 64 MiB fit 256 MiB: {text}");
    let (code, text) = validate(&path, &[("SINKFLEET__WORKER__WRITERS", "8")]);
    assert_eq!(code, 2);
    assert!(
        text.contains("sink.s3_parquet.max_buffer_bytes") && text.contains("worker.writers (8)"),
        "{text}"
    );
}

/// One budget mark can be set alone; the others keep their defaults.
#[test]
fn one_budget_mark_can_be_set_alone() {
    let (code, text) = validate(
        &example(),
        &[("SINKFLEET__WORKER__GLOBAL_BUDGET__HIGH_RECORDS", "25000")],
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = validate(
        &example(),
        &[("SINKFLEET__WORKER__PARTITION_BUDGET__RESUME_PERCENT", "100")],
    );
    assert_eq!(code, 2);
    assert!(text.contains("worker.partition_budget"), "{text}");
    let (code, text) = validate(
        &example(),
        &[("SINKFLEET__WORKER__GLOBAL_BUDGET__HIGH_RECORD", "1")],
    );
    assert_eq!(code, 2, "a misspelt mark is refused: {text}");
}

#[test]
fn a_missing_file_is_an_error() {
    let (code, text) = validate("/nonexistent/sinkfleet.yaml", &[]);
    assert_eq!(code, 2);
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn every_example_config_is_valid() {
    for name in ["postgres", "clickhouse", "s3-parquet"] {
        let path = format!("{}/config/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let (code, text) = validate(&path, &[]);
        assert_eq!(code, 0, "{name}: {text}");
    }
}

#[test]
fn a_parquet_layout_without_the_table_is_refused() {
    let (code, text) = validate(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/s3-parquet.yaml"),
        &[("SINKFLEET__SINK__S3_PARQUET__PATH", "{schema}/date={date}")],
    );
    assert_eq!(code, 2);
    assert!(text.contains("sink.s3_parquet.path"), "{text}");
}

#[test]
fn validate_shows_the_identifier_policy() {
    let (code, text) = validate(&example(), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("identifiers: strict"), "{text}");
    assert!(text.contains("at most 63 bytes"), "{text}");
    let (code, text) = validate(
        &example(),
        &[("SINKFLEET__SINK__POSTGRES__IDENTIFIERS", "printable")],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("identifiers: printable"), "{text}");
    let (code, text) = validate(
        &example(),
        &[("SINKFLEET__SINK__POSTGRES__IDENTIFIERS", "anything")],
    );
    assert_eq!(code, 2);
    assert!(
        text.to_lowercase().contains("sink.postgres.identifiers"),
        "{text}"
    );
}

/// Transactional apply needs the transaction topic and offsets in the
/// target; a history entry must name `schema.table`. Each refusal names
/// its key.
#[test]
fn transactional_apply_and_history_settings_are_checked() {
    let (code, text) = validate(
        &example(),
        &[
            ("SINKFLEET__SINK__POSTGRES__APPLY", "transactional"),
            ("SINKFLEET__SINK__POSTGRES__HISTORY__TABLES", "[orders]"),
        ],
    );
    assert_eq!(code, 2);
    for key in [
        "sink.postgres.transaction_topic",
        "sink.postgres.offset_storage",
        "sink.postgres.history.tables.0",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
    let (code, text) = validate(
        &example(),
        &[
            ("SINKFLEET__SINK__POSTGRES__APPLY", "transactional"),
            ("SINKFLEET__SINK__POSTGRES__OFFSET_STORAGE", "target"),
            (
                "SINKFLEET__SINK__POSTGRES__TRANSACTION_TOPIC",
                "app.transaction",
            ),
        ],
    );
    assert_eq!(code, 0, "{text}");
}

/// The operator commands are in `--help`, each with examples in its own.
#[test]
fn operator_commands_are_listed_with_examples() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sinkfleet"))
            .args(args)
            .output()
            .expect("running sinkfleet");
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    for command in ["dlq", "status", "offsets"] {
        assert!(
            top.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command}: {top}"
        );
    }
    assert!(help(&["status", "--help"]).contains("sinkfleet status -c worker.yaml"));
    assert!(help(&["offsets", "--help"]).contains("--to 2026-11-30T06:00:00Z"));
    let replay = help(&["dlq", "replay", "--help"]);
    assert!(
        replay.contains("--through-sink") && replay.contains("--dry-run"),
        "{replay}"
    );
    assert!(help(&["dlq", "--help"]).contains("--key '{\"id\":42}'"));
}

/// A parked-keys topic that is a consumed topic is refused.
#[test]
fn a_parked_topic_among_the_consumed_topics_is_refused() {
    let bad = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("parked.yaml");
    let text = std::fs::read_to_string(example()).unwrap().replace(
        "  on_error: skip",
        "  on_error: park_key\n  parked_topic: app.public.customers",
    );
    assert!(
        text.contains("topics: [app.public.customers]"),
        "the example consumes it"
    );
    std::fs::write(&bad, text).unwrap();
    let (code, text) = validate(bad.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("dead_letter.parked_topic"), "{text}");
}

/// An Avro topic needs a registry; a registry nothing reads, a bad topic
/// pattern, a CA file that is not there, and transactional apply over Avro
/// are refused at start, each naming its key.
#[test]
fn formats_and_the_registry_are_checked() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let base = std::fs::read_to_string(example()).unwrap();
    let with_decode = |name: &str, decode: &str, extra_sink: &str| {
        let text = base
            .replace("decode:\n", &format!("decode:\n{decode}"))
            .replace(
                "    create_tables: true",
                &format!("{extra_sink}    create_tables: true"),
            );
        let path = dir.join(format!("formats-{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        validate(path.to_str().unwrap(), &[])
    };
    let avro = "  formats: [{ topics: \"^app\\\\..*\", key: avro, value: avro }]\n";
    let registry = "  registry: { url: \"http://127.0.0.1:8081\" }\n";

    let (code, text) = with_decode("ok", &format!("{avro}{registry}"), "");
    assert_eq!(code, 0, "{text}");
    let (code, text) = with_decode("no-registry", avro, "");
    assert_eq!(code, 2);
    assert!(
        text.contains("decode.registry") && text.contains("missing"),
        "{text}"
    );
    let (code, text) = with_decode("unused", registry, "");
    assert_eq!(code, 2);
    assert!(text.contains("no decode.formats rule reads"), "{text}");
    let (code, text) = with_decode(
        "pattern",
        &format!("  formats: [{{ topics: \"^(\", value: avro }}]\n{registry}"),
        "",
    );
    assert_eq!(code, 2);
    assert!(
        text.contains("decode.formats") && text.contains("^("),
        "{text}"
    );
    let (code, text) = with_decode(
        "ca",
        &format!("{avro}  registry: {{ url: \"https://r:8081\", ca_file: /nonexistent/ca.pem }}\n"),
        "",
    );
    assert_eq!(code, 2);
    assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    let (code, text) = with_decode(
        "transactional",
        &format!("{avro}{registry}"),
        "    apply: transactional\n    offset_storage: target\n    transaction_topic: app.transaction\n",
    );
    assert_eq!(code, 2);
    assert!(text.contains("sink.postgres.apply"), "{text}");
    let (code, text) = with_decode(
        "flattened",
        &format!("{avro}{registry}  flattened: {{ deletes: rewrite }}\n"),
        "",
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = with_decode(
        "flattened-protobuf",
        &format!(
            "  formats: [{{ topics: app.x, value: protobuf, nulls: zero }}]\n{registry}  flattened: {{ deletes: rewrite }}\n"
        ),
        "",
    );
    assert_eq!(code, 2);
    assert!(
        text.contains("decode.flattened: flattened records are read from json and avro topics: decode.formats[0].value is protobuf"),
        "{text}"
    );
    // Every registry format, keys and values independently.
    let (code, text) = with_decode(
        "registry-formats",
        &format!(
            "  formats: [{{ topics: app.x, key: protobuf, value: json_schema, nulls: zero }}]\n{registry}"
        ),
        "",
    );
    assert_eq!(code, 0, "{text}");
    // Protobuf cannot tell NULL from 0: the rule says how it was written.
    let protobuf = |nulls: &str| {
        format!("  formats: [{{ topics: app.x, key: json, value: protobuf{nulls} }}]\n{registry}")
    };
    let (code, text) = with_decode("pb-nulls", &protobuf(""), "");
    assert_eq!(code, 2);
    assert!(
        text.contains("decode.formats[0].nulls: required with protobuf"),
        "{text}"
    );
    for nulls in ["presence", "zero"] {
        let (code, text) = with_decode(nulls, &protobuf(&format!(", nulls: {nulls}")), "");
        assert_eq!(code, 0, "{text}");
    }
    let (code, text) = with_decode(
        "avro-nulls",
        &format!("  formats: [{{ topics: app.x, value: avro, nulls: zero }}]\n{registry}"),
        "",
    );
    assert_eq!(code, 2);
    assert!(
        text.contains("decode.formats[0].nulls: only for protobuf"),
        "{text}"
    );
}

/// A flattened topic whose deletes are tombstones needs the Kafka offset as
/// its version (a tombstone carries no other) and a configured table: both
/// refused at start, not record by record.
#[test]
fn flattened_tombstone_deletes_need_offsets_and_a_table() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("flattened.yaml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("  # flattened:\n", "  flattened:\n")
        .replace("  #   deletes: rewrite ", "    deletes: tombstone ");
    std::fs::write(&path, text).unwrap();
    let (code, text) = validate(path.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("decode.flattened.deletes: tombstone deletes carry no version field")
            && text.contains("decode.flattened.table: tombstone deletes carry no `__table`"),
        "{text}"
    );
    let (code, text) = validate(
        path.to_str().unwrap(),
        &[
            ("SINKFLEET__DECODE__VERSION__SOURCE", "kafka_offset"),
            ("SINKFLEET__DECODE__FLATTENED__TABLE", "public.orders"),
        ],
    );
    assert_eq!(code, 0, "{text}");
}

/// An operator command against a broker nobody listens on fails within its
/// bound with one line naming the address and librdkafka's reason, after a
/// progress line or two, and without librdkafka's own error lines.
#[test]
fn operator_commands_name_an_unreachable_broker_in_one_line() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(example()).unwrap();
    let brokers = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("brokers: "))
        .unwrap()
        .to_owned();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("unreachable.yaml");
    std::fs::write(
        &path,
        text.replace(
            &format!("brokers: {brokers}"),
            &format!("brokers: 127.0.0.1:{port}"),
        ),
    )
    .unwrap();
    let commands: [&[&str]; 5] = [
        &["status"],
        &["dlq", "list"],
        &["dlq", "show", "--class", "apply"],
        &["dlq", "replay", "--dry-run"],
        &["offsets", "reset", "--to", "earliest", "--dry-run"],
    ];
    for args in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_sinkfleet"))
            .args(["--broker-timeout-secs", "4"])
            .args(args)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!(
                "error: cannot reach the Kafka brokers 127.0.0.1:{port} (kafka.brokers) within 4s: "
            )) && last.contains("Connection refused"),
            "{args:?}: {text}"
        );
        assert!(text.lines().count() <= 3, "{args:?}: {text}");
        assert!(!text.contains("librdkafka"), "{args:?}: {text}");
    }
}
