//! Exactly once without versions: a plain topic versioned by the Kafka
//! offset, kept as history, offsets stored in the target in the same
//! transaction as the rows (`offset_storage: target`).
//!
//! * Workers SIGKILLed again and again: every record lands exactly once,
//!   and the target's offsets reach the end of every partition, and so do
//!   Kafka's, even where the last owner starts at the end.
//! * A zombie: a worker frozen (SIGSTOP) with a write in flight, past the
//!   session timeout, while another takes its partition over. Thawed, its
//!   write is fenced: it commits nothing, and the new owner's rows stand.
//!
//! Runs on librdkafka's mock cluster (it evicts killed and frozen members
//! after the session timeout; tansu does not).

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::{Pipeline, Worker, free_port, wait_until};
use sinkfleet_testkit::kafka::Record;
use sqlx::PgPool;
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(240);

/// Plain events `0..n` of table `public.events`, 200 keys: the sequence
/// number says which record a row came from.
fn events(range: std::ops::Range<u32>) -> Vec<Record> {
    range
        .map(|seq| {
            let id = seq % 200;
            let value = serde_json::json!({
                "op": "c",
                "source": {"schema": "public", "table": "events"},
                "after": {"id": id, "seq": seq},
            });
            Record {
                key: Some(serde_json::json!({"id": id}).to_string().into_bytes()),
                value: Some(value.to_string().into_bytes()),
            }
        })
        .collect()
}

/// The config: history only, offsets in the target, versions from offsets.
fn config(p: &Pipeline, extra_worker: &str, extra_sink: &str, port: u16) -> String {
    let sink = format!(
        "    offset_storage: target
    history: {{ tables: [\"public.events\"], keep_current: false }}
{extra_sink}"
    );
    p.config(extra_worker, &sink, port) + "decode:\n  version: { source: kafka_offset }\n"
}

/// `(rows, distinct sequence numbers, highest sequence number)` of the
/// history table (zeros before it exists).
async fn landed(pool: &PgPool, schema: &str) -> (i64, i64, i64) {
    let sql = format!(
        "SELECT count(*), count(DISTINCT seq), coalesce(max(seq), -1) FROM \"{schema}\".events__history"
    );
    sqlx::query_as(&sql)
        .fetch_one(pool)
        .await
        .unwrap_or((0, 0, -1))
}

async fn wait_landed(pool: &PgPool, schema: &str, n: i64) {
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let got = landed(pool, schema).await;
        if got.0 >= n {
            assert_eq!(got, (n, n, n - 1), "every record exactly once");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {got:?} of {n} records landed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `next_offset` per partition as the target stored it for the group.
async fn stored_offsets(pool: &PgPool, p: &Pipeline) -> std::collections::HashMap<i32, i64> {
    let sql = format!(
        "SELECT partition, next_offset FROM \"{}_meta\".offsets WHERE group_id = $1 AND topic = $2",
        p.schema
    );
    let rows: Vec<(i32, Option<i64>)> = sqlx::query_as(&sql)
        .bind(&p.group)
        .bind(&p.topic)
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    rows.into_iter()
        .filter_map(|(partition, next)| Some((partition, next?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_topic_lands_exactly_once_through_kills() {
    const RECORDS: u32 = 8_000;
    const KILLS: usize = 6;
    /// Records landing while commits are refused, at the end.
    const TAIL: u32 = 200;
    let (p, mut mock) = Pipeline::on_mock("exactly", 4);
    p.produce(&events(0..RECORDS)).await;
    let pace = "  rate_limit: { rows_per_second: 400 }";
    let mut workers: Vec<Worker> = Vec::new();
    let spawn = |n: usize| {
        let port = free_port();
        p.spawn(&format!("w{n}"), &config(&p, pace, "", port), port)
    };
    workers.push(spawn(0));
    workers.push(spawn(1));
    let pool = p.pool().await;
    for kill in 0..KILLS {
        // Kill while records are still flowing: the history table grows.
        let before = landed(&pool, &p.schema).await.0;
        wait_until("records keep landing between kills", CONVERGE, || {
            block_on(landed(&pool, &p.schema)).0 > before + 200
                || block_on(landed(&pool, &p.schema)).0 >= i64::from(RECORDS)
        })
        .await;
        let victim = kill % workers.len();
        workers[victim].kill9();
        workers[victim] = spawn(2 + kill);
    }
    wait_landed(&pool, &p.schema, i64::from(RECORDS)).await;
    let end = p.end_offsets();
    wait_until("the target's offsets reach the end", CONVERGE, || {
        block_on(stored_offsets(&pool, &p)) == end
    })
    .await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;

    // The last records land while the broker refuses every commit, and
    // the workers die before one goes through: Kafka's committed offsets
    // stay behind the target's. The next owner starts at the target's
    // offsets, the end, so no record will ever arrive: it must still
    // bring Kafka's offsets there (lag, alerts and autoscaling read them).
    mock.fail("OffsetCommit", 100_000, "UNKNOWN_SERVER_ERROR");
    p.produce(&events(RECORDS..RECORDS + TAIL)).await;
    wait_landed(&pool, &p.schema, i64::from(RECORDS + TAIL)).await;
    let end = p.end_offsets();
    wait_until("the target's offsets reach the new end", CONVERGE, || {
        block_on(stored_offsets(&pool, &p)) == end
    })
    .await;
    let behind = p.committed(&p.group);
    assert!(
        behind != end,
        "Kafka's offsets reached the end although commits were refused: {behind:?}"
    );
    for w in &mut workers {
        w.kill9();
    }
    mock.clear("OffsetCommit");
    let _last = spawn(2 + KILLS);
    p.wait_committed_to_end(&p.group, CONVERGE).await;
}

/// Runs a future to completion from a synchronous check.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zombie_cannot_commit_rows_for_a_partition_that_moved() {
    let (p, _mock) = Pipeline::on_mock("zombie", 1);
    let pool = p.pool().await;
    // Statements wait on the test's lock far longer than the default
    // timeout would allow.
    let patient = "    statement_timeout_ms: 600000";
    let port_a = free_port();
    let zombie = p.spawn("a", &config(&p, "", patient, port_a), port_a);
    p.produce(&events(0..50)).await;
    wait_landed(&pool, &p.schema, 50).await;

    // Hold the history table so the zombie's next write is in flight,
    // waiting, when it freezes.
    let lock = common::lock_table(&pool, &p.schema, "events__history").await;
    p.produce(&events(50..100)).await;
    let waiting = "SELECT count(*) FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO %' AND position($1 in query) > 0";
    wait_until("the zombie's write waits for the lock", CONVERGE, || {
        let count = sqlx::query_scalar::<_, i64>(waiting)
            .bind(&p.schema)
            .fetch_one(&pool);
        block_on(count).unwrap_or(0) >= 1
    })
    .await;
    zombie.freeze();

    // The partition moves: the new owner claims it (epoch 2) and starts at
    // the target's offset, 50.
    let port_b = free_port();
    let _owner = p.spawn("b", &config(&p, "", patient, port_b), port_b);
    let epoch = format!(
        "SELECT epoch FROM \"{}_meta\".offsets WHERE group_id = '{}'",
        p.schema, p.group
    );
    wait_until("the new owner claims the partition", CONVERGE, || {
        block_on(sqlx::query_scalar::<_, i64>(&epoch).fetch_one(&pool)).unwrap_or(0) >= 2
    })
    .await;

    lock.commit().await.unwrap();
    zombie.thaw();
    wait_landed(&pool, &p.schema, 100).await;
    wait_until("the zombie's write was fenced", CONVERGE, || {
        zombie.metric("sinkfleet_fenced_writes_total") >= 1.0
    })
    .await;
    assert_eq!(
        stored_offsets(&pool, &p).await.get(&0).copied(),
        Some(100),
        "zombie log: {}",
        zombie.log_text()
    );
}

/// Partitions claimed in the target by a second process (epoch 2 or more).
async fn claimed_again(pool: &PgPool, p: &Pipeline) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM \"{}_meta\".offsets WHERE group_id = $1 AND epoch >= 2",
        p.schema
    );
    sqlx::query_scalar(&sql)
        .bind(&p.group)
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// A partition paused because its writes fail, revoked, and assigned back
/// to the same process flows again. Worker A's writes wait on a lock and
/// time out, so its sink is failing and every partition pauses; B joins
/// and claims two of them, and fails the same way. While nothing moves,
/// more records arrive: the lag gauges must show them (the broker's end
/// offset, not the one the paused consumer last fetched). Then the lock
/// goes, B stops cleanly and A gets its partitions back: it must apply
/// everything to the end of every partition, and Kafka's committed
/// offsets must get there too.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_partition_handed_back_flows_again() {
    let (p, _mock) = Pipeline::on_mock("handback", 4);
    let pool = p.pool().await;
    // A write waiting on the lock fails after a second (the sink is
    // failing); a revoke's drain gives up on it after three.
    let (worker, sink) = ("  drain_timeout_ms: 3000", "    statement_timeout_ms: 1000");
    let port_a = free_port();
    let a = p.spawn("a", &config(&p, worker, sink, port_a), port_a);
    p.produce(&events(0..400)).await;
    wait_landed(&pool, &p.schema, 400).await;

    let lock = common::lock_table(&pool, &p.schema, "events__history").await;
    p.produce(&events(400..800)).await;
    wait_until("A pauses its partitions", CONVERGE, || {
        a.metric("sinkfleet_partitions_paused") == 4.0
    })
    .await;
    let port_b = free_port();
    let mut b = p.spawn("b", &config(&p, worker, sink, port_b), port_b);
    wait_until("B claims partitions and pauses them too", CONVERGE, || {
        block_on(claimed_again(&pool, &p)) >= 1 && b.metric("sinkfleet_partitions_paused") >= 1.0
    })
    .await;
    p.produce(&events(800..1200)).await;
    let lag_while_stuck = common::wait_true_lag(&p, &[&a, &b], Duration::from_secs(60)).await;
    eprintln!("lag gauges while nothing moved: {lag_while_stuck:?}");

    lock.rollback().await.unwrap();
    assert!(b.terminate(Duration::from_secs(60)).success());
    p.produce(&events(1200..1600)).await;
    wait_landed(&pool, &p.schema, 1600).await;
    let end = p.end_offsets();
    wait_until("the target's offsets reach the end", CONVERGE, || {
        block_on(stored_offsets(&pool, &p)) == end
    })
    .await;
    p.wait_committed_to_end(&p.group, CONVERGE).await;
    if let Err(shown) = lag_while_stuck {
        panic!("while nothing moved, the lag gauges did not show the lag: {shown}");
    }
}
