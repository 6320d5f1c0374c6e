//! The initial snapshot: every captured table read inside the snapshot
//! exported when the slot was created, so that it and the stream meet
//! exactly at the slot's consistent point. Rows are `op = r` events with
//! version `(snapshot_lsn, 0)`: any streamed change (committed after the
//! consistent point) is newer.
//!
//! `source.snapshot` marks the rows as Debezium does: `first` (the first
//! row of the whole snapshot), `first_in_data_collection` and
//! `last_in_data_collection` (a table's first and last row), `last` (the
//! last row of the whole snapshot), `true` for the rest. One row is held
//! back so that the last row of a table, and of the snapshot, is known
//! before it is written.

use crate::config::ConnectorConfig;
use crate::control::{self, CapturedTable, ControlError};
use crate::event::{Row, Snapshot, Source, TableCodec};
use crate::headers::ContextHeaders;
use crate::metrics::{PUBLISHER_SNAPSHOT_ROWS_DONE, PUBLISHER_SNAPSHOT_ROWS_TOTAL};
use crate::pgoutput::TupleValue;
use crate::producer::EventProducer;
use crate::types::registry::TypeRegistry;
use rdkafka::producer::DeliveryFuture;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool, Row as _};
use std::sync::Arc;

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

/// The codec of a captured table, from its current shape in the catalog.
pub async fn table_codec(
    pool: &PgPool,
    table: &CapturedTable,
    cfg: &ConnectorConfig,
    registry: &TypeRegistry,
) -> Result<TableCodec, ControlError> {
    let relation = control::relation(pool, table).await?;
    let facts = control::column_facts(pool, table.oid).await?;
    let key = control::primary_key(pool, table.oid).await?;
    TableCodec::new(&relation, &facts, &key, cfg, registry)
        .map_err(|e| ControlError::Refused(e.to_string()))
}

/// A row read but not yet written: written once the next row (or the
/// end) says whether it was the last of its table, or of the snapshot.
struct Held {
    codec: Arc<TableCodec>,
    row: Row,
    first_table: bool,
    first_of_table: bool,
    last_of_table: bool,
}

impl Held {
    /// Its marker, `last` for the snapshot's final row.
    fn marker(&self, last_of_snapshot: bool) -> Snapshot {
        if last_of_snapshot {
            Snapshot::Last
        } else if self.first_table && self.first_of_table {
            Snapshot::First
        } else if self.last_of_table {
            Snapshot::LastInDataCollection
        } else if self.first_of_table {
            Snapshot::FirstInDataCollection
        } else {
            Snapshot::True
        }
    }
}

/// What every snapshot row shares.
struct Writer<'a> {
    cfg: &'a ConnectorConfig,
    snapshot_lsn: u64,
    xid: Option<u64>,
    started_us: i64,
    headers: ContextHeaders,
}

impl Writer<'_> {
    async fn write(
        &self,
        held: Held,
        last_of_snapshot: bool,
        producer: &EventProducer,
    ) -> Result<DeliveryFuture, ControlError> {
        let src = Source {
            db: &self.cfg.dbname,
            commit_lsn: self.snapshot_lsn,
            lsn: 0,
            tx_id: self.xid,
            ts_us: self.started_us,
            snapshot: held.marker(last_of_snapshot),
            origin: None,
            transaction: None,
        };
        let key = held.codec.key(&held.row);
        let value = held.codec.value("r", None, Some(&held.row), &src);
        producer
            .send_with(
                &held.codec.topic,
                Some(&key),
                Some(&value),
                self.headers.with(None),
            )
            .await
            .map_err(ControlError::Refused)
    }
}

/// Reads every table in the exported snapshot `snapshot_name`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    connect: &PgConnectOptions,
    pool: &PgPool,
    snapshot_name: &str,
    snapshot_lsn: u64,
    tables: &[CapturedTable],
    cfg: &ConnectorConfig,
    registry: &TypeRegistry,
    producer: &mut EventProducer,
) -> Result<SnapshotResult, ControlError> {
    let sql = |context: &'static str| move |source| ControlError::Sql { context, source };
    let mut conn = PgConnection::connect_with(connect)
        .await
        .map_err(sql("snapshot connection"))?;
    sqlx::Executor::execute(&mut conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(sql("starting the snapshot transaction"))?;
    let import = format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot_name.replace('\'', "''")
    );
    sqlx::Executor::execute(&mut conn, import.as_str())
        .await
        .map_err(sql("importing the exported snapshot"))?;
    // Debezium's snapshot rows carry the snapshot transaction's id and
    // start time.
    let (xid, started_us): (i64, i64) = sqlx::query_as(
        "SELECT pg_current_xact_id()::text::bigint,
                (extract(epoch FROM current_timestamp) * 1000000)::bigint",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(sql("reading the snapshot transaction"))?;
    let writer = Writer {
        cfg,
        snapshot_lsn,
        xid: Some(xid as u64),
        started_us,
        headers: ContextHeaders::new(cfg),
    };

    let mut result = SnapshotResult {
        rows: 0,
        deliveries: Vec::new(),
    };
    let mut held: Option<Held> = None;
    for (index, table) in tables.iter().enumerate() {
        let codec = Arc::new(table_codec(pool, table, cfg, registry).await?);
        producer
            .ensure_topic(&codec.topic)
            .await
            .map_err(ControlError::Refused)?;
        let relation = control::relation(pool, table).await?;
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
        metrics::gauge!(PUBLISHER_SNAPSHOT_ROWS_TOTAL, &labels).set(total as f64);
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
            // Not a cached statement: the text is the same for every
            // table, and a cached one keeps the first table's row
            // description (every later table would be decoded with it).
            let rows = sqlx::query(&format!("FETCH {FETCH} FROM sinkfleet_snapshot"))
                .persistent(false)
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
                let after = codec.row(&tuple).map_err(|e| {
                    ControlError::Refused(format!(
                        "snapshot at LSN {}: {e}; nothing of the snapshot is confirmed",
                        control::format_lsn(snapshot_lsn)
                    ))
                })?;
                if let Some(previous) = held.replace(Held {
                    codec: Arc::clone(&codec),
                    row: after,
                    first_table: index == 0,
                    first_of_table: done == 0,
                    last_of_table: false,
                }) {
                    result
                        .deliveries
                        .push(writer.write(previous, false, producer).await?);
                }
                done += 1;
            }
            metrics::gauge!(PUBLISHER_SNAPSHOT_ROWS_DONE, &labels).set(done as f64);
            // Bound the outstanding deliveries: wait for the older half.
            if result.deliveries.len() > 50_000 {
                let rest = result.deliveries.split_off(25_000);
                for d in std::mem::replace(&mut result.deliveries, rest) {
                    acknowledged(d).await.map_err(ControlError::Refused)?;
                }
            }
        }
        if done > 0
            && let Some(h) = held.as_mut()
        {
            h.last_of_table = true;
        }
        sqlx::Executor::execute(&mut conn, "CLOSE sinkfleet_snapshot")
            .await
            .map_err(sql("closing the snapshot cursor"))?;
        tracing::info!(table = %labels[0].1, rows = done, "snapshot: table done");
        result.rows += done;
    }
    if let Some(last) = held {
        result
            .deliveries
            .push(writer.write(last, true, producer).await?);
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
    crate::event::envelope::now_us().div_euclid(1000)
}
