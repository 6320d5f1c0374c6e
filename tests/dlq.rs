//! `sinkfleet dlq list` and `dlq show` against the real broker: dead
//! letters produced as the worker produces them, read back, counted and
//! filtered.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::{Pipeline, free_port};
use sinkfleet_core::{ErrorClass, Position};
use sinkfleet_kafka::dead_letter::{DeadLetter, DeadLetterProducer};
use std::sync::Arc;

/// Runs `sinkfleet dlq <args> --config <config>`: (exit code, output).
fn dlq(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    sinkfleet_testkit::process::cli(&[&["dlq"], args].concat(), config)
}

/// The worker's own dead-letter producer, writing to `p`'s dead-letter topic.
fn dead_letters(p: &Pipeline) -> DeadLetterProducer {
    let client = sinkfleet_kafka::client_config(&sinkfleet_kafka::KafkaConfig {
        brokers: p.brokers.clone(),
        group_id: p.group.clone(),
        topics: vec![p.topic.clone()],
        group_instance_id: None,
        properties: Default::default(),
    });
    DeadLetterProducer::new(&client, p.dlq.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_counted_and_shown_by_class_table_and_offset() {
    let p = Pipeline::new("dlqcli", 1).await;
    let producer = dead_letters(&p);
    let letter = |offset: i64, class: ErrorClass, value: &str, message: &str| DeadLetter {
        position: Position {
            topic: Arc::from(p.topic.as_str()),
            partition: 0,
            offset,
        },
        key: Some(format!(r#"{{"id":{offset}}}"#).into_bytes()),
        value: Some(value.as_bytes().to_vec()),
        class,
        message: message.into(),
        parked_since: None,
    };
    let orders = r#"{"op":"c","source":{"schema":"public","table":"orders"},"after":{"id":7,"note":"xxxxxxxxxx"}}"#;
    for l in [
        letter(
            3,
            ErrorClass::Decode,
            "{not json",
            "invalid JSON in record value",
        ),
        letter(5, ErrorClass::Apply, orders, "public.orders.note: too long"),
        letter(9, ErrorClass::Apply, orders, "public.orders.note: too long"),
        // Offset 5 read again after an offset reset, and dead-lettered again.
        letter(5, ErrorClass::Apply, orders, "public.orders.note: too long"),
    ] {
        producer.send(&l).await.unwrap();
    }
    let config = p.config_file("dlq", &p.config("", "", free_port()));

    let (code, text) = dlq(&config, &["list"]);
    assert_eq!(code, 0, "{text}");
    let from = format!("{}/0", p.topic);
    let line = |class: &str, table: &str, n: usize| {
        text.lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields
                == [
                    class,
                    table,
                    from.as_str(),
                    &n.to_string(),
                    &n.to_string(),
                    "0",
                ]
        })
    };
    // Copies of one original record are one dead letter.
    assert!(line("apply", "public.orders", 2), "{text}");
    assert!(line("decode", "-", 1), "{text}");
    assert!(
        text.contains("3 dead letters: 3 open, 0 resolved (4 records in the topic: 1 are copies"),
        "{text}"
    );

    let (code, text) = dlq(
        &config,
        &["show", "--class", "apply", "--from-offset", "6", "--json"],
    );
    assert_eq!(code, 0, "{text}");
    let shown: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(shown.len(), 1, "{text}");
    assert_eq!(shown[0]["origin"]["offset"], 9);
    assert_eq!(shown[0]["table"], "public.orders");
    assert_eq!(shown[0]["message"], "public.orders.note: too long");
    assert_eq!(shown[0]["value"], orders);

    let (code, text) = dlq(&config, &["show", "--key-contains", r#""id":3"#]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("decode from ") && text.contains("@3"),
        "{text}"
    );
    assert!(!text.contains("apply"), "{text}");

    // --key is exact (JSON spacing aside): `3` is no key here.
    let shown = |args: &[&str]| {
        let mut all = vec!["show", "--json"];
        all.extend_from_slice(args);
        let (code, text) = dlq(&config, &all);
        assert_eq!(code, 0, "{args:?}: {text}");
        // stdout's JSON lines (stderr, merged here, says when none match).
        text.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["origin"]["offset"].clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shown(&["--key", r#"{"id": 5}"#]), [5]);
    assert!(shown(&["--key", "3"]).is_empty());
    // The target's table name, and decode letters by where they came from.
    assert_eq!(shown(&["--table", "orders"]), [5, 9]);
    let target = format!("{}.orders", p.schema);
    assert_eq!(shown(&["--table", target.as_str()]), [5, 9]);
    let partition = [
        "--topic",
        p.topic.as_str(),
        "--partition",
        "0",
        "--class",
        "decode",
    ];
    assert_eq!(shown(&partition), [3]);
    // A filter that matches nothing says so; a replay of nothing fails.
    let (code, text) = dlq(&config, &["show", "--table", "public.order"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("0 of 3 dead letters match --table public.order")
            && text.contains("decode dead letters have no table"),
        "{text}"
    );
    let (code, text) = dlq(&config, &["replay", "--key", "3", "--dry-run"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("0 of 3 dead letters match --key 3"), "{text}");
    // A class that does not exist is refused, naming those that do.
    let (code, text) = dlq(&config, &["show", "--class", "Apply"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("possible values: decode, apply"), "{text}");
}

/// `dlq replay` puts a dead letter back into the partition it came from; a
/// running worker applies it; a second replay changes nothing (the sink is
/// idempotent). `--dry-run` only says what it would do.
#[tokio::test(flavor = "multi_thread")]
async fn replayed_dead_letters_are_applied_once() {
    let p = Pipeline::new("dlqreplay", 1).await;
    let producer = dead_letters(&p);
    let value = r#"{"op":"c","source":{"schema":"public","table":"items","lsn":5},"after":{"id":1,"name":"fixed"}}"#;
    producer
        .send(&DeadLetter {
            position: Position {
                topic: Arc::from(p.topic.as_str()),
                partition: 0,
                offset: 0,
            },
            key: Some(br#"{"id":1}"#.to_vec()),
            value: Some(value.as_bytes().to_vec()),
            class: ErrorClass::Apply,
            message: "the target was down for maintenance".into(),
            parked_since: None,
        })
        .await
        .unwrap();
    let port = free_port();
    let config_text = p.config("", "", port);
    let config = p.config_file("replay", &config_text);
    let _worker = p.spawn("w", &config_text, port);

    let (code, text) = dlq(&config, &["replay", "--class", "apply", "--dry-run"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 records would be replayed"), "{text}");
    assert!(text.contains(r#"apply key {"id":1}"#), "{text}");
    assert_eq!(p.end_offsets().get(&0), Some(&0), "a dry run sends nothing");

    let pool = p.pool().await;
    let rows = format!("SELECT count(*) FROM \"{}\".items", p.schema);
    // Replayed, it is resolved: the next replay skips it and sends nothing,
    // unless `--again` (harmless: the sink applies it once).
    for (replay, again) in [(1, false), (2, false), (3, true)] {
        let mut args = vec!["replay", "--class", "apply"];
        if again {
            args.push("--again");
        }
        let (code, text) = dlq(&config, &args);
        let sent = if replay == 2 {
            assert_ne!(code, 0, "{text}");
            assert!(
                text.contains("skipping 1 dead letters resolved already (--again replays them)")
                    && text.contains("nothing to replay"),
                "{text}"
            );
            1
        } else {
            assert_eq!(code, 0, "{text}");
            assert!(text.contains("1 records replayed"), "{text}");
            if replay == 1 { 1 } else { 2 }
        };
        // The consumer's properties (session.timeout.ms, ...) are not
        // handed to the replay's producer, which would warn about each.
        assert!(!text.contains("CONFWARN"), "{text}");
        assert_eq!(p.end_offsets().get(&0), Some(&sent), "replay {replay}");
        // Applied once the group has committed past it.
        p.wait_committed_to_end(&p.group, std::time::Duration::from_secs(120))
            .await;
        let n: i64 = sqlx::query_scalar(&rows).fetch_one(&pool).await.unwrap();
        assert_eq!(n, 1, "replay {replay}");
    }
    let (code, text) = dlq(&config, &["list"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("1 dead letters: 0 open, 1 resolved"),
        "{text}"
    );
    let (code, text) = dlq(&config, &["show"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("state: resolved: replayed to {}/0@1 at ", p.topic)),
        "{text}"
    );
    let name: String = sqlx::query_scalar(&format!("SELECT name FROM \"{}\".items", p.schema))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "fixed");
}

/// `dlq replay --through-sink` applies dead letters with the configured
/// sink, no worker running: each once however often it is run, in original
/// order (the newer version wins), and a record that is still bad is
/// refused again, changes nothing and makes the command fail.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_replayed_through_the_sink_are_applied_once() {
    let p = Pipeline::new("dlqsink", 1).await;
    let producer = dead_letters(&p);
    let letter = |offset: i64, value: &str, class: ErrorClass| DeadLetter {
        position: Position {
            topic: Arc::from(p.topic.as_str()),
            partition: 0,
            offset,
        },
        key: Some(br#"{"id":1}"#.to_vec()),
        value: Some(value.as_bytes().to_vec()),
        class,
        message: "the target refused it".into(),
        parked_since: None,
    };
    let named = |lsn: u64, name: &str| {
        format!(
            r#"{{"op":"c","source":{{"schema":"public","table":"items","lsn":{lsn}}},"after":{{"id":1,"name":"{name}"}}}}"#
        )
    };
    for l in [
        letter(4, &named(40, "older"), ErrorClass::Apply),
        letter(6, &named(60, "newer"), ErrorClass::Parked),
        letter(7, "{not json", ErrorClass::Decode),
    ] {
        producer.send(&l).await.unwrap();
    }
    let config = p.config_file("sink", &p.config("", "", free_port()));
    let pool = p.pool().await;
    let rows = format!(
        "SELECT name, __sinkfleet_version::text FROM \"{}\".items",
        p.schema
    );
    for run in 1..=2 {
        // Resolved by the first run: the second one needs --again.
        let mut args = vec!["replay", "--table", "public.items", "--through-sink"];
        if run == 2 {
            args.push("--again");
        }
        let (code, text) = dlq(&config, &args);
        assert_eq!(code, 0, "run {run}: {text}");
        assert!(
            text.contains("2 records applied through the sink"),
            "{text}"
        );
        let got: Vec<(String, String)> = sqlx::query_as(&rows).fetch_all(&pool).await.unwrap();
        assert_eq!(got.len(), 1, "run {run}");
        assert_eq!(got[0].0, "newer", "run {run}");
    }
    // The undecodable one is refused again: the command fails and says so.
    let (code, text) = dlq(&config, &["replay", "--class", "decode", "--through-sink"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("refused 0@2"), "{text}");
    assert!(text.contains("1 records refused again"), "{text}");
    let got: Vec<(String, String)> = sqlx::query_as(&rows).fetch_all(&pool).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        p.end_offsets().get(&0),
        Some(&0),
        "nothing went back to Kafka"
    );
    let (code, text) = dlq(&config, &["list"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("3 dead letters: 1 open, 2 resolved"),
        "{text}"
    );
}
