//! A Postgres source for the publisher tests: a schema of its own, with
//! the publisher's identity (slot, publication, topic prefix) and the
//! target schema a sink worker writes.

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use super::{Worker, brokers, pg_url, unique};
use sqlx::{Executor, PgPool};
use std::time::{Duration, Instant};

/// How long a target may take to become identical to its source.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// One source schema with its publisher identity (slot, publication,
/// topic prefix) and the target schema the sink writes.
pub struct Source {
    /// The source database.
    pub pool: PgPool,
    /// The target's database (the source's, unless it has its own).
    pub target_pool: PgPool,
    /// The source database's name.
    pub dbname: String,
    pub schema: String,
    pub target: String,
    pub prefix: String,
    pub slot: String,
    pub publication: String,
}

impl Source {
    pub async fn new(name: &str) -> Source {
        let pool = PgPool::connect(&pg_url())
            .await
            .expect("Postgres (scripts/services.sh start)");
        Source::with_pool(name, pool.clone(), pool, "postgres".into()).await
    }

    /// A source in a database of its own, for publications that cover the
    /// whole database (`FOR ALL TABLES` would otherwise reach every other
    /// test's tables: their keyless tables could no longer be updated).
    pub async fn in_own_database(name: &str) -> Source {
        let target = PgPool::connect(&pg_url())
            .await
            .expect("Postgres (scripts/services.sh start)");
        let dbname = unique(name).to_lowercase();
        target
            .execute(format!("CREATE DATABASE {dbname}").as_str())
            .await
            .unwrap();
        let url = format!("{}/{dbname}", pg_url().rsplit_once('/').unwrap().0);
        let pool = PgPool::connect(&url).await.unwrap();
        Source::with_pool(name, pool, target, dbname).await
    }

    async fn with_pool(name: &str, pool: PgPool, target_pool: PgPool, dbname: String) -> Source {
        let id = unique(name);
        let s = Source {
            target_pool,
            dbname,
            schema: format!("src_{id}"),
            target: format!("dst_{id}"),
            prefix: format!("p_{id}"),
            slot: format!("slot_{id}"),
            publication: format!("pub_{id}"),
            pool,
        };
        s.sql(&format!("CREATE SCHEMA {}", s.schema)).await;
        s
    }

    pub async fn sql(&self, sql: &str) {
        self.pool
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn lsn(&self, sql: &str) -> u64 {
        // No row (the slot does not exist yet) reads as 0.
        let text: Option<Option<String>> = sqlx::query_scalar(sql)
            .fetch_optional(&self.pool)
            .await
            .unwrap();
        text.flatten()
            .and_then(|t| sinkfleet_pg_publisher::control::parse_lsn(&t))
            .unwrap_or(0)
    }

    pub async fn current_lsn(&self) -> u64 {
        self.lsn("SELECT pg_current_wal_lsn()::text").await
    }

    pub async fn confirmed_lsn(&self) -> u64 {
        self.lsn(&format!(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'",
            self.slot
        ))
        .await
    }

    pub fn publisher_config(
        &self,
        tables: &[&str],
        brokers: &str,
        extra: &str,
        port: u16,
    ) -> String {
        self.publisher_config_with(tables, brokers, "", extra, port)
    }

    /// [`Source::publisher_config`] with more connector `properties`
    /// (YAML lines indented under `config:`).
    pub fn publisher_config_with(
        &self,
        tables: &[&str],
        brokers: &str,
        properties: &str,
        extra: &str,
        port: u16,
    ) -> String {
        let include: Vec<String> = tables
            .iter()
            .map(|t| format!("{}.{t}", self.schema))
            .collect();
        format!(
            "name: test
config:
  connector.class: io.debezium.connector.postgresql.PostgresConnector
  database.hostname: 127.0.0.1
  database.port: {port_pg}
  database.user: postgres
  database.password: \"\"
  database.dbname: {dbname}
  topic.prefix: {prefix}
  plugin.name: pgoutput
  skipped.operations: none
  extended.headers.enabled: false
  slot.name: {slot}
  publication.name: {publication}
  publication.autocreate.mode: filtered
  table.include.list: {include}
{properties}publisher:
  brokers: {brokers}
  topic_partitions: 3
  metrics_listen: 127.0.0.1:{port}
{extra}",
            port_pg = sinkfleet_testkit::services::pg_port(),
            dbname = self.dbname,
            prefix = self.prefix,
            slot = self.slot,
            publication = self.publication,
            include = include.join(","),
        )
    }

    pub fn worker_config(&self, tables: &[&str], port: u16) -> String {
        let topics: Vec<String> = tables
            .iter()
            .map(|t| format!("{}.{}.{t}", self.prefix, self.schema))
            .collect();
        format!(
            "kafka:
  brokers: {brokers}
  group_id: {prefix}-sink
  topics: [{topics}]
dead_letter:
  topic: {prefix}.dlq
worker:
  linger_ms: 50
sink:
  postgres:
    url: {url}
    target_schema: {target}
    meta_schema: {target}_meta
metrics:
  listen: 127.0.0.1:{port}
",
            brokers = brokers(),
            prefix = self.prefix,
            topics = topics.join(", "),
            url = pg_url(),
            target = self.target,
        )
    }

    /// `(rows, checksum)` over `columns` of the source table, or of the
    /// target's live rows.
    async fn checksum(&self, target: bool, table: &str, columns: &str) -> (i64, String) {
        let (pool, schema, filter) = if target {
            (
                &self.target_pool,
                &self.target,
                "WHERE NOT __sinkfleet_deleted",
            )
        } else {
            (&self.pool, &self.schema, "")
        };
        let sql = format!(
            "SELECT count(*), coalesce(md5(string_agg(concat_ws('|', {columns}), ';' ORDER BY id)), '')
               FROM \"{schema}\".\"{table}\" {filter}"
        );
        sqlx::query_as(&sql)
            .fetch_one(pool)
            .await
            .unwrap_or((-1, String::new()))
    }

    pub async fn wait_identical(&self, table: &str, columns: &str) {
        self.wait_identical_within(table, columns, CONVERGE).await;
    }

    /// [`Source::wait_identical`] with its own deadline, for tests whose
    /// pace depends on the broker's (an incremental snapshot waits for
    /// each chunk's acknowledgement).
    pub async fn wait_identical_within(&self, table: &str, columns: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let source = self.checksum(false, table, columns).await;
            // The target may not exist yet; the source must always answer.
            assert!(source.0 >= 0, "{table}: the source checksum failed");
            let target = self.checksum(true, table, columns).await;
            if source == target {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{table}: source {source:?} != target {target:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A sink worker consuming `tables`' topics into the target schema.
    pub fn sink_worker(&self, tables: &[&str], port: u16) -> Worker {
        self.sink_worker_with(tables, port, "")
    }

    /// [`Source::sink_worker`] with `extra` top-level YAML (a `decode:`
    /// section, say).
    pub fn sink_worker_with(&self, tables: &[&str], port: u16, extra: &str) -> Worker {
        Worker::spawn(
            &format!("{}-sink", self.prefix),
            &format!("{}{extra}", self.worker_config(tables, port)),
            port,
        )
    }

    /// Stops the publisher and the sink worker, each of which must exit
    /// cleanly, then drops the slot and the publication.
    pub async fn finish(&self, mut publisher: Worker, mut worker: Worker) {
        assert!(
            publisher.terminate(Duration::from_secs(30)).success(),
            "{}",
            publisher.log_text()
        );
        assert!(worker.terminate(Duration::from_secs(30)).success());
        self.cleanup().await;
    }

    /// Stops a publisher run without a sink worker, which must exit
    /// cleanly, then cleans up.
    pub async fn stop(&self, mut publisher: Worker) {
        assert!(
            publisher.terminate(Duration::from_secs(30)).success(),
            "{}",
            publisher.log_text()
        );
        self.cleanup().await;
    }

    pub async fn cleanup(&self) {
        for _ in 0..40 {
            // The real slot, and a staging slot a failed snapshot may leave.
            let dropped = sqlx::query(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                  WHERE slot_name IN ($1, $1 || '_snap')",
            )
            .bind(&self.slot)
            .execute(&self.pool)
            .await;
            if dropped.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await; // still active
        }
        let _ = self
            .pool
            .execute(format!("DROP PUBLICATION IF EXISTS {}", self.publication).as_str())
            .await;
        if self.dbname != "postgres" {
            self.pool.close().await;
            let _ = self
                .target_pool
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.dbname).as_str())
                .await;
        }
    }
}
