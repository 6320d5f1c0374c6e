//! Reading the table of an incremental snapshot: its key, its select
//! list, and its rows chunk by chunk in primary-key order.

use super::{Request, refused};
use crate::config::ConnectorConfig;
use crate::control::{self, CapturedTable, ControlError};
use crate::event::{Row, TableCodec};
use crate::metrics::{PUBLISHER_SNAPSHOT_ROWS_DONE, PUBLISHER_SNAPSHOT_ROWS_TOTAL};
use crate::pgoutput::TupleValue;
use crate::snapshot::table_codec;
use crate::types::registry::TypeRegistry;
use sqlx::{PgPool, Row as _};
use std::sync::Arc;

/// The table being read.
pub(super) struct Current {
    pub(super) table: CapturedTable,
    pub(super) codec: Arc<TableCodec>,
    /// Key columns and their types (`format_type`).
    key: Vec<(String, String)>,
    /// Positions of the key columns among the table's columns.
    key_at: Vec<usize>,
    /// The select list (every column, as pgoutput renders values).
    select: String,
    pub(super) filter: Option<String>,
    /// The last key read (text of each key column); `None`: from the start.
    pub(super) last: Option<Vec<String>>,
    pub(super) done: u64,
    pub(super) label: String,
}

/// One chunk as read.
pub(super) struct Chunk {
    /// Each row with its key identity (what streamed changes remove).
    pub(super) rows: Vec<(Vec<u8>, Row)>,
    /// The last key read (`None`: nothing read yet).
    pub(super) last: Option<Vec<String>>,
    /// It held as many rows as asked: the table may go on.
    pub(super) full: bool,
}

impl Current {
    /// Where the table stands: what a restart resumes.
    pub(super) fn request(&self) -> Request {
        Request {
            table: self.label.clone(),
            filter: self.filter.clone(),
            last: self.last.clone(),
            done: self.done,
        }
    }

    /// Resolves `request`'s table: its codec, key columns and select
    /// list. `None`, with a warning naming it, for a table that cannot be
    /// read (missing, not captured, no primary key).
    pub(super) async fn start(
        request: Request,
        pool: &PgPool,
        cfg: &ConnectorConfig,
        registry: &TypeRegistry,
    ) -> Result<Option<Current>, ControlError> {
        let Some((schema, name)) = request.table.split_once('.') else {
            tracing::warn!(table = %request.table, "incremental snapshot: expected schema.table; skipped");
            return Ok(None);
        };
        let Some(table) = control::table_named(pool, schema, name).await? else {
            tracing::warn!(table = %request.table, "incremental snapshot: no such table; skipped");
            return Ok(None);
        };
        if !control::TableFilter::new(cfg)?.captures(schema, name) {
            tracing::warn!(table = %request.table, "incremental snapshot: the table is not captured (table.include.list); skipped");
            return Ok(None);
        }
        let codec = Arc::new(table_codec(pool, &table, cfg, registry).await?);
        let relation = control::relation(pool, &table).await?;
        let key_names = control::primary_key(pool, table.oid).await?;
        if key_names.is_empty() {
            tracing::warn!(table = %request.table, "incremental snapshot: the table has no primary key; skipped");
            return Ok(None);
        }
        let types: Vec<(String, String)> = sqlx::query_as(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
              WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped",
        )
        .bind(table.oid as i64)
        .fetch_all(pool)
        .await
        .map_err(control::sql("reading key column types"))?;
        let mut key = Vec::new();
        let mut key_at = Vec::new();
        for k in &key_names {
            let ty = types.iter().find(|(n, _)| n == k).map(|(_, t)| t.clone());
            let at = relation.columns.iter().position(|c| c.name == *k);
            match (ty, at) {
                (Some(ty), Some(at)) => {
                    key.push((k.clone(), ty));
                    key_at.push(at);
                }
                _ => {
                    return Err(refused(format!(
                        "{}: key column {k} not found",
                        request.table
                    )));
                }
            }
        }
        // The type's output function, as pgoutput renders values.
        let select = relation
            .columns
            .iter()
            .map(|c| {
                let q = control::quote(&c.name);
                format!("CASE WHEN {q} IS NULL THEN NULL ELSE format('%s', {q}) END")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let label = format!("{schema}.{name}");
        let estimate: f64 = sqlx::query_scalar(
            "SELECT greatest(reltuples, 0)::float8 FROM pg_class WHERE oid = $1::bigint::oid",
        )
        .bind(table.oid as i64)
        .fetch_one(pool)
        .await
        .unwrap_or(0.0);
        let labels = [("table", label.clone())];
        metrics::gauge!(PUBLISHER_SNAPSHOT_ROWS_TOTAL, &labels).set(estimate);
        metrics::gauge!(PUBLISHER_SNAPSHOT_ROWS_DONE, &labels).set(request.done as f64);
        tracing::info!(table = %label, estimated_rows = estimate, "incremental snapshot: reading table");
        Ok(Some(Current {
            table,
            codec,
            key,
            key_at,
            select,
            filter: request.filter,
            last: request.last,
            done: request.done,
            label,
        }))
    }

    /// The next `size` rows after the last key read (all columns rendered
    /// as pgoutput renders them), in key order.
    pub(super) async fn read(&self, pool: &PgPool, size: usize) -> Result<Chunk, ControlError> {
        let c = self;
        let name = format!(
            "{}.{}",
            control::quote(&c.table.schema),
            control::quote(&c.table.name)
        );
        let columns: Vec<String> = c.key.iter().map(|(k, _)| control::quote(k)).collect();
        let mut conditions = Vec::new();
        if c.last.is_some() {
            let params: Vec<String> = c
                .key
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| format!("${}::text::{ty}", i + 1))
                .collect();
            conditions.push(format!(
                "({}) > ({})",
                columns.join(", "),
                params.join(", ")
            ));
        }
        if let Some(f) = &c.filter {
            conditions.push(format!("({f})"));
        }
        let sql = format!(
            "SELECT {} FROM {name}{} ORDER BY {} LIMIT {}",
            c.select,
            if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            },
            columns.join(", "),
            size
        );
        let mut query = sqlx::query(&sql);
        if let Some(last) = &c.last {
            for v in last {
                query = query.bind(v.clone());
            }
        }
        let fetched = query
            .fetch_all(pool)
            .await
            .map_err(control::sql("reading an incremental snapshot chunk"))?;
        let mut rows = Vec::with_capacity(fetched.len());
        let mut last = c.last.clone();
        for r in &fetched {
            let tuple: Vec<TupleValue> = (0..r.len())
                .map(|i| match r.get::<Option<String>, _>(i) {
                    Some(text) => TupleValue::Text(text.into_bytes()),
                    None => TupleValue::Null,
                })
                .collect();
            let key_text: Vec<String> = c
                .key_at
                .iter()
                .map(|&i| r.get::<Option<String>, _>(i).unwrap_or_default())
                .collect();
            let row = c
                .codec
                .row(&tuple)
                .map_err(|e| refused(format!("incremental snapshot of {}: {e}", c.label)))?;
            rows.push((c.codec.key_identity(&row), row));
            last = Some(key_text);
        }
        Ok(Chunk {
            rows,
            last,
            full: fetched.len() >= size,
        })
    }
}
