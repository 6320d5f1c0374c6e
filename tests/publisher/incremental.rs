//! Incremental snapshots on demand: a signal-table row starts one, chunks
//! are read between watermarks while changes stream into the same rows,
//! and the target converges to the source.

use super::Worker;
use super::{CONVERGE, SOURCE_LOAD, Source, brokers, free_port, futures_lite_block, wait_until};
use sqlx::Executor;
use std::time::Duration;

/// How long a snapshot may take to finish and reach the targets: the
/// debug build read ~2,800 rows/s under the test's load here, and the
/// other incremental tests run beside one another on two cores.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(600);

/// A 200,000-row table the publisher never snapshotted (`snapshot.mode:
/// no_data`) is snapshotted incrementally while 2,000 changes a second
/// stream into it: updates and deletes of rows inside the chunk being read
/// (found from the progress metric) and outside it, and inserts. The
/// publisher is SIGKILLed at a third and at two thirds of the table.
/// Postgres and ClickHouse both end equal to the source; most rows arrive
/// through the snapshot; the signal table's rows are never published.
///
/// The events are schema-less (`v` declared to the workers): with the
/// schema envelope this test's ~670,000 events took 2.7 GB in tansu.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_snapshot_converges_under_concurrent_changes() {
    let _alone = SOURCE_LOAD.write().await;
    let src = Source::new("incr").await;
    let s = src.schema.clone();
    const ROWS: i64 = 200_000;
    const CHUNK: i64 = 1_024;
    // Each round changes 50 rows; 40 rounds a second is the issue's rate.
    const ROUNDS_PER_SEC: f64 = 40.0;
    src.sql(&format!(
        "CREATE TABLE {s}.big (id bigint PRIMARY KEY, v int NOT NULL, note text);
         INSERT INTO {s}.big SELECT g, 0, 'n' || g FROM generate_series(1, {ROWS}) g;
         ANALYZE {s}.big;
         CREATE TABLE {s}.signals (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));"
    ))
    .await;
    let (pp, wp, cp) = (free_port(), free_port(), free_port());
    let properties = format!(
        "  snapshot.mode: no_data\n  signal.data.collection: {s}.signals\n  incremental.snapshot.chunk.size: {CHUNK}\n  \
         value.converter.schemas.enable: false\n"
    );
    let decode = "decode:\n  columns:\n    \"*\": { v: int32 }\n";
    let config = src.publisher_config_with(&["big"], &brokers(), &properties, "", pp);
    let mut publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    // Changes that create the topic (and that the snapshot must not undo).
    src.sql(&format!("UPDATE {s}.big SET v = 1 WHERE id <= 10"))
        .await;
    let worker = src.sink_worker_with(&["big"], wp, decode);
    let ch_db = format!("ch_{}", src.target);
    let ch = sinkfleet_sink_clickhouse::client::Client::new(
        &sinkfleet_sink_clickhouse::ClickHouseSinkConfig::with_url(
            sinkfleet_testkit::services::clickhouse_url(),
        ),
    )
    .unwrap();
    let ch_worker = {
        let config = src.worker_config(&["big"], cp);
        let (head, tail) = config.split_once("sink:\n").unwrap();
        let metrics = &tail[tail.find("metrics:").unwrap()..];
        let config = format!(
            "{}sink:\n  clickhouse:\n    url: {}\n    database: {ch_db}\n{metrics}{decode}",
            head.replace("-sink\n", "-ch\n"),
            sinkfleet_testkit::services::clickhouse_url()
        );
        Worker::spawn(&format!("{}-ch", src.prefix), &config, cp)
    };

    let signalled = std::time::Instant::now();
    src.sql(&format!(
        r#"INSERT INTO {s}.signals VALUES ('ad-hoc-1', 'execute-snapshot', '{{"data-collections": ["{s}.big"], "type": "incremental"}}')"#
    ))
    .await;
    let done_sql =
        format!("SELECT count(*) FROM {s}.signals WHERE type = 'sinkfleet-snapshot-done'");
    let (mut round, mut changes) = (0i64, 0i64);
    let rows_done = "sinkfleet_publisher_snapshot_rows_done{";
    // (rows published before a kill, rows the restart resumed after)
    let mut kills: Vec<(i64, Option<i64>)> = Vec::new();
    let load_started = std::time::Instant::now();
    loop {
        let finished: i64 = sqlx::query_scalar(&done_sql)
            .fetch_one(&src.pool)
            .await
            .unwrap();
        if finished > 0 {
            break;
        }
        assert!(
            signalled.elapsed() < SNAPSHOT_DEADLINE,
            "the snapshot did not finish"
        );
        // Rows published so far: the chunk being read starts about there.
        let at = publisher.metric(rows_done) as i64;
        if let Some((_, resumed @ None)) = kills.last_mut()
            && at > 0
        {
            *resumed = Some(at);
        }
        if kills.len() < 2 && at >= (kills.len() as i64 + 1) * ROWS / 3 {
            publisher.kill9();
            kills.push((at, None));
            tokio::time::sleep(Duration::from_secs(1)).await; // the server notices the dead walsender
            let name = format!("{}-{}", src.prefix, kills.len());
            publisher = Worker::start(&name, "publish", &config, pp);
            continue;
        }
        let inside: Vec<String> = (0..20)
            .map(|k| (at + 1 + (k * 50 + round) % CHUNK).to_string())
            .collect();
        let outside: Vec<String> = (0..20)
            .map(|k| ((round * 7_919 + k * 104_729) % ROWS + 1).to_string())
            .collect();
        let sql = format!(
            "UPDATE {s}.big SET v = v + 1, note = 'u{round}' WHERE id IN ({in_}, {out});
             DELETE FROM {s}.big WHERE id IN ({del_in}, {del_out});
             INSERT INTO {s}.big SELECT g, {round}, 'new' FROM generate_series({from}, {to}) g;",
            in_ = inside.join(","),
            out = outside.join(","),
            del_in = inside[..2].join(","),
            del_out = outside[..2].join(","),
            from = ROWS + 1 + round * 6,
            to = ROWS + 6 + round * 6,
        );
        src.pool.execute(sql.as_str()).await.unwrap();
        changes += 50;
        round += 1;
        let due = load_started + Duration::from_secs_f64(round as f64 / ROUNDS_PER_SEC);
        tokio::time::sleep_until(due.into()).await;
    }
    let snapshot_secs = signalled.elapsed().as_secs_f64();
    let rate = changes as f64 / load_started.elapsed().as_secs_f64();
    src.wait_identical_within("big", "id, v, note", SNAPSHOT_DEADLINE)
        .await;
    let source_rows = || {
        let pool = src.pool.clone();
        let sql = format!("SELECT id, v, note FROM {s}.big ORDER BY id");
        futures_lite_block(async move {
            sqlx::query_as::<_, (i64, i32, Option<String>)>(&sql)
                .fetch_all(&pool)
                .await
                .unwrap()
        })
    };
    let ch_rows = || {
        let sql = format!(
            "SELECT id, v, note FROM `{ch_db}`.big FINAL WHERE __sinkfleet_deleted = 0 ORDER BY id FORMAT JSONEachRow"
        );
        let body = futures_lite_block(ch.execute(
            &sql,
            None,
            &[("output_format_json_quote_64bit_integers", "0".into())],
        ))
        .unwrap_or_default();
        body.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_i64().unwrap(),
                    v["v"].as_i64().unwrap() as i32,
                    v["note"].as_str().map(str::to_owned),
                )
            })
            .collect::<Vec<_>>()
    };
    let want = source_rows();
    wait_until(
        "ClickHouse equals the source",
        Duration::from_secs(300),
        || ch_rows() == want,
    )
    .await;
    // Published in the history that counts: chunks read again are not.
    let incremental = publisher.metric(rows_done) as i64;
    eprintln!(
        "incremental snapshot of {ROWS} rows under {rate:.0} changes/s ({changes} changes), \
         killed twice (rows published before each kill, and where the restart resumed: {kills:?}): \
         snapshot done {snapshot_secs:.1} s after the signal ({:.0} rows/s), {incremental} rows published, \
         Postgres and ClickHouse equal {:.1} s after the signal",
        ROWS as f64 / snapshot_secs,
        signalled.elapsed().as_secs_f64()
    );
    assert_eq!(kills.len(), 2, "the publisher was not killed twice");
    assert!(
        incremental >= ROWS / 2,
        "{incremental} incremental snapshot rows"
    );
    let signal_topic = format!("{}.{s}.signals", src.prefix);
    assert!(
        sinkfleet_testkit::kafka::read_to_end(&brokers(), &signal_topic, Duration::from_secs(2))
            .unwrap_or_default()
            .is_empty()
    );
    let mut ch_worker = ch_worker;
    assert!(ch_worker.terminate(Duration::from_secs(30)).success());
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
        wait_until("the snapshot is under way", SNAPSHOT_DEADLINE, || {
            done(&publisher) >= at
        })
        .await;
        publisher.kill9();
        tokio::time::sleep(Duration::from_secs(1)).await; // the server notices the dead walsender
        publisher = Worker::start(&format!("{}-{round}", src.prefix), "publish", &config, pp);
    }
    let worker = src.sink_worker(&["big"], wp);
    src.wait_identical_within("big", "id, v", SNAPSHOT_DEADLINE)
        .await;

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
    // Each restart reads again the chunks in flight and the one being read.
    let per_kill = (sinkfleet_pg_publisher::incremental::CHUNKS_IN_FLIGHT as i64 + 1) * CHUNK;
    assert!(twice <= 2 * per_kill, "{twice} rows read twice");
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
    // Streaming (past the snapshot's hand-over to the real slot) before the stop.
    super::wait_slot_confirms_now(&src).await;
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
    src.wait_identical_within("added", "id, v", SNAPSHOT_DEADLINE)
        .await;
    src.wait_identical("first", "id, v").await;
    src.finish(publisher, worker).await;
}
