//! The incremental snapshot beside the initial snapshot of the same table,
//! same machine, same run.
//!
//! Per run: a table of `--rows` rows (four columns, ~60 bytes) and a
//! signal table are created. `initial` starts `sinkfleet publish` with
//! `snapshot.mode: initial` and is timed from the process's start;
//! `incremental` starts one with `snapshot.mode: no_data`, waits for its
//! slot, inserts an `execute-snapshot` signal and is timed from the
//! signal. Both stop the clock when the broker holds one record per row
//! (its high watermark): every row read, encoded and acknowledged. Nothing
//! else writes, so the windows drop no row. CPU (user+system) of the
//! publisher process is read from /proc.
//!
//! The broker is librdkafka's mock cluster by default, so the publisher is
//! what is measured; `--broker tansu` uses the local tansu. Needs the
//! local services (`scripts/services.sh start`).
//!
//!     cargo bench --bench snapshot_e2e [-- --rows 200000] [--chunk 1024] [--broker mock|tansu]

mod common;

use common::{Publisher, arg, median, publisher_broker, publisher_config, spawn_publisher};
use sinkfleet_testkit::process::cpu_secs;

use sqlx::{Executor, PgPool};
use std::time::{Duration, Instant};

const RUNS: usize = 3;
const VARIANTS: [&str; 2] = ["initial", "incremental"];

/// The bench's id of run `run` and variant `variant` (schema, publication
/// and slot).
fn run_id(run: usize, variant: &str) -> String {
    format!("bs_{}_{run}_{variant}", std::process::id())
}

/// Rows per second, CPU seconds per 1M rows.
struct Sample {
    rate: f64,
    cpu_per_million: f64,
}

async fn run(
    pool: &PgPool,
    brokers: &str,
    rows: usize,
    chunk: usize,
    id: &str,
    incremental: bool,
) -> Sample {
    let exec = |sql: String| async move { pool.execute(sql.as_str()).await.expect("bench setup") };
    exec(format!(
        "CREATE SCHEMA {id};
         CREATE TABLE {id}.events (id bigint PRIMARY KEY, amount numeric(12,2), at timestamptz, note text);
         INSERT INTO {id}.events SELECT g, g + 0.25, now(), 'note ' || g FROM generate_series(1, {rows}) g;
         ANALYZE {id}.events;
         CREATE TABLE {id}.signals (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));
         CREATE PUBLICATION {id}_pub FOR TABLE {id}.events, {id}.signals;"
    ))
    .await;
    let mut config = publisher_config(&Publisher {
        name: id,
        publication: &format!("{id}_pub"),
        table: &format!("{id}.events"),
        brokers,
        schemas: true,
        create_topics: brokers == sinkfleet_testkit::services::brokers(),
    });
    let mode = if incremental { "no_data" } else { "initial" };
    config = config.replace(
        "publisher:\n",
        &format!(
            "  snapshot.mode: {mode}\n  signal.data.collection: {id}.signals\n  \
             incremental.snapshot.chunk.size: {chunk}\npublisher:\n  topic_partitions: 1\n"
        ),
    );
    let mut publisher = spawn_publisher(id, &config);
    let mut started = Instant::now();
    let slot = format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{id}' AND confirmed_flush_lsn IS NOT NULL"
    );
    if incremental {
        while sqlx::query_scalar::<_, i64>(&slot)
            .fetch_one(pool)
            .await
            .expect("slot query")
            == 0
        {
            assert!(publisher.exited().is_none(), "{}", publisher.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started = Instant::now();
        exec(format!(
            r#"INSERT INTO {id}.signals VALUES ('bench', 'execute-snapshot', '{{"data-collections": ["{id}.events"]}}')"#
        ))
        .await;
    }
    let topic = format!("{id}.{id}.events");
    loop {
        let end = sinkfleet_testkit::kafka::end_offsets(brokers, &topic, 1)
            .ok()
            .and_then(|o| o.get(&0).copied())
            .unwrap_or(0);
        if end as usize >= rows {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{mode} snapshot did not finish: {end} of {rows}"
        );
        assert!(publisher.exited().is_none(), "{}", publisher.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(&publisher.pid());
    // Not timed: the initial snapshot's slot gets its real name (a stop
    // before that leaves the staging slot for the next start to drop).
    let deadline = Instant::now() + Duration::from_secs(60);
    while sqlx::query_scalar::<_, i64>(&slot)
        .fetch_one(pool)
        .await
        .expect("slot query")
        == 0
    {
        assert!(Instant::now() < deadline, "slot {id} never streamed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publisher.stop();
    // The server ends the walsender a moment after the client left.
    let active =
        format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{id}' AND active");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>(&active)
        .fetch_one(pool)
        .await
        .expect("slot query")
        > 0
    {
        assert!(Instant::now() < deadline, "slot {id} still active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    exec(format!(
        "SELECT pg_drop_replication_slot('{id}'); DROP PUBLICATION {id}_pub; DROP SCHEMA {id} CASCADE;"
    ))
    .await;
    Sample {
        rate: rows as f64 / secs,
        cpu_per_million: cpu / rows as f64 * 1e6,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: usize = arg("--rows")
        .and_then(|r| r.parse().ok())
        .unwrap_or(200_000);
    let chunk: usize = arg("--chunk").and_then(|r| r.parse().ok()).unwrap_or(1024);
    let topics: Vec<String> = (0..RUNS)
        .flat_map(|r| VARIANTS.map(|v| format!("{id}.{id}.events:1", id = run_id(r, v))))
        .collect();
    let (brokers, broker_name, mock) = publisher_broker(topics);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pool = common::pg_pool().await;
        let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for r in 0..RUNS {
            for (v, variant) in VARIANTS.iter().enumerate() {
                let id = run_id(r, variant);
                samples[v].push(run(&pool, &brokers, rows, chunk, &id, v == 1).await);
            }
        }
        println!(
            "snapshot benchmark: {rows} rows, chunks of {chunk}, broker: {broker_name} ({brokers}), {RUNS} runs, medians\n"
        );
        println!(
            "{:<36} {:>10} {:>12} {:>20}",
            "variant", "rows/s", "vs initial", "CPU s per 1M rows"
        );
        let initial = median(samples[0].iter().map(|s| s.rate).collect());
        for (v, name) in ["initial snapshot", "incremental snapshot (signal)"]
            .iter()
            .enumerate()
        {
            let rate = median(samples[v].iter().map(|s| s.rate).collect());
            let cpu = median(samples[v].iter().map(|s| s.cpu_per_million).collect());
            println!(
                "{:<36} {:>10.0} {:>11.2}x {:>20.2}",
                name,
                rate,
                rate / initial,
                cpu
            );
        }
    });
    drop(mock); // ends the host
}
