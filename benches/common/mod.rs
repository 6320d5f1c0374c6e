//! Helpers the end-to-end benches share (each uses a subset).
#![allow(dead_code)]

pub use sinkfleet_testkit::process::{self, MockCluster};

/// The local Postgres of `scripts/services.sh`, failing with what to run
/// when it is not there.
pub async fn pg_pool() -> sqlx::PgPool {
    sqlx::PgPool::connect(&sinkfleet_testkit::services::pg_url())
        .await
        .expect("Postgres (scripts/services.sh start)")
}

/// The value after `name` on the command line (`--changes 60000`).
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Median of the samples (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A `sinkfleet run` config reading `topic` as group `id` into the sink
/// of `variant` (`sinkfleet-postgres`, `sinkfleet-clickhouse`, else
/// Parquet in `dir`), at the default budgets.
pub fn worker_config(
    variant: &str,
    brokers: &str,
    topic: &str,
    id: &str,
    dir: &std::path::Path,
) -> String {
    let sink = match variant {
        "sinkfleet-postgres" => format!(
            "  postgres:\n    url: {}\n    target_schema: {id}\n    meta_schema: {id}_meta\n",
            sinkfleet_testkit::services::pg_url()
        ),
        "sinkfleet-clickhouse" => format!(
            "  clickhouse:\n    url: {}\n    database: {id}\n",
            sinkfleet_testkit::services::clickhouse_url()
        ),
        _ => format!(
            "  s3_parquet:\n    target:\n      local:\n        path: {}\n    rotation: {{ max_age_ms: 1000 }}\n",
            dir.display()
        ),
    };
    // A topic named `avro…` holds AvroConverter records, one named
    // `jsonschema…` JsonSchemaConverter records (see `produce_workload`).
    let format = if topic.starts_with("avro") {
        Some("avro")
    } else if topic.starts_with("jsonschema") {
        Some("json_schema")
    } else {
        None
    };
    let decode = match format {
        Some(format) => format!(
            "decode:\n  formats:\n    - {{ topics: {topic}, key: {format}, value: {format} }}\n  \
             registry: {{ url: \"{}\" }}\n",
            sinkfleet_testkit::avro::registry_url()
        ),
        None => String::new(),
    };
    format!(
        "kafka:\n  brokers: {brokers}\n  group_id: {id}\n  topics: [{topic}]\n\
         dead_letter:\n  topic: dlq\n  create_topic: false\n\
         {decode}\
         sink:\n{sink}\
         metrics:\n  listen: 127.0.0.1:0\n"
    )
}

/// Starts `sinkfleet-mock-cluster` hosting `topics` (`name:partitions`).
pub fn mock_cluster(topics: &[String]) -> MockCluster {
    let specs: Vec<(&str, i32)> = topics
        .iter()
        .map(|t| {
            let (name, partitions) = t.rsplit_once(':').expect("name:partitions");
            (name, partitions.parse().expect("a partition count"))
        })
        .collect();
    MockCluster::start(&specs)
}

/// The broker a publisher bench produces to, as `--broker` names it: the
/// mock cluster hosting `topics` (`name:partitions`; the default, so the
/// broker is not the limit) or the local tansu. Returns the bootstrap
/// address, the broker's name, and the mock cluster to keep alive.
pub fn publisher_broker(topics: Vec<String>) -> (String, &'static str, Option<MockCluster>) {
    if arg("--broker").as_deref() == Some("tansu") {
        return (sinkfleet_testkit::services::brokers(), "tansu", None);
    }
    let cluster = mock_cluster(&topics);
    (
        cluster.bootstrap.clone(),
        "librdkafka mock cluster",
        Some(cluster),
    )
}

/// What a `sinkfleet publish` config needs from a bench.
pub struct Publisher<'a> {
    /// `topic.prefix` and `slot.name`.
    pub name: &'a str,
    /// `publication.name` (the bench creates it).
    pub publication: &'a str,
    /// `table.include.list`.
    pub table: &'a str,
    /// Kafka bootstrap servers.
    pub brokers: &'a str,
    /// `value.converter.schemas.enable`.
    pub schemas: bool,
    /// Create topics (tansu); the mock cluster hosts them from its start
    /// (its CreateTopics does not answer).
    pub create_topics: bool,
}

/// A `sinkfleet publish` config reading the local Postgres
/// (`SINKFLEET_PG_URL`'s port, user `postgres`).
pub fn publisher_config(p: &Publisher<'_>) -> String {
    let port = sinkfleet_testkit::services::pg_port();
    format!(
        "config:
  database.hostname: 127.0.0.1
  database.port: {port}
  database.user: postgres
  database.password: \"\"
  database.dbname: postgres
  topic.prefix: {name}
  slot.name: {name}
  publication.name: {publication}
  value.converter.schemas.enable: {schemas}
  publication.autocreate.mode: disabled
  table.include.list: {table}
  skipped.operations: none
  extended.headers.enabled: false
publisher:
  brokers: {brokers}
  create_topics: {create_topics}
  metrics_listen: 127.0.0.1:0
",
        name = p.name,
        publication = p.publication,
        schemas = p.schemas,
        table = p.table,
        brokers = p.brokers,
        create_topics = p.create_topics,
    )
}

/// Generates the Debezium workload `options` describes and produces it to
/// `topic`; returns its record count and the mean value size in bytes.
pub fn produce_workload(
    rt: &tokio::runtime::Runtime,
    brokers: &str,
    topic: &str,
    options: &sinkfleet_testkit::workload::Options,
) -> (usize, usize) {
    let mut w = sinkfleet_testkit::workload::generate(options);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if topic.starts_with("avro") {
        // The envelope workload as Confluent's AvroSerializer writes it.
        w.records = sinkfleet_testkit::avro::to_avro(root, topic, &w.records);
    } else if topic.starts_with("jsonschema") {
        // ... and as its JSONSerializer writes it.
        w.records = sinkfleet_testkit::json_schema::to_json_schema(root, topic, &w.records);
    }
    let bytes: usize = w
        .records
        .iter()
        .map(|r| r.value.as_ref().map_or(0, Vec::len))
        .sum();
    rt.block_on(sinkfleet_testkit::kafka::produce(
        brokers, topic, &w.records,
    ))
    .expect("producing the workload");
    (w.records.len(), bytes / w.records.len().max(1))
}

/// A bench's `sinkfleet run`, and the directory its Parquet sink writes.
pub struct Worker {
    /// The process.
    pub process: process::Worker,
    dir: std::path::PathBuf,
}

impl Worker {
    /// Starts `sinkfleet run` with [`worker_config`] (group and target
    /// named `id`), logging warnings only.
    pub fn start(variant: &str, brokers: &str, topic: &str, id: &str) -> Worker {
        Worker::start_with(variant, brokers, topic, id, &[])
    }

    /// [`Worker::start`] with settings overridden from the environment,
    /// e.g. `("SINKFLEET__WORKER__WRITERS", "1")`.
    pub fn start_with(
        variant: &str,
        brokers: &str,
        topic: &str,
        id: &str,
        env: &[(&str, &str)],
    ) -> Worker {
        let dir = std::env::temp_dir().join(id);
        let config = worker_config(variant, brokers, topic, id, &dir);
        let env: Vec<(&str, &str)> = [("RUST_LOG", "warn")]
            .into_iter()
            .chain(env.iter().copied())
            .collect();
        let process = process::Worker::start_with(id, "run", &config, 0, &env);
        Worker { process, dir }
    }

    /// The process id, as `/proc` and `kill` want it.
    pub fn pid(&self) -> String {
        self.process.pid()
    }

    /// Stops the worker (SIGTERM) and removes its config and files.
    pub fn stop(self) {
        self.process.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `count` (a SQL query returning one bigint) reaches `rows`;
/// fails if one of `children` (the pipeline's processes) exits, or after
/// five minutes.
pub async fn wait_for_count(
    pool: &sqlx::PgPool,
    count: &str,
    rows: i64,
    children: &mut [&mut process::Worker],
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let n: i64 = sqlx::query_scalar(count)
            .fetch_one(pool)
            .await
            .expect("count");
        if n >= rows {
            return;
        }
        for child in children.iter_mut() {
            if let Some(status) = child.exited() {
                panic!("a pipeline process exited: {status}");
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the target has {n} of {rows} rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Stops `publisher` (SIGTERM) and removes what a pipeline bench created
/// for source schema `id`: its publisher config, slot `id`, publication
/// `<id>_pub`, and the schemas `id`, `target` and `<target>_meta`.
pub async fn remove_pipeline(
    pool: &sqlx::PgPool,
    id: &str,
    target: &str,
    publisher: process::Worker,
) {
    publisher.stop();
    let sql = format!(
        "SELECT pg_drop_replication_slot('{id}');
         DROP PUBLICATION {id}_pub; DROP SCHEMA {id} CASCADE;
         DROP SCHEMA {target} CASCADE; DROP SCHEMA IF EXISTS {target}_meta CASCADE;"
    );
    sqlx::Executor::execute(pool, sql.as_str())
        .await
        .expect("bench cleanup");
}

/// Starts `sinkfleet publish` with `config` (a [`publisher_config`],
/// perhaps amended), logging warnings only.
pub fn spawn_publisher(id: &str, config: &str) -> process::Worker {
    process::Worker::start_with(
        &format!("{id}_publisher"),
        "publish",
        config,
        0,
        &[("RUST_LOG", "warn")],
    )
}
