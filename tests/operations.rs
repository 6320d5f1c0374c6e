//! `sinkfleet status` and `sinkfleet offsets reset` against the real broker
//! and Postgres: what status says about a running, a stalled and a stopped
//! worker, and a reset that is refused while the group has a member, then
//! moves the committed offsets (Kafka's and the target's) and makes the
//! next worker apply the records again from there.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::{Pipeline, free_port, lock_table, wait_until};
use serde_json::{Value, json};
use sinkfleet_testkit::kafka::Record;
use sinkfleet_testkit::process::cli;
use std::path::Path;
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

fn change(id: i64, lsn: u64) -> Record {
    Record {
        key: Some(json!({ "id": id }).to_string().into_bytes()),
        value: Some(
            json!({"op": "c", "source": {"schema": "public", "table": "customers", "lsn": lsn, "ts_ms": 1_700_000_000_000i64},
                   "after": {"id": id, "name": format!("n{id}")}})
            .to_string()
            .into_bytes(),
        ),
    }
}

/// Creates of rows `ids`, row `i` at LSN `lsn_base + i`.
fn changes(ids: std::ops::Range<i64>, lsn_base: u64) -> Vec<Record> {
    ids.map(|i| change(i, lsn_base + i as u64)).collect()
}

fn status(config: &Path) -> Value {
    let (code, text) = cli(&["status", "--json"], config);
    assert_eq!(code, 0, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Status reports every `interval_ms` (the default is 10 s).
fn with_status_interval(config: String, interval_ms: u64) -> String {
    format!("{config}status:\n  interval_ms: {interval_ms}\n")
}

/// Status reports every 500 ms.
fn with_fast_status(config: String) -> String {
    with_status_interval(config, 500)
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_owners_offsets_lag_pauses_and_freshness() {
    let p = Pipeline::new("status", 2).await;
    p.produce(&changes(0..20, 100)).await;
    let port = free_port();
    // A small partition budget, so a stalled target pauses the partitions.
    // Reports are due every 10 minutes: a pause can only show at once
    // because a worker reports it when it happens.
    let text = with_status_interval(
        p.config(
            "  partition_budget: { high_records: 5, high_bytes: 1048576 }",
            "",
            port,
        ),
        600_000,
    );
    let config = p.config_file("ops", &text);
    let mut worker = p.spawn("w", &text, port);
    p.wait_committed_to_end(&p.group, CONVERGE).await;

    // Converged: one live member owns both partitions, no lag.
    let mut s = Value::Null;
    wait_until("status shows the converged group", CONVERGE, || {
        s = status(&config);
        let partitions = s["partitions"].as_array().unwrap();
        s["members"].as_array().unwrap().len() == 1
            && partitions.len() == 2
            && partitions
                .iter()
                .all(|p| p["lag"] == 0 && p["paused"] == false && !p["owner"].is_null())
            && !s["tables"].as_array().unwrap().is_empty()
    })
    .await;
    let member = s["members"][0].clone();
    assert_eq!(member["state"], "live", "{s}");
    assert_eq!(member["partitions"].as_array().unwrap().len(), 2, "{s}");
    for partition in s["partitions"].as_array().unwrap() {
        assert_eq!(partition["owner"], member["member"], "{s}");
        assert_eq!(partition["committed"], partition["end"], "{s}");
        assert!(partition["waited_seconds"].is_null(), "no lag: {s}");
    }
    assert_eq!(s["tables"][0]["table"], "public.customers", "{s}");
    assert_eq!(
        s["tables"][0]["applied_source_ts_ms"], 1_700_000_000_000i64,
        "{s}"
    );
    assert_eq!(s["topics"][0]["dead_letters"], 0, "{s}");

    // The target stalls (a lock): records wait, the partitions pause.
    let pool = p.pool().await;
    let lock = lock_table(&pool, &p.schema, "customers").await;
    let stalled = std::time::Instant::now();
    p.produce(&changes(20..120, 200)).await;
    wait_until("status shows paused partitions with lag", CONVERGE, || {
        s = status(&config);
        s["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["paused"] == true && p["lag"].as_i64().unwrap_or(0) > 0)
    })
    .await;
    // Waited: since the oldest record not committed was stored, which is
    // after the stall began (not the age of the last committed record,
    // stored before it).
    let waited_at_most = stalled.elapsed().as_secs_f64() + 1.0;
    for partition in s["partitions"].as_array().unwrap() {
        if partition["lag"].as_i64().unwrap_or(0) > 0 {
            let waited = partition["waited_seconds"].as_f64().unwrap();
            assert!(waited <= waited_at_most, "{waited} > {waited_at_most}: {s}");
            assert!(!partition["report_age_seconds"].is_null(), "{s}");
        }
    }
    let (code, table) = cli(&["status"], &config);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains(&p.topic) && table.contains("yes"), "{table}");
    assert!(table.contains("live"), "{table}");
    assert!(
        table.contains("from the broker") && table.contains("from the owner's report"),
        "{table}"
    );
    lock.rollback().await.unwrap();
    p.wait_committed_to_end(&p.group, CONVERGE).await;

    // A clean stop says so: the member is shown stopped, owning nothing.
    assert!(worker.terminate(Duration::from_secs(30)).success());
    s = status(&config);
    assert_eq!(s["members"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["members"][0]["state"], "stopped", "{s}");
    assert!(s["members"][0]["stopped_at_ms"].is_i64(), "{s}");
    assert!(
        s["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["owner"].is_null() && p["lag"] == 0),
        "{s}"
    );
    let (code, table) = cli(&["status"], &config);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("stopped at 20"), "{table}");

    // A killed worker leaves a running report behind: it is dropped once
    // three intervals passed without another.
    let port = free_port();
    let fast = with_fast_status(p.config("", "", port));
    let mut killed = p.spawn("killed", &fast, port);
    wait_until("the second worker is live", CONVERGE, || {
        s = status(&config);
        s["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["state"] == "live")
    })
    .await;
    killed.kill9();
    wait_until("the killed worker is dropped", CONVERGE, || {
        s = status(&config);
        let members = s["members"].as_array().unwrap();
        members.len() == 1 && members[0]["state"] == "stopped"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_reset_is_refused_while_a_worker_runs_then_moves_both_offsets() {
    let p = Pipeline::new("reset", 1).await;
    p.produce(&changes(0..10, 100)).await;
    // Every record of the next batch is newer than this.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    p.produce(&changes(10..15, 100)).await;
    let port = free_port();
    let text = with_fast_status(p.config("", "    offset_storage: target", port));
    let config = p.config_file("ops", &text);
    let mut worker = p.spawn("w1", &text, port);
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    let topic_spec = |offset: i64| format!("{}:0:{offset}", p.topic);

    // A dry run previews the reset while the worker runs, saying the reset
    // itself would be refused.
    let (code, dry) = cli(
        &["offsets", "reset", "--to", "earliest", "--dry-run"],
        &config,
    );
    assert_eq!(code, 0, "{dry}");
    assert!(
        dry.lines()
            .any(|l| l.contains(&p.topic) && l.contains("15 ->") && l.ends_with(" 0")),
        "{dry}"
    );
    assert!(
        dry.contains("live members") && dry.contains("the reset itself is refused until they stop"),
        "{dry}"
    );

    // Refused while the worker runs; nothing changes.
    let (code, refused) = cli(&["offsets", "reset", "--to", "earliest"], &config);
    assert_ne!(code, 0, "{refused}");
    assert!(refused.contains("live members"), "{refused}");
    assert_eq!(p.committed(&p.group).get(&0), Some(&15));
    assert!(worker.terminate(Duration::from_secs(30)).success());

    // A dry run prints the change and makes none.
    let (code, dry) = cli(
        &["offsets", "reset", "--to", &topic_spec(4), "--dry-run"],
        &config,
    );
    assert_eq!(code, 0, "{dry}");
    assert!(
        dry.lines()
            .any(|l| l.contains(&p.topic) && l.contains("15 ->") && l.ends_with(" 4")),
        "{dry}"
    );
    assert!(
        dry.contains("1 partitions would be reset (dry run)"),
        "{dry}"
    );
    assert_eq!(p.committed(&p.group).get(&0), Some(&15));

    // Out of range is refused.
    let (code, out) = cli(&["offsets", "reset", "--to", &topic_spec(99)], &config);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("outside"), "{out}");

    // By time: the first record of the second batch.
    let (code, out) = cli(
        &["offsets", "reset", "--to", &between.to_rfc3339()],
        &config,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(p.committed(&p.group).get(&0), Some(&10), "{out}");

    // Exact: Kafka and the target both move, and say so.
    let (code, out) = cli(&["offsets", "reset", "--to", &topic_spec(4)], &config);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 partitions reset in Kafka"), "{out}");
    assert!(out.contains("1 partitions reset in the target"), "{out}");
    assert_eq!(p.committed(&p.group).get(&0), Some(&4));
    let pool = p.pool().await;
    let stored: i64 = sqlx::query_scalar(&format!(
        "SELECT next_offset FROM \"{}_meta\".offsets WHERE group_id = $1",
        p.schema
    ))
    .bind(&p.group)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 4);

    // The next worker starts at 4: rows 4..15 deleted by hand come back,
    // the others stay deleted.
    sqlx::query(&format!("DELETE FROM \"{}\".customers", p.schema))
        .execute(&pool)
        .await
        .unwrap();
    let mut worker = p.spawn("w2", &text, port);
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    let ids: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM \"{}\".customers ORDER BY id",
        p.schema
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ids, (4..15).collect::<Vec<i64>>());
    assert!(worker.terminate(Duration::from_secs(30)).success());

    let (code, out) = cli(&["offsets", "reset", "--to", "earliest"], &config);
    assert_eq!(code, 0, "{out}");
    assert_eq!(p.committed(&p.group).get(&0), Some(&0));
    let (code, out) = cli(&["offsets", "reset", "--to", "latest"], &config);
    assert_eq!(code, 0, "{out}");
    assert_eq!(p.committed(&p.group).get(&0), Some(&15));
}
