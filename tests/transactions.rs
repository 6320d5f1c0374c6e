//! Source transactions across tables: the publisher's transaction metadata
//! (`provide.transaction.metadata`, as Debezium writes it), and the
//! Postgres sink's `apply: transactional`, which applies them whole.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;

use common::source::{CONVERGE, Source};
use common::{MockBroker, Worker, brokers, free_port, pg_url, wait_until};
use serde_json::{Value, json};
use sinkfleet_testkit::kafka::read_to_end;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The publisher's config with transaction metadata on.
fn publisher_config(src: &Source, tables: &[&str], port: u16) -> String {
    src.publisher_config(tables, &brokers(), "", port).replace(
        "  plugin.name: pgoutput\n",
        "  plugin.name: pgoutput\n  provide.transaction.metadata: \"true\"\n",
    )
}

/// Every JSON value on `topic` (all partitions), in the order read; the
/// payload of values that carry a schema.
fn values(topic: &str) -> Vec<Value> {
    read_to_end(&brokers(), topic, Duration::from_secs(10))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| serde_json::from_slice::<Value>(r.value.as_deref()?).ok())
        .map(|v| match v.get("payload") {
            Some(payload) => payload.clone(),
            None => v,
        })
        .collect()
}

/// A transfer touching two tables comes with a BEGIN and an END record
/// that count its events in total and per table, and every event names its
/// place in the transaction.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_across_tables_is_framed_by_begin_and_end() {
    let src = Source::new("txmeta").await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.accounts (id int PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE {s}.ledger (id int PRIMARY KEY, amount bigint NOT NULL);
         INSERT INTO {s}.accounts VALUES (1, 100), (2, 100);"
    ))
    .await;
    let port = free_port();
    let publisher = Worker::start(
        &src.prefix,
        "publish",
        &publisher_config(&src, &["accounts", "ledger"], port),
        port,
    );
    wait_until("the snapshot is published", CONVERGE, || {
        publisher.metric("sinkfleet_publisher_snapshot_rows_done") >= 2.0
    })
    .await;
    src.sql(&format!(
        "BEGIN;
         UPDATE {s}.accounts SET balance = balance - 30 WHERE id = 1;
         UPDATE {s}.accounts SET balance = balance + 30 WHERE id = 2;
         INSERT INTO {s}.ledger VALUES (1, 30);
         COMMIT;"
    ))
    .await;

    let topic = format!("{}.transaction", src.prefix);
    let mut markers = Vec::new();
    wait_until("BEGIN and END are published", CONVERGE, || {
        markers = values(&topic);
        markers.len() >= 2
    })
    .await;
    assert_eq!(
        markers.len(),
        2,
        "one transaction, no snapshot markers: {markers:?}"
    );
    let id = markers[1]["id"].clone();
    assert_eq!(markers[0]["status"], "BEGIN");
    assert_eq!(markers[0]["id"], id);
    let accounts = format!("{s}.accounts");
    let ledger = format!("{s}.ledger");
    assert_eq!(markers[1]["status"], "END");
    assert_eq!(markers[1]["event_count"], 3);
    assert_eq!(
        markers[1]["data_collections"],
        json!([
            {"data_collection": accounts, "event_count": 2},
            {"data_collection": ledger, "event_count": 1},
        ])
    );

    let mut framed: Vec<Value> = ["accounts", "ledger"]
        .iter()
        .flat_map(|t| values(&format!("{}.{s}.{t}", src.prefix)))
        .filter(|e| e["op"] != "r")
        .map(|e| e["transaction"].clone())
        .collect();
    framed.sort_by_key(|t| t["total_order"].as_u64());
    assert_eq!(
        framed,
        vec![
            json!({"id": id, "total_order": 1, "data_collection_order": 1}),
            json!({"id": id, "total_order": 2, "data_collection_order": 2}),
            json!({"id": id, "total_order": 3, "data_collection_order": 1}),
        ]
    );
    let mut publisher = publisher;
    assert!(publisher.terminate(Duration::from_secs(30)).success());
    src.cleanup().await;
}

const ACCOUNTS: i32 = 20;
const OPENING: i64 = 1_000;
/// Money in the bank: every transfer keeps it.
const TOTAL: i64 = 2 * ACCOUNTS as i64 * OPENING;
const TRANSFERS: u64 = 1_500;

/// `(id, balance)` rows of a table, in id order (empty before it exists).
async fn balances(pool: &PgPool, schema: &str, table: &str) -> Vec<(i32, i64)> {
    let sql = format!("SELECT id, balance FROM {schema}.{table} ORDER BY id");
    sqlx::query_as(&sql)
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

/// What the reader saw: reads of a complete target, and how many of them
/// broke the invariant (money appeared or vanished).
#[derive(Default)]
struct Audit {
    /// The target held the snapshot whole: checking started.
    armed: AtomicBool,
    reads: AtomicU64,
    broken: AtomicU64,
    first_broken: std::sync::Mutex<Option<i64>>,
}

/// Reads the target's total in one statement (one snapshot) until `stop`:
/// once the target holds every account with the whole total, every later
/// read must show that total.
fn audit(
    pool: PgPool,
    schema: String,
    stop: Arc<AtomicBool>,
) -> (Arc<Audit>, tokio::task::JoinHandle<()>) {
    let audit = Arc::new(Audit::default());
    let seen = Arc::clone(&audit);
    let sql = format!(
        "SELECT (SELECT count(*) FROM {schema}.checking) + (SELECT count(*) FROM {schema}.savings),
                ((SELECT coalesce(sum(balance), 0) FROM {schema}.checking)
                  + (SELECT coalesce(sum(balance), 0) FROM {schema}.savings))::bigint"
    );
    let task = tokio::spawn(async move {
        let mut armed = false;
        while !stop.load(Ordering::Acquire) {
            let Ok((rows, total)) = sqlx::query_as::<_, (i64, i64)>(&sql).fetch_one(&pool).await
            else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            // Armed once the snapshot is complete: before, rows are missing.
            armed |= rows == 2 * i64::from(ACCOUNTS) && total == TOTAL;
            if armed {
                seen.armed.store(true, Ordering::Release);
                seen.reads.fetch_add(1, Ordering::Relaxed);
                if total != TOTAL {
                    seen.broken.fetch_add(1, Ordering::Relaxed);
                    seen.first_broken.lock().unwrap().get_or_insert(total);
                }
            }
        }
    });
    (audit, task)
}

/// The bank: accounts in two tables, and transfers between them, each one
/// source transaction. Returns what the reader saw on the target while the
/// publisher and the sink ran, and what the last active worker counted;
/// `kills` SIGKILLs the active worker that many
/// times during the load (a standby takes over).
async fn bank(name: &str, transactional: bool, kills: usize) -> Outcome {
    let src = Source::new(name).await;
    let s = &src.schema;
    src.sql(&format!(
        "CREATE TABLE {s}.checking (id int PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE {s}.savings (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO {s}.checking SELECT g, {OPENING} FROM generate_series(1, {ACCOUNTS}) g;
         INSERT INTO {s}.savings SELECT g, {OPENING} FROM generate_series(1, {ACCOUNTS}) g;"
    ))
    .await;
    let topic = |t: &str| format!("{}.{s}.{t}", src.prefix);
    let (checking, savings) = (topic("checking"), topic("savings"));
    let transactions = format!("{}.transaction", src.prefix);
    let dlq = format!("{}.dlq", src.prefix);
    let mock = MockBroker::start(&[(&checking, 3), (&savings, 3), (&transactions, 1), (&dlq, 1)]);
    let pp = free_port();
    let extra = "  create_topics: false\n  kafka_properties: { message.timeout.ms: \"120000\" }";
    let mut publisher = Worker::start(
        &src.prefix,
        "publish",
        &src.publisher_config(&["checking", "savings"], &mock.bootstrap, extra, pp)
            .replace(
                "  plugin.name: pgoutput\n",
                "  plugin.name: pgoutput\n  provide.transaction.metadata: \"true\"\n",
            ),
        pp,
    );
    wait_until("the snapshot is published", CONVERGE, || {
        publisher.metric("sinkfleet_publisher_snapshot_rows_done") >= f64::from(2 * ACCOUNTS)
    })
    .await;

    let apply = if transactional {
        format!(
            "    apply: transactional\n    offset_storage: target\n    transaction_topic: {transactions}\n"
        )
    } else {
        String::new()
    };
    // Per table: two writers and small batches, as a tuned deployment
    // would run; transactional mode runs one writer whatever is set.
    let config = |port: u16| {
        format!(
            "kafka:
  brokers: {brokers}
  group_id: {prefix}-sink
  topics: [{checking}, {savings}]
  properties:
    session.timeout.ms: \"6000\"
    heartbeat.interval.ms: \"500\"
dead_letter:
  topic: {dlq}
  create_topic: false
worker:
  linger_ms: 5
  batch_max_records: 4
  writers: 2
sink:
  postgres:
    url: {url}
    target_schema: {target}
    meta_schema: {target}_meta
{apply}metrics:
  listen: 127.0.0.1:{port}
",
            brokers = mock.bootstrap,
            prefix = src.prefix,
            url = pg_url(),
            target = src.target,
        )
    };
    let mut started = 0;
    let mut spawn = || {
        started += 1;
        let port = free_port();
        Worker::spawn(&format!("{}-w{started}", src.prefix), &config(port), port)
    };
    // The fleet: one active worker and, in transactional mode, a standby.
    let mut fleet = vec![spawn()];
    if transactional {
        fleet.push(spawn());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let target = PgPool::connect(&pg_url()).await.unwrap();
    let (seen, reader) = audit(target.clone(), src.target.clone(), Arc::clone(&stop));
    wait_until("the target holds the snapshot", CONVERGE, || {
        seen.armed.load(Ordering::Acquire)
    })
    .await;
    // The load: transfers in both directions, each its own transaction.
    let load = {
        let (pool, s) = (src.pool.clone(), s.clone());
        tokio::spawn(async move {
            for n in 0..TRANSFERS {
                let (from, to) = if n % 2 == 0 {
                    ("checking", "savings")
                } else {
                    ("savings", "checking")
                };
                let (a, b) = (n % ACCOUNTS as u64 + 1, (n * 7) % ACCOUNTS as u64 + 1);
                let amount = n % 50 + 1;
                let sql = format!(
                    "BEGIN;
                     UPDATE {s}.{from} SET balance = balance - {amount} WHERE id = {a};
                     UPDATE {s}.{to} SET balance = balance + {amount} WHERE id = {b};
                     COMMIT;"
                );
                sqlx::Executor::execute(&pool, sql.as_str()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Records applied, as the target's stored offsets count them.
    let applied_sql = format!(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM {}_meta.offsets",
        src.target
    );
    let applied = || {
        let query = sqlx::query_scalar::<_, i64>(&applied_sql).fetch_one(&target);
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(query))
            .unwrap_or(0)
    };
    for _ in 0..kills {
        // Kill the active worker once it has applied some of the load.
        let before = applied();
        wait_until("the active worker applies records", CONVERGE, || {
            applied() > before + 40
        })
        .await;
        let active = fleet
            .iter()
            .position(|w| {
                w.log_text()
                    .contains("this worker is the group's active worker")
            })
            .expect("an active worker");
        fleet.swap_remove(active).kill9();
        fleet.push(spawn());
    }
    load.await.unwrap();
    let deadline = Instant::now() + CONVERGE;
    for table in ["checking", "savings"] {
        loop {
            let want = balances(&src.pool, s, table).await;
            if balances(&target, &src.target, table).await == want {
                break;
            }
            assert!(Instant::now() < deadline, "{table} never converged");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    stop.store(true, Ordering::Release);
    reader.await.unwrap();
    // Summed over the fleet: only the active worker counts anything.
    let splits: f64 = fleet
        .iter()
        .map(|w| w.metric("sinkfleet_transactions_split_total"))
        .sum();
    let whole: f64 = fleet
        .iter()
        .map(|w| w.metric("sinkfleet_transactions_applied_total"))
        .sum();
    assert!(publisher.terminate(Duration::from_secs(30)).success());
    src.cleanup().await;
    drop(fleet);
    Outcome {
        seen,
        whole,
        splits,
    }
}

/// What a run of the bank showed.
struct Outcome {
    seen: Arc<Audit>,
    /// Transactions the live workers applied whole, and split.
    whole: f64,
    splits: f64,
}

/// Transactional apply: a reader of the target never sees money appear or
/// vanish, while the publisher and the sink run under load and the active
/// worker is SIGKILLed twice (a standby takes over each time).
#[tokio::test(flavor = "multi_thread")]
async fn transfers_are_never_seen_half_applied() {
    let Outcome {
        seen,
        whole,
        splits,
    } = bank("banktx", true, 2).await;
    assert_eq!(
        seen.broken.load(Ordering::Relaxed),
        0,
        "a reader saw a total of {:?} instead of {TOTAL}",
        seen.first_broken.lock().unwrap()
    );
    let reads = seen.reads.load(Ordering::Relaxed);
    assert!(
        reads >= 50,
        "the reader checked the target {reads} times only"
    );
    assert!(whole > 0.0, "the live workers applied no whole transaction");
    assert_eq!(splits, 0.0, "no transaction had to be split");
}

/// Per-table apply, the same load: the reader does see half-applied
/// transfers (what the transactional test guards against is real).
#[tokio::test(flavor = "multi_thread")]
async fn per_table_apply_shows_half_applied_transfers() {
    let seen = bank("bankpt", false, 0).await.seen;
    assert!(
        seen.broken.load(Ordering::Relaxed) > 0,
        "per-table apply never showed a broken total in {} reads",
        seen.reads.load(Ordering::Relaxed)
    );
}
