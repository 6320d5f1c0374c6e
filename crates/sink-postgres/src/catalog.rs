//! What the sink knows about target tables, and the DDL that keeps them in
//! shape: create a missing table, add a column for a new field, widen a type.
//!
//! Table DDL runs inside the batch's data transaction (Postgres DDL is
//! transactional). If any record of the batch then fails, the DDL it asked
//! for rolls back with the rows: the batch is split, the bad record goes to
//! the dead-letter topic, and it leaves no trace in the target, neither a
//! column nor a widened type.
//!
//! DDL in a schema is serialized across writers and workers by a
//! transaction-scoped advisory lock ([`lock_ddl`]): the second one waits
//! for the first to commit, then plans again against the table as it is.
//! (Per schema, not per table: creating two tables may both create their
//! schema.)
//! Without it, every fresh start with several writers raced on the same
//! `CREATE` and went through a failed, retried batch. `IF NOT EXISTS` and
//! retries on concurrent-DDL errors remain for DDL run by anything else.

use crate::config::{DeleteMode, OffsetStorage, PostgresSinkConfig};
use crate::error::classify;
use crate::ident::{Ident, MAX_IDENT_BYTES, QualifiedName, fit_name, idents};
use crate::types::PgTypes;
use sinkfleet_core::table::history::{OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN};
use sinkfleet_core::table::plan::{self, Alteration, Existing, NewTable, Rules};
use sinkfleet_core::{Change, SinkError};
use sqlx::PgConnection;
use std::collections::HashMap;

/// What a target table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// The current state: one row per key, upserted by version.
    Current,
    /// Every change: one row per `(key, version)` (appended by the `history`
    /// module).
    History,
}

/// A target table as the sink last saw it.
#[derive(Debug, Clone)]
pub struct TableMeta {
    /// The table.
    pub name: QualifiedName,
    /// Columns in table order with their `format_type` names.
    pub columns: Vec<(String, String)>,
    /// Key columns in key order (for a history table: its primary key
    /// without the version column).
    pub key: Vec<String>,
    /// Hard-delete tombstones of this table.
    pub tombstones: QualifiedName,
    /// What the table holds.
    pub kind: TableKind,
}

impl TableMeta {
    /// The `format_type` name of a column, if the table has it.
    pub fn column_type(&self, name: &str) -> Option<&str> {
        plan::column_type(&self.columns, name)
    }
}

/// Reads a table's columns and primary key; `None` if it does not exist.
///
/// The table is found by joining the catalogs on its names, not through
/// `to_regclass`: that resolves the schema through the backend's catalog
/// cache, which can keep "no such schema" for the rest of a transaction,
/// and a reload after waiting for another writer's DDL ([`lock_ddl`]) must
/// see what that writer committed.
pub(crate) async fn load(
    conn: &mut PgConnection,
    name: &QualifiedName,
    cfg: &PostgresSinkConfig,
    kind: TableKind,
) -> Result<Option<TableMeta>, SinkError> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
    )
    .bind(name.schema.as_str())
    .bind(name.table.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    if columns.is_empty() {
        return Ok(None);
    }
    let key: Vec<(String,)> = sqlx::query_as(
        "SELECT a.attname::text
           FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
          ORDER BY array_position(i.indkey, a.attnum)",
    )
    .bind(name.schema.as_str())
    .bind(name.table.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(Some(TableMeta {
        tombstones: tombstone_table(name, cfg)?,
        kind,
        name: name.clone(),
        columns,
        key: key
            .into_iter()
            .map(|(k,)| k)
            .filter(|k| kind == TableKind::Current || *k != cfg.version_column)
            .collect(),
    }))
}

fn tombstone_table(
    name: &QualifiedName,
    cfg: &PostgresSinkConfig,
) -> Result<QualifiedName, SinkError> {
    let table = fit_name(&format!(
        "{}__{}",
        name.schema.as_str(),
        name.table.as_str()
    ));
    Ok(QualifiedName {
        schema: Ident::new(&cfg.meta_schema).map_err(|e| SinkError::schema(e.to_string()))?,
        table: Ident::new(&table).map_err(|e| SinkError::schema(e.to_string()))?,
    })
}

/// Takes the DDL lock of `schema` until the transaction ends. Advisory
/// locks take part in deadlock detection, so two batches locking two
/// schemas in opposite orders fail retryably (40P01) rather than hang.
async fn lock_ddl(conn: &mut PgConnection, schema: &Ident) -> Result<(), SinkError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sinkfleet ddl'), hashtext($1))")
        .bind(schema.to_string())
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Creates the bookkeeping schema, the truncation table and, when offsets
/// are kept in the target, the offsets table.
pub(crate) async fn ensure_meta(
    conn: &mut PgConnection,
    cfg: &PostgresSinkConfig,
) -> Result<(), SinkError> {
    let meta = Ident::new(&cfg.meta_schema).map_err(|e| SinkError::schema(e.to_string()))?;
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {meta};
         CREATE TABLE IF NOT EXISTS {meta}.truncations (
             target_table text PRIMARY KEY,
             version numeric(39,0) NOT NULL,
             truncated_at timestamptz NOT NULL DEFAULT now());
         {offsets}",
        offsets = match cfg.offset_storage {
            OffsetStorage::Target => offsets_table(&meta),
            OffsetStorage::Kafka => String::new(),
        }
    );
    let mut tx = sqlx::Connection::begin(conn).await.map_err(classify)?;
    lock_ddl(&mut tx, &meta).await?;
    sqlx::Executor::execute(&mut *tx, sql.as_str())
        .await
        .map_err(classify_ddl)?;
    tx.commit().await.map_err(classify)?;
    Ok(())
}

/// The DDL of the offsets table in schema `meta`. It is created here with
/// the other bookkeeping tables; the `offsets` module reads and writes it.
fn offsets_table(meta: &Ident) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {meta}.offsets (
             group_id text NOT NULL,
             topic text NOT NULL,
             partition integer NOT NULL,
             next_offset bigint,
             epoch bigint NOT NULL,
             claimed_at timestamptz NOT NULL DEFAULT now(),
             written_at timestamptz,
             PRIMARY KEY (group_id, topic, partition))"
    )
}

/// Makes `meta` (or a new table) fit the changes: creates the table, adds
/// missing columns, widens types, within the caller's transaction. Returns
/// the refreshed metadata. Every keyed change must name the same key
/// columns, and those of an existing table.
pub(crate) async fn ensure_table(
    conn: &mut PgConnection,
    name: &QualifiedName,
    mut existing: Option<TableMeta>,
    changes: &[&Change],
    cfg: &PostgresSinkConfig,
    kind: TableKind,
) -> Result<TableMeta, SinkError> {
    let mut locked = false;
    let (ddl, key_columns) = loop {
        let (ddl, key_columns) = plan_ddl(name, existing.as_ref(), changes, cfg, kind)?;
        if ddl.is_empty() || locked {
            break (ddl, key_columns);
        }
        // Another writer may be changing the table right now: once we hold
        // the lock its DDL is committed, so plan again against what is there.
        lock_ddl(conn, &name.schema).await?;
        locked = true;
        existing = load(conn, name, cfg, kind).await?;
    };

    if !ddl.is_empty() {
        tracing::info!(table = %name.plain(), statements = ddl.len(), "evolving target table (commits with the batch)");
        sqlx::Executor::execute(&mut *conn, ddl.join("; ").as_str())
            .await
            .map_err(classify_ddl)?;
    }
    let meta = match (existing, ddl.is_empty()) {
        (Some(meta), true) => meta,
        _ => load(conn, name, cfg, kind)
            .await?
            .ok_or_else(|| SinkError::Retryable(format!("{name} vanished after DDL")))?,
    };

    if meta.key.is_empty() {
        return Err(SinkError::schema(format!(
            "{name} has no primary key: upserts need one"
        )));
    }
    check_key(name, &meta, &key_columns)?;
    if cfg.delete_mode == DeleteMode::Hard && kind == TableKind::Current {
        ensure_tombstones(conn, &meta, cfg).await?;
    }
    Ok(meta)
}

/// The sink's own columns of a history table with their types (the
/// `history` module fills them).
pub(crate) fn history_columns(cfg: &PostgresSinkConfig) -> Vec<(String, &'static str)> {
    vec![
        (cfg.version_column.clone(), "numeric(39,0) NOT NULL"),
        (OP_COLUMN.to_owned(), "text NOT NULL"),
        (SOURCE_TS_COLUMN.to_owned(), "timestamptz"),
        (UNCHANGED_COLUMN.to_owned(), "text[]"),
    ]
}

/// The DDL that makes `existing` (or a new table of `kind`) fit the
/// changes, and the changes' key columns.
fn plan_ddl(
    name: &QualifiedName,
    existing: Option<&TableMeta>,
    changes: &[&Change],
    cfg: &PostgresSinkConfig,
    kind: TableKind,
) -> Result<(Vec<String>, Vec<String>), SinkError> {
    let ident = |n: &str| Ident::new(n).map_err(|e| SinkError::schema(e.to_string()));
    // The sink's own columns and their types, in table order.
    let own: Vec<(String, &str)> = match kind {
        TableKind::Current => vec![
            (
                cfg.version_column.clone(),
                "numeric(39,0) NOT NULL DEFAULT 0",
            ),
            (cfg.deleted_column.clone(), "boolean NOT NULL DEFAULT false"),
        ],
        TableKind::History => history_columns(cfg),
    };
    let bookkeeping: Vec<String> = own.iter().map(|(n, _)| n.clone()).collect();
    let rules = Rules {
        create_tables: cfg.create_tables,
        evolve_schema: cfg.evolve_schema,
        widen_keys: true,
        bookkeeping: &bookkeeping,
        identifiers: cfg.identifiers,
        max_name_bytes: MAX_IDENT_BYTES,
    };
    let table = name.to_string();
    let mut ddl: Vec<String> = Vec::new();
    // The changes' key, checked again against the table as reloaded after
    // the DDL (another worker may have created it with another key).
    let key_columns = match existing {
        None => {
            let NewTable { columns, key } = plan::create(&PgTypes, &table, changes, &rules)?;
            let mut cols: Vec<String> = Vec::new();
            for c in &columns {
                let not_null = if c.key { " NOT NULL" } else { "" };
                cols.push(format!("{} {}{not_null}", ident(&c.name)?, c.ty));
            }
            for (n, ty) in &own {
                cols.push(format!("{} {ty}", ident(n)?));
            }
            // A history table keeps one row per version of a key.
            let mut pk = key.clone();
            if kind == TableKind::History {
                pk.push(cfg.version_column.clone());
            }
            ddl.push(format!("CREATE SCHEMA IF NOT EXISTS {}", name.schema));
            ddl.push(format!(
                "CREATE TABLE IF NOT EXISTS {name} ({}, PRIMARY KEY ({}))",
                cols.join(", "),
                idents(&pk)?
            ));
            key
        }
        Some(meta) => {
            let shape = Existing {
                columns: &meta.columns,
                key: &meta.key,
            };
            let Alteration { add, widen, key } =
                plan::alter(&PgTypes, &table, shape, changes, &rules)?;
            for c in &add {
                ddl.push(format!(
                    "ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {} {}",
                    ident(&c.name)?,
                    c.ty
                ));
            }
            for (column, _, to) in &widen {
                ddl.push(format!(
                    "ALTER TABLE {name} ALTER COLUMN {} TYPE {to}",
                    ident(column)?
                ));
            }
            for (n, ty) in &own {
                if meta.column_type(n).is_none() {
                    ddl.push(format!(
                        "ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {} {ty}",
                        ident(n)?
                    ));
                }
            }
            key
        }
    };
    Ok((ddl, key_columns))
}

async fn ensure_tombstones(
    conn: &mut PgConnection,
    meta: &TableMeta,
    cfg: &PostgresSinkConfig,
) -> Result<(), SinkError> {
    let version = Ident::new(&cfg.version_column).map_err(|e| SinkError::schema(e.to_string()))?;
    let mut cols = Vec::new();
    for k in &meta.key {
        let ty = meta.column_type(k).unwrap_or("text");
        cols.push(format!(
            "{} {ty} NOT NULL",
            Ident::new(k).map_err(|e| SinkError::schema(e.to_string()))?
        ));
    }
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} ({}, {version} numeric(39,0) NOT NULL, deleted_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY ({}))",
        meta.tombstones,
        cols.join(", "),
        idents(&meta.key)?
    );
    sqlx::Executor::execute(conn, sql.as_str())
        .await
        .map_err(classify_ddl)?;
    Ok(())
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The events' key columns must be the table's primary key: rows would
/// otherwise be matched by columns the events do not treat as the key.
fn check_key(name: &QualifiedName, meta: &TableMeta, key: &[String]) -> Result<(), SinkError> {
    if key.is_empty() || meta.key.is_empty() || same_set(&meta.key, key) {
        return Ok(());
    }
    Err(SinkError::schema(format!(
        "{name} has primary key ({}) but events are keyed by ({})",
        meta.key.join(", "),
        key.join(", ")
    )))
}

/// DDL races between workers (`duplicate_table`, `duplicate_column`, a
/// unique violation on the catalog) resolve on retry with fresh metadata.
fn classify_ddl(e: sqlx::Error) -> SinkError {
    if let sqlx::Error::Database(db) = &e
        && matches!(
            db.code().as_deref(),
            Some("42P07" | "42701" | "23505" | "42P06")
        )
    {
        return SinkError::Retryable(format!("concurrent DDL: {db}"));
    }
    classify(e)
}

/// Cache of target tables, invalidated when a statement hints it is stale.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub tables: HashMap<QualifiedName, TableMeta>,
}
