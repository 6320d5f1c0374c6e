//! Incremental snapshots on demand: a signal-table row starts one, chunks
//! are read between watermarks while changes stream into the same rows,
//! and the target converges to the source.

use super::Worker;
use super::{CONVERGE, SOURCE_LOAD, Source, brokers, free_port, futures_lite_block, wait_until};
use sqlx::Executor;
use std::time::Duration;

/// A table the publisher never snapshotted (`snapshot.mode: no_data`),
/// incrementally snapshotted in chunks of 500 while updates, deletes and
/// inserts stream into rows inside and outside the current chunk: the
/// target ends equal to the source, the chunk rows are marked
/// `incremental`, and the signal table's rows are never published.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_snapshot_converges_under_concurrent_changes() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("incr").await;
    let s = src.schema.clone();
    const ROWS: i64 = 6_000;
    src.sql(&format!(
        "CREATE TABLE {s}.big (id bigint PRIMARY KEY, v int NOT NULL, note text);
         INSERT INTO {s}.big SELECT g, 0, 'n' || g FROM generate_series(1, {ROWS}) g;
         CREATE TABLE {s}.signals (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let properties = format!(
        "  snapshot.mode: no_data\n  signal.data.collection: {s}.signals\n  incremental.snapshot.chunk.size: 500\n"
    );
    let config = src.publisher_config_with(&["big"], &brokers(), &properties, "", pp);
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    // Changes that create the topic (and that the snapshot must not undo).
    src.sql(&format!("UPDATE {s}.big SET v = 1 WHERE id <= 10"))
        .await;
    let worker = src.sink_worker(&["big"], wp);

    let load = {
        let (pool, s) = (src.pool.clone(), s.clone());
        tokio::spawn(async move {
            for round in 0..120i64 {
                let sql = format!(
                    "UPDATE {s}.big SET v = v + 1, note = 'u{round}' WHERE id % 97 = {m};
                     DELETE FROM {s}.big WHERE id = {del};
                     INSERT INTO {s}.big VALUES ({ins}, {round}, 'new') ON CONFLICT (id) DO UPDATE SET v = -1;",
                    // 40 of 97 residues: most rows are never updated, so
                    // only the snapshot can bring them to the target.
                    m = round % 40,
                    del = 1 + (round * 53) % ROWS,
                    ins = ROWS + 1 + round,
                );
                pool.execute(sql.as_str()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    src.sql(&format!(
        r#"INSERT INTO {s}.signals VALUES ('ad-hoc-1', 'execute-snapshot', '{{"data-collections": ["{s}.big"], "type": "incremental"}}')"#
    ))
    .await;
    let signalled = std::time::Instant::now();
    load.await.unwrap();
    src.wait_identical("big", "id, v, note").await;
    eprintln!(
        "incremental snapshot of {ROWS} rows under 120 rounds of changes: converged {:.1} s after the signal",
        signalled.elapsed().as_secs_f64()
    );

    let topic = format!("{}.{s}.big", src.prefix);
    let incremental = || {
        sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r.value.as_deref())
            .filter(|v| {
                let v: serde_json::Value = serde_json::from_slice(v).unwrap();
                v["payload"]["op"] == "r" && v["payload"]["source"]["snapshot"] == "incremental"
            })
            .count()
    };
    // Rows never updated (about 60%) came from the snapshot alone.
    wait_until(
        "most rows came as incremental snapshot rows",
        CONVERGE,
        || incremental() >= (ROWS as usize) / 2,
    )
    .await;
    let signal_topic = format!("{}.{s}.signals", src.prefix);
    assert!(
        sinkfleet_testkit::kafka::read_to_end(&brokers(), &signal_topic, Duration::from_secs(2))
            .unwrap_or_default()
            .is_empty()
    );
    src.finish(publisher, worker).await;
}

/// The publisher SIGKILLed twice while it snapshots a 20,000-row table in
/// chunks of 500: each restart resumes after the last acknowledged chunk
/// (recorded in the signal table), not from the start. Rows read twice:
/// what was in flight at each kill, a chunk or so, never the table again.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_snapshot_resumes_after_a_kill() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("incrkill").await;
    let s = src.schema.clone();
    const ROWS: i64 = 20_000;
    const CHUNK: i64 = 500;
    src.sql(&format!(
        "CREATE TABLE {s}.big (id bigint PRIMARY KEY, v int NOT NULL);
         INSERT INTO {s}.big SELECT g, 0 FROM generate_series(1, {ROWS}) g;
         CREATE TABLE {s}.signals (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let properties = format!(
        "  snapshot.mode: no_data\n  signal.data.collection: {s}.signals\n  incremental.snapshot.chunk.size: {CHUNK}\n"
    );
    let config = src.publisher_config_with(&["big"], &brokers(), &properties, "", pp);
    let mut publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    src.sql(&format!(
        r#"INSERT INTO {s}.signals VALUES ('kill-1', 'execute-snapshot', '{{"data-collections": ["{s}.big"], "type": "incremental"}}')"#
    ))
    .await;
    let done = |w: &Worker| w.metric("sinkfleet_publisher_snapshot_rows_done{");
    for (round, at) in [(1, 4_000.0), (2, 12_000.0)] {
        wait_until("the snapshot is under way", CONVERGE, || {
            done(&publisher) >= at
        })
        .await;
        publisher.kill9();
        tokio::time::sleep(Duration::from_secs(1)).await; // the server notices the dead walsender
        publisher = Worker::start(&format!("{}-{round}", src.prefix), "publish", &config, pp);
    }
    let worker = src.sink_worker(&["big"], wp);
    src.wait_identical("big", "id, v").await;

    let topic = format!("{}.{s}.big", src.prefix);
    let mut ids = std::collections::BTreeMap::<i64, u32>::new();
    for r in sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap() {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        if v["payload"]["source"]["snapshot"] == "incremental" {
            *ids.entry(v["payload"]["after"]["id"].as_i64().unwrap())
                .or_default() += 1;
        }
    }
    let published: u32 = ids.values().sum();
    let twice = published as i64 - ids.len() as i64;
    eprintln!(
        "incremental snapshot with two kills: {published} rows published for {} ids, {twice} read twice",
        ids.len()
    );
    assert_eq!(ids.len() as i64, ROWS);
    assert!(twice <= 4 * CHUNK, "{twice} rows read twice");
    src.finish(publisher, worker).await;
}

/// `snapshot.new.tables: incremental`: a table added to the include list
/// on a restart is backfilled, its rows from before included, and then
/// streamed.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_added_on_restart_is_backfilled() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("incrnew").await;
    let s = src.schema.clone();
    src.sql(&format!(
        "CREATE TABLE {s}.first (id int PRIMARY KEY, v int);
         CREATE TABLE {s}.added (id int PRIMARY KEY, v int);
         INSERT INTO {s}.first VALUES (1, 1);
         INSERT INTO {s}.added SELECT g, g FROM generate_series(1, 3000) g;
         CREATE TABLE {s}.signals (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let properties = format!(
        "  signal.data.collection: {s}.signals\n  snapshot.new.tables: incremental\n  incremental.snapshot.chunk.size: 700\n"
    );
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config_with(&["first"], &brokers(), &properties, "", pp),
        pp,
    );
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    src.sql(&format!("UPDATE {s}.added SET v = -v WHERE id <= 100"))
        .await;
    assert!(publisher.terminate(Duration::from_secs(30)).success());

    let config = src.publisher_config_with(&["first", "added"], &brokers(), &properties, "", pp);
    let publisher = Worker::start(&format!("{}-2", src.prefix), "publish", &config, pp);
    src.sql(&format!(
        "UPDATE {s}.added SET v = 0 WHERE id % 10 = 0; DELETE FROM {s}.added WHERE id > 2990"
    ))
    .await;
    // The worker subscribes to topics that exist: the publisher creates
    // the added table's with its first event.
    let topic = format!("{}.{s}.added", src.prefix);
    wait_until("the added table's topic has events", CONVERGE, || {
        sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE)
            .is_ok_and(|r| !r.is_empty())
    })
    .await;
    let worker = src.sink_worker(&["first", "added"], wp);
    src.wait_identical("added", "id, v").await;
    src.wait_identical("first", "id, v").await;
    src.finish(publisher, worker).await;
}
