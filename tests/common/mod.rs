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
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub fn brokers() -> String {
    std::env::var("SINKFLEET_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:59092".into())
}

pub fn pg_url() -> String {
    std::env::var("SINKFLEET_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432/postgres".into())
}

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

    /// A pipeline on a fresh mock cluster (see [`MockBroker`]) holding its
    /// topic and dead-letter topic.
    pub fn on_mock(name: &str, partitions: i32) -> (Self, MockBroker) {
        let mut p = Pipeline::named(name, String::new(), partitions);
        // The mock cannot create topics: the workers' status topic too.
        let status = format!("{}.status", p.group);
        let resolved = format!("{}.resolved", p.dlq);
        let mock = MockBroker::start(&[
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

/// A `sinkfleet run` child process; killed on drop.
pub struct Worker {
    child: Child,
    pub log: PathBuf,
    pub metrics_port: u16,
}

impl Worker {
    pub fn spawn(name: &str, config: &str, metrics_port: u16) -> Worker {
        Worker::start(name, "run", config, metrics_port)
    }

    /// Runs `sinkfleet <subcommand> --config <config>`.
    pub fn start(name: &str, subcommand: &str, config: &str, metrics_port: u16) -> Worker {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let config_path = dir.join(format!("{name}.yaml"));
        std::fs::write(&config_path, config).expect("writing config");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sinkfleet"))
            .args([subcommand, "--config"])
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("SINKFLEET_TEST_WORKER_LOG")
                    .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawning sinkfleet");
        Worker {
            child,
            log,
            metrics_port,
        }
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        send_signal(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit after SIGTERM; log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no drain, no commit, no leaving the group.
    pub fn kill9(&mut self) {
        send_signal(self.child.id(), "KILL");
        let _ = self.child.wait();
    }

    /// SIGSTOP: the process freezes (no polls, no heartbeats) with its
    /// connections and whatever it had in flight.
    pub fn freeze(&self) {
        send_signal(self.child.id(), "STOP");
    }

    /// SIGCONT after [`Worker::freeze`].
    pub fn thaw(&self) {
        send_signal(self.child.id(), "CONT");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path from the worker's metrics endpoint: (status, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_port, path)
    }

    /// Sum of a metric's samples whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        let Some((_, body)) = self.http_get("/metrics") else {
            return 0.0;
        };
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Worker {
    /// A per-partition gauge of `topic` (`sinkfleet_consumer_lag_records`
    /// and the like): partition → value, for the partitions it has a
    /// series of.
    pub fn partition_gauge(&self, name: &str, topic: &str) -> HashMap<i32, f64> {
        let Some((_, body)) = self.http_get("/metrics") else {
            return HashMap::new();
        };
        let topic_label = format!("topic=\"{topic}\"");
        body.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&topic_label))
            .filter_map(|l| {
                let partition = l.split("partition=\"").nth(1)?.split('"').next()?;
                let value = l.rsplit(' ').next()?.parse::<f64>().ok()?;
                Some((partition.parse().ok()?, value))
            })
            .collect()
    }
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

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Runs `sinkfleet <args> --config <config>` to its end: (exit code,
/// stdout then stderr).
pub fn cli(args: &[&str], config: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sinkfleet"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("running sinkfleet");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `GET path` from a server on 127.0.0.1:`port`: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Signals a process through `kill(1)`, which keeps the tests free of unsafe code.
fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// librdkafka's mock cluster, hosted by `sinkfleet-mock-cluster` in its own
/// process: a broker that evicts SIGKILLed group members (tansu does not)
/// and refuses requests on demand. It keeps ~5 MiB per partition.
pub struct MockBroker {
    child: Child,
    answers: BufReader<ChildStdout>,
    /// `bootstrap.servers` of the cluster.
    pub bootstrap: String,
}

impl MockBroker {
    /// Starts a cluster with `(topic, partitions)`.
    pub fn start(topics: &[(&str, i32)]) -> MockBroker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sinkfleet-mock-cluster"));
        for (topic, partitions) in topics {
            cmd.args(["--topic", &format!("{topic}:{partitions}")]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the mock cluster");
        let mut answers = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        answers.read_line(&mut line).expect("bootstrap line");
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap=")
            .expect("bootstrap line")
            .to_owned();
        MockBroker {
            child,
            answers,
            bootstrap,
        }
    }

    /// Makes the next `count` requests of `api` fail with `error`
    /// (`fail OffsetCommit 5 REBALANCE_IN_PROGRESS`, see the binary).
    pub fn fail(&mut self, api: &str, count: usize, error: &str) {
        self.command(&format!("fail {api} {count} {error}"));
    }

    /// Drops the failures of `api` not used yet (see [`MockBroker::fail`]).
    pub fn clear(&mut self, api: &str) {
        self.command(&format!("clear {api}"));
    }

    /// Delays every broker response by `ms` (0: no delay), as a distant or
    /// loaded cluster would.
    pub fn rtt(&mut self, ms: u64) {
        self.command(&format!("rtt {ms}"));
    }

    fn command(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}").expect("mock cluster stdin");
        stdin.flush().expect("mock cluster stdin");
        let mut answer = String::new();
        self.answers
            .read_line(&mut answer)
            .expect("mock cluster answer");
        assert_eq!(
            answer.trim(),
            "ok",
            "mock cluster refused {line:?}: {answer}"
        );
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        // Closing stdin ends it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
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
