//! The initial snapshot: every captured table read inside the snapshot
//! exported when the slot was created, so that it and the stream meet
//! exactly at the slot's consistent point. Rows are `op = r` events with
//! version `(snapshot_lsn, 0)`: any streamed change (committed after the
//! consistent point) is newer.

use crate::config::ConnectorConfig;
use crate::control::{self, CapturedTable, ControlError};
use crate::event::{Source, TableCodec};
use crate::pgoutput::TupleValue;
use crate::producer::EventProducer;
use rdkafka::producer::DeliveryFuture;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool, Row};

/// Rows fetched per round trip: memory stays bounded by this, not by the table.
const FETCH: usize = 2_000;

/// What the snapshot produced; every delivery must be acknowledged before
/// the stream confirms anything past the snapshot.
pub struct SnapshotResult {
    /// Rows read.
    pub rows: u64,
    /// Outstanding deliveries.
    pub deliveries: Vec<DeliveryFuture>,
}

/// Reads every table in the exported snapshot `snapshot_name`.
pub async fn run(
    connect: &PgConnectOptions,
    pool: &PgPool,
    snapshot_name: &str,
    snapshot_lsn: u64,
    tables: &[CapturedTable],
    cfg: &ConnectorConfig,
    producer: &mut EventProducer,
) -> Result<SnapshotResult, ControlError> {
    let sql = |context: &'static str| move |source| ControlError::Sql { context, source };
    let mut conn = PgConnection::connect_with(connect)
        .await
        .map_err(sql("snapshot connection"))?;
    // Text output exactly as the walsender renders it for streamed events.
    let session = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3;
         SET bytea_output = 'hex'; SET IntervalStyle = 'postgres';
         BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;";
    sqlx::Executor::execute(&mut conn, session)
        .await
        .map_err(sql("starting the snapshot transaction"))?;
    let import = format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot_name.replace('\'', "''")
    );
    sqlx::Executor::execute(&mut conn, import.as_str())
        .await
        .map_err(sql("importing the exported snapshot"))?;

    let mut result = SnapshotResult {
        rows: 0,
        deliveries: Vec::new(),
    };
    for table in tables {
        let relation = control::relation(pool, table).await?;
        let key = control::primary_key(pool, table.oid).await?;
        let codec = TableCodec::new(&relation, &key, cfg)
            .map_err(|e| ControlError::Refused(e.to_string()))?;
        producer
            .ensure_topic(&codec.topic)
            .await
            .map_err(ControlError::Refused)?;
        let name = format!(
            "{}.{}",
            control::quote(&table.schema),
            control::quote(&table.name)
        );
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {name}"))
            .fetch_one(&mut conn)
            .await
            .map_err(sql("counting snapshot rows"))?;
        let labels = [("table", format!("{}.{}", table.schema, table.name))];
        metrics::gauge!("sinkfleet_publisher_snapshot_rows_total", &labels).set(total as f64);
        tracing::info!(table = %labels[0].1, rows = total, "snapshot: reading table");
        // The type's output function, as pgoutput renders values (a plain
        // `::text` cast differs for some types: bool gives `true`, bpchar
        // loses its padding). format() yields '' for NULL, hence the CASE.
        let columns: Vec<String> = relation
            .columns
            .iter()
            .map(|c| {
                let q = control::quote(&c.name);
                format!("CASE WHEN {q} IS NULL THEN NULL ELSE format('%s', {q}) END")
            })
            .collect();
        let cursor = format!(
            "DECLARE sinkfleet_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {name}",
            columns.join(", ")
        );
        sqlx::Executor::execute(&mut conn, cursor.as_str())
            .await
            .map_err(sql("opening the snapshot cursor"))?;
        let mut done = 0u64;
        loop {
            let rows = sqlx::query(&format!("FETCH {FETCH} FROM sinkfleet_snapshot"))
                .fetch_all(&mut conn)
                .await
                .map_err(sql("reading snapshot rows"))?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let tuple: Vec<TupleValue> = (0..row.len())
                    .map(|i| match row.get::<Option<String>, _>(i) {
                        Some(text) => TupleValue::Text(text.into_bytes()),
                        None => TupleValue::Null,
                    })
                    .collect();
                let after = codec
                    .row(&tuple)
                    .map_err(|e| ControlError::Refused(e.to_string()))?;
                let src = Source {
                    db: &cfg.dbname,
                    commit_lsn: snapshot_lsn,
                    lsn: 0,
                    tx_id: None,
                    ts_ms: now_ms(),
                    snapshot: "true",
                    transaction: None,
                };
                let key = codec.key(&after);
                let value = codec.value("r", None, Some(after), &src);
                result.deliveries.push(
                    producer
                        .send(&codec.topic, Some(&key), Some(&value))
                        .await
                        .map_err(ControlError::Refused)?,
                );
            }
            done += rows.len() as u64;
            metrics::gauge!("sinkfleet_publisher_snapshot_rows_done", &labels).set(done as f64);
            // Bound the outstanding deliveries: wait for the older half.
            if result.deliveries.len() > 50_000 {
                let rest = result.deliveries.split_off(25_000);
                for d in std::mem::replace(&mut result.deliveries, rest) {
                    acknowledged(d).await.map_err(ControlError::Refused)?;
                }
            }
        }
        sqlx::Executor::execute(&mut conn, "CLOSE sinkfleet_snapshot")
            .await
            .map_err(sql("closing the snapshot cursor"))?;
        tracing::info!(table = %labels[0].1, rows = done, "snapshot: table done");
        result.rows += done;
    }
    sqlx::Executor::execute(&mut conn, "COMMIT")
        .await
        .map_err(sql("ending the snapshot"))?;
    Ok(result)
}

/// Waits for one delivery; an error means the event is not in Kafka.
pub async fn acknowledged(delivery: DeliveryFuture) -> Result<(), String> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(format!("Kafka refused an event: {e}")),
        Err(_) => Err("the producer was dropped before delivery".into()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
