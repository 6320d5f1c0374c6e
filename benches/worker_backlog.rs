//! Worker memory against the size of its backlog (issue 11, "memory"):
//! the same `sinkfleet run`, at its default budgets, drains the same number
//! of records from topics whose backlog differs in size. The budgets pause
//! partitions once the records held in memory reach them, so peak RSS must
//! depend on the budgets and not on how much waits in the broker.
//!
//! Each backlog is its own topic (schema-less Debezium events of the usual
//! workload, 128 partitions so the mock cluster's ~5 MiB per partition
//! holds it whole) on librdkafka's mock cluster. The worker runs until its
//! group has committed `--drain` records, sampling VmRSS meanwhile; peak
//! RSS is VmHWM. Needs the local services (`scripts/services.sh start`).
//!
//!     cargo bench --bench worker_backlog [-- --backlogs 200000,1000000]
//!         [--drain 150000] [--partitions 128]
//!         [--sink sinkfleet-postgres|sinkfleet-clickhouse|sinkfleet-parquet]

mod common;

use common::{Worker, arg, mock_cluster, produce_workload};
use sinkfleet_testkit::kafka;
use sinkfleet_testkit::process::{cpu_secs, status_kib};
use sinkfleet_testkit::workload::Options;
use std::time::{Duration, Instant};

/// Partitions per topic unless `--partitions` says otherwise: the mock
/// cluster trims each to ~5 MiB, so ~10k of these records each at most.
const PARTITIONS: i32 = 128;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let backlogs: Vec<usize> = arg("--backlogs")
        .unwrap_or_else(|| "200000,1000000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("--backlogs: record counts"))
        .collect();
    let drain: i64 = arg("--drain")
        .and_then(|d| d.parse().ok())
        .unwrap_or(150_000);
    let sink = arg("--sink").unwrap_or_else(|| "sinkfleet-postgres".into());
    let partitions: i32 = arg("--partitions")
        .and_then(|p| p.parse().ok())
        .unwrap_or(PARTITIONS);
    let topics: Vec<String> = backlogs.iter().map(|n| format!("backlog_{n}")).collect();
    let mut hosted: Vec<String> = topics.iter().map(|t| format!("{t}:{partitions}")).collect();
    hosted.push("dlq:1".to_owned());
    let mock = mock_cluster(&hosted);
    let brokers = mock.bootstrap.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "broker: librdkafka mock cluster ({brokers}), {partitions} partitions per topic; \
         sink {sink}, default budgets; each run stops once {drain} records are committed"
    );
    println!(
        "{:>16} {:>12} {:>14} {:>22} {:>10}",
        "backlog records", "value bytes", "committed", "CPU s per 1M records", "peak RSS"
    );
    for (backlog, topic) in backlogs.iter().zip(&topics) {
        // ~1.4 records per change (duplicates, replays, tombstones).
        let (records, bytes) = produce_workload(
            &rt,
            &brokers,
            topic,
            &Options {
                keys: 50_000,
                changes: backlog * 10 / 14,
                seed: 7,
                with_schema: false,
                ..Options::default()
            },
        );
        let id = format!("bench_backlog_{}_{records}", std::process::id());
        let mut worker = Worker::start(&sink, &brokers, topic, &id);
        let pid = worker.pid();
        let deadline = Instant::now() + Duration::from_secs(900);
        let (committed, cpu, peak) = loop {
            let (cpu, peak) = (cpu_secs(&pid), status_kib(&pid, "VmHWM:"));
            let committed: i64 = kafka::committed_offsets(&brokers, &id, topic, partitions)
                .map(|c| c.values().map(|o| (*o).max(0)).sum())
                .unwrap_or(0);
            if committed >= drain.min(records as i64) {
                break (committed, cpu, peak);
            }
            if let Some(status) = worker.process.exited() {
                panic!("the worker exited early ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not drain {drain}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        worker.stop();
        println!(
            "{:>16} {:>12} {:>14} {:>22.2} {:>6.0} MiB",
            records,
            bytes,
            committed,
            cpu / committed.max(1) as f64 * 1e6,
            peak as f64 / 1024.0
        );
    }
    drop(mock); // ends the host
}
