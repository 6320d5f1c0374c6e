//! Source transactions across tables: the publisher's transaction metadata
//! (`provide.transaction.metadata`, as Debezium writes it), and the
//! Postgres sink's `apply: transactional`, which applies them whole.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use crate::common;

use common::source::{CONVERGE, Source};
use common::{MockCluster, Worker, brokers, free_port, lock_table, pg_url, wait_until};
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

/// Settings added to a bank's publisher and workers.
#[derive(Default, Clone, Copy)]
struct Tuning<'a> {
    /// Lines under the workers' `sink.postgres:`.
    sink: &'a str,
    /// Lines under the workers' `kafka.properties:`.
    consumer: &'a str,
    /// `, name: "value"` entries of the publisher's `kafka_properties`.
    producer: &'a str,
}

/// A bank running: accounts in two tables at the source, the publisher
/// on a mock cluster, the sink fleet, and a reader auditing the target.
struct Bank {
    src: Source,
    mock: MockCluster,
    publisher: Worker,
    fleet: Vec<Worker>,
    started: usize,
    /// `apply` and the other lines under `sink.postgres:`.
    sink: String,
    /// librdkafka properties of the workers' consumers, as YAML lines.
    consumer: String,
    checking: String,
    savings: String,
    dlq: String,
    target: PgPool,
    stop: Arc<AtomicBool>,
    seen: Arc<Audit>,
    reader: tokio::task::JoinHandle<()>,
}

impl Bank {
    /// Opens the accounts, publishes their snapshot and starts the fleet
    /// (one active worker and, in transactional mode, a standby); returns
    /// once the reader sees the whole snapshot in the target. `tuning`
    /// adds settings to the publisher and the workers.
    async fn open(name: &str, transactional: bool, tuning: Tuning<'_>) -> Bank {
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
        let mock =
            MockCluster::start(&[(&checking, 3), (&savings, 3), (&transactions, 1), (&dlq, 1)]);
        let pp = free_port();
        let extra = format!(
            "  create_topics: false\n  kafka_properties: {{ message.timeout.ms: \"120000\"{} }}",
            tuning.producer
        );
        let publisher = Worker::start(
            &src.prefix,
            "publish",
            &src.publisher_config(&["checking", "savings"], &mock.bootstrap, &extra, pp)
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
        let target = PgPool::connect(&pg_url()).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, reader) = audit(target.clone(), src.target.clone(), Arc::clone(&stop));
        let mut bank = Bank {
            src,
            mock,
            publisher,
            fleet: Vec::new(),
            started: 0,
            sink: apply + tuning.sink,
            consumer: tuning.consumer.to_owned(),
            checking,
            savings,
            dlq,
            target,
            stop,
            seen,
            reader,
        };
        // The fleet: one active worker and, in transactional mode, a standby.
        let worker = bank.spawn();
        bank.fleet.push(worker);
        if transactional {
            let standby = bank.spawn();
            bank.fleet.push(standby);
        }
        wait_until("the target holds the snapshot", CONVERGE, || {
            bank.seen.armed.load(Ordering::Acquire)
        })
        .await;
        bank
    }

    /// A sink worker of the fleet (not added to it).
    fn spawn(&mut self) -> Worker {
        self.started += 1;
        let port = free_port();
        // Per table: two writers and small batches, as a tuned deployment
        // would run; transactional mode runs one writer whatever is set.
        let config = format!(
            "kafka:
  brokers: {brokers}
  group_id: {prefix}-sink
  topics: [{checking}, {savings}]
  properties:
    session.timeout.ms: \"6000\"
    heartbeat.interval.ms: \"500\"
{consumer}dead_letter:
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
{sink}metrics:
  listen: 127.0.0.1:{port}
",
            brokers = self.mock.bootstrap,
            prefix = self.src.prefix,
            checking = self.checking,
            savings = self.savings,
            dlq = self.dlq,
            url = pg_url(),
            target = self.src.target,
            sink = self.sink,
            consumer = self.consumer,
        );
        Worker::spawn(
            &format!("{}-w{}", self.src.prefix, self.started),
            &config,
            port,
        )
    }

    /// The fleet's active worker (transactional mode), by its log.
    fn active(&self) -> usize {
        self.fleet
            .iter()
            .position(|w| {
                w.log_text()
                    .contains("this worker is the group's active worker")
            })
            .expect("an active worker")
    }

    /// Records applied, as the target's stored offsets count them.
    fn applied(&self) -> i64 {
        let sql = format!(
            "SELECT coalesce(sum(next_offset), 0)::bigint FROM {}_meta.offsets",
            self.src.target
        );
        let query = sqlx::query_scalar::<_, i64>(&sql).fetch_one(&self.target);
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(query))
            .unwrap_or(0)
    }

    /// Waits until both target tables equal the source's.
    async fn converge(&self) {
        let deadline = Instant::now() + CONVERGE;
        for table in ["checking", "savings"] {
            loop {
                let want = balances(&self.src.pool, &self.src.schema, table).await;
                if balances(&self.target, &self.src.target, table).await == want {
                    break;
                }
                assert!(Instant::now() < deadline, "{table} never converged");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    /// Stops the reader, the publisher and the fleet; what they saw and
    /// counted.
    async fn close(mut self) -> Outcome {
        self.stop.store(true, Ordering::Release);
        (&mut self.reader).await.unwrap();
        // Summed over the fleet: only the active worker counts anything.
        let splits: f64 = self
            .fleet
            .iter()
            .map(|w| w.metric("sinkfleet_transactions_split_total"))
            .sum();
        let whole: f64 = self
            .fleet
            .iter()
            .map(|w| w.metric("sinkfleet_transactions_applied_total"))
            .sum();
        assert!(self.publisher.terminate(Duration::from_secs(30)).success());
        self.src.cleanup().await;
        self.fleet.clear();
        Outcome {
            seen: self.seen,
            whole,
            splits,
        }
    }
}

/// The bank under load: transfers between the tables, each one source
/// transaction. Returns what the reader saw on the target while the
/// publisher and the sink ran, and what the last active worker counted;
/// `kills` SIGKILLs the active worker that many times during the load (a
/// standby takes over).
async fn bank(name: &str, transactional: bool, kills: usize) -> Outcome {
    let mut bank = Bank::open(name, transactional, Tuning::default()).await;
    // The load: transfers in both directions, each its own transaction.
    let load = {
        let (pool, s) = (bank.src.pool.clone(), bank.src.schema.clone());
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
    for _ in 0..kills {
        // Kill the active worker once it has applied some of the load.
        let before = bank.applied();
        wait_until("the active worker applies records", CONVERGE, || {
            bank.applied() > before + 40
        })
        .await;
        let active = bank.active();
        bank.fleet.swap_remove(active).kill9();
        let worker = bank.spawn();
        bank.fleet.push(worker);
    }
    load.await.unwrap();
    bank.converge().await;
    bank.close().await
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

/// Moves of one unit from checking to savings in the large transaction:
/// twice as many events.
const LARGE: u64 = 3_000;
/// Outages the large-transaction test goes through.
const OUTAGES: usize = 3;

/// Writes of the sink into `schema` waiting for a lock.
const WAITING_WRITES: &str = "FROM pg_stat_activity
    WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO %' AND position($1 in query) > 0";

async fn waiting_writes(pool: &PgPool, schema: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) {WAITING_WRITES}"))
        .bind(schema)
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Terminates the connections of the waiting writes: the write fails, as in
/// an outage, and the worker retries it.
async fn cut_waiting_writes(pool: &PgPool, schema: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(pg_terminate_backend(pid)) {WAITING_WRITES}"
    ))
    .bind(schema)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A transaction of thousands of events committed while the target is
/// down is still applied whole once it is back. Each outage: the target
/// tables are locked, a transfer's write waits on the lock, the large
/// transaction commits at the source and its END reaches the worker with
/// part of its events (the cluster answers slowly, and in small pieces);
/// then the waiting write fails (its connection is cut), so the sink is
/// failing and every partition pauses with the transaction half fetched.
/// When the lock goes, the retried write succeeds. What was paused for the
/// outage must resume before the assembler looks again: a partition paused
/// for a failing sink is not a full budget, and splitting the transaction
/// there would show a reader half of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_transaction_across_a_target_outage_is_applied_whole() {
    let mut bank = Bank::open(
        "banklarge",
        true,
        Tuning {
            // Writes wait on the test's lock for as long as it is held: the
            // outage is the cut connection, not a statement timeout.
            sink: "    statement_timeout_ms: 600000\n",
            // Small record batches, fetched one per partition and round
            // trip: with a slow cluster the events trail their END.
            consumer: "    max.partition.fetch.bytes: \"8192\"\n",
            producer: ", batch.size: \"8192\"",
        },
    )
    .await;
    let (s, t) = (bank.src.schema.clone(), bank.src.target.clone());
    let events = (2 * LARGE + 2) as f64;
    let mut caught = 0;
    for outage in 0..OUTAGES {
        let active = bank.active();
        let data_in = |bank: &Bank| {
            let w = &bank.fleet[active];
            [&bank.checking, &bank.savings]
                .iter()
                .map(|topic| w.metric(&format!("sinkfleet_records_in_total{{topic=\"{topic}\"")))
                .sum::<f64>()
        };
        let buffered = |bank: &Bank| bank.fleet[active].metric("sinkfleet_transactions_buffered");
        let before = data_in(&bank);
        let mut lock = lock_table(&bank.target, &t, "checking").await;
        sqlx::query(&format!(
            "LOCK TABLE \"{t}\".savings IN ACCESS EXCLUSIVE MODE"
        ))
        .execute(&mut *lock)
        .await
        .unwrap();
        bank.src
            .sql(&format!(
                "BEGIN;
                 UPDATE {s}.checking SET balance = balance - 5 WHERE id = 1;
                 UPDATE {s}.savings SET balance = balance + 5 WHERE id = 2;
                 COMMIT;"
            ))
            .await;
        let deadline = Instant::now() + CONVERGE;
        while waiting_writes(&bank.target, &t).await < 1 {
            assert!(
                Instant::now() < deadline,
                "the transfer's write never waited on the lock"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The transfer's END went with its write: none waits (the gauge is
        // published every second).
        wait_until("no END waits", CONVERGE, || buffered(&bank) == 0.0).await;
        bank.mock.rtt(100);
        bank.src
            .sql(&format!(
                "DO $$ BEGIN FOR i IN 1..{LARGE} LOOP
                   UPDATE {s}.checking SET balance = balance - 1 WHERE id = i % {ACCOUNTS} + 1;
                   UPDATE {s}.savings SET balance = balance + 1 WHERE id = (i * 7) % {ACCOUNTS} + 1;
                 END LOOP; END $$"
            ))
            .await;
        wait_until(
            "the large transaction's END reaches the worker",
            CONVERGE,
            || buffered(&bank) >= 1.0,
        )
        .await;
        assert!(cut_waiting_writes(&bank.target, &t).await >= 1);
        wait_until("every partition pauses for the outage", CONVERGE, || {
            bank.fleet[active].metric("sinkfleet_partitions_paused") == 7.0
        })
        .await;
        let fetched = data_in(&bank) - before;
        eprintln!("outage {outage}: {fetched} of {events} events fetched when it began");
        if fetched < events {
            caught += 1;
        }
        bank.mock.rtt(0);
        lock.rollback().await.unwrap();
        bank.converge().await;
    }
    let Outcome { seen, splits, .. } = bank.close().await;
    assert!(
        caught > 0,
        "no outage began with the large transaction half fetched: the test tested nothing"
    );
    assert_eq!(
        seen.broken.load(Ordering::Relaxed),
        0,
        "a reader saw a total of {:?} instead of {TOTAL}",
        seen.first_broken.lock().unwrap()
    );
    assert_eq!(splits, 0.0, "no transaction had to be split");
}
