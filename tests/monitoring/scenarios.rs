//! The scenarios: real processes, and the real event meant to fire each
//! alert.

use crate::common::source::{CONVERGE, Source};
use crate::common::{self, MockCluster, Pipeline, Worker, brokers};
use crate::prometheus::{
    Prometheus, alert_expressions, dashboard_expressions, metric_names, wait_for,
};
use futures::FutureExt;
use serde_json::{Value, json};
use sinkfleet_testkit::kafka::{self, Record};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One check of the run: an alert that must fire (or a dashboard check),
/// the event meant to fire it, and the seconds it took or what went wrong.
pub struct Outcome {
    pub check: String,
    pub event: String,
    pub result: Result<f64, String>,
}

impl Outcome {
    pub fn new(check: &str, event: &str, result: Result<f64, String>) -> Outcome {
        Outcome {
            check: check.to_owned(),
            event: event.to_owned(),
            result,
        }
    }
}

/// Runs a future to completion from a synchronous check.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Milliseconds since the epoch, `ago` back.
pub fn ms_ago(ago: Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now - ago).as_millis() as i64
}

/// A Debezium create of `public.events` row `id` at LSN `lsn`, committed
/// at `ts_ms` in the source.
pub fn event(id: i64, lsn: u64, ts_ms: i64) -> Record {
    Record {
        key: Some(json!({ "id": id }).to_string().into_bytes()),
        value: Some(
            json!({"op": "c",
                   "source": {"schema": "public", "table": "events", "lsn": lsn, "ts_ms": ts_ms},
                   "after": {"id": id, "seq": lsn}})
            .to_string()
            .into_bytes(),
        ),
    }
}

/// The publisher, Postgres worker and Parquet worker of the dashboard,
/// then a second publisher whose broker answers late.
pub struct PipelineRun {
    pub src: Source,
    publisher: Option<Worker>,
    worker: Worker,
    parquet: Worker,
    slow: SlowPublisher,
}

/// A publisher on a mock cluster of its own (its broker can be made slow).
pub struct SlowPublisher {
    src: Source,
    mock: MockCluster,
    publisher: Worker,
}

impl PipelineRun {
    pub async fn start(ports: &Ports) -> PipelineRun {
        let ((src, publisher, worker, parquet), slow) = tokio::join!(
            PipelineRun::start_pipeline(ports),
            SlowPublisher::start(ports.slow_publisher)
        );
        PipelineRun {
            src,
            publisher: Some(publisher),
            worker,
            parquet,
            slow,
        }
    }

    async fn start_pipeline(ports: &Ports) -> (Source, Worker, Worker, Worker) {
        let src = Source::new("prom").await;
        let s = &src.schema;
        src.sql(&format!(
            "CREATE TABLE {s}.acct (id int PRIMARY KEY, balance numeric(12,2), note text);
             INSERT INTO {s}.acct SELECT g, g * 1.5, 'n' || g FROM generate_series(1, 200) g"
        ))
        .await;
        let publisher = Worker::start(
            &src.prefix,
            "publish",
            &src.publisher_config(&["acct"], &brokers(), "", ports.publisher),
            ports.publisher,
        );
        common::wait_until("snapshot read", CONVERGE, || {
            publisher.metric("sinkfleet_publisher_snapshot_rows_done") >= 200.0
        })
        .await;
        // With park_key, a dead-lettered record parks its key.
        let worker = Worker::spawn(
            &format!("{}-sink", src.prefix),
            &src.worker_config(&["acct"], ports.worker).replace(
                &format!("  topic: {}.dlq\n", src.prefix),
                &format!("  topic: {}.dlq\n  on_error: park_key\n", src.prefix),
            ),
            ports.worker,
        );
        // Files stay open for 10 s: long enough to be seen buffered.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&src.prefix);
        let parquet_config = src.worker_config(&["acct"], ports.parquet).replace(
            &format!(
                "  postgres:\n    url: {}\n    target_schema: {}\n    meta_schema: {}_meta\n",
                common::pg_url(),
                src.target,
                src.target
            ),
            &format!(
                "  s3_parquet:\n    target:\n      local:\n        path: {}\n    rotation: {{ max_age_ms: 10000 }}\n",
                dir.display()
            ),
        ).replace("-sink\n", "-parquet\n");
        assert!(parquet_config.contains("s3_parquet"), "{parquet_config}");
        let parquet = Worker::spawn(
            &format!("{}-parquet", src.prefix),
            &parquet_config,
            ports.parquet,
        );
        (src, publisher, worker, parquet)
    }

    /// The dashboard and the alerts of the pipeline, then the slow
    /// publisher's; stops everything and drops the slots, whatever happened.
    pub async fn run(mut self, prometheus: Arc<Prometheus>, ports: Ports) -> Vec<Outcome> {
        let mut out = Vec::new();
        let driven = AssertUnwindSafe(self.drive(&prometheus, &ports, &mut out))
            .catch_unwind()
            .await;
        if let Err(panic) = driven {
            out.push(Outcome::new("pipeline", "scenario", Err(panic_text(panic))));
        }
        if let Some(mut publisher) = self.publisher.take() {
            publisher.kill9();
        }
        self.slow.publisher.kill9();
        self.src.cleanup().await;
        self.slow.src.cleanup().await;
        out
    }

    async fn drive(&mut self, prometheus: &Prometheus, ports: &Ports, out: &mut Vec<Outcome>) {
        let s = &self.src.schema;
        let topic = format!("{}.{s}.acct", self.src.prefix);
        // Changes while scraped, so rates and histograms have samples; the
        // Parquet worker holds them in open files for 10 s.
        let changed = Instant::now();
        for i in 0..20 {
            self.src
                .sql(&format!(
                    "UPDATE {s}.acct SET balance = balance + 1 WHERE id % 20 = {i}"
                ))
                .await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.src.wait_identical("acct", "id, balance, note").await;
        // The worker owns the topic's partitions and was scraped since.
        let instance = format!("instance=\"127.0.0.1:{}\"", ports.worker);
        prometheus
            .wait_has(
                "the worker's committed offsets scraped",
                &format!("sinkfleet_committed_offset{{{instance},topic=\"{topic}\"}}"),
            )
            .await
            .unwrap();

        // The first dead letter of the topic: a record that is no JSON. Its
        // key parks; the key's next record is dead-lettered as parked.
        let poison_key = br#"{"id": 0}"#.to_vec();
        let poisoned = Instant::now();
        kafka::produce(
            &brokers(),
            &topic,
            &[Record {
                key: Some(poison_key.clone()),
                value: Some(b"{not json".to_vec()),
            }],
        )
        .await
        .unwrap();
        common::wait_until("the poison record dead-lettered", CONVERGE, || {
            self.worker.metric("sinkfleet_records_dead_lettered_total") >= 1.0
        })
        .await;
        let parked = Instant::now();
        let next = json!({"op": "u",
            "source": {"schema": s, "table": "acct", "lsn": 1, "ts_ms": ms_ago(Duration::ZERO)},
            "after": {"id": 0, "balance": "1.00", "note": "after the poison"}});
        kafka::produce(
            &brokers(),
            &topic,
            &[Record {
                key: Some(poison_key),
                value: Some(next.to_string().into_bytes()),
            }],
        )
        .await
        .unwrap();
        common::wait_until(
            "the parked key's next record dead-lettered",
            CONVERGE,
            || self.worker.metric("sinkfleet_records_parked_total") >= 1.0,
        )
        .await;
        common::wait_until("parquet objects written", CONVERGE, || {
            self.parquet.metric("sinkfleet_objects_written_total") >= 1.0
        })
        .await;

        // Every panel returns data; polled, since a rate needs two scrapes.
        let deadline = Instant::now() + Duration::from_secs(120);
        for (title, expr) in dashboard_expressions() {
            let shown = loop {
                match prometheus.query(&expr) {
                    Ok(result) if !result.is_empty() => break Ok(0.0),
                    outcome if Instant::now() >= deadline => {
                        break Err(format!("{expr} returned {outcome:?}"));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            };
            if shown.is_err() {
                out.push(Outcome::new(&format!("panel {title:?}"), "pipeline", shown));
            }
        }
        // Every alert evaluates, and reads only series that exist.
        for (alert, expr) in alert_expressions() {
            if let Err(e) = prometheus.query(&expr) {
                out.push(Outcome::new(
                    &alert,
                    "evaluates",
                    Err(format!("{expr}: {e}")),
                ));
            }
            for name in metric_names(&expr) {
                if !prometheus.has(&name) {
                    out.push(Outcome::new(
                        &alert,
                        "reads series that exist",
                        Err(format!("reads {name}, which no process exports")),
                    ));
                }
            }
        }
        // Prometheus loaded the rules without error.
        let (_, rules) = prometheus.get("/api/v1/rules").unwrap();
        let rules: Value = serde_json::from_str(&rules).unwrap();
        let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
        assert_eq!(loaded.len(), alert_expressions().len());
        for rule in loaded {
            assert_eq!(rule["health"], "ok", "{rule}");
        }

        let matchers = format!("topic=\"{topic}\",class=\"decode\"");
        out.push(Outcome::new(
            "SinkfleetDeadLetters",
            "the topic's first dead letter (a record that is no JSON)",
            prometheus
                .wait_fired("SinkfleetDeadLetters", &matchers, poisoned)
                .await,
        ));
        let matchers = format!("topic=\"{topic}\",class=\"parked\"");
        out.push(Outcome::new(
            "SinkfleetDeadLetters",
            "the topic's first parked record (the poisoned key's next one)",
            prometheus
                .wait_fired("SinkfleetDeadLetters", &matchers, parked)
                .await,
        ));
        out.push(Outcome::new(
            "SinkfleetKeysParked",
            "the poisoned key parked",
            prometheus
                .wait_fired("SinkfleetKeysParked", "", poisoned)
                .await,
        ));
        out.push(Outcome::new(
            "SinkfleetParquetBufferFull",
            "200 changed rows held in open Parquet files",
            prometheus
                .wait_fired("SinkfleetParquetBufferFull", "", changed)
                .await,
        ));

        // The first publisher goes, so that the slot lag is the slow one's
        // alone (every slot of the cluster holds the WAL written below).
        if let Some(mut publisher) = self.publisher.take() {
            assert!(publisher.terminate(Duration::from_secs(30)).success());
        }
        self.slow.drive(prometheus, out).await;

        // Idle, every file uploaded: the open file gauges must say nothing
        // is held, or the buffer alert fires on what was held before.
        let rotated = wait_for("the Parquet files rotated", CONVERGE, || {
            self.parquet.metric("sinkfleet_open_files") == 0.0
        })
        .await;
        let held = self.parquet.metric("sinkfleet_open_file_bytes");
        out.push(Outcome::new(
            "sinkfleet_open_file_bytes",
            "every open file uploaded",
            rotated.and_then(|()| match held {
                0.0 => Ok(0.0),
                _ => Err(format!("{held} bytes shown open while no file is")),
            }),
        ));
        assert!(self.parquet.terminate(Duration::from_secs(30)).success());
        assert!(self.worker.terminate(Duration::from_secs(30)).success());
    }
}

impl SlowPublisher {
    pub async fn start(port: u16) -> SlowPublisher {
        let src = Source::new("slow").await;
        let s = &src.schema;
        // `ballast` is not published: WAL the slot holds, nothing to send.
        src.sql(&format!(
            "CREATE TABLE {s}.t (id int PRIMARY KEY, v text);
             CREATE TABLE {s}.ballast (id int, v text)"
        ))
        .await;
        let mock = MockCluster::start(&[(&format!("{}.{s}.t", src.prefix), 1)]);
        let extra =
            "  create_topics: false\n  kafka_properties: { message.timeout.ms: \"120000\" }";
        let publisher = Worker::start(
            &src.prefix,
            "publish",
            &src.publisher_config(&["t"], &mock.bootstrap, extra, port),
            port,
        );
        common::wait_until("the slow publisher's slot created", CONVERGE, || {
            block_on(src.confirmed_lsn()) > 0
        })
        .await;
        SlowPublisher {
            src,
            mock,
            publisher,
        }
    }

    /// The broker answers every request 6 s late while the source commits
    /// one change and ~20 MB of WAL the publisher does not publish. (Its
    /// first event to the topic takes several requests: well over 6 s.)
    async fn drive(&mut self, prometheus: &Prometheus, out: &mut Vec<Outcome>) {
        let s = &self.src.schema;
        self.mock.rtt(6_000);
        let slowed = Instant::now();
        self.src
            .sql(&format!("INSERT INTO {s}.t VALUES (1, 'late')"))
            .await;
        self.src
            .sql(&format!(
                "INSERT INTO {s}.ballast SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 100000) g"
            ))
            .await;
        let (lag, slow) = tokio::join!(
            prometheus.wait_fired("SinkfleetPublisherSlotLag", "", slowed),
            prometheus.wait_fired("SinkfleetPublisherDeliverySlow", "", slowed),
        );
        out.push(Outcome::new(
            "SinkfleetPublisherSlotLag",
            "20 MB of WAL while the broker answers late",
            lag,
        ));
        out.push(Outcome::new(
            "SinkfleetPublisherDeliverySlow",
            "one change acknowledged late",
            slow,
        ));
        self.mock.rtt(0);
    }
}

/// A Postgres worker whose target stops answering (the table is locked,
/// statements time out after a second) while an hour-old change waits.
/// It also reads an Avro topic whose Schema Registry never answers.
pub struct Stuck {
    p: Pipeline,
    worker: Worker,
    avro_topic: String,
}

impl Stuck {
    pub async fn start(port: u16) -> Stuck {
        let p = Pipeline::new("stuck", 1).await;
        let avro_topic = format!("{}-avro", p.topic);
        kafka::create_topic(&p.brokers, &avro_topic, 1)
            .await
            .unwrap();
        // Nothing listens on a port just released.
        let registry = common::free_port();
        let config = p
            .config("", "    statement_timeout_ms: 1000\n", port)
            .replace(
                &format!("topics: [{}]", p.topic),
                &format!("topics: [{}, {avro_topic}]", p.topic),
            )
            + &format!(
                "decode:\n  formats: [{{ topics: {avro_topic}, value: avro }}]\n  \
                 registry: {{ url: \"http://127.0.0.1:{registry}\", timeout_ms: 500, attempts: 1 }}\n"
            );
        let worker = p.spawn("w", &config, port);
        Stuck {
            p,
            worker,
            avro_topic,
        }
    }

    pub async fn run(mut self, prometheus: Arc<Prometheus>) -> Vec<Outcome> {
        let mut out = Vec::new();
        let driven = AssertUnwindSafe(self.drive(&prometheus, &mut out))
            .catch_unwind()
            .await;
        if let Err(panic) = driven {
            out.push(Outcome::new("stuck", "scenario", Err(panic_text(panic))));
        }
        out
    }

    async fn drive(&mut self, prometheus: &Prometheus, out: &mut Vec<Outcome>) {
        let p = &self.p;
        // An hour-old change (in the source and in Kafka) is applied...
        let hour_ago = ms_ago(Duration::from_secs(3600));
        kafka::produce_dated(&p.brokers, &p.topic, &[event(1, 10, hour_ago)], hour_ago)
            .await
            .unwrap();
        p.wait_committed_to_end(&p.group, CONVERGE).await;
        // ...then the target stops answering, and the next one waits.
        let pool = p.pool().await;
        let lock = common::lock_table(&pool, &p.schema, "events").await;
        let stuck = Instant::now();
        kafka::produce_dated(&p.brokers, &p.topic, &[event(2, 11, hour_ago)], hour_ago)
            .await
            .unwrap();
        let topic = format!("topic=\"{}\"", p.topic);
        let partition = format!("{topic},partition=\"0\"");
        let (lag, stuck_lag, paused, failing, stale) = tokio::join!(
            prometheus.wait_fired("SinkfleetConsumerLagHigh", &topic, stuck),
            prometheus.wait_fired("SinkfleetLagStuck", &partition, stuck),
            prometheus.wait_fired("SinkfleetPartitionsPausedLong", "", stuck),
            prometheus.wait_fired("SinkfleetTargetFailing", "sink=\"postgres\"", stuck),
            prometheus.wait_fired("SinkfleetTableStale", "table=\"public.events\"", stuck),
        );
        let event = "a change waiting behind a locked target, after an hour-old one";
        out.push(Outcome::new("SinkfleetConsumerLagHigh", event, lag));
        out.push(Outcome::new("SinkfleetLagStuck", event, stuck_lag));
        out.push(Outcome::new("SinkfleetPartitionsPausedLong", event, paused));
        out.push(Outcome::new("SinkfleetTargetFailing", event, failing));
        out.push(Outcome::new("SinkfleetTableStale", event, stale));
        lock.rollback().await.unwrap();

        // A record naming schema id 7, which the registry never hands over.
        let waiting = Instant::now();
        let framed = Record {
            key: None,
            value: Some(vec![0, 0, 0, 0, 7, 2]),
        };
        kafka::produce(&p.brokers, &self.avro_topic, &[framed])
            .await
            .unwrap();
        let unreachable = prometheus
            .wait_fired("SinkfleetSchemaRegistryUnreachable", "", waiting)
            .await;
        out.push(Outcome::new(
            "SinkfleetSchemaRegistryUnreachable",
            "an Avro record whose registry does not answer",
            unreachable,
        ));
        assert!(self.worker.terminate(Duration::from_secs(30)).success());
    }
}

/// A worker whose commits the broker refuses; then it is killed.
pub struct Refused {
    p: Pipeline,
    _mock: MockCluster,
    worker: Worker,
    port: u16,
}

impl Refused {
    pub async fn start(port: u16) -> Refused {
        let (p, mut mock) = Pipeline::on_mock("refused", 1);
        mock.fail("OffsetCommit", 100_000, "UNKNOWN_SERVER_ERROR");
        let worker = p.spawn("w", &p.config("", "", port), port);
        Refused {
            p,
            _mock: mock,
            worker,
            port,
        }
    }

    pub async fn run(mut self, prometheus: Arc<Prometheus>) -> Vec<Outcome> {
        let mut out = Vec::new();
        let driven = AssertUnwindSafe(self.drive(&prometheus, &mut out))
            .catch_unwind()
            .await;
        if let Err(panic) = driven {
            out.push(Outcome::new("refused", "scenario", Err(panic_text(panic))));
        }
        out
    }

    async fn drive(&mut self, prometheus: &Prometheus, out: &mut Vec<Outcome>) {
        let now = ms_ago(Duration::ZERO);
        let sent = Instant::now();
        self.p.produce(&[event(1, 10, now)]).await;
        out.push(Outcome::new(
            "SinkfleetCommitsStalled",
            "one change applied whose commit the broker refuses",
            prometheus
                .wait_fired(
                    "SinkfleetCommitsStalled",
                    &format!("topic=\"{}\",partition=\"0\"", self.p.topic),
                    sent,
                )
                .await,
        ));
        // Killed: it is not scraped any more. (Checked from the kill on,
        // so a scrape missed earlier does not count.)
        self.worker.kill9();
        let killed = Instant::now();
        out.push(Outcome::new(
            "SinkfleetWorkerDown",
            "a worker SIGKILLed",
            prometheus
                .wait_fired(
                    "SinkfleetWorkerDown",
                    &format!("instance=\"127.0.0.1:{}\"", self.port),
                    killed,
                )
                .await,
        ));
    }
}

/// A zombie: a worker frozen with a write in flight while a second one
/// takes its partition over (offsets in the target); thawed, its write is
/// fenced. Runs on the mock cluster, which evicts the frozen member.
pub struct Zombie {
    p: Pipeline,
    _mock: MockCluster,
    zombie: Worker,
    owner_port: u16,
}

impl Zombie {
    fn config(p: &Pipeline, port: u16) -> String {
        // History only, versions from offsets (the plain topic of
        // tests/exactly_once.rs); statements wait on the test's lock.
        let sink = "    offset_storage: target
    statement_timeout_ms: 600000
    history: { tables: [\"public.events\"], keep_current: false }
";
        p.config("", sink, port) + "decode:\n  version: { source: kafka_offset }\n"
    }

    pub async fn start(port: u16, owner_port: u16) -> Zombie {
        let (p, mock) = Pipeline::on_mock("zombie", 1);
        let zombie = p.spawn("a", &Zombie::config(&p, port), port);
        Zombie {
            p,
            _mock: mock,
            zombie,
            owner_port,
        }
    }

    pub async fn run(mut self, prometheus: Arc<Prometheus>) -> Vec<Outcome> {
        let mut out = Vec::new();
        let driven = AssertUnwindSafe(self.drive(&prometheus, &mut out))
            .catch_unwind()
            .await;
        if let Err(panic) = driven {
            out.push(Outcome::new("zombie", "scenario", Err(panic_text(panic))));
        }
        self.zombie.kill9();
        out
    }

    async fn drive(&mut self, prometheus: &Prometheus, out: &mut Vec<Outcome>) {
        let p = &self.p;
        let pool = p.pool().await;
        let now = ms_ago(Duration::ZERO);
        let rows = format!("SELECT count(*) FROM \"{}\".events__history", p.schema);
        let landed = |n: i64| {
            let pool = pool.clone();
            let rows = rows.clone();
            move || block_on(sqlx::query_scalar::<_, i64>(&rows).fetch_one(&pool)).unwrap_or(0) >= n
        };
        p.produce(
            &(0..5)
                .map(|i| event(i, 10 + i as u64, now))
                .collect::<Vec<_>>(),
        )
        .await;
        common::wait_until("the first records land", CONVERGE, landed(5)).await;

        // Its next write waits on the test's lock when it freezes.
        let lock = common::lock_table(&pool, &p.schema, "events__history").await;
        p.produce(
            &(5..10)
                .map(|i| event(i, 10 + i as u64, now))
                .collect::<Vec<_>>(),
        )
        .await;
        let waiting = "SELECT count(*) FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO %' AND position($1 in query) > 0";
        common::wait_until("the zombie's write waits for the lock", CONVERGE, || {
            let count = sqlx::query_scalar::<_, i64>(waiting)
                .bind(&p.schema)
                .fetch_one(&pool);
            block_on(count).unwrap_or(0) >= 1
        })
        .await;
        self.zombie.freeze();

        // The partition moves: a rebalance, and the new owner claims it.
        let moved = Instant::now();
        let owner = p.spawn("b", &Zombie::config(p, self.owner_port), self.owner_port);
        let epoch = format!(
            "SELECT max(epoch) FROM \"{}_meta\".offsets WHERE group_id = '{}'",
            p.schema, p.group
        );
        common::wait_until("the new owner claims the partition", CONVERGE, || {
            block_on(sqlx::query_scalar::<_, Option<i64>>(&epoch).fetch_one(&pool))
                .ok()
                .flatten()
                .unwrap_or(0)
                >= 2
        })
        .await;
        lock.commit().await.unwrap();
        let thawed = Instant::now();
        self.zombie.thaw();
        let (fenced, lost, rebalanced) = tokio::join!(
            prometheus.wait_fired("SinkfleetWritesFenced", "", thawed),
            prometheus.wait_fired("SinkfleetAssignmentLost", "", thawed),
            prometheus.wait_fired("SinkfleetRebalanceStorm", "", moved),
        );
        out.push(Outcome::new(
            "SinkfleetWritesFenced",
            "a thawed zombie's write fenced",
            fenced,
        ));
        out.push(Outcome::new(
            "SinkfleetAssignmentLost",
            "a thawed zombie hears its assignment was lost",
            lost,
        ));
        out.push(Outcome::new(
            "SinkfleetRebalanceStorm",
            "the rebalance that moved the zombie's partition",
            rebalanced,
        ));
        common::wait_until("the new owner lands every record", CONVERGE, landed(10)).await;
        let mut owner = owner;
        assert!(owner.terminate(Duration::from_secs(30)).success());
    }
}

pub fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".into())
}

/// The metrics ports of every process, known before Prometheus starts.
#[derive(Clone, Copy)]
pub struct Ports {
    pub publisher: u16,
    pub worker: u16,
    pub parquet: u16,
    pub slow_publisher: u16,
    pub stuck: u16,
    pub refused: u16,
    pub zombie: u16,
    pub owner: u16,
}
