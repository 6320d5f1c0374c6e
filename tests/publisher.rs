//! The publisher end to end: a real Postgres source, the real broker, the
//! real `sinkfleet publish` and `sinkfleet run` processes, and a target
//! that must end identical to the source.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;
#[path = "publisher/incremental.rs"]
mod incremental;
#[path = "publisher/json_schema.rs"]
mod json_schema;
#[path = "publisher/masks.rs"]
mod masks;
#[path = "publisher/messages.rs"]
mod messages;
#[path = "publisher/protobuf.rs"]
mod protobuf;

use common::source::{CONVERGE, Source};
use common::{MockCluster, Worker, brokers, free_port, pg_url, wait_until};
use sqlx::Executor;
use std::time::Duration;

/// Two tests run alone: they take this lock exclusively, every other test
/// of this file shares it.
/// * The straddle test: transactions of the other tests while it waits for
///   its slot's consistent point would join the ones that point waits
///   for, and one of them is the test's own transaction T, held open
///   until the snapshot completes.
/// * The incremental snapshot at the issue's scale: its 2,000 changes/s
///   and ~470,000 events load tansu so much that other tests' fetches
///   time out (in one CI run a worker beside it applied nothing for 90 s).
static SOURCE_LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const ORDERS: &str = "id, amount, placed_at, paid_at, note, md5(body), tier";
const USERS: &str = "id, name, tags, active, uid, meta";

/// Snapshot, then inserts, updates, deletes, a multi-statement transaction,
/// an update leaving a TOASTed value unchanged, a primary-key change, a
/// column added and a column type widened mid-stream, and a truncate: the
/// target ends identical.
#[tokio::test(flavor = "multi_thread")]
async fn source_and_target_end_identical() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("rt").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.orders (id bigint PRIMARY KEY, amount numeric(12,2), placed_at timestamp, paid_at timestamptz,
                                  note text, body text);
         ALTER TABLE {s}.orders ALTER COLUMN body SET STORAGE EXTERNAL;
         CREATE TABLE {s}.users (id int PRIMARY KEY, name text, tags text[], active boolean, uid uuid, meta jsonb);
         INSERT INTO {s}.orders SELECT g, g * 1.25, '2024-01-01'::timestamp + g * interval '1 min', now(), 'n' || g,
                                       repeat(md5(g::text), 100) FROM generate_series(1, 300) g;
         INSERT INTO {s}.users SELECT g, 'u' || g, ARRAY['x', 'y ' || g], g % 2 = 0, gen_random_uuid(),
                                      jsonb_build_object('k', g) FROM generate_series(1, 50) g;"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["orders", "users"], &brokers(), "", pp),
        pp,
    );
    // The snapshot has to exist before the first live change is made.
    wait_until("slot created", CONVERGE, || {
        publisher.metric("sinkfleet_publisher_snapshot_rows_done") >= 350.0
    })
    .await;
    let worker = src.sink_worker(&["orders", "users"], wp);

    src.sql(&format!(
        "UPDATE {s}.orders SET amount = amount + 1 WHERE id % 10 = 0"
    ))
    .await; // body TOASTed, unchanged
    src.sql(&format!(
        "BEGIN;
         INSERT INTO {s}.orders (id, amount, note, body) VALUES (1001, 5, 'tx', 'b');
         UPDATE {s}.orders SET note = 'tx2' WHERE id = 1001;
         DELETE FROM {s}.orders WHERE id = 5;
         COMMIT;"
    ))
    .await;
    src.sql(&format!(
        "DELETE FROM {s}.orders WHERE id BETWEEN 100 AND 120"
    ))
    .await;
    src.sql(&format!("ALTER TABLE {s}.orders ADD COLUMN tier text"))
        .await;
    src.sql(&format!(
        "UPDATE {s}.orders SET tier = 'gold' WHERE id <= 50"
    ))
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.orders (id, amount, note, tier) VALUES (2000, 1, 'after alter', 'silver')"
    ))
    .await;
    // A type change: the next events carry scale 3, the sink widens its column.
    src.sql(&format!(
        "ALTER TABLE {s}.orders ALTER COLUMN amount TYPE numeric(14,3)"
    ))
    .await;
    src.sql(&format!(
        "UPDATE {s}.orders SET amount = amount + 0.125 WHERE id <= 20"
    ))
    .await;
    src.sql(&format!("UPDATE {s}.users SET id = id + 1000 WHERE id = 1"))
        .await; // key change
    src.wait_identical("users", USERS).await;
    src.sql(&format!(
        "TRUNCATE {s}.users; INSERT INTO {s}.users VALUES (7, 'fresh', '{{}}', true, gen_random_uuid(), '{{}}')"
    ))
    .await;

    src.wait_identical("orders", ORDERS).await;
    src.wait_identical("users", USERS).await;
    wait_slot_confirms_now(&src).await;
    src.finish(publisher, worker).await;
}

/// Tables of different widths and types, snapshotted narrow before wide
/// and wide before narrow (the snapshot reads them in name order), one of
/// them wider than 100 columns: every row of every table arrives with all
/// of its columns.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_reads_every_table_with_its_own_shape() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("shapes").await;
    let s = &src.schema;
    let wide: Vec<String> = (1..=120).map(|i| format!("c{i}")).collect();
    src.sql(&format!(
        "CREATE TABLE {s}.t1_narrow (id int PRIMARY KEY, v text);
         CREATE TABLE {s}.t2_wide (id bigint PRIMARY KEY, a text, b numeric(8,2), c date, d boolean);
         CREATE TABLE {s}.t3_widest (id int PRIMARY KEY, {widest});
         CREATE TABLE {s}.t4_narrow (id int PRIMARY KEY, n int);
         INSERT INTO {s}.t1_narrow SELECT g, 'v' || g FROM generate_series(1, 30) g;
         INSERT INTO {s}.t2_wide SELECT g, 'a' || g, g * 1.5, date '2024-01-01' + g, g % 2 = 0
                                   FROM generate_series(1, 30) g;
         INSERT INTO {s}.t3_widest SELECT g, {values} FROM generate_series(1, 30) g;
         INSERT INTO {s}.t4_narrow SELECT g, g * 7 FROM generate_series(1, 30) g;",
        widest = wide.iter().map(|c| format!("{c} text")).collect::<Vec<_>>().join(", "),
        values = wide.iter().map(|c| format!("'{c}-' || g")).collect::<Vec<_>>().join(", "),
    ))
    .await;
    let tables = ["t1_narrow", "t2_wide", "t3_widest", "t4_narrow"];
    let (pp, wp) = (free_port(), free_port());
    let publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&tables, &brokers(), "", pp),
        pp,
    );
    // The worker subscribes to topics the snapshot creates.
    wait_until("snapshot complete", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    let worker = src.sink_worker(&tables, wp);
    src.wait_identical("t1_narrow", "id, v").await;
    src.wait_identical("t2_wide", "id, a, b, c, d").await;
    // ROW(...): concat_ws takes at most 100 arguments.
    src.wait_identical("t3_widest", &format!("ROW(id, {})::text", wide.join(", ")))
        .await;
    src.wait_identical("t4_narrow", "id, n").await;
    src.finish(publisher, worker).await;
}

/// With Debezium's default publication mode (`all_tables`: the publication
/// covers the whole database), changes of tables outside
/// `table.include.list` are never published, and a table outside the list
/// without a primary key does not stop the publisher.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_include_list_is_published_whatever_the_publication_covers() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::in_own_database("incl").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.wanted (id int PRIMARY KEY, v text);
         CREATE TABLE {s}.other (id int PRIMARY KEY, v text);
         CREATE TABLE {s}.keyless (a int, b text);"
    ))
    .await;
    let pp = free_port();
    let config = src
        .publisher_config(&["wanted"], &brokers(), "", pp)
        .replace(
            "publication.autocreate.mode: filtered",
            "publication.autocreate.mode: all_tables",
        );
    let mut publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.other VALUES (1, 'not published')"
    ))
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.keyless VALUES (1, 'not published')"
    ))
    .await;
    src.sql(&format!(
        "UPDATE {s}.other SET v = 'still not' WHERE id = 1"
    ))
    .await;
    src.sql(&format!("INSERT INTO {s}.wanted VALUES (1, 'published')"))
        .await;
    // The last change is in Kafka once the slot confirms it: everything
    // before it has been handled.
    let written = src.current_lsn().await;
    wait_until("the last change is acknowledged", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) >= written || publisher.exited().is_some()
    })
    .await;
    assert!(publisher.exited().is_none(), "{}", publisher.log_text());
    let topic = |t: &str| format!("{}.{s}.{t}", src.prefix);
    let events =
        sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic("wanted"), CONVERGE).unwrap();
    assert_eq!(events.len(), 1);
    let topics = sinkfleet_testkit::kafka::topic_names(&brokers()).unwrap();
    for left_out in ["other", "keyless"] {
        assert!(
            !topics.contains(&topic(left_out)),
            "{left_out} was published"
        );
    }
    assert!(publisher.terminate(Duration::from_secs(30)).success());
    src.cleanup().await;
}

/// `slot.drop.on.stop`: a publisher stopped under load drops its slot
/// every time (its walsender may still hold the slot for a moment after
/// the replication connection closes), and exits 0 only when it did.
#[tokio::test(flavor = "multi_thread")]
async fn slot_drop_on_stop_drops_the_slot_every_time() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("dropstop").await;
    let s = src.schema.clone();
    src.sql(&format!(
        "CREATE TABLE {s}.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int);
         CREATE TABLE {s}.noise (v int);"
    ))
    .await;
    let pp = free_port();
    let config = src
        .publisher_config(&["events"], &brokers(), "", pp)
        .replace(
            "  plugin.name: pgoutput\n",
            // No snapshot: the table grows with every round.
            "  plugin.name: pgoutput\n  slot.drop.on.stop: true\n  snapshot.mode: no_data\n",
        );
    let slot_exists = format!(
        "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name = '{}'",
        src.slot
    );
    for round in 0..20 {
        let mut publisher =
            Worker::start(&format!("{}-{round}", src.prefix), "publish", &config, pp);
        wait_until("slot created", CONVERGE, || {
            futures_lite_block(src.confirmed_lsn()) > 0
        })
        .await;
        let (pool, insert) = (
            src.pool.clone(),
            // Large transactions: the walsender is busy decoding one when
            // the publisher stops, and notices the end of its connection
            // only after a while. Mostly of a table outside the
            // publication, which the walsender decodes but never sends:
            // load on the source, not on the broker.
            format!(
                "INSERT INTO {s}.noise SELECT g FROM generate_series(1, 20000) g;
                 INSERT INTO {s}.events (v) VALUES (1);"
            ),
        );
        let load = tokio::spawn(async move {
            loop {
                let _ = pool.execute(insert.as_str()).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let status = publisher.terminate(Duration::from_secs(60));
        load.abort();
        let left: Option<String> = sqlx::query_scalar(&slot_exists)
            .fetch_optional(&src.pool)
            .await
            .unwrap();
        assert!(
            status.success() && left.is_none(),
            "round {round}: exit {status:?}, slot left: {left:?}\n{}",
            publisher.log_text()
        );
    }
    src.cleanup().await;
}

/// Load on `<schema>.events (id, v)`: `batches` transactions of 50 inserts
/// plus an update of every 7th row, 40 ms apart.
fn events_load(src: &Source, batches: i64) -> tokio::task::JoinHandle<()> {
    let (pool, s) = (src.pool.clone(), src.schema.clone());
    tokio::spawn(async move {
        for batch in 0..batches {
            let sql = format!(
                "INSERT INTO {s}.events (id, v) SELECT g, 0 FROM generate_series({}, {}) g;
                 UPDATE {s}.events SET v = v + 1 WHERE id % 7 = {};",
                batch * 50,
                batch * 50 + 49,
                batch % 7
            );
            pool.execute(sql.as_str()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

/// Runs a future to completion from a sync closure (used in wait_until).
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// With the published tables idle, writes elsewhere still let the slot's
/// confirmed LSN advance (keepalives), so WAL does not pile up.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_slot_still_advances() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("idle").await;
    let s = &src.schema;
    src.sql(&format!("CREATE TABLE {s}.quiet (id int PRIMARY KEY); CREATE TABLE {s}.busy (id serial PRIMARY KEY, v text)"))
        .await;
    let pp = free_port();
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["quiet"], &brokers(), "", pp),
        pp,
    );
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    for _ in 0..20 {
        src.sql(&format!(
            "INSERT INTO {s}.busy (v) VALUES (repeat('x', 1000))"
        ))
        .await; // not published
    }
    let written = src.current_lsn().await;
    wait_until(
        "confirmed LSN passes unpublished writes",
        Duration::from_secs(45),
        || futures_lite_block(src.confirmed_lsn()) >= written,
    )
    .await;
    assert!(publisher.terminate(Duration::from_secs(30)).success());
    src.cleanup().await;
}

/// `heartbeat.action.query` runs on the source at every heartbeat: while
/// nothing else writes, the rows it inserts into a captured table keep
/// arriving in the target.
#[tokio::test(flavor = "multi_thread")]
async fn the_heartbeat_action_query_runs_at_every_heartbeat() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("beat").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.beats (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let properties = format!(
        "  heartbeat.interval.ms: \"1000\"\n  heartbeat.action.query: INSERT INTO {s}.beats DEFAULT VALUES\n"
    );
    let config = src.publisher_config_with(&["beats"], &brokers(), &properties, "", pp);
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    // The worker subscribes to topics the publisher creates.
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    let worker = src.sink_worker(&["beats"], wp);
    // The first three beats, as the source and the target hold them (the
    // query keeps inserting, so later ones may still be on their way).
    let first_three = |pool: &sqlx::PgPool, schema: &str| {
        let sql = format!("SELECT id, at::text FROM \"{schema}\".beats WHERE id <= 3 ORDER BY id");
        futures_lite_block(sqlx::query_as::<_, (i32, String)>(&sql).fetch_all(pool))
            .unwrap_or_default()
    };
    wait_until("three heartbeats in the target", CONVERGE, || {
        first_three(&src.target_pool, &src.target).len() == 3
    })
    .await;
    assert_eq!(
        first_three(&src.target_pool, &src.target),
        first_three(&src.pool, s)
    );
    src.finish(publisher, worker).await;
}

/// `column.exclude.list` (matched ignoring case): the excluded column is
/// in no record of the snapshot or the stream, not in a `before` image
/// (REPLICA IDENTITY FULL), and not in the table the sink creates.
#[tokio::test(flavor = "multi_thread")]
async fn an_excluded_column_never_reaches_kafka() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("colx").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.people (id int PRIMARY KEY, name text, ssn text);
         ALTER TABLE {s}.people REPLICA IDENTITY FULL;
         INSERT INTO {s}.people VALUES (1, 'ann', 'ssn-111'), (2, 'bob', 'ssn-222')"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let properties = format!("  column.exclude.list: {s}.People.SSN\n");
    let config = src.publisher_config_with(&["people"], &brokers(), &properties, "", pp);
    let publisher = Worker::start(&src.prefix, "publish", &config, pp);
    // The worker subscribes to topics the publisher creates.
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    let worker = src.sink_worker(&["people"], wp);
    src.wait_identical("people", "id, name").await;
    src.sql(&format!(
        "UPDATE {s}.people SET name = 'ann2', ssn = 'ssn-333' WHERE id = 1;
         INSERT INTO {s}.people VALUES (3, 'cy', 'ssn-444');
         DELETE FROM {s}.people WHERE id = 2"
    ))
    .await;
    src.wait_identical("people", "id, name").await;
    let topic = format!("{}.{}.people", src.prefix, src.schema);
    let records = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
    let mut ops = Vec::new();
    for r in &records {
        for part in [r.key.as_deref(), r.value.as_deref()].into_iter().flatten() {
            let text = String::from_utf8_lossy(part);
            assert!(!text.contains("ssn"), "{text}");
        }
        if let Some(v) = r.value.as_deref() {
            let v: serde_json::Value = serde_json::from_slice(v).unwrap();
            ops.push((
                v["payload"]["op"].clone(),
                v["payload"]["before"]["name"].clone(),
            ));
        }
    }
    // Snapshot, stream, and a `before` image that carries the other columns.
    assert!(
        ops.contains(&(serde_json::json!("r"), serde_json::Value::Null)),
        "{ops:?}"
    );
    assert!(
        ops.contains(&(serde_json::json!("u"), serde_json::json!("ann"))),
        "{ops:?}"
    );
    assert!(
        ops.contains(&(serde_json::json!("d"), serde_json::json!("bob"))),
        "{ops:?}"
    );
    let ssn_columns: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM information_schema.columns
          WHERE table_schema = '{}' AND table_name = 'people' AND column_name = 'ssn'",
        src.target
    ))
    .fetch_one(&src.target_pool)
    .await
    .unwrap();
    assert_eq!(ssn_columns, 0);
    src.finish(publisher, worker).await;
}

/// A captured table without a primary key is refused at start, by name.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_primary_key_is_refused() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("nopk").await;
    src.sql(&format!("CREATE TABLE {}.nopk (a int, b text)", src.schema))
        .await;
    let pp = free_port();
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["nopk"], &brokers(), "", pp),
        pp,
    );
    wait_until("publisher exits", CONVERGE, || publisher.exited().is_some()).await;
    assert_eq!(publisher.exited().and_then(|s| s.code()), Some(2));
    let log = publisher.log_text();
    assert!(
        log.contains(&format!("{}.nopk", src.schema)) && log.contains("no primary key"),
        "{log}"
    );
    assert_eq!(src.confirmed_lsn().await, 0, "no slot was created");
    src.cleanup().await;
}

/// The publisher is SIGKILLed under load and restarted: every change still
/// arrives (replays absorbed by the sink's versions).
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_publisher_loses_nothing() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("kill").await;
    let s = src.schema.clone();
    src.sql(&format!(
        "CREATE TABLE {s}.events (id bigint PRIMARY KEY, v int, note text DEFAULT 'n')"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let config = src.publisher_config(&["events"], &brokers(), "", pp);
    let mut first = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    let load = events_load(&src, 60);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    first.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await; // the server notices the dead walsender
    let second = Worker::start(&format!("{}-2", src.prefix), "publish", &config, pp);
    load.await.unwrap();
    let worker = src.sink_worker(&["events"], wp);
    src.wait_identical("events", "id, v, note").await;
    src.finish(second, worker).await;
}

/// A table added to `table.include.list` (filtered publication) is
/// captured from the restart on: the publication is altered before the
/// stream resumes. What the table held before is not backfilled (that
/// takes an incremental snapshot), and changes written while it was not
/// published stay unpublished, even those the slot had not confirmed yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_added_to_the_include_list_is_captured_after_a_restart() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("addtable").await;
    let s = src.schema.clone();
    src.sql(&format!(
        "CREATE TABLE {s}.first (id int PRIMARY KEY, v text);
         CREATE TABLE {s}.added (id int PRIMARY KEY, v text);
         INSERT INTO {s}.first VALUES (1, 'a');
         INSERT INTO {s}.added VALUES (1, 'before the publisher')"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["first"], &brokers(), "", pp),
        pp,
    );
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.added VALUES (2, 'while not captured')"
    ))
    .await;
    // Streaming (past the snapshot's hand-over to the real slot) before the stop.
    wait_slot_confirms_now(&src).await;
    assert!(publisher.terminate(Duration::from_secs(30)).success());

    let config = src.publisher_config(&["first", "added"], &brokers(), "", pp);
    let publisher = Worker::start(&format!("{}-2", src.prefix), "publish", &config, pp);
    wait_until("the publication covers the added table", CONVERGE, || {
        let pool = src.pool.clone();
        let sql = format!(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = '{}' AND tablename = 'added'",
            src.publication
        );
        futures_lite_block(async move {
            sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await.unwrap_or(0)
        }) == 1
    })
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.added VALUES (3, 'after the restart');
         UPDATE {s}.added SET v = 'updated after the restart' WHERE id = 1;
         UPDATE {s}.first SET v = 'b' WHERE id = 1"
    ))
    .await;
    let worker = src.sink_worker(&["first", "added"], wp);
    src.wait_identical("first", "id, v").await;
    let target = |sql: String| {
        let pool = src.target_pool.clone();
        futures_lite_block(async move {
            sqlx::query_as::<_, (i32, String)>(&sql)
                .fetch_all(&pool)
                .await
                .unwrap_or_default()
        })
    };
    let rows = format!("SELECT id, v FROM {}.added ORDER BY id", src.target);
    wait_until("the added table's new changes arrive", CONVERGE, || {
        target(rows.clone()).len() == 2
    })
    .await;
    assert_eq!(
        target(rows),
        [
            (1, "updated after the restart".to_owned()),
            (3, "after the restart".to_owned())
        ]
    );
    src.finish(publisher, worker).await;
}

/// A publisher SIGKILLed in the middle of its initial snapshot: the slot
/// never got its real name, so the next start takes the snapshot again
/// (instead of streaming on and missing the rows not yet read).
#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_killed_during_the_snapshot_snapshots_again() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("snapkill").await;
    let s = src.schema.clone();
    src.sql(&format!(
        "CREATE TABLE {s}.big (id bigint PRIMARY KEY, note text);
         INSERT INTO {s}.big SELECT g, repeat('x', 50) FROM generate_series(1, 60000) g;"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let config = src.publisher_config(&["big"], &brokers(), "", pp);
    let mut first = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("snapshot under way", CONVERGE, || {
        first.metric("sinkfleet_publisher_snapshot_rows_done") > 1000.0
    })
    .await;
    first.kill9();
    assert_eq!(
        src.confirmed_lsn().await,
        0,
        "no slot under the real name yet"
    );
    tokio::time::sleep(Duration::from_secs(1)).await; // the server notices the dead walsender
    let second = Worker::start(&format!("{}-2", src.prefix), "publish", &config, pp);
    src.sql(&format!(
        "UPDATE {s}.big SET note = 'after' WHERE id % 1000 = 0"
    ))
    .await;
    let worker = src.sink_worker(&["big"], wp);
    src.wait_identical("big", "id, note").await;
    src.finish(second, worker).await;
}

/// The server ends the replication connection under load (here: its
/// walsender is terminated, as on a failover or a restart): the publisher
/// reconnects from the confirmed LSN by itself and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_replication_connection_is_resumed() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("drop").await;
    let s = src.schema.clone();
    src.sql(&format!(
        "CREATE TABLE {s}.events (id bigint PRIMARY KEY, v int)"
    ))
    .await;
    let (pp, wp) = (free_port(), free_port());
    let config = src.publisher_config(&["events"], &brokers(), "", pp);
    let mut publisher = Worker::start(&src.prefix, "publish", &config, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    let load = events_load(&src, 40);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let terminated: Option<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(&src.slot)
    .fetch_one(&src.pool)
    .await
    .unwrap();
    assert_eq!(terminated, Some(true), "the walsender was running");
    load.await.unwrap();
    let worker = src.sink_worker(&["events"], wp);
    src.wait_identical("events", "id, v").await;
    assert!(publisher.metric("sinkfleet_publisher_reconnects_total") >= 1.0);
    assert!(publisher.exited().is_none(), "{}", publisher.log_text());
    src.finish(publisher, worker).await;
}

/// With the broker gone, nothing is acknowledged, so the slot's confirmed
/// LSN stays behind the changes that could not be delivered.
#[tokio::test(flavor = "multi_thread")]
async fn the_confirmed_lsn_never_passes_unacknowledged_events() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("ack").await;
    let s = &src.schema;
    src.sql(&format!("CREATE TABLE {s}.t (id int PRIMARY KEY, v text)"))
        .await;
    let topic = format!("{}.{s}.t", src.prefix);
    let cluster = MockCluster::start(&[(&topic, 1)]);
    let mock = cluster.bootstrap.clone();
    let pp = free_port();
    let extra = "  create_topics: false\n  kafka_properties: { message.timeout.ms: \"120000\" }";
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["t"], &mock, extra, pp),
        pp,
    );
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    src.sql(&format!("INSERT INTO {s}.t VALUES (1, 'delivered')"))
        .await;
    let delivered = src.current_lsn().await;
    wait_until("delivered change confirmed", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) >= delivered
    })
    .await;

    drop(cluster); // the broker goes away
    let before = src.confirmed_lsn().await;
    src.sql(&format!("INSERT INTO {s}.t VALUES (2, 'stuck')"))
        .await;
    let stuck = src.current_lsn().await;
    // Longer than a keepalive round (wal_sender_timeout / 2): keepalives
    // must not move the slot past the undelivered commit either.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = src.confirmed_lsn().await;
    assert!(
        after < stuck,
        "confirmed {after:X} passed the undelivered commit (WAL now {stuck:X})"
    );
    assert!(after >= before);
    publisher.kill9();
    src.cleanup().await;
}

/// A transaction that made its change before the slot's consistent point
/// and committed after it carries `(commit_lsn > S, change_lsn < S)`: the
/// sink must apply it over the snapshot row `(S, 0)`, not reject it as
/// stale (the reason versions put the commit LSN first).
///
/// Postgres' snapshot builder makes this deterministic: a transaction
/// running when slot creation starts (A) is waited for, then every
/// transaction running at that point (B); one that starts after that (T)
/// does not block the consistent point but is still decoded in full.
/// CHECKPOINT logs the running-transactions records the builder waits for.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_straddling_the_snapshot_point_is_applied() {
    let _alone = SOURCE_LOAD.write().await;
    use sqlx::Connection;
    let src = Source::new("straddle").await;
    let s = src.schema.clone();
    src.sql(&format!(
        "CREATE TABLE {s}.acct (id int PRIMARY KEY, balance int); CREATE TABLE {s}.other (id int);
         INSERT INTO {s}.acct VALUES (1, 100), (2, 200);"
    ))
    .await;
    let mut a = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let mut b = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    let mut t = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    a.execute(format!("BEGIN; INSERT INTO {s}.other VALUES (1)").as_str())
        .await
        .unwrap();

    let (pp, wp) = (free_port(), free_port());
    let publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["acct"], &brokers(), "", pp),
        pp,
    );
    // Slot creation is now waiting for A (its slot row exists already,
    // under the staging name it has until the snapshot is complete).
    let slot_seen = format!(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = '{}_snap'",
        src.slot
    );
    wait_until("slot creation started", CONVERGE, || {
        futures_lite_block(async {
            sqlx::query_scalar::<_, i32>(&slot_seen.clone())
                .fetch_optional(&src.pool)
                .await
        })
        .ok()
        .flatten()
        .is_some()
    })
    .await;
    b.execute(format!("BEGIN; INSERT INTO {s}.other VALUES (2)").as_str())
        .await
        .unwrap();
    a.execute("COMMIT").await.unwrap();
    src.sql("CHECKPOINT").await; // builder: A done -> waits for B
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.execute(format!("BEGIN; UPDATE {s}.acct SET balance = 150 WHERE id = 1").as_str())
        .await
        .unwrap();
    b.execute("COMMIT").await.unwrap();
    src.sql("CHECKPOINT").await; // builder: B done -> consistent, T still open
    wait_until("snapshot complete", CONVERGE, || {
        publisher.log_text().contains("snapshot complete")
    })
    .await;
    t.execute("COMMIT").await.unwrap(); // commits after the consistent point

    let worker = src.sink_worker(&["acct"], wp);
    src.wait_identical("acct", "id, balance").await;
    let sql = format!("SELECT balance FROM \"{}\".acct WHERE id = 1", src.target);
    let balance: i32 = sqlx::query_scalar(&sql).fetch_one(&src.pool).await.unwrap();
    assert_eq!(balance, 150);
    // And the event really straddled: change LSN < consistent point < commit LSN.
    let log = publisher.log_text();
    let point = log
        .split("consistent_point=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(sinkfleet_pg_publisher::control::parse_lsn)
        .unwrap_or_else(|| panic!("no consistent point in the log: {log}"));
    let topic = format!("{}.{}.acct", src.prefix, src.schema);
    // The sink applied it, so it is in the topic, below its end offsets.
    let events = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
    let update: serde_json::Value = events
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r.value.as_deref()?).ok())
        .find(|v| v["payload"]["op"] == "u")
        .unwrap_or_else(|| {
            let ops: Vec<String> = events
                .iter()
                .map(|r| {
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
                })
                .collect();
            panic!("no update event among {} records: {ops:?}", events.len())
        });
    let sequence: Vec<u64> = serde_json::from_str::<Vec<String>>(
        update["payload"]["source"]["sequence"].as_str().unwrap(),
    )
    .unwrap()
    .iter()
    .map(|x| x.parse().unwrap())
    .collect();
    assert!(
        sequence[1] < point && point < sequence[0],
        "expected change {} < consistent point {point} < commit {}",
        sequence[1],
        sequence[0]
    );
    src.finish(publisher, worker).await;
}

/// The source over TLS, as a managed Postgres demands: with `verify-ca` and
/// the server's CA the publisher streams, and the slot's walsender reports
/// an encrypted connection; without the CA (only public roots) it refuses
/// the server's certificate at start and creates nothing. (`verify-full`
/// needs a DNS host name; the tests run on 127.0.0.1 only.)
#[tokio::test(flavor = "multi_thread")]
async fn the_source_is_read_over_verified_tls() {
    let _shared = SOURCE_LOAD.read().await;
    let ca = sinkfleet_testkit::services::pg_ca();
    let src = Source::new("tls").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text); INSERT INTO {s}.t VALUES (1, 'snapshot')"
    ))
    .await;
    let with_tls = |config: String, props: &str| {
        config.replace(
            "  plugin.name: pgoutput\n",
            &format!("  plugin.name: pgoutput\n{props}"),
        )
    };

    let pp = free_port();
    let unverifiable = with_tls(
        src.publisher_config(&["t"], &brokers(), "", pp),
        "  database.sslmode: verify-ca\n",
    );
    let mut refused = Worker::start(
        &format!("{}-noca", src.prefix),
        "publish",
        &unverifiable,
        pp,
    );
    wait_until("publisher without the CA exits", CONVERGE, || {
        refused.exited().is_some()
    })
    .await;
    assert!(!refused.exited().is_some_and(|s| s.success()));
    assert!(
        refused.log_text().to_lowercase().contains("certificate"),
        "{}",
        refused.log_text()
    );
    assert_eq!(src.confirmed_lsn().await, 0, "no slot was created");

    let pp = free_port();
    let verified = with_tls(
        src.publisher_config(&["t"], &brokers(), "", pp),
        &format!("  database.sslmode: verify-ca\n  database.sslrootcert: {ca}\n"),
    );
    let mut publisher = Worker::start(&src.prefix, "publish", &verified, pp);
    wait_until("slot created", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) > 0
    })
    .await;
    src.sql(&format!("INSERT INTO {s}.t VALUES (2, 'streamed')"))
        .await;
    let written = src.current_lsn().await;
    wait_until("the insert is acknowledged", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) >= written
    })
    .await;
    let encrypted: Option<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_replication_slots r JOIN pg_stat_ssl s ON s.pid = r.active_pid
          WHERE r.slot_name = $1",
    )
    .bind(&src.slot)
    .fetch_optional(&src.pool)
    .await
    .unwrap();
    assert_eq!(encrypted, Some(true), "the walsender's connection uses TLS");
    assert!(publisher.terminate(Duration::from_secs(30)).success());
    src.cleanup().await;
}

/// A record to decode: topic, key, value.
type Framed = (String, Option<Vec<u8>>, Option<Vec<u8>>);

/// A publisher of `src`'s `orders` (200 rows) with the connector
/// `properties`, once its snapshot is published; `port` serves its metrics.
async fn publish_orders(src: &Source, properties: &str, port: u16) -> Worker {
    let publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config_with(&["orders"], &brokers(), properties, "", port),
        port,
    );
    wait_until("snapshot published", CONVERGE, || {
        publisher.metric("sinkfleet_publisher_snapshot_rows_done") >= 200.0
    })
    .await;
    publisher
}

/// The changes a converter round trip streams after the snapshot of
/// `orders (id, amount, note, …)`: updates, a transaction of three
/// statements, a column (`tier`) added mid-stream, and changes after it,
/// among them a row inserted with `inserted_amount`.
async fn stream_orders_changes(src: &Source, inserted_amount: i32) {
    let s = &src.schema;
    src.sql(&format!(
        "UPDATE {s}.orders SET amount = amount + 1 WHERE id % 10 = 0"
    ))
    .await;
    src.sql(&format!(
        "BEGIN;
         INSERT INTO {s}.orders (id, amount, note) VALUES (1001, 5, 'tx');
         UPDATE {s}.orders SET note = 'tx2' WHERE id = 1001;
         DELETE FROM {s}.orders WHERE id = 5;
         COMMIT;"
    ))
    .await;
    src.sql(&format!("ALTER TABLE {s}.orders ADD COLUMN tier text"))
        .await;
    src.sql(&format!(
        "UPDATE {s}.orders SET tier = 'gold' WHERE id <= 50"
    ))
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.orders (id, amount, note, tier) VALUES (2000, {inserted_amount}, 'after alter', 'silver');
         DELETE FROM {s}.orders WHERE id BETWEEN 100 AND 120"
    ))
    .await;
}

/// Waits until the slot has confirmed everything committed so far: Kafka
/// acknowledged every event of it.
async fn wait_slot_confirms_now(src: &Source) {
    let end = src.current_lsn().await;
    wait_until("the slot confirms the last commit", CONVERGE, || {
        futures_lite_block(src.confirmed_lsn()) >= end
    })
    .await;
}

/// Every record of `topic`, framed for the Python deserializers.
fn read_framed(topic: &str) -> Vec<Framed> {
    sinkfleet_testkit::kafka::read_to_end(&brokers(), topic, CONVERGE)
        .unwrap()
        .into_iter()
        .map(|r| (topic.to_owned(), r.key, r.value))
        .collect()
}

/// Decodes framed Avro records with Confluent's own `AvroDeserializer`
/// (Python `confluent-kafka`, schemas fetched by id from the registry):
/// one JSON line per `(topic, key, value)`, `{"key", "value"}` decoded.
fn confluent_decode(records: &[Framed]) -> Vec<serde_json::Value> {
    use base64::Engine;
    use std::io::Write;
    let b64 = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
    };
    let input: String = records
        .iter()
        .map(|(t, k, v)| {
            format!(
                "{}\n",
                serde_json::json!({"topic": t, "key": b64(k), "value": b64(v)})
            )
        })
        .collect();
    const SCRIPT: &str = r#"
import base64, json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
de = AvroDeserializer(SchemaRegistryClient({"url": sys.argv[1]}))
for line in sys.stdin:
    r = json.loads(line)
    out = {}
    for part, field in (("key", MessageField.KEY), ("value", MessageField.VALUE)):
        raw = r[part]
        out[part] = None if raw is None else de(base64.b64decode(raw), SerializationContext(r["topic"], field))
    print(json.dumps(out, default=str))
"#;
    let python = sinkfleet_testkit::services::serializers_python_required();
    let mut child = std::process::Command::new(python)
        .args(["-c", SCRIPT, &common::avro::registry_url()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "AvroDeserializer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The publisher with Confluent's AvroConverter for keys and values
/// (transaction metadata too) and a worker reading Avro through the
/// registry: snapshot, streamed changes, a column added mid-stream (the
/// subject's next schema version), and the target ends identical. The
/// records are Confluent-framed and Confluent's own deserializer reads them.
#[tokio::test(flavor = "multi_thread")]
async fn avro_source_and_target_end_identical() {
    let _shared = SOURCE_LOAD.read().await;
    let src = Source::new("avro").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.orders (id bigint PRIMARY KEY, amount numeric(12,2), placed_at timestamp, paid_at timestamptz,
                                  note text, body text);
         INSERT INTO {s}.orders SELECT g, g * -1.25, '2024-01-01'::timestamp + g * interval '1 min', now(), 'n' || g,
                                       repeat(md5(g::text), 3) FROM generate_series(1, 200) g;"
    ))
    .await;
    // Over TLS with basic auth (both sides) where the test registry's TLS
    // listener is known; it serves the same schemas as the plain one.
    let (registry, publisher_tls, worker_tls) = match common::avro::tls_registry() {
        Some(tls) => {
            let mut publisher = String::new();
            for part in ["key", "value"] {
                publisher += &format!(
                    "  {part}.converter.basic.auth.credentials.source: USER_INFO
  {part}.converter.basic.auth.user.info: \"{}:{}\"
  {part}.converter.schema.registry.ssl.truststore.location: {}
  {part}.converter.schema.registry.ssl.truststore.type: PEM
",
                    tls.user, tls.password, tls.ca
                );
            }
            let worker = format!(
                ", username: {}, password: \"{}\", ca_file: {}",
                tls.user, tls.password, tls.ca
            );
            (tls.url, publisher, worker)
        }
        None => (common::avro::registry_url(), String::new(), String::new()),
    };
    let properties = format!(
        "  key.converter: io.confluent.connect.avro.AvroConverter
  key.converter.schema.registry.url: {registry}
  value.converter: io.confluent.connect.avro.AvroConverter
  value.converter.schema.registry.url: {registry}
{publisher_tls}  provide.transaction.metadata: true
"
    );
    let (pp, wp) = (free_port(), free_port());
    let publisher = publish_orders(&src, &properties, pp).await;
    let topic = format!("{}.{s}.orders", src.prefix);
    let worker = src.sink_worker_with(
        &["orders"],
        wp,
        &format!(
            "decode:
  formats:
    - {{ topics: {topic}, key: avro, value: avro }}
  registry: {{ url: \"{registry}\"{worker_tls} }}
"
        ),
    );

    src.sql(&format!(
        "UPDATE {s}.orders SET amount = amount + 1 WHERE id % 10 = 0"
    ))
    .await;
    src.sql(&format!(
        "BEGIN;
         INSERT INTO {s}.orders (id, amount, note, body) VALUES (1001, 5, 'tx', 'b');
         UPDATE {s}.orders SET note = 'tx2' WHERE id = 1001;
         DELETE FROM {s}.orders WHERE id = 5;
         COMMIT;"
    ))
    .await;
    src.sql(&format!("ALTER TABLE {s}.orders ADD COLUMN tier text"))
        .await;
    src.sql(&format!(
        "UPDATE {s}.orders SET tier = 'gold' WHERE id <= 50"
    ))
    .await;
    src.sql(&format!(
        "INSERT INTO {s}.orders (id, amount, note, tier) VALUES (2000, 1, 'after alter', 'silver');
         DELETE FROM {s}.orders WHERE id BETWEEN 100 AND 120"
    ))
    .await;
    src.wait_identical("orders", "id, amount, placed_at, paid_at, note, body, tier")
        .await;
    wait_slot_confirms_now(&src).await;

    // Every key and value is Confluent-framed; the values name two schemas
    // (before and after the new column), registered as the subject's
    // versions, the second with `tier`.
    let records = sinkfleet_testkit::kafka::read_to_end(&brokers(), &topic, CONVERGE).unwrap();
    let id = |b: &[u8]| {
        assert_eq!(b[0], 0, "magic byte");
        u32::from_be_bytes([b[1], b[2], b[3], b[4]])
    };
    let mut value_ids = std::collections::BTreeSet::new();
    for r in &records {
        id(r.key.as_deref().unwrap());
        if let Some(v) = &r.value {
            value_ids.insert(id(v));
        }
    }
    assert_eq!(value_ids.len(), 2, "{value_ids:?}");
    let client = common::avro::registry();
    let mut with_tier = 0;
    for id in &value_ids {
        match client.schema(*id).await.unwrap() {
            sinkfleet_core::debezium::RegistrySchema::Found { text, .. } => {
                with_tier += usize::from(text.contains("\"tier\""));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(with_tier, 1);

    // Confluent's deserializer reads them back: the last insert, and a
    // transaction END record.
    let last = records
        .iter()
        .filter(|r| r.value.is_some())
        .map(|r| (topic.clone(), r.key.clone(), r.value.clone()))
        .collect::<Vec<_>>();
    let decoded = confluent_decode(&last);
    let inserted = decoded
        .iter()
        .find(|d| d["value"]["op"] == "c" && d["key"]["id"] == 2000)
        .expect("the insert after the new column");
    assert_eq!(inserted["value"]["after"]["tier"], "silver");
    assert_eq!(inserted["value"]["after"]["amount"], "1.00");
    let snapshot_row = decoded
        .iter()
        .find(|d| d["value"]["op"] == "r" && d["key"]["id"] == 7)
        .unwrap();
    assert_eq!(snapshot_row["value"]["after"]["amount"], "-8.75");
    let tx_topic = format!("{}.transaction", src.prefix);
    let tx = sinkfleet_testkit::kafka::read_to_end(&brokers(), &tx_topic, CONVERGE).unwrap();
    let tx: Vec<_> = tx
        .iter()
        .map(|r| (tx_topic.clone(), r.key.clone(), r.value.clone()))
        .collect();
    let tx = confluent_decode(&tx);
    assert!(tx.iter().any(|d| d["value"]["status"] == "END"), "{tx:?}");
    src.finish(publisher, worker).await;
}
