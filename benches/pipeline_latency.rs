//! Source commit → visible in the target, through the whole pipeline
//! (issue 11's latency row): Postgres → `sinkfleet publish` → broker →
//! `sinkfleet run` → Postgres, at a steady rate of source changes.
//!
//! The source table stamps each row with `clock_timestamp()` when it is
//! inserted (one short transaction per tick, so that is its commit time to
//! within the statement); the target table is created beforehand with one
//! extra column, `visible_at timestamptz DEFAULT clock_timestamp()`, which
//! the sink does not write, so Postgres stamps the moment the sink's
//! insert ran (its transaction commits right after). Both stamps come from
//! the same server clock; the latency is their difference, per row. The
//! broker is librdkafka's mock cluster. Needs the local services
//! (`scripts/services.sh start`).
//!
//!     cargo bench --bench pipeline_latency [-- --rate 5000 --seconds 20]

mod common;

use common::{
    Publisher, Worker, arg, mock_cluster, process, publisher_config, remove_pipeline,
    spawn_publisher, wait_for_count,
};
use sqlx::{Executor, PgPool};
use std::time::{Duration, Instant};

/// Source transactions per second: the rate is spread over them.
const TICKS_PER_SECOND: u64 = 100;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rate: u64 = arg("--rate").and_then(|r| r.parse().ok()).unwrap_or(5_000);
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(20);
    let id = format!("lat_{}", std::process::id());
    let target = format!("{id}_t");
    let topic = format!("{id}.{id}.events");
    let mock = mock_cluster(&[format!("{topic}:4"), "dlq:1".to_owned()]);
    let brokers = mock.bootstrap.clone();
    let pg_url = sinkfleet_testkit::services::pg_url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pool = PgPool::connect(&pg_url)
            .await
            .expect("Postgres (scripts/services.sh start)");
        let exec = |sql: String| {
            let pool = pool.clone();
            async move {
                pool.execute(sql.as_str())
                    .await
                    .expect("bench setup")
            }
        };
        exec(format!(
            "CREATE SCHEMA {id};
             CREATE TABLE {id}.events (id bigint PRIMARY KEY, n int, at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE PUBLICATION {id}_pub FOR TABLE {id}.events;
             CREATE SCHEMA {target};
             CREATE TABLE {target}.events (id bigint PRIMARY KEY, n int, at timestamptz,
                 visible_at timestamptz NOT NULL DEFAULT clock_timestamp());"
        ))
        .await;
        let mut publisher = start_publisher(&id, &brokers);
        let mut worker = Worker::start("sinkfleet-postgres", &brokers, &topic, &target);

        // Warm-up: one row through the whole pipeline (slot created,
        // group joined, table prepared) before the clock matters.
        exec(format!("INSERT INTO {id}.events (id, n) VALUES (0, 0)")).await;
        wait_for_rows(&pool, &target, 1, &mut [&mut publisher, &mut worker.process]).await;

        let total = rate * seconds;
        let per_tick = (rate / TICKS_PER_SECOND).max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / TICKS_PER_SECOND));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut next = 1u64;
        while next <= total {
            tick.tick().await;
            let last = (next + per_tick - 1).min(total);
            exec(format!(
                "INSERT INTO {id}.events (id, n) SELECT g, 1 FROM generate_series({next}, {last}) g"
            ))
            .await;
            next = last + 1;
        }
        let achieved = total as f64 / started.elapsed().as_secs_f64();
        let everything = total as i64 + 1;
        wait_for_rows(&pool, &target, everything, &mut [&mut publisher, &mut worker.process]).await;

        let (p50, p90, p99, max): (f64, f64, f64, f64) = sqlx::query_as(&format!(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l),
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY l),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY l),
                    max(l)
             FROM (SELECT extract(epoch FROM visible_at - at)::float8 * 1000 AS l
                   FROM {target}.events WHERE id > 0) s"
        ))
        .fetch_one(&pool)
        .await
        .expect("latency query");
        println!(
            "pipeline: Postgres -> sinkfleet publish -> librdkafka mock cluster ({brokers}) -> sinkfleet run -> Postgres, default settings"
        );
        println!(
            "{total} source changes at {achieved:.0}/s ({per_tick} per transaction, {TICKS_PER_SECOND} transactions/s)"
        );
        println!(
            "source commit -> visible in target: p50 {p50:.0} ms, p90 {p90:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"
        );

        worker.stop();
        remove_pipeline(&pool, &id, &target, publisher).await;
    });
    drop(mock); // ends the host
}

/// Waits until the target holds `rows` rows (see [`wait_for_count`]).
async fn wait_for_rows(
    pool: &PgPool,
    target: &str,
    rows: i64,
    children: &mut [&mut process::Worker],
) {
    wait_for_count(
        pool,
        &format!("SELECT count(*) FROM {target}.events"),
        rows,
        children,
    )
    .await;
}

fn start_publisher(id: &str, brokers: &str) -> process::Worker {
    let config = publisher_config(&Publisher {
        name: id,
        publication: &format!("{id}_pub"),
        table: &format!("{id}.events"),
        brokers,
        schemas: true,
        create_topics: false,
    });
    spawn_publisher(id, &config)
}
