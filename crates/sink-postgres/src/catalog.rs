//! What the sink knows about target tables, and the DDL that keeps them in
//! shape: create a missing table, add a column for a new field, widen a type.
//!
//! Table DDL runs inside the batch's data transaction (Postgres DDL is
//! transactional). If any record of the batch then fails, the DDL it asked
//! for rolls back with the rows: the batch is split, the bad record goes to
//! the dead-letter topic, and it leaves no trace in the target, neither a
//! column nor a widened type. `IF NOT EXISTS` and retries on concurrent-DDL
//! errors let several workers racing on the same change agree.

use crate::config::{DeleteMode, PostgresSinkConfig};
use crate::error::classify;
use crate::ident::{Ident, IdentError, MAX_IDENT_BYTES, QualifiedName, fit_name};
use crate::types::{pg_type, widening};
use sinkfleet_core::batch::agreed_key_columns;
use sinkfleet_core::{Change, ColumnType, SinkError, Value, column_evidence};
use sqlx::PgConnection;
use std::collections::HashMap;

/// A target table as the sink last saw it.
#[derive(Debug, Clone)]
pub(crate) struct TableMeta {
    /// The table.
    pub name: QualifiedName,
    /// Columns in table order with their `format_type` names.
    pub columns: Vec<(String, String)>,
    /// Primary key columns in key order.
    pub key: Vec<String>,
    /// Hard-delete tombstones of this table.
    pub tombstones: QualifiedName,
}

impl TableMeta {
    pub fn column_type(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// Parses `schema.table` (split at the first dot).
pub fn parse_qualified(text: &str) -> Result<QualifiedName, IdentError> {
    let (schema, table) = text.split_once('.').ok_or(IdentError {
        name: text.to_owned(),
        reason: "expected schema.table",
    })?;
    Ok(QualifiedName {
        schema: Ident::new(schema)?,
        table: Ident::new(table)?,
    })
}

/// Reads a table's columns and primary key; `None` if it does not exist.
pub(crate) async fn load(
    conn: &mut PgConnection,
    name: &QualifiedName,
    cfg: &PostgresSinkConfig,
) -> Result<Option<TableMeta>, SinkError> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a
          WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
    )
    .bind(name.to_string())
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
          WHERE i.indrelid = to_regclass($1) AND i.indisprimary
          ORDER BY array_position(i.indkey, a.attnum)",
    )
    .bind(name.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(Some(TableMeta {
        tombstones: tombstone_table(name, cfg)?,
        name: name.clone(),
        columns,
        key: key.into_iter().map(|(k,)| k).collect(),
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

/// Creates the bookkeeping schema and the truncation table.
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
             truncated_at timestamptz NOT NULL DEFAULT now())"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(classify_ddl)?;
    Ok(())
}

/// The type `column` needs for all of `changes`: the widest declared (or
/// inferred) type among them. A batch can straddle a schema change (events
/// from before and after an `ALTER COLUMN TYPE`): taking the first change's
/// type would keep the narrow column and round the newer values.
///
/// `Fit::Create` types a new column: a schema-less integer gets `bigint`,
/// room for what comes later. `Fit::Hold` asks what an existing column must
/// widen to: a schema-less integer needs only the narrowest integer type
/// that holds it, so an `integer` column is not widened for the value 1.
fn wanted_type(changes: &[Change], column: &str, fit: Fit) -> String {
    let mut wanted: Option<String> = None;
    for (declared, sample) in column_evidence(changes, column) {
        let candidate = match (declared, sample) {
            (Some(col), _) => pg_type(&col.ty, sample),
            (None, Some(Value::Int(i))) if fit == Fit::Hold => narrowest_integer(*i).into(),
            (None, Some(v)) if !v.is_null() => pg_type(&ColumnType::Inferred, Some(v)),
            (None, _) => continue,
        };
        wanted = Some(match wanted {
            None => candidate,
            Some(current) => widening(&current, &candidate).unwrap_or(current),
        });
    }
    wanted.unwrap_or_else(|| "text".into())
}

/// What [`wanted_type`] is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// The type of a new column.
    Create,
    /// The least an existing column must hold.
    Hold,
}

fn narrowest_integer(i: i64) -> &'static str {
    if i16::try_from(i).is_ok() {
        "smallint"
    } else if i32::try_from(i).is_ok() {
        "integer"
    } else {
        "bigint"
    }
}

/// Makes `meta` (or a new table) fit the changes: creates the table, adds
/// missing columns, widens types, within the caller's transaction. Returns
/// the refreshed metadata. Every keyed change must name the same key
/// columns, and those of an existing table.
pub(crate) async fn ensure_table(
    conn: &mut PgConnection,
    name: &QualifiedName,
    existing: Option<TableMeta>,
    changes: &[Change],
    cfg: &PostgresSinkConfig,
) -> Result<TableMeta, SinkError> {
    let version = Ident::new(&cfg.version_column).map_err(|e| SinkError::schema(e.to_string()))?;
    let deleted = Ident::new(&cfg.deleted_column).map_err(|e| SinkError::schema(e.to_string()))?;

    // Every column the changes mention, in first-seen order (schema order
    // when the event declares one). Key columns first.
    let mut wanted: Vec<String> = Vec::new();
    let add = |n: &str, wanted: &mut Vec<String>| {
        if !wanted.iter().any(|w| w == n) {
            wanted.push(n.to_owned());
        }
    };
    let key_columns: Vec<String> = agreed_key_columns(changes)
        .map_err(SinkError::schema)?
        .into_iter()
        .map(str::to_owned)
        .collect();
    if let Some(meta) = &existing {
        check_key(name, meta, &key_columns)?;
    }
    for k in &key_columns {
        add(k, &mut wanted);
    }
    for change in changes {
        if let Some(schema) = &change.schema {
            for col in &schema.columns {
                add(&col.name, &mut wanted);
            }
        }
        if let Some(row) = &change.row {
            for n in row.names() {
                add(n, &mut wanted);
            }
        }
    }
    for n in &wanted {
        if n == &cfg.version_column || n == &cfg.deleted_column {
            return Err(SinkError::schema(format!(
                "source column `{n}` collides with sinkfleet's bookkeeping column; rename version_column/deleted_column"
            )));
        }
        cfg.identifiers
            .check("column", n, MAX_IDENT_BYTES)
            .map_err(|e| SinkError::schema(e.to_string()))?;
        Ident::new(n).map_err(|e| SinkError::schema(e.to_string()))?;
    }

    let mut ddl: Vec<String> = Vec::new();
    let meta = match existing {
        None => {
            if !cfg.create_tables {
                return Err(SinkError::schema(format!(
                    "target table {name} does not exist and create_tables is off"
                )));
            }
            if key_columns.is_empty() {
                return Err(SinkError::schema(format!(
                    "cannot create {name}: no key columns known (only truncates seen)"
                )));
            }
            let mut cols: Vec<String> = Vec::new();
            for n in &wanted {
                let not_null = if key_columns.contains(n) {
                    " NOT NULL"
                } else {
                    ""
                };
                cols.push(format!(
                    "{} {}{not_null}",
                    Ident::new(n).map_err(|e| SinkError::schema(e.to_string()))?,
                    wanted_type(changes, n, Fit::Create)
                ));
            }
            cols.push(format!("{version} numeric(39,0) NOT NULL"));
            cols.push(format!("{deleted} boolean NOT NULL DEFAULT false"));
            let pk = idents(&key_columns)?;
            ddl.push(format!("CREATE SCHEMA IF NOT EXISTS {}", name.schema));
            ddl.push(format!(
                "CREATE TABLE IF NOT EXISTS {name} ({}, PRIMARY KEY ({pk}))",
                cols.join(", ")
            ));
            None
        }
        Some(meta) => {
            for n in &wanted {
                match meta.column_type(n) {
                    None if cfg.evolve_schema => ddl.push(format!(
                        "ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {} {}",
                        Ident::new(n).map_err(|e| SinkError::schema(e.to_string()))?,
                        wanted_type(changes, n, Fit::Create)
                    )),
                    None => {
                        return Err(SinkError::schema(format!(
                            "column `{n}` is not in {name} and evolve_schema is off"
                        )));
                    }
                    Some(current) if cfg.evolve_schema => {
                        if let Some(to) = widening(current, &wanted_type(changes, n, Fit::Hold)) {
                            ddl.push(format!(
                                "ALTER TABLE {name} ALTER COLUMN {} TYPE {to}",
                                Ident::new(n).map_err(|e| SinkError::schema(e.to_string()))?
                            ));
                        }
                    }
                    Some(_) => {}
                }
            }
            if meta.column_type(&cfg.version_column).is_none() {
                ddl.push(format!("ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {version} numeric(39,0) NOT NULL DEFAULT 0"));
            }
            if meta.column_type(&cfg.deleted_column).is_none() {
                ddl.push(format!("ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {deleted} boolean NOT NULL DEFAULT false"));
            }
            Some(meta)
        }
    };

    if !ddl.is_empty() {
        tracing::info!(table = %name.plain(), statements = ddl.len(), "evolving target table (commits with the batch)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl.join("; ")))
            .execute(&mut *conn)
            .await
            .map_err(classify_ddl)?;
    }
    let meta = match (meta, ddl.is_empty()) {
        (Some(meta), true) => meta,
        _ => load(conn, name, cfg)
            .await?
            .ok_or_else(|| SinkError::Retryable(format!("{name} vanished after DDL")))?,
    };

    if meta.key.is_empty() {
        return Err(SinkError::schema(format!(
            "{name} has no primary key: upserts need one"
        )));
    }
    check_key(name, &meta, &key_columns)?;
    if cfg.delete_mode == DeleteMode::Hard {
        ensure_tombstones(conn, &meta, cfg).await?;
    }
    Ok(meta)
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
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(classify_ddl)?;
    Ok(())
}

/// Comma-separated quoted identifiers.
pub(crate) fn idents(names: &[String]) -> Result<String, SinkError> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(
            Ident::new(n)
                .map_err(|e| SinkError::schema(e.to_string()))?
                .to_string(),
        );
    }
    Ok(out.join(", "))
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
