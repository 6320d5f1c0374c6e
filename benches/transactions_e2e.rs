//! Transactional apply against per-table apply, through the whole pipeline:
//! Postgres → `sinkfleet publish` (with `provide.transaction.metadata`) →
//! librdkafka's mock cluster → `sinkfleet run` → Postgres. Each source
//! transaction is a transfer: one row into `debits`, one into `credits`.
//!
//! Per mode, on fresh tables, topics and group:
//! * **latency**: `--rate` transfers/s for `--seconds`; per row, source
//!   commit (`clock_timestamp()` stamped by the source insert) → visible
//!   (`visible_at`, stamped by the target's insert; the sink does not
//!   write that column);
//! * **throughput**: `--backlog` transfers committed and published while
//!   the worker is frozen (SIGSTOP), then thawed: transfers applied per
//!   second.
//!
//! Per-table runs the default `worker.writers` (2); transactional runs one
//! writer (whole transactions span partitions). Needs the local services
//! (`scripts/services.sh start`). The mock cluster keeps ~5 MiB per
//! partition and the transaction topic has one, so the backlog stays
//! modest.
//!
//!     cargo bench --bench transactions_e2e [-- --rate 300 --seconds 10 --backlog 4000]

mod common;

use common::{
    Publisher, Worker, arg, mock_cluster, process, publisher_config, remove_pipeline,
    spawn_publisher, wait_for_count,
};
use sqlx::{Executor, PgPool};
use std::process::Command;
use std::time::{Duration, Instant};

/// What one mode measured.
struct Measured {
    p50: f64,
    p99: f64,
    transfers_per_second: f64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rate: u64 = arg("--rate").and_then(|r| r.parse().ok()).unwrap_or(300);
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let backlog: u64 = arg("--backlog")
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000);
    let pg_url = sinkfleet_testkit::services::pg_url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pool = rt
        .block_on(PgPool::connect(&pg_url))
        .expect("Postgres (scripts/services.sh start)");
    println!(
        "transfers (2 tables, one source transaction each): {rate}/s for {seconds} s, then a backlog of {backlog}"
    );
    println!("| mode | p50 ms | p99 ms | backlog transfers/s |");
    println!("|---|---:|---:|---:|");
    let mut results = Vec::new();
    for mode in ["per_table", "transactional"] {
        let m = rt.block_on(run_mode(&pool, mode, rate, seconds, backlog));
        println!(
            "| {mode} | {:.0} | {:.0} | {:.0} |",
            m.p50, m.p99, m.transfers_per_second
        );
        results.push(m);
    }
    println!(
        "transactional / per-table: throughput {:.2}x, p50 latency {:.2}x",
        results[1].transfers_per_second / results[0].transfers_per_second,
        results[1].p50 / results[0].p50
    );
}

async fn run_mode(pool: &PgPool, mode: &str, rate: u64, seconds: u64, backlog: u64) -> Measured {
    let id = format!("txb_{}_{mode}", std::process::id());
    let target = format!("{id}_t");
    let exec = |sql: String| async move {
        pool.execute(sql.as_str()).await.expect("bench SQL");
    };
    let mut ddl = format!("CREATE SCHEMA {id}; CREATE SCHEMA {target};");
    for table in ["debits", "credits"] {
        ddl.push_str(&format!(
            "CREATE TABLE {id}.{table} (id bigint PRIMARY KEY, amount bigint, at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE TABLE {target}.{table} (id bigint PRIMARY KEY, amount bigint, at timestamptz,
                 visible_at timestamptz NOT NULL DEFAULT clock_timestamp());"
        ));
    }
    ddl.push_str(&format!(
        "CREATE PUBLICATION {id}_pub FOR TABLE {id}.debits, {id}.credits;"
    ));
    exec(ddl).await;
    let topics = [
        format!("{id}.{id}.debits:3"),
        format!("{id}.{id}.credits:3"),
        format!("{id}.transaction:1"),
        "dlq:1".to_owned(),
    ];
    let mock = mock_cluster(&topics);
    let brokers = mock.bootstrap.clone();
    let mut publisher = start_publisher(&id, &brokers);
    let worker_topics = format!("{id}.{id}.debits, {id}.{id}.credits");
    let transaction_topic = format!("{id}.transaction");
    let env: Vec<(&str, &str)> = match mode {
        "transactional" => vec![
            ("SINKFLEET__SINK__POSTGRES__APPLY", "transactional"),
            ("SINKFLEET__SINK__POSTGRES__OFFSET_STORAGE", "target"),
            (
                "SINKFLEET__SINK__POSTGRES__TRANSACTION_TOPIC",
                &transaction_topic,
            ),
        ],
        _ => vec![],
    };
    let transfer = |from: u64, to: u64| {
        format!(
            "DO $$ BEGIN FOR i IN {from}..{to} LOOP
                 INSERT INTO {id}.debits (id, amount) VALUES (i, i % 100);
                 INSERT INTO {id}.credits (id, amount) VALUES (i, i % 100);
                 COMMIT;
             END LOOP; END $$"
        )
    };

    // Latency at a steady rate.
    let mut worker = Worker::start_with(
        "sinkfleet-postgres",
        &brokers,
        &worker_topics,
        &target,
        &env,
    );
    exec(transfer(0, 0)).await;
    wait_for_rows(pool, &target, 1, &mut [&mut publisher, &mut worker.process]).await;
    let total = rate * seconds;
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next = 1u64;
    while next <= total {
        tick.tick().await;
        let last = (next + per_tick - 1).min(total);
        exec(transfer(next, last)).await;
        next = last + 1;
    }
    wait_for_rows(
        pool,
        &target,
        total as i64 + 1,
        &mut [&mut publisher, &mut worker.process],
    )
    .await;
    let (p50, p99): (f64, f64) = sqlx::query_as(&format!(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l)
         FROM (SELECT extract(epoch FROM visible_at - at)::float8 * 1000 AS l FROM {target}.debits WHERE id > 0
               UNION ALL
               SELECT extract(epoch FROM visible_at - at)::float8 * 1000 FROM {target}.credits WHERE id > 0) s"
    ))
    .fetch_one(pool)
    .await
    .expect("latency query");
    // Throughput over a backlog, published while the worker is frozen
    // (SIGSTOP, shorter than the session timeout: no rebalance; stopping
    // and restarting it would wait for the broker to evict the old member).
    let signal = |sig: &str| {
        let _ = Command::new("kill").args([sig, &worker.pid()]).status();
    };
    signal("-STOP");
    let first = total + 1;
    exec(transfer(first, first + backlog - 1)).await;
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await
        .expect("lsn");
    let published = format!(
        "SELECT confirmed_flush_lsn >= '{lsn}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{id}'"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sqlx::query_scalar::<_, bool>(&published)
        .fetch_one(pool)
        .await
        .unwrap_or(false)
    {
        assert!(
            Instant::now() < deadline,
            "the backlog was not published in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    signal("-CONT");
    let rows = (first + backlog) as i64;
    wait_for_rows(
        pool,
        &target,
        rows,
        &mut [&mut publisher, &mut worker.process],
    )
    .await;
    let transfers_per_second = backlog as f64 / started.elapsed().as_secs_f64();
    worker.stop();

    remove_pipeline(pool, &id, &target, publisher).await;
    drop(mock); // ends the host
    Measured {
        p50,
        p99,
        transfers_per_second,
    }
}

/// Waits until both target tables hold `rows` rows (see [`wait_for_count`]).
async fn wait_for_rows(
    pool: &PgPool,
    target: &str,
    rows: i64,
    children: &mut [&mut process::Worker],
) {
    let count = format!(
        "SELECT least((SELECT count(*) FROM {target}.debits), (SELECT count(*) FROM {target}.credits))"
    );
    wait_for_count(pool, &count, rows, children).await;
}

fn start_publisher(id: &str, brokers: &str) -> process::Worker {
    let config = publisher_config(&Publisher {
        name: id,
        publication: &format!("{id}_pub"),
        table: &format!("{id}.debits,{id}.credits"),
        brokers,
        schemas: false,
        create_topics: false,
    })
    .replace(
        "config:\n",
        "config:\n  provide.transaction.metadata: \"true\"\n",
    );
    spawn_publisher(id, &config)
}
