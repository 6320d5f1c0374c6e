//! Crash storms: a fleet of workers in one consumer group, a random worker
//! SIGKILLed and restarted again and again while a disorderly stream
//! (duplicates, a replayed range, older versions after newer ones, deletes,
//! TOAST-partial updates, a new column) flows. Afterwards the target holds
//! exactly the expected state, the group's committed offsets reach the end
//! of every partition within a bounded time, and the live workers' lag
//! gauges read 0.
//!
//! Runs on librdkafka's mock cluster (it evicts killed members after the
//! session timeout; tansu does not). The mock keeps ~5 MiB per partition,
//! so the ~110 MB stream is spread over 40 partitions.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

mod common;

use common::parquet::assert_stored_once;
use common::{MockCluster, Pipeline, Worker, free_port, wait_until};
use sinkfleet_sink_s3_parquet::ParquetSinkConfig;
use sinkfleet_testkit::workload::{self, Options, Workload};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 40;
const WORKERS: usize = 3;
const KILLS: usize = 8;
/// Each worker's pace: slow enough that the stream outlasts the kills.
const ROWS_PER_SECOND: u32 = 800;
const CONVERGE: Duration = Duration::from_secs(300);
/// How long committed offsets may lag behind a converged target.
const COMMIT_BOUND: Duration = Duration::from_secs(120);

fn workload() -> Workload {
    workload::generate(&Options {
        keys: 20_000,
        changes: 40_000,
        seed: 99,
        ..Options::default()
    })
}

/// Deterministic pseudo-random numbers (xorshift): the storm is the same
/// every run, its timing on a loaded machine is not.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The workers of one pipeline, restartable under fresh names and ports.
struct Fleet<'a> {
    p: &'a Pipeline,
    sink: String,
    workers: Vec<Worker>,
    started: usize,
}

impl<'a> Fleet<'a> {
    fn start(p: &'a Pipeline, sink: String) -> Self {
        let mut fleet = Fleet {
            p,
            sink,
            workers: Vec::new(),
            started: 0,
        };
        for _ in 0..WORKERS {
            let w = fleet.spawn();
            fleet.workers.push(w);
        }
        fleet
    }

    fn spawn(&mut self) -> Worker {
        self.started += 1;
        let port = free_port();
        let pace = format!("  rate_limit: {{ rows_per_second: {ROWS_PER_SECOND} }}");
        let config = self.p.config_with_sink(&pace, &self.sink, port);
        self.p.spawn(&format!("w{}", self.started), &config, port)
    }

    /// SIGKILLs `KILLS` random workers, one every 2-4 s, restarting each
    /// at once; returns when the last replacement is running.
    async fn storm(&mut self, dice: &mut Dice) {
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(2_000 + dice.roll(2_000))).await;
            let victim = dice.roll(self.workers.len() as u64) as usize;
            self.workers[victim].kill9();
            self.workers[victim] = self.spawn();
        }
    }

    /// Sum of a gauge over the live workers.
    fn total(&self, metric: &str) -> f64 {
        self.workers
            .iter()
            .map(|w| w.metric(&format!("{metric}{{")))
            .sum()
    }

    /// The live workers' lag gauges read 0, and they report every partition.
    async fn wait_lag_zero(&self) {
        wait_until("the live workers' lag reads 0", COMMIT_BOUND, || {
            let reported: usize = self
                .workers
                .iter()
                .filter_map(|w| w.http_get("/metrics"))
                .map(|(_, body)| {
                    body.lines()
                        .filter(|l| l.starts_with("sinkfleet_consumer_lag_records{"))
                        .count()
                })
                .sum();
            reported >= PARTITIONS as usize
                && self.total("sinkfleet_consumer_lag_records") == 0.0
                && self.total("sinkfleet_uncommitted_durable_records") == 0.0
        })
        .await;
    }

    fn stop(mut self) {
        for w in &mut self.workers {
            assert!(w.terminate(Duration::from_secs(60)).success());
        }
    }
}

/// Produces the workload onto a fresh mock cluster.
async fn pipeline(name: &str) -> (Pipeline, MockCluster, Workload) {
    let (p, mock) = Pipeline::on_mock(name, PARTITIONS);
    let w = workload();
    assert!(w.records.len() >= 50_000, "{} records", w.records.len());
    p.produce(&w.records).await;
    (p, mock, w)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_converges_through_a_crash_storm() {
    let (p, _mock, w) = pipeline("chaospg").await;
    let sink = format!(
        "  postgres:\n    url: {}\n    target_schema: {}\n    meta_schema: {}_meta\n",
        p.pg_url, p.schema, p.schema
    );
    let mut fleet = Fleet::start(&p, sink);
    let mut dice = Dice(0x5eed_cafe);
    fleet.storm(&mut dice).await;
    let storm_over = Instant::now();

    let pool = p.pool().await;
    p.wait_converged(&pool, &w, CONVERGE).await;
    let converged = Instant::now();
    p.wait_committed_to_end(&p.group, COMMIT_BOUND).await;
    let committed = Instant::now();
    fleet.wait_lag_zero().await;
    eprintln!(
        "chaos (postgres): {} records, {KILLS} kills, {} worker starts; converged {:.1} s after the storm, committed == end {:.1} s after that",
        w.records.len(),
        fleet.started,
        (converged - storm_over).as_secs_f64(),
        (committed - converged).as_secs_f64(),
    );
    fleet.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn parquet_stores_every_record_once_through_a_crash_storm() {
    let (p, _mock, w) = pipeline("chaospq").await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(&p.schema);
    let sink = format!(
        "  s3_parquet:\n    target:\n      local:\n        path: {}\n    rotation: {{ max_rows: 500, max_age_ms: 1000 }}\n",
        dir.display()
    );
    let mut fleet = Fleet::start(&p, sink);
    let mut dice = Dice(0xfee1_600d);
    fleet.storm(&mut dice).await;
    let storm_over = Instant::now();

    p.wait_committed_to_end(&p.group, CONVERGE).await;
    let committed = Instant::now();
    fleet.wait_lag_zero().await;
    eprintln!(
        "chaos (parquet): {} records, {KILLS} kills, {} worker starts; committed == end {:.1} s after the storm",
        w.records.len(),
        fleet.started,
        (committed - storm_over).as_secs_f64(),
    );
    fleet.stop();
    assert_stored_once(ParquetSinkConfig::local(dir.to_str().unwrap()), &w).await;
}
