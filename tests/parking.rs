//! Per-key parking against the real broker and Postgres: a poison record
//! of key K parks K (its newer records are dead-lettered, marked parked,
//! never applied ahead of it) while other keys converge; the parked key
//! survives a restart; after the target is fixed, `sinkfleet dlq replay`
//! of K's records releases K and K converges. With `on_error: skip` (the
//! default) K's newer records overtake the poison one, as before.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::{Pipeline, free_port, wait_until};
use serde_json::json;
use sinkfleet_testkit::kafka::{self, Record};
use std::process::Command;
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

/// A Debezium create of `customers` row `id` with `name` at `lsn`.
fn change(id: i64, name: &str, lsn: u64) -> Record {
    Record {
        key: Some(json!({ "id": id }).to_string().into_bytes()),
        value: Some(
            json!({"op": "c", "source": {"schema": "public", "table": "customers", "lsn": lsn},
                   "after": {"id": id, "name": name}})
            .to_string()
            .into_bytes(),
        ),
    }
}

/// The poison: a name the target's check constraint refuses.
const POISON: &str = "far-too-long-for-the-target";

/// Runs the first records through a worker, then makes the target refuse
/// long names, as a target can that someone changed by hand.
async fn with_refusing_target(p: &Pipeline, config: &str) -> sqlx::PgPool {
    p.produce(&[change(1, "a1", 10), change(2, "b1", 11)]).await;
    let port = free_port();
    let mut worker = p.spawn("setup", &config.replace("{port}", &port.to_string()), port);
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert!(worker.terminate(Duration::from_secs(30)).success());
    let pool = p.pool().await;
    sqlx::query(&format!(
        "ALTER TABLE \"{}\".customers ADD CONSTRAINT short_name CHECK (length(name) <= 5)",
        p.schema
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// K's poison record, then (once a running worker is past it, so they are
/// not in its batch, where only K's newest version would be written) newer
/// records of K and of another key.
async fn produce_poison_and_newer(p: &Pipeline) {
    p.produce(&[change(1, POISON, 20), change(2, "b2", 21)])
        .await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    p.produce(&[
        change(1, "a3", 22),
        change(2, "b3", 23),
        change(1, "a4", 24),
    ])
    .await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
}

async fn names(pool: &sqlx::PgPool, schema: &str) -> Vec<(i64, String)> {
    sqlx::query_as(&format!(
        "SELECT id, name FROM \"{schema}\".customers ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

fn park_key_config(p: &Pipeline) -> String {
    p.config("", "", 0)
        .replace(
            "  create_topic: false\n",
            "  create_topic: true\n  on_error: park_key\n",
        )
        .replace("127.0.0.1:0", "127.0.0.1:{port}")
}

/// Runs `sinkfleet dlq <args> --config <config>`: (exit code, output).
fn dlq(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    sinkfleet_testkit::process::cli(&[&["dlq"], args].concat(), config)
}

/// The target accepts long names again: the poison record's cause is fixed.
async fn fix_target(pool: &sqlx::PgPool, schema: &str) {
    sqlx::query(&format!(
        "ALTER TABLE \"{schema}\".customers DROP CONSTRAINT short_name"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// A worker with `park_key` (on `port`, with `config`) that has parked
/// key 1: its poison record and two newer records are dead-lettered.
async fn park_one_key(p: &Pipeline) -> (sqlx::PgPool, String, u16, common::Worker) {
    let config = park_key_config(p);
    let pool = with_refusing_target(p, &config).await;
    let port = free_port();
    let config = config.replace("{port}", &port.to_string());
    let worker = p.spawn("w1", &config, port);
    produce_poison_and_newer(p).await;
    (pool, config, port, worker)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_key_keeps_its_last_good_state_until_its_records_are_replayed() {
    let p = Pipeline::new("park", 1).await;
    let (pool, worker_config, port, mut worker) = park_one_key(&p).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a1".into()), (2, "b3".into())],
        "K keeps its last good state, the other key converges"
    );
    let dead = kafka::read_to_end(&p.brokers, &p.dlq, CONVERGE).unwrap();
    let classes: Vec<(&str, &str, Option<&str>)> = dead
        .iter()
        .map(|r| {
            (
                r.headers["sinkfleet.original.offset"].as_str(),
                r.headers["sinkfleet.error.class"].as_str(),
                r.headers.get("sinkfleet.parked").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("2", "apply", None),
            ("4", "parked", Some("true")),
            ("6", "parked", Some("true"))
        ]
    );
    assert_eq!(dead[1].headers["sinkfleet.parked.since"], "2");
    assert_eq!(worker.metric("sinkfleet_parked_keys"), 1.0);
    assert_eq!(worker.metric("sinkfleet_records_parked_total"), 2.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());

    // A new process (as after a restart or a rebalance) knows K is parked.
    p.produce(&[change(1, "a5", 26), change(2, "b5", 27)]).await;
    let mut worker = p.spawn("w2", &worker_config, port);
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a1".into()), (2, "b5".into())]
    );
    assert_eq!(worker.metric("sinkfleet_parked_keys"), 1.0);

    let config_path = p.config_file("cli", &worker_config);
    let (code, listed) = dlq(&config_path, &["list"]);
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains("parked") && l.contains(" 3")),
        "{listed}"
    );
    assert!(listed.contains("1 parked keys"), "{listed}");
    assert!(
        listed.contains(&format!(r#"{}/0 since 2 key {{"id":1}}: apply: "#, p.topic)),
        "{listed}"
    );

    // `status` shows the parked key and the dead letters beside the lag.
    let topic_status = || {
        let (code, text) = sinkfleet_testkit::process::cli(&["status", "--json"], &config_path);
        assert_eq!(code, 0, "{text}");
        let s: serde_json::Value = serde_json::from_str(&text).unwrap();
        s["topics"][0].clone()
    };
    let t = topic_status();
    assert_eq!(t["topic"], p.topic.as_str(), "{t}");
    assert_eq!(
        (
            &t["dead_letters"],
            &t["open_dead_letters"],
            &t["new_dead_letters"]
        ),
        (&json!(4), &json!(4), &json!(4)),
        "{t}"
    );
    assert_eq!(t["parked_keys"], 1, "{t}");
    assert_eq!(t["oldest_parked"]["key"], r#"{"id":1}"#, "{t}");
    assert_eq!(t["oldest_parked"]["since"], 2, "{t}");
    let (code, table) = sinkfleet_testkit::process::cli(&["status"], &config_path);
    assert_eq!(code, 0, "{table}");
    assert!(
        table.contains(r#"{"id":1} in partition 0 since offset 2"#),
        "{table}"
    );
    // A dry run says which record releases the key.
    let (code, planned) = dlq(
        &config_path,
        &["replay", "--key", r#"{"id":1}"#, "--dry-run"],
    );
    assert_eq!(code, 0, "{planned}");
    assert!(
        planned.contains(&format!(
            r#"-> {}/0@2 apply key {{"id":1}} (releases parked key)"#,
            p.topic
        )),
        "{planned}"
    );
    assert_eq!(
        planned.matches("releases parked key").count(),
        1,
        "{planned}"
    );

    // The target is fixed. Through the sink, K's records would apply but K
    // would stay parked: refused, naming K, applying nothing.
    fix_target(&pool, &p.schema).await;
    let (code, refused) = dlq(
        &config_path,
        &["replay", "--key", r#"{"id":1}"#, "--through-sink"],
    );
    assert_ne!(code, 0, "{refused}");
    assert!(
        refused.contains(&format!(r#"{}/0 key {{"id":1}}"#, p.topic))
            && refused.contains("Nothing was applied"),
        "{refused}"
    );
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a1".into()), (2, "b5".into())]
    );
    // Replaying K's records into the topic releases K, in order.
    let (code, replayed) = dlq(&config_path, &["replay", "--key", r#"{"id":1}"#]);
    assert_eq!(code, 0, "{replayed}");
    assert!(replayed.contains("4 records replayed"), "{replayed}");
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a5".into()), (2, "b5".into())]
    );
    // Released: K's next change applies directly.
    p.produce(&[change(1, "a6", 28)]).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a6".into()), (2, "b5".into())]
    );
    wait_until("the parked-keys gauge drops", CONVERGE, || {
        worker.metric("sinkfleet_parked_keys") == 0.0
    })
    .await;
    let dead = kafka::read_to_end(&p.brokers, &p.dlq, CONVERGE).unwrap();
    assert_eq!(dead.len(), 4, "the replay dead-lettered nothing more");
    // Resolved: status counts them as such, and a second replay sends
    // nothing.
    let t = topic_status();
    assert_eq!(
        (
            &t["dead_letters"],
            &t["open_dead_letters"],
            &t["new_dead_letters"]
        ),
        (&json!(4), &json!(0), &json!(0)),
        "{t}"
    );
    assert_eq!(t["parked_keys"], 0, "{t}");
    let end = p.end_offsets();
    let (code, again) = dlq(&config_path, &["replay", "--key", r#"{"id":1}"#]);
    assert_ne!(code, 0, "{again}");
    assert!(
        again.contains("skipping 4 dead letters resolved already"),
        "{again}"
    );
    assert_eq!(p.end_offsets(), end, "nothing was replayed twice");
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// With `skip` (the default), K's newer records overtake the poison one.
#[tokio::test(flavor = "multi_thread")]
async fn with_skip_newer_records_of_the_key_overtake_the_dead_lettered_one() {
    let p = Pipeline::new("skip", 1).await;
    let config = p
        .config("", "", 0)
        .replace("127.0.0.1:0", "127.0.0.1:{port}");
    let pool = with_refusing_target(&p, &config).await;
    let port = free_port();
    let mut worker = p.spawn("w", &config.replace("{port}", &port.to_string()), port);
    produce_poison_and_newer(&p).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a4".into()), (2, "b3".into())]
    );
    let dead = kafka::read_to_end(&p.brokers, &p.dlq, CONVERGE).unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].headers["sinkfleet.error.class"], "apply");
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// A record of a parked key that reaches its partition after `dlq replay`
/// read the dead-letter topic, but before the replayed record that releases
/// the key, is parked after `replay` looked: `replay` waits for the group
/// to pass the release and replays it too, so the key ends at its newest
/// version.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_parked_while_the_release_is_on_its_way_is_replayed_too() {
    let p = Pipeline::new("parkrace", 1).await;
    let (pool, worker_config, port, mut worker) = park_one_key(&p).await;
    assert!(worker.terminate(Duration::from_secs(30)).success());

    // While no worker runs: the target is fixed, K changes once more (not
    // parked yet: nobody read it), and K's dead letters are replayed
    // behind that change.
    fix_target(&pool, &p.schema).await;
    p.produce(&[change(1, "a5", 26)]).await;
    let config_path = p.config_file("cli", &worker_config);
    let replay = Command::new(env!("CARGO_BIN_EXE_sinkfleet"))
        .args(["dlq", "replay", "--key", r#"{"id":1}"#, "--config"])
        .arg(&config_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The replay is in the topic before a worker starts: a5 comes first
    // and is parked, then the replayed poison releases K.
    wait_until("the replay is in the topic", CONVERGE, || {
        p.end_offsets().get(&0) == Some(&11)
    })
    .await;
    let mut worker = p.spawn("w2", &worker_config, port);
    let out = replay.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // It said at once what it waits for.
    assert!(
        text.contains("no worker of group") && text.contains("waiting up to 120s"),
        "{text}"
    );
    assert!(text.contains("1 parked keys released"), "{text}");
    assert!(
        text.contains("1 records parked while the release was on its way, replayed too"),
        "{text}"
    );
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a5".into()), (2, "b3".into())]
    );
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// A key parked by a record no fix makes readable (undecodable): replaying
/// it parks the key again, so `dlq discard` drops it instead. Its marker
/// releases the key in stream order: the key's record parked behind it
/// stays parked until replayed, the key's next change applies directly.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_parked_by_an_undecodable_record_is_released_by_discarding_it() {
    let p = Pipeline::new("discard", 1).await;
    let port = free_port();
    let config = park_key_config(&p).replace("{port}", &port.to_string());
    let mut worker = p.spawn("w", &config, port);
    let garbage = Record {
        key: Some(br#"{"id":1}"#.to_vec()),
        value: Some(b"{not json".to_vec()),
    };
    p.produce(&[change(1, "a1", 10), garbage, change(2, "b1", 11)])
        .await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    p.produce(&[change(1, "a2", 12)]).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    let pool = p.pool().await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a1".into()), (2, "b1".into())],
        "K is parked behind its undecodable record"
    );
    let config_path = p.config_file("cli", &config);
    // A discard without a filter is refused.
    let (code, text) = dlq(&config_path, &["discard"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("select them with a filter"), "{text}");

    let (code, text) = dlq(&config_path, &["discard", "--class", "decode"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            r#"discard 0@0 from {}/0@1 decode key {{"id":1}} (releases parked key)"#,
            p.topic
        )) && text.contains("1 records parked behind them stay open"),
        "{text}"
    );
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    wait_until("the parked-keys gauge drops", CONVERGE, || {
        worker.metric("sinkfleet_parked_keys") == 0.0
    })
    .await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a1".into()), (2, "b1".into())],
        "released, but a2 (parked before the release) is not applied by it"
    );
    // a2 is replayed (the discarded record is resolved, so it is skipped),
    // then K's next change applies directly.
    let (code, text) = dlq(&config_path, &["replay", "--key", r#"{"id":1}"#]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("skipping 1 dead letters resolved already")
            && text.contains("1 records replayed"),
        "{text}"
    );
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a2".into()), (2, "b1".into())]
    );
    p.produce(&[change(1, "a3", 13)]).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert_eq!(
        names(&pool, &p.schema).await,
        [(1, "a3".into()), (2, "b1".into())]
    );
    let (code, text) = dlq(&config_path, &["list"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("2 dead letters: 0 open, 2 resolved"),
        "{text}"
    );
    assert!(worker.terminate(Duration::from_secs(30)).success());
}
