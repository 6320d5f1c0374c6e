//! End-to-end throughput of the Postgres sink beside raw baselines, on the
//! same machine, in one run:
//!
//! * `sink-unnest` / `sink-copy`: the sink applying a realistic change
//!   stream (decode, collapse, conditional upserts, versioned deletes) in
//!   batches of 5000, one transaction each, through both write paths;
//! * `raw-copy`: `COPY` of just the final rows into a bare table (the floor
//!   no idempotent sink can beat: it knows the answer in advance);
//! * `naive-upsert`: one autocommitted `INSERT .. ON CONFLICT .. WHERE
//!   version <` per change (what a hand-written consumer often does).
//!
//! Each variant runs in a fresh child process (so peak RSS is its own),
//! three times; the table shows medians and ratios against raw COPY (the
//! issue's measure). Needs the local services (`scripts/services.sh
//! start`). Rows/s counts input records for the sink and naive variants,
//! final rows for raw COPY. "Writing" leaves out the sink's decoding of
//! each batch (timed with it in "rows/s").
//!
//!     cargo bench --bench postgres_sink_e2e [-- --changes 100000]

mod common;

use common::{arg, median};
use sinkfleet_testkit::process::status_kib;

use sinkfleet_core::debezium::{DecodeOptions, Decoder, decode};
use sinkfleet_core::{Sink, SinkRecord};
use sinkfleet_sink_postgres::{PostgresSink, PostgresSinkConfig, WritePath};
use sinkfleet_testkit::records::sink_records;
use sinkfleet_testkit::services::pg_url;
use sinkfleet_testkit::workload::{self, Options};
use sqlx::{Connection, PgConnection};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

const VARIANTS: [&str; 4] = ["sink-unnest", "sink-copy", "raw-copy", "naive-upsert"];
const RUNS: usize = 3;
const BATCH: usize = 5_000;

fn main() {
    let changes: usize = arg("--changes")
        .and_then(|c| c.parse().ok())
        .unwrap_or(60_000);
    if let Some(variant) = arg("--variant") {
        let run = arg("--run").unwrap_or_default();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (rows, secs, writing) = rt.block_on(run_variant(&variant, changes, &run));
        // One line for the parent: rows, seconds, seconds writing, peak RSS.
        println!(
            "RESULT {rows} {secs} {writing} {}",
            status_kib("self", "VmHWM:")
        );
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!(
        "postgres sink benchmark: {changes} changes, batches of {BATCH}, {RUNS} runs each (medians)\n"
    );
    let mut results: Vec<(&str, f64, f64, f64, u64)> = Vec::new();
    for variant in VARIANTS {
        let mut samples: Vec<(f64, f64, f64, u64)> = Vec::new();
        for run in 0..RUNS {
            let out = Command::new(&exe)
                .args([
                    "--variant",
                    variant,
                    "--changes",
                    &changes.to_string(),
                    "--run",
                    &run.to_string(),
                ])
                .output()
                .expect("running a variant");
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(line) = text.lines().find(|l| l.starts_with("RESULT ")) else {
                panic!("{variant} failed: {}", String::from_utf8_lossy(&out.stderr));
            };
            let f: Vec<f64> = line[7..]
                .split(' ')
                .filter_map(|x| x.parse().ok())
                .collect();
            samples.push((f[0] / f[1], f[0] / f[2], f[1], f[3] as u64));
        }
        let rate = median(samples.iter().map(|s| s.0).collect());
        let write_rate = median(samples.iter().map(|s| s.1).collect());
        let secs = median(samples.iter().map(|s| s.2).collect());
        let rss = samples.iter().map(|s| s.3).max().unwrap_or(0);
        results.push((variant, rate, write_rate, secs, rss));
    }
    let base = results
        .iter()
        .find(|r| r.0 == "raw-copy")
        .map(|r| r.1)
        .unwrap_or(1.0);
    println!(
        "{:<14} {:>12} {:>15} {:>9} {:>12} {:>15} {:>13}",
        "variant",
        "rows/s",
        "writing rows/s",
        "seconds",
        "vs raw-copy",
        "writing vs raw",
        "peak RSS MiB"
    );
    for (variant, rate, write_rate, secs, rss) in &results {
        println!(
            "{variant:<14} {rate:>12.0} {write_rate:>15.0} {secs:>9.2} {:>11.2}x {:>14.2}x {:>13.1}",
            rate / base,
            write_rate / base,
            *rss as f64 / 1024.0
        );
    }
}

/// Runs one variant: (rows, seconds in all, seconds writing). The sink
/// variants decode each batch inside the timing (it is part of a worker's
/// work), and report the write part on its own too.
async fn run_variant(variant: &str, changes: usize, run: &str) -> (usize, f64, f64) {
    let w = workload::generate(&Options {
        keys: (changes / 5) as i64,
        changes,
        seed: 42,
        bio_len: 200,
        ..Options::default()
    });
    let schema = format!(
        "bench_{}_{run}_{}",
        variant.replace('-', "_"),
        std::process::id()
    );
    let mut conn = PgConnection::connect(&pg_url())
        .await
        .expect("Postgres (scripts/services.sh start)");
    match variant {
        "sink-unnest" | "sink-copy" => {
            let topic: Arc<str> = Arc::from("bench");
            let mut opts = DecodeOptions::default();
            opts.key_columns.insert("*".into(), vec!["id".into()]);
            // Decoding is part of the sink's work: it happens per batch, in the timing.
            let mut decoder = Decoder::new(opts.clone());
            let mut decode_batch =
                |from: usize, raw: &[sinkfleet_testkit::kafka::Record]| -> Vec<SinkRecord> {
                    sink_records(raw, from as i64, &topic, &mut decoder)
                };
            let mut cfg = PostgresSinkConfig::with_url(pg_url());
            cfg.target_schema = Some(schema.clone());
            cfg.meta_schema = format!("{schema}_meta");
            cfg.write_path = if variant == "sink-copy" {
                WritePath::Copy
            } else {
                WritePath::Unnest
            };
            let mut sink = PostgresSink::new(cfg).expect("sink");
            // Create the table outside the timing.
            sink.write(&decode_batch(0, &w.records[..1]))
                .await
                .expect("warm-up");
            let started = Instant::now();
            let mut writing = 0.0;
            for (n, raw) in w.records.chunks(BATCH).enumerate() {
                let batch = decode_batch(n * BATCH, raw);
                let write = Instant::now();
                sink.write(&batch).await.expect("sink write");
                writing += write.elapsed().as_secs_f64();
            }
            let secs = started.elapsed().as_secs_f64();
            drop_schema(&mut conn, &schema).await;
            (w.records.len(), secs, writing)
        }
        "raw-copy" => {
            create_plain(&mut conn, &schema).await;
            let mut data = String::new();
            for r in w.expected.values() {
                data.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\n",
                    r.id,
                    r.name,
                    r.email,
                    r.balance,
                    r.updated_at_micros,
                    r.bio.as_deref().unwrap_or("\\N"),
                    r.tier.as_deref().unwrap_or("\\N")
                ));
            }
            let started = Instant::now();
            let mut copy = conn
                .copy_in_raw(&format!("COPY \"{schema}\".customers FROM STDIN"))
                .await
                .expect("copy");
            copy.send(data.as_bytes()).await.expect("copy data");
            copy.finish().await.expect("copy finish");
            let secs = started.elapsed().as_secs_f64();
            drop_schema(&mut conn, &schema).await;
            (w.expected.len(), secs, secs)
        }
        "naive-upsert" => {
            create_plain(&mut conn, &schema).await;
            let mut opts = DecodeOptions::default();
            opts.key_columns.insert("*".into(), vec!["id".into()]);
            let sql = format!(
                "INSERT INTO \"{schema}\".customers AS t (id, name, email, version) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, version = EXCLUDED.version
                 WHERE t.version < EXCLUDED.version"
            );
            let changes: Vec<_> = w
                .records
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    decode(r.key.as_deref(), r.value.as_deref(), i as i64, &opts).ok()?
                })
                .collect();
            let started = Instant::now();
            for c in &changes {
                let id = match c.key.get("id") {
                    Some(sinkfleet_core::Value::Int(i)) => *i,
                    _ => 0,
                };
                let text = |n: &str| match c.row.as_ref().and_then(|r| r.get(n)) {
                    Some(sinkfleet_core::Value::Text(s)) => Some(s.clone()),
                    _ => None,
                };
                sqlx::query(&sql)
                    .bind(id)
                    .bind(text("name"))
                    .bind(text("email"))
                    .bind(c.version.as_u128().to_string())
                    .execute(&mut conn)
                    .await
                    .expect("naive upsert");
            }
            let secs = started.elapsed().as_secs_f64();
            drop_schema(&mut conn, &schema).await;
            (changes.len(), secs, secs)
        }
        other => panic!("unknown variant {other}"),
    }
}

async fn create_plain(conn: &mut PgConnection, schema: &str) {
    let ddl = format!(
        "CREATE SCHEMA \"{schema}\";
         CREATE TABLE \"{schema}\".customers (id bigint PRIMARY KEY, name text, email text, balance numeric(12,2),
           updated_at bigint, bio text, tier text, version text)"
    );
    sqlx::raw_sql(&ddl).execute(conn).await.expect("create");
}

async fn drop_schema(conn: &mut PgConnection, schema: &str) {
    let sql = format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; DROP SCHEMA IF EXISTS \"{schema}_meta\" CASCADE"
    );
    let _ = sqlx::raw_sql(&sql).execute(conn).await;
}
