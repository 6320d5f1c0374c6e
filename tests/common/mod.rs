//! Harness for the end-to-end tests: real broker, real Postgres, the real
//! `sinkfleet` binary as a child process.
//!
//! Services come from `scripts/services.sh start` (addresses from
//! `SINKFLEET_KAFKA_BROKERS` / `SINKFLEET_PG_URL`). Every test uses its own
//! topic, consumer group and target schema, so tests run in parallel.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod avro;
pub mod json_schema;
pub mod parquet;
pub mod protobuf;
pub mod source;

use sinkfleet_sink_clickhouse::client::Client;
use sinkfleet_testkit::kafka;
use sinkfleet_testkit::workload::{ExpectedRow, Workload};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use sinkfleet_testkit::process::{MockCluster, Worker};
pub use sinkfleet_testkit::services::{brokers, pg_url};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A free loopback port for a worker's metrics endpoint.
///
/// Taken below Linux's ephemeral range (32768-60999): a port from `bind(0)`
/// comes from that range, and the many outgoing connections the tests open
/// (Kafka, Postgres) can take it between our check and the worker's bind.
/// Ports handed out in this process are not handed out twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one after another; each starts elsewhere anyway.
    let start = (std::process::id() % 400) as u16 * 30;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + start.wrapping_add(n) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One pipeline under test: topic, dead-letter topic, group, target schema.
pub struct Pipeline {
    pub brokers: String,
    pub pg_url: String,
    pub topic: String,
    pub dlq: String,
    pub group: String,
    pub schema: String,
    pub partitions: i32,
}

impl Pipeline {
    fn named(name: &str, brokers: String, partitions: i32) -> Self {
        let id = unique(name);
        Pipeline {
            brokers,
            pg_url: pg_url(),
            topic: format!("{id}.customers"),
            dlq: format!("{id}.dlq"),
            group: format!("{id}-group"),
            schema: id,
            partitions,
        }
    }

    /// A pipeline on a fresh mock cluster (see [`MockCluster`]) holding its
    /// topic and dead-letter topic.
    pub fn on_mock(name: &str, partitions: i32) -> (Self, MockCluster) {
        let mut p = Pipeline::named(name, String::new(), partitions);
        // The mock cannot create topics: the workers' status topic too.
        let status = format!("{}.status", p.group);
        let resolved = format!("{}.resolved", p.dlq);
        let mock = MockCluster::start(&[
            (&p.topic, partitions),
            (&p.dlq, 1),
            (&resolved, 1),
            (&status, 1),
        ]);
        p.brokers = mock.bootstrap.clone();
        (p, mock)
    }

    /// Creates the topics on the broker.
    pub async fn new(name: &str, partitions: i32) -> Self {
        let p = Pipeline::named(name, brokers(), partitions);
        kafka::create_topic(&p.brokers, &p.topic, partitions)
            .await
            .expect("broker not reachable: run scripts/services.sh start (or scripts/test.sh)");
        for topic in [&p.dlq, &format!("{}.resolved", p.dlq)] {
            kafka::create_topic(&p.brokers, topic, 1)
                .await
                .expect("creating the DLQ topics");
        }
        p
    }

    /// The worker config; `extra_worker` and `extra_sink` are YAML lines
    /// appended under `worker:` and `sink.postgres:`.
    pub fn config(&self, extra_worker: &str, extra_sink: &str, metrics_port: u16) -> String {
        let sink = format!(
            "  postgres:
    url: {url}
    target_schema: {schema}
    meta_schema: {schema}_meta
{extra_sink}",
            url = self.pg_url,
            schema = self.schema,
        );
        self.config_with_sink(extra_worker, &sink, metrics_port)
    }

    /// The worker config with `sink` (YAML lines under `sink:`).
    pub fn config_with_sink(&self, extra_worker: &str, sink: &str, metrics_port: u16) -> String {
        format!(
            "kafka:
  brokers: {brokers}
  group_id: {group}
  topics: [{topic}]
  properties:
    session.timeout.ms: \"6000\"
    heartbeat.interval.ms: \"500\"
dead_letter:
  topic: {dlq}
  create_topic: false
worker:
  linger_ms: 50
  batch_max_records: 1000
  retry_initial_ms: 100
  retry_max_ms: 1000
{extra_worker}
sink:
{sink}
metrics:
  listen: 127.0.0.1:{metrics_port}
",
            brokers = self.brokers,
            group = self.group,
            topic = self.topic,
            dlq = self.dlq,
        )
    }

    /// Writes `config` where a CLI command can read it; `name` tells the
    /// files of one test apart.
    pub fn config_file(&self, name: &str, config: &str) -> PathBuf {
        let path =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}.yaml", self.schema));
        std::fs::write(&path, config).expect("writing config");
        path
    }

    /// Starts a worker with this config.
    pub fn spawn(&self, name: &str, config: &str, metrics_port: u16) -> Worker {
        Worker::spawn(&format!("{}-{name}", self.schema), config, metrics_port)
    }

    pub async fn produce(&self, records: &[kafka::Record]) {
        kafka::produce(&self.brokers, &self.topic, records)
            .await
            .expect("produce");
    }

    pub fn end_offsets(&self) -> HashMap<i32, i64> {
        kafka::end_offsets(&self.brokers, &self.topic, self.partitions).expect("end offsets")
    }

    pub fn committed(&self, group: &str) -> HashMap<i32, i64> {
        kafka::committed_offsets(&self.brokers, group, &self.topic, self.partitions)
            .expect("committed offsets")
    }

    /// Waits until the group's committed offsets reach the end of the topic.
    pub async fn wait_committed_to_end(&self, group: &str, timeout: Duration) {
        let end = self.end_offsets();
        let deadline = Instant::now() + timeout;
        loop {
            let committed = self.committed(group);
            if committed == end {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "offsets of {group} never reached the end: committed {committed:?}, end {end:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.pg_url)
            .await
            .expect("Postgres not reachable")
    }

    /// Waits until `<schema>.customers` equals the workload's final state.
    pub async fn wait_converged(&self, pool: &PgPool, w: &Workload, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = customers(pool, &self.schema).await;
            if got == w.expected {
                return;
            }
            if Instant::now() >= deadline {
                let wrong: Vec<_> = w
                    .expected
                    .iter()
                    .filter(|(k, v)| got.get(k) != Some(v))
                    .take(3)
                    .collect();
                let extra: Vec<_> = got
                    .keys()
                    .filter(|k| !w.expected.contains_key(k))
                    .take(3)
                    .collect();
                panic!(
                    "target never converged: {} rows, {} expected; first wrong {wrong:?}; unexpected keys {extra:?}",
                    got.len(),
                    w.expected.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Live rows of `<schema>.customers` (empty if the table does not exist yet).
pub async fn customers(pool: &PgPool, schema: &str) -> BTreeMap<i64, ExpectedRow> {
    sinkfleet_testkit::target::customers(pool, schema)
        .await
        .unwrap_or_default()
}

/// Whether the workers' lag gauges tell the truth about `p`'s partitions:
/// for each one, the largest `sinkfleet_consumer_lag_records` among
/// `workers` (its owner's: the others publish 0 for it) is the end offset
/// minus the group's committed offset in Kafka, and its largest
/// `sinkfleet_consumer_lag_seconds` is above 0 where there is lag. `Err`
/// says what they showed instead.
pub fn lag_is_true(p: &Pipeline, workers: &[&Worker]) -> Result<(), String> {
    let end = p.end_offsets();
    let committed = p.committed(&p.group);
    let largest = |name: &str| {
        let mut out: HashMap<i32, f64> = HashMap::new();
        for w in workers {
            for (partition, v) in w.partition_gauge(name, &p.topic) {
                let e = out.entry(partition).or_insert(v);
                *e = e.max(v);
            }
        }
        out
    };
    let (records, seconds) = (
        largest("sinkfleet_consumer_lag_records"),
        largest("sinkfleet_consumer_lag_seconds"),
    );
    let mut wrong = Vec::new();
    for partition in 0..p.partitions {
        let lag = end[&partition] - committed[&partition].max(0);
        let shown = records.get(&partition).copied();
        let age = seconds.get(&partition).copied().unwrap_or(0.0);
        if shown != Some(lag as f64) || (lag > 0 && age <= 0.0) {
            wrong.push(format!(
                "partition {partition}: lag {lag} (end {}, committed {}), gauges show {shown:?} records, {age} s",
                end[&partition], committed[&partition]
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Waits until [`lag_is_true`] holds, for `timeout` at most; `Err` with
/// what the gauges last showed when it never did (the caller asserts, once
/// the rest of its scenario ran).
pub async fn wait_true_lag(
    p: &Pipeline,
    workers: &[&Worker],
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let result = tokio::task::block_in_place(|| lag_is_true(p, workers));
        if result.is_ok() || Instant::now() >= deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Takes `schema.table` with an exclusive lock, held until the returned
/// transaction ends: a stalled target, as a long migration makes one.
pub async fn lock_table(
    pool: &PgPool,
    schema: &str,
    table: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = pool.begin().await.expect("begin");
    sqlx::query(&format!(
        "LOCK TABLE \"{schema}\".{table} IN ACCESS EXCLUSIVE MODE"
    ))
    .execute(&mut *lock)
    .await
    .expect("lock table");
    lock
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A TCP proxy in front of a server that a test can take down (refuse and
/// cut every connection) and bring back, like a target outage.
pub struct Proxy {
    pub port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let p = Proxy {
            port: free_port(),
            upstream: upstream.to_owned(),
            tasks: Arc::default(),
        };
        p.up().await;
        p
    }

    pub async fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy bind");
        let upstream = self.upstream.clone();
        let tasks = Arc::clone(&self.tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("proxy task list").push(conn);
            }
        });
        self.tasks.lock().expect("proxy task list").push(accept);
    }

    pub fn down(&self) {
        for t in self.tasks.lock().expect("proxy task list").drain(..) {
            t.abort();
        }
    }
}

/// `(id, name)` of `<db>.customers` in ClickHouse: live rows after `FINAL`
/// (empty while the table is missing).
pub async fn clickhouse_names(client: &Client, db: &str) -> Vec<(i64, String)> {
    let sql = format!(
        "SELECT id, name FROM `{db}`.customers FINAL WHERE __sinkfleet_deleted = 0 ORDER BY id FORMAT JSONEachRow"
    );
    let body = client
        .execute(
            &sql,
            None,
            &[("output_format_json_quote_64bit_integers", "0".into())],
        )
        .await
        .unwrap_or_default();
    body.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("ClickHouse JSONEachRow");
            (
                v["id"].as_i64().expect("id"),
                v["name"].as_str().expect("name").to_owned(),
            )
        })
        .collect()
}

/// Waits (30 s at most) for [`clickhouse_names`] to equal `want`; returns the last read.
pub async fn wait_names(client: &Client, db: &str, want: &[(i64, String)]) -> Vec<(i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = clickhouse_names(client, db).await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
