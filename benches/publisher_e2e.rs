//! Publisher throughput beside the raw rate of reading the same changes
//! from a slot, same machine, same run.
//!
//! Per run: two slots are created, then a workload of single-row inserts
//! (in transactions of 100) is committed. `raw-slot-read` drains one slot
//! with `pg_logical_slot_get_binary_changes` (pgoutput, decoding on the
//! server, nothing sent anywhere). `publisher` runs `sinkfleet publish` on
//! the other slot and is timed until the slot's confirmed LSN reaches the
//! end of the workload: every event decoded, encoded as Debezium JSON and
//! acknowledged by the broker. CPU (user+system) and peak RSS of the
//! publisher process are read from /proc.
//!
//! The broker is librdkafka's mock cluster by default: it accepts produces
//! at memory speed, so the publisher is what is measured (it keeps only
//! ~5 MiB per partition, which does not matter to a producer). `--broker
//! tansu` uses the local tansu instead, which on this machine is the
//! ceiling. Needs the local services (`scripts/services.sh start`).
//!
//!     cargo bench --bench publisher_e2e [-- --rows 100000] [--broker mock|tansu]

mod common;

use common::{Publisher, arg, median, publisher_broker, publisher_config};
use sinkfleet_testkit::process::{cpu_secs, status_kib};

use sqlx::{Executor, PgPool};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 3;
const SLOTS: [&str; 3] = ["raw", "pub", "bare"];

fn parse_lsn(text: &str) -> u64 {
    text.split_once('/')
        .and_then(|(h, l)| {
            Some((u64::from_str_radix(h, 16).ok()? << 32) | u64::from_str_radix(l, 16).ok()?)
        })
        .unwrap_or(0)
}

async fn lsn(pool: &PgPool, sql: &str) -> u64 {
    let text: Option<Option<String>> = sqlx::query_scalar(sql)
        .fetch_optional(pool)
        .await
        .expect("lsn query");
    text.flatten().map(|t| parse_lsn(&t)).unwrap_or(0)
}

struct Sample {
    raw_rate: f64,
    envelope: Published,
    bare: Published,
}

/// One publisher run: events/s until the slot confirmed the end, CPU
/// seconds per 1M events, peak RSS.
struct Published {
    rate: f64,
    cpu_per_million: f64,
    rss_kib: u64,
}

/// The bench's id of run `run` (schema, publication and slot prefix).
fn run_id(run: usize) -> String {
    format!("bp_{}_{run}", std::process::id())
}

async fn run(pool: &PgPool, brokers: &str, rows: usize, run: usize) -> Sample {
    let id = run_id(run);
    let exec = |sql: String| async move { pool.execute(sql.as_str()).await.expect("bench setup") };
    exec(format!(
        "CREATE SCHEMA {id}; CREATE TABLE {id}.events (id bigint PRIMARY KEY, amount numeric(12,2), at timestamptz, note text);
         CREATE PUBLICATION {id}_pub FOR TABLE {id}.events;"
    ))
    .await;
    // One slot per reader, all created before the workload so each sees
    // the same changes. Separate statements: a slot cannot be created in a
    // transaction that wrote.
    for slot in SLOTS {
        exec(format!(
            "SELECT pg_create_logical_replication_slot('{id}_{slot}', 'pgoutput')"
        ))
        .await;
    }
    for batch in 0..rows.div_ceil(100) {
        let from = batch * 100;
        let mut sql = String::from("BEGIN;");
        for i in from..(from + 100).min(rows) {
            sql.push_str(&format!(
                "INSERT INTO {id}.events VALUES ({i}, {i}.25, now(), 'note {i}');"
            ));
        }
        sql.push_str("COMMIT;");
        exec(sql).await;
    }
    let end = lsn(pool, "SELECT pg_current_wal_lsn()::text").await;

    let started = Instant::now();
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM pg_logical_slot_get_binary_changes('{id}_raw', NULL, NULL,
           'proto_version', '1', 'publication_names', '{id}_pub')"
    ))
    .fetch_one(pool)
    .await
    .expect("raw slot read");
    let raw_secs = started.elapsed().as_secs_f64();
    assert!(n as usize >= rows, "raw read saw {n} messages");

    let envelope = publish(pool, brokers, &id, "pub", end, rows, true).await;
    let bare = publish(pool, brokers, &id, "bare", end, rows, false).await;
    for slot in SLOTS {
        exec(format!("SELECT pg_drop_replication_slot('{id}_{slot}')")).await;
    }
    exec(format!(
        "DROP PUBLICATION {id}_pub; DROP SCHEMA {id} CASCADE;"
    ))
    .await;
    Sample {
        raw_rate: rows as f64 / raw_secs,
        envelope,
        bare,
    }
}

/// Runs `sinkfleet publish` on slot `<id>_<slot>` until it confirmed `end`.
async fn publish(
    pool: &PgPool,
    brokers: &str,
    id: &str,
    slot: &str,
    end: u64,
    rows: usize,
    schemas: bool,
) -> Published {
    let config = std::env::temp_dir().join(format!("{id}_{slot}.yaml"));
    std::fs::write(
        &config,
        publisher_config(&Publisher {
            name: &format!("{id}_{slot}"),
            publication: &format!("{id}_pub"),
            table: &format!("{id}.events"),
            brokers,
            schemas,
            create_topics: brokers == sinkfleet_testkit::services::brokers(),
        }),
    )
    .expect("config");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinkfleet"))
        .args(["publish", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("publisher");
    let slot_sql = format!(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{id}_{slot}'"
    );
    while lsn(pool, &slot_sql).await < end {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "publisher did not catch up"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("publisher exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let publisher_secs = started.elapsed().as_secs_f64();
    let pid = child.id().to_string();
    let (cpu, rss_kib) = (cpu_secs(&pid), status_kib(&pid, "VmHWM:"));
    let _ = Command::new("kill").arg(&pid).status();
    let _ = child.wait();
    let _ = std::fs::remove_file(&config);
    Published {
        rate: rows as f64 / publisher_secs,
        cpu_per_million: cpu / rows as f64 * 1e6,
        rss_kib,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: usize = arg("--rows").and_then(|r| r.parse().ok()).unwrap_or(50_000);
    // The mock cluster hosts the topics the publisher will write to.
    let topics: Vec<String> = (0..RUNS)
        .flat_map(|r| {
            ["pub", "bare"].map(|slot| format!("{id}_{slot}.{id}.events:1", id = run_id(r)))
        })
        .collect();
    let (brokers, broker_name, mock) = publisher_broker(topics);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pool = common::pg_pool().await;
        let mut samples = Vec::new();
        for r in 0..RUNS {
            samples.push(run(&pool, &brokers, rows, r).await);
        }
        let raw = median(samples.iter().map(|s| s.raw_rate).collect());
        println!(
            "publisher benchmark: {rows} single-row inserts (100 per transaction), broker: {broker_name} ({brokers}), {RUNS} runs, medians\n"
        );
        println!(
            "{:<36} {:>10} {:>8} {:>22} {:>13}",
            "variant", "events/s", "vs raw", "CPU s per 1M events", "peak RSS MiB"
        );
        println!("{:<36} {:>10.0} {:>7.2}x {:>22} {:>13}", "raw slot read (server decoding)", raw, 1.0, "-", "-");
        for (name, pick) in [
            ("sinkfleet publish (to Kafka, acked)", (|s: &Sample| &s.envelope) as fn(&Sample) -> &Published),
            ("  same, schemas.enable=false", |s: &Sample| &s.bare),
        ] {
            let rate = median(samples.iter().map(|s| pick(s).rate).collect());
            let cpu = median(samples.iter().map(|s| pick(s).cpu_per_million).collect());
            let rss = samples.iter().map(|s| pick(s).rss_kib).max().unwrap_or(0);
            println!(
                "{:<36} {:>10.0} {:>7.2}x {:>22.2} {:>13.1}",
                name,
                rate,
                rate / raw,
                cpu,
                rss as f64 / 1024.0
            );
        }
    });
    drop(mock); // ends the host
}
