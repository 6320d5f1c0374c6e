//! End to end: Debezium events on a real broker → `sinkfleet run` → a real
//! Postgres. Assertions are on final table contents, committed offsets and
//! the dead-letter topic.

use crate::common;

use common::{Pipeline, customers, free_port, wait_until};
use serde_json::json;
use sinkfleet_testkit::kafka::{self, Record};
use sinkfleet_testkit::workload::{self, Options};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

/// `(id, version, deleted, name, bio)`.
type SnapshotRow = (i64, String, bool, Option<String>, Option<String>);

async fn converges(name: &str, delete_mode: &str, tls: bool) {
    let p = Pipeline::new(name, 3).await;
    let w = workload::generate(&Options {
        keys: 300,
        changes: 4_000,
        seed: 11,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let port = free_port();
    let mut config = p.config("", &format!("    delete_mode: {delete_mode}"), port);
    if tls {
        // A target that demands TLS: the worker verifies the test CA.
        let ca = sinkfleet_testkit::services::pg_ca();
        config = config.replace(
            &format!("url: {}", p.pg_url),
            &format!(
                "url: {}?sslmode=verify-ca&sslrootcert={ca}&application_name={}",
                p.pg_url, p.schema
            ),
        );
        assert!(config.contains("sslmode=verify-ca"));
    }
    let mut worker = p.spawn("w", &config, port);
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    if tls {
        let (encrypted, plain): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.application_name = $1",
        )
        .bind(&p.schema)
        .fetch_one(&pool)
        .await
        .expect("pg_stat_ssl");
        assert!(
            encrypted > 0 && plain == 0,
            "the worker's connections use TLS: {encrypted} encrypted, {plain} plain"
        );
    }
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert!(
        worker.metric("sinkfleet_records_skipped_stale_total") > 0.0,
        "duplicates and replays were skipped as stale"
    );
    assert!(worker.terminate(Duration::from_secs(30)).success());
}

/// Creates, updates, TOAST-partial updates, deletes with tombstones,
/// re-creates, a new column mid-stream, duplicates, a replayed range and
/// swapped updates converge to the expected state, offsets to the end.
#[tokio::test(flavor = "multi_thread")]
async fn workload_converges_soft_deletes() {
    converges("soft", "soft", false).await;
}

/// The same with hard deletes, writing to Postgres over TLS (`verify-ca`
/// against the test CA): the worker would fail to connect without TLS.
#[tokio::test(flavor = "multi_thread")]
async fn workload_converges_hard_deletes_over_tls() {
    converges("hard", "hard", true).await;
}

/// Replaying the whole topic into a converged target (a new consumer group
/// from offset 0) leaves every row, version included, as it was.
#[tokio::test(flavor = "multi_thread")]
async fn whole_topic_replay_is_harmless() {
    let p = Pipeline::new("replay", 2).await;
    let w = workload::generate(&Options {
        keys: 100,
        changes: 1_500,
        seed: 3,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let pool = p.pool().await;
    let snapshot = |pool: sqlx::PgPool, schema: String| async move {
        let sql = format!(
            "SELECT id, __sinkfleet_version::text, __sinkfleet_deleted, name, bio FROM \"{schema}\".customers ORDER BY id"
        );
        let rows: Vec<SnapshotRow> = sqlx::query_as(&sql).fetch_all(&pool).await.unwrap();
        rows
    };
    let port = free_port();
    let mut first = p.spawn("first", &p.config("", "", port), port);
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert!(first.terminate(Duration::from_secs(30)).success());
    let before = snapshot(pool.clone(), p.schema.clone()).await;

    let replay_group = format!("{}-replay", p.group);
    let config = p.config("", "", port).replace(&p.group, &replay_group);
    let mut second = p.spawn("second", &config, port);
    p.wait_committed_to_end(&replay_group, CONVERGE).await;
    assert!(
        second.metric("sinkfleet_records_applied_total") == 0.0,
        "a replay applies nothing"
    );
    assert!(second.terminate(Duration::from_secs(30)).success());
    assert_eq!(snapshot(pool.clone(), p.schema.clone()).await, before);
}

/// Undecodable and unappliable records go to the dead-letter topic with
/// headers and leave no trace in the target (the column an unappliable
/// record's extra field asked for does not stay); everything else flows and
/// offsets reach the end.
#[tokio::test(flavor = "multi_thread")]
async fn poison_records_go_to_the_dead_letter_topic() {
    let p = Pipeline::new("poison", 1).await;
    let ev =
        |key: serde_json::Value, id: i64, lsn: u64, n: serde_json::Value, extra: Option<i64>| {
            let mut after = json!({"id": id, "name": format!("n{id}"), "n": n});
            if let Some(extra) = extra {
                after["extra"] = json!(extra);
            }
            Record {
            key: Some(key.to_string().into_bytes()),
            value: Some(
                json!({"op": "c", "source": {"schema": "public", "table": "customers", "lsn": lsn},
                       "after": after})
                .to_string()
                .into_bytes(),
            ),
        }
        };
    let id = |id: i64| json!({ "id": id });
    p.produce(&[
        ev(id(1), 1, 10, json!(1), None),
        Record {
            key: Some(id(2).to_string().into_bytes()),
            value: Some(b"{not json".to_vec()),
        },
        // `n` is a bigint column by now; `extra` would be a new column.
        ev(id(3), 3, 30, json!("not a number"), Some(3)),
        ev(id(4), 4, 40, json!(4), None),
        // Keyed by another column than the table's key.
        ev(json!({"name": "n5"}), 5, 50, json!(5), None),
    ])
    .await;
    let port = free_port();
    let mut worker = p.spawn("w", &p.config("", "", port), port);
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    let pool = p.pool().await;
    let sql = format!("SELECT id FROM \"{}\".customers ORDER BY id", p.schema);
    let ids: Vec<i64> = sqlx::query_scalar(&sql).fetch_all(&pool).await.unwrap();
    assert_eq!(ids, vec![1, 4]);
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = 'customers' ORDER BY ordinal_position",
    )
    .bind(&p.schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        columns,
        [
            "id",
            "n",
            "name",
            "__sinkfleet_version",
            "__sinkfleet_deleted"
        ],
        "a dead-lettered record adds no column"
    );

    let dead = kafka::read_to_end(&p.brokers, &p.dlq, CONVERGE).unwrap();
    assert_eq!(dead.len(), 3, "{dead:?}");
    let by_offset = |o: &str| {
        dead.iter()
            .find(|r| r.headers["sinkfleet.original.offset"] == o)
            .unwrap()
    };
    let malformed = by_offset("1");
    assert_eq!(malformed.headers["sinkfleet.error.class"], "decode");
    assert_eq!(malformed.headers["sinkfleet.original.topic"], p.topic);
    assert_eq!(malformed.headers["sinkfleet.original.partition"], "0");
    assert_eq!(malformed.value.as_deref(), Some(&b"{not json"[..]));
    let unappliable = by_offset("2");
    assert_eq!(unappliable.headers["sinkfleet.error.class"], "apply");
    assert!(
        unappliable.headers["sinkfleet.error.message"].contains("22P02"),
        "{:?}",
        unappliable.headers
    );
    let miskeyed = by_offset("4");
    assert_eq!(miskeyed.headers["sinkfleet.error.class"], "schema");
    assert!(
        miskeyed.headers["sinkfleet.error.message"].contains("keyed by (name)"),
        "{:?}",
        miskeyed.headers
    );
    assert_eq!(worker.metric("sinkfleet_records_dead_lettered_total"), 3.0);
    assert!(worker.terminate(Duration::from_secs(30)).success());
    // Each one is logged, decode failures like the others.
    let log = worker.log_text();
    for class in ["decode", "apply", "schema"] {
        assert!(
            log.lines()
                .any(|l| l.contains("record dead-lettered")
                    && l.contains(&format!("class=\"{class}\""))),
            "no {class} dead letter logged:\n{log}"
        );
    }
}

/// SIGTERM mid-stream drains, commits what is durable and exits 0; a
/// restarted worker picks up from there and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_restart_mid_stream_loses_nothing() {
    let p = Pipeline::new("restart", 3).await;
    let w = workload::generate(&Options {
        keys: 500,
        changes: 6_000,
        seed: 5,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let total: i64 = p.end_offsets().values().sum();
    // Slow the sink down so the stop lands mid-stream.
    let slow = "  rate_limit: { rows_per_second: 1500 }";
    let port = free_port();
    let mut first = p.spawn("first", &p.config(slow, "", port), port);
    wait_until("some progress", CONVERGE, || {
        first.metric("sinkfleet_committed_offset") > 500.0
    })
    .await;
    assert!(
        first.terminate(Duration::from_secs(30)).success(),
        "clean exit: {}",
        first.log_text()
    );
    let committed: i64 = p.committed(&p.group).values().filter(|o| **o > 0).sum();
    assert!(
        committed > 0 && committed < total,
        "stopped mid-stream: committed {committed} of {total}"
    );

    let port = free_port();
    let mut second = p.spawn("second", &p.config("", "", port), port);
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert!(second.terminate(Duration::from_secs(30)).success());
}

/// A second worker joining the group takes over some partitions; together
/// they converge and commit everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_worker_joins_and_partitions_split() {
    let p = Pipeline::new("scale", 4).await;
    let w = workload::generate(&Options {
        keys: 400,
        changes: 6_000,
        seed: 9,
        ..Options::default()
    });
    p.produce(&w.records).await;
    let slow = "  rate_limit: { rows_per_second: 1500 }";
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = p.spawn("a", &p.config(slow, "", port_a), port_a);
    wait_until("worker a consumes", CONVERGE, || {
        a.metric("sinkfleet_records_in_total") > 0.0
    })
    .await;
    let mut b = p.spawn("b", &p.config(slow, "", port_b), port_b);
    wait_until("worker b gets partitions and consumes", CONVERGE, || {
        b.metric("sinkfleet_records_in_total") > 0.0
    })
    .await;
    assert!(
        a.metric("sinkfleet_rebalances_total{kind=\"revoke\"}") >= 1.0,
        "a gave partitions away"
    );
    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    assert!(a.terminate(Duration::from_secs(30)).success());
    assert!(b.terminate(Duration::from_secs(30)).success());
    assert!(customers(&pool, &p.schema).await == w.expected);
}

/// `worker.writers: 2` puts two writes in flight at once, on two target
/// connections: a statement trigger on the target table that takes 0.2 s
/// logs each write's backend and interval, and two writes from different
/// backends overlap. Everything still converges and is committed.
///
/// Both writers' first batches create the same schemas: an event trigger
/// makes each `CREATE SCHEMA` of this test take 0.5 s before it commits,
/// so the second writer's arrives while the first is uncommitted. The DDL
/// lock makes it wait and find the schema; without the lock it fails and
/// the batch is retried, which this test refuses.
#[tokio::test(flavor = "multi_thread")]
async fn two_writers_write_at_once_and_converge() {
    let p = Pipeline::new("writers", 4).await;
    let w = workload::generate(&Options {
        keys: 300,
        changes: 3_000,
        seed: 5,
        ..Options::default()
    });
    let pool = p.pool().await;
    let probe = format!("{}_probe", p.schema);
    let slow_ddl = format!("{}_slow_ddl", p.schema);
    for statement in [
        format!("CREATE SCHEMA {probe}"),
        format!(
            "CREATE FUNCTION {probe}.slow_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                           WHERE object_identity IN ('{s}', '{s}_meta')) THEN
                 PERFORM pg_sleep(0.5);
               END IF;
             END $$",
            s = p.schema
        ),
        format!(
            "CREATE EVENT TRIGGER {slow_ddl} ON ddl_command_end WHEN TAG IN ('CREATE SCHEMA')
             EXECUTE FUNCTION {probe}.slow_ddl()"
        ),
    ] {
        sqlx::raw_sql(&statement)
            .execute(&pool)
            .await
            .expect("installing the DDL probe");
    }
    let (first, rest) = w.records.split_at(200);
    p.produce(first).await;
    let port = free_port();
    let config = p.config("  writers: 2", "", port);
    let mut worker = p.spawn("w", &config, port);
    // The sink creates the table from the first events; the probe needs it.
    let deadline = std::time::Instant::now() + CONVERGE;
    let table = format!("{}.customers", p.schema);
    loop {
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&pool)
            .await
            .expect("to_regclass");
        if exists.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink never created {table}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for statement in [
        format!("CREATE TABLE {probe}.writes (pid int, started timestamptz, ended timestamptz)"),
        format!(
            "CREATE FUNCTION {probe}.slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
             DECLARE t0 timestamptz := clock_timestamp();
             BEGIN
               PERFORM pg_sleep(0.2);
               INSERT INTO {probe}.writes VALUES (pg_backend_pid(), t0, clock_timestamp());
               RETURN NULL;
             END $$"
        ),
        format!(
            "CREATE TRIGGER slow_write BEFORE INSERT ON {}.customers
             FOR EACH STATEMENT EXECUTE FUNCTION {probe}.slow_write()",
            p.schema
        ),
    ] {
        sqlx::raw_sql(&statement)
            .execute(&pool)
            .await
            .expect("installing the probe");
    }
    p.produce(rest).await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    let (writes, overlapping): (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM {probe}.writes),
                (SELECT count(*) FROM {probe}.writes a JOIN {probe}.writes b
                    ON a.pid < b.pid AND a.started < b.ended AND b.started < a.ended)"
    ))
    .fetch_one(&pool)
    .await
    .expect("reading the probe");
    assert!(
        overlapping > 0,
        "two writes were in flight at once ({writes} writes logged, none overlapping)"
    );
    sqlx::raw_sql(&format!("DROP EVENT TRIGGER {slow_ddl}"))
        .execute(&pool)
        .await
        .expect("dropping the DDL probe");
    assert_eq!(
        worker.metric("sinkfleet_write_retries_total"),
        0.0,
        "{}",
        worker.log_text()
    );
    assert!(worker.terminate(Duration::from_secs(30)).success());
}
