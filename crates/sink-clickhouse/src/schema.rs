//! Tables in ClickHouse: type mapping, DDL, and the columns a table has.

use crate::client::{Client, ServerFeatures};
use crate::config::ClickHouseSinkConfig;
use crate::ident::{check_ident, literal, quote};
// Kept at its old path: the binary's configuration check names it there.
pub use crate::ident::MAX_NAME_BYTES;
use sinkfleet_core::table::history::{OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN};
use sinkfleet_core::table::plan::{
    self, Alteration, Existing, NewTable, PlannedColumn, Rules, TypeSystem,
};
use sinkfleet_core::{Change, ColumnType, SinkError, Value};

/// The ClickHouse type for a declared (or inferred) column type.
pub fn ch_type(ty: &ColumnType, sample: Option<&Value>, features: &ServerFeatures) -> String {
    match ty {
        ColumnType::Int16 => "Int16".into(),
        ColumnType::Int32 => "Int32".into(),
        ColumnType::Int64 => "Int64".into(),
        ColumnType::Float32 => "Float32".into(),
        ColumnType::Float64 => "Float64".into(),
        ColumnType::Bool => "UInt8".into(),
        ColumnType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 38 && *scale <= *p => format!("Decimal({p}, {scale})"),
        // Unbounded numerics keep their exact text.
        ColumnType::Decimal { .. } | ColumnType::VariableDecimal => "String".into(),
        ColumnType::Date => "Date".into(),
        ColumnType::Timestamp | ColumnType::TimestampTz if features.datetime64() => {
            "DateTime64(6, 'UTC')".into()
        }
        // Without DateTime64 (before 20.1) the only timestamp type counts
        // seconds: the exact text keeps the sub-second digits.
        ColumnType::Uuid => "UUID".into(),
        ColumnType::Array(item) => {
            let first = match sample {
                Some(Value::Array(items)) => items.iter().find(|v| !v.is_null()),
                _ => None,
            };
            match ch_type(item, first, features) {
                inner if inner.starts_with("Array") => "String".into(),
                inner => format!("Array(Nullable({inner}))"),
            }
        }
        ColumnType::Inferred => match sample {
            Some(Value::Int(_)) => "Int64".into(),
            Some(Value::Float(_)) => "Float64".into(),
            Some(Value::Bool(_)) => "UInt8".into(),
            _ => "String".into(),
        },
        // Text, enums, JSON, zoned values on old servers, times, bytes.
        _ => "String".into(),
    }
}

/// ClickHouse's types for the column plan ([`sinkfleet_core::table::plan`]).
pub struct ChTypes {
    /// The server's features decide some types (DateTime64, UInt128).
    pub features: ServerFeatures,
}

impl TypeSystem for ChTypes {
    fn map(&self, ty: &ColumnType, sample: Option<&Value>) -> String {
        ch_type(ty, sample, &self.features)
    }

    /// Keeps a `Nullable(..)` column nullable.
    fn widen(&self, current: &str, wanted: &str) -> Option<String> {
        let to = widening(current, wanted)?;
        Some(if current.starts_with("Nullable(") {
            format!("Nullable({to})")
        } else {
            to
        })
    }

    fn fallback(&self) -> String {
        "String".into()
    }
}

/// The type to change column type `current` to so that it also holds
/// `wanted` without rounding, if `current` is too narrow; `None` when it
/// already holds it or no lossless widening exists (the value then fails
/// on insert and is dead-lettered, never rounded). `Nullable(..)` wrappers
/// are ignored: nullability is not widened here.
pub fn widening(current: &str, wanted: &str) -> Option<String> {
    let current = strip_nullable(current);
    let wanted = strip_nullable(wanted);
    match (current, wanted) {
        (c, w) if c == w => None,
        ("Int16", "Int32") => Some("Int32".into()),
        ("Int16" | "Int32", "Int64") => Some("Int64".into()),
        ("Float32", "Float64") => Some("Float64".into()),
        (c, w) => {
            // Decimal(p,s) ∪ Decimal(p',s'): keep the most integer digits
            // and the largest scale, if that still fits Decimal128.
            let (p, s) = decimal_typmod(c)?;
            let (wp, ws) = decimal_typmod(w)?;
            let scale = s.max(ws);
            let precision = (p - s).max(wp - ws) + scale;
            (precision <= 38 && (precision, scale) != (p, s))
                .then(|| format!("Decimal({precision}, {scale})"))
        }
    }
}

fn strip_nullable(t: &str) -> &str {
    t.strip_prefix("Nullable(")
        .and_then(|inner| inner.strip_suffix(')'))
        .unwrap_or(t)
}

/// `Decimal(p, s)` → `(p, s)`.
pub(crate) fn decimal_typmod(t: &str) -> Option<(u32, u32)> {
    let inner = t.strip_prefix("Decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// A table as the sink knows it.
#[derive(Debug, Clone)]
pub struct TableMeta {
    /// `database.table`, quoted.
    pub name: String,
    /// Columns with their ClickHouse types.
    pub columns: Vec<(String, String)>,
    /// Sorting key columns (the row key).
    pub key: Vec<String>,
}

impl TableMeta {
    /// Type of a column.
    pub fn column_type(&self, name: &str) -> Option<&str> {
        plan::column_type(&self.columns, name)
    }
}

/// Reads a table's columns (`None` if it does not exist).
pub async fn load(
    client: &Client,
    database: &str,
    table: &str,
) -> Result<Option<TableMeta>, SinkError> {
    let sql = format!(
        "SELECT name, type FROM system.columns WHERE database = {} AND table = {} FORMAT JSONEachRow",
        literal(database),
        literal(table)
    );
    let body = client.execute(&sql, None, &[]).await?;
    let mut columns = Vec::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| SinkError::Retryable(e.to_string()))?;
        if let (Some(n), Some(t)) = (v["name"].as_str(), v["type"].as_str()) {
            columns.push((n.to_owned(), t.to_owned()));
        }
    }
    if columns.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT sorting_key FROM system.tables WHERE database = {} AND name = {} FORMAT TSV",
        literal(database),
        literal(table)
    );
    let sorting = client.execute(&sql, None, &[]).await?;
    Ok(Some(TableMeta {
        name: format!("{}.{}", quote(database), quote(table)),
        columns,
        key: sorting_key_columns(&sorting),
    }))
}

/// The columns of a `system.tables.sorting_key`: `id, tenant`, an
/// expression list (sinkfleet's tables list plain columns). Current
/// servers write a one-column key created as `ORDER BY (id)` as `(id)`
/// (18.16 writes `id`).
fn sorting_key_columns(sorting: &str) -> Vec<String> {
    let sorting = sorting.trim();
    let list = sorting
        .strip_prefix('(')
        .and_then(|inner| inner.strip_suffix(')'))
        .filter(|inner| !inner.contains(['(', ')']))
        .unwrap_or(sorting);
    list.split(',')
        .map(|k| k.trim().trim_matches('`').to_owned())
        .filter(|k| !k.is_empty())
        .collect()
}

/// The `CREATE TABLE` for data columns `columns` (already `name type`)
/// ordered by `key`, with the bookkeeping columns and the engine this
/// server supports.
pub fn create_table_sql(
    database: &str,
    table: &str,
    columns: &[String],
    key: &[String],
    cfg: &ClickHouseSinkConfig,
    features: &ServerFeatures,
    kind: TableKind,
) -> String {
    let version_type = version_type(features);
    let mut cols = columns.to_vec();
    cols.push(format!("{} {version_type}", quote(&cfg.version_column)));
    let mut order: Vec<String> = key.iter().map(|k| quote(k)).collect();
    if kind == TableKind::History {
        order.push(quote(&cfg.version_column));
    }
    if !features.uint128() {
        cols.push(format!("{} UInt64", quote(&cfg.minor_version_column())));
        if kind == TableKind::History {
            order.push(quote(&cfg.minor_version_column()));
        }
    }
    cols.push(format!("{} UInt8", quote(&cfg.deleted_column)));
    let engine = match kind {
        // One row per (key, version): replays of it are identical, and a
        // merge (or FINAL) keeps one of them.
        TableKind::History => {
            for (n, t) in history_columns() {
                cols.push(format!("{} {t}", quote(n)));
            }
            "ReplacingMergeTree".to_owned()
        }
        TableKind::Current if features.is_deleted_engine() => format!(
            "ReplacingMergeTree({}, {})",
            quote(&cfg.version_column),
            quote(&cfg.deleted_column)
        ),
        TableKind::Current => format!("ReplacingMergeTree({})", quote(&cfg.version_column)),
    };
    // The token only deduplicates within this window of recent inserts.
    let settings = if features.dedup_token() {
        " SETTINGS non_replicated_deduplication_window = 1000"
    } else {
        ""
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} ({}) ENGINE = {engine} ORDER BY ({}){settings}",
        quote(database),
        quote(table),
        cols.join(", "),
        order.join(", ")
    )
}

/// What a target table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// The current state: one row per key after merges (by version).
    Current,
    /// Every change: one row per `(key, version)`, with its op, source
    /// commit time (ms since the epoch) and unchanged columns.
    History,
}

/// The history table's own columns beyond the version and deleted flag.
fn history_columns() -> [(&'static str, &'static str); 3] {
    [
        (OP_COLUMN, "String"),
        (SOURCE_TS_COLUMN, "Nullable(Int64)"),
        (UNCHANGED_COLUMN, "Array(String)"),
    ]
}

/// What a batch needs of one table: the DDL, and the columns (with types)
/// the table has once that DDL ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Statements to run, in order (empty: the table fits already).
    pub ddl: Vec<String>,
    /// Every column after the DDL, bookkeeping columns included.
    pub columns: Vec<(String, String)>,
}

/// Plans the table for `changes` with the shared column plan, then adds
/// what is ClickHouse's own: its identifier limits, `Nullable(..)`, the
/// engine and bookkeeping columns, and the minor version column that
/// tables created before it was kept gain on servers without `UInt128`.
pub fn plan(
    database: &str,
    table: &str,
    existing: Option<&TableMeta>,
    changes: &[&Change],
    cfg: &ClickHouseSinkConfig,
    features: &ServerFeatures,
    kind: TableKind,
) -> Result<Plan, SinkError> {
    let bookkeeping = [
        cfg.version_column.clone(),
        cfg.deleted_column.clone(),
        cfg.minor_version_column(),
        OP_COLUMN.to_owned(),
        SOURCE_TS_COLUMN.to_owned(),
        UNCHANGED_COLUMN.to_owned(),
    ];
    let rules = Rules {
        create_tables: cfg.create_tables,
        evolve_schema: cfg.evolve_schema,
        widen_keys: false,
        bookkeeping: &bookkeeping,
        identifiers: cfg.identifiers,
        max_name_bytes: MAX_NAME_BYTES,
    };
    let types = ChTypes {
        features: *features,
    };
    let name = format!("{}.{}", quote(database), quote(table));
    let typed = |c: &PlannedColumn| -> Result<(String, String), SinkError> {
        check_ident(&c.name)?;
        let ty = if c.optional && !c.key && !c.ty.starts_with("Array") {
            format!("Nullable({})", c.ty)
        } else {
            c.ty.clone()
        };
        Ok((c.name.clone(), ty))
    };
    let mut ddl = Vec::new();
    let columns = match existing {
        None => {
            let NewTable { columns, key } = plan::create(&types, &name, changes, &rules)?;
            let mut columns = columns.iter().map(typed).collect::<Result<Vec<_>, _>>()?;
            let defs: Vec<String> = columns
                .iter()
                .map(|(n, t)| format!("{} {t}", quote(n)))
                .collect();
            ddl.push(format!("CREATE DATABASE IF NOT EXISTS {}", quote(database)));
            ddl.push(create_table_sql(
                database, table, &defs, &key, cfg, features, kind,
            ));
            columns.push((cfg.version_column.clone(), version_type(features).into()));
            if !features.uint128() {
                columns.push((cfg.minor_version_column(), "UInt64".into()));
            }
            columns.push((cfg.deleted_column.clone(), "UInt8".into()));
            if kind == TableKind::History {
                columns.extend(history_columns().map(|(n, t)| (n.to_owned(), t.to_owned())));
            }
            columns
        }
        Some(meta) => {
            let shape = Existing {
                columns: &meta.columns,
                key: &meta.key,
            };
            let Alteration { add, widen, .. } = plan::alter(&types, &name, shape, changes, &rules)?;
            let mut columns = meta.columns.clone();
            // Tables created before the minor part was kept: rows already
            // stored count as minor 0, as their version column said.
            let minor = cfg.minor_version_column();
            if !features.uint128() && meta.column_type(&minor).is_none() {
                ddl.push(format!(
                    "ALTER TABLE {} ADD COLUMN {} UInt64 DEFAULT 0 AFTER {}",
                    meta.name,
                    quote(&minor),
                    quote(&cfg.version_column)
                ));
                columns.push((minor, "UInt64".into()));
            }
            for c in &add {
                let (n, ty) = typed(c)?;
                // Old servers have no ADD COLUMN IF NOT EXISTS: system.columns was checked.
                ddl.push(format!(
                    "ALTER TABLE {} ADD COLUMN {} {ty}",
                    meta.name,
                    quote(&n)
                ));
                columns.push((n, ty));
            }
            for (n, _, to) in widen {
                ddl.push(format!(
                    "ALTER TABLE {} MODIFY COLUMN {} {to}",
                    meta.name,
                    quote(&n)
                ));
                if let Some(c) = columns.iter_mut().find(|(c, _)| *c == n) {
                    c.1 = to;
                }
            }
            columns
        }
    };
    Ok(Plan { ddl, columns })
}

/// Runs a plan's DDL (tolerating a column another worker added first) and
/// returns the table's metadata as the server has it now.
pub async fn apply(
    client: &Client,
    database: &str,
    table: &str,
    plan: &Plan,
) -> Result<TableMeta, SinkError> {
    for statement in &plan.ddl {
        tracing::info!(%statement, "clickhouse DDL");
        match client.execute(statement, None, &[]).await {
            Ok(_) => {}
            // Another worker added it first (44: column already exists).
            Err(SinkError::Permanent { message, .. }) if message.contains("Code: 44") => {}
            Err(e) => return Err(e),
        }
    }
    load(client, database, table)
        .await?
        .ok_or_else(|| SinkError::Retryable(format!("{database}.{table} not visible after DDL")))
}

fn version_type(features: &ServerFeatures) -> &'static str {
    if features.uint128() {
        "UInt128"
    } else {
        "UInt64"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: ServerFeatures = ServerFeatures { version: (18, 16) };
    const NEW: ServerFeatures = ServerFeatures { version: (24, 8) };

    #[test]
    fn sorting_keys_read_as_18_16_and_current_servers_write_them() {
        assert_eq!(sorting_key_columns("id\n"), ["id"]);
        assert_eq!(sorting_key_columns("(id)\n"), ["id"], "26.9, ORDER BY (id)");
        assert_eq!(sorting_key_columns("tenant, id"), ["tenant", "id"]);
        assert_eq!(sorting_key_columns("(`odd name`)"), ["odd name"]);
    }

    #[test]
    fn widening_never_shrinks_integer_digits_or_scale() {
        assert_eq!(widening("Int16", "Int64").as_deref(), Some("Int64"));
        assert_eq!(widening("Int64", "Int16"), None);
        assert_eq!(
            widening("Nullable(Decimal(12, 2))", "Decimal(14, 3)").as_deref(),
            Some("Decimal(14, 3)")
        );
        // 10 integer digits and scale 4 need Decimal(14, 4).
        assert_eq!(
            widening("Decimal(12, 2)", "Decimal(10, 4)").as_deref(),
            Some("Decimal(14, 4)")
        );
        assert_eq!(widening("Decimal(14, 3)", "Decimal(12, 2)"), None);
        assert_eq!(widening("Decimal(38, 0)", "Decimal(38, 10)"), None);
        assert_eq!(widening("String", "Int64"), None);
    }

    #[test]
    fn ddl_for_old_and_modern_servers() {
        let cfg = ClickHouseSinkConfig::with_url("http://x");
        let cols = vec![
            "`id` Int64".to_owned(),
            "`name` Nullable(String)".to_owned(),
        ];
        let key = vec!["id".to_owned()];
        assert_eq!(
            create_table_sql("db", "t", &cols, &key, &cfg, &OLD, TableKind::Current),
            "CREATE TABLE IF NOT EXISTS `db`.`t` (`id` Int64, `name` Nullable(String), `__sinkfleet_version` UInt64, \
             `__sinkfleet_version_minor` UInt64, `__sinkfleet_deleted` UInt8) \
             ENGINE = ReplacingMergeTree(`__sinkfleet_version`) ORDER BY (`id`)"
        );
        assert_eq!(
            create_table_sql("db", "t", &cols, &key, &cfg, &NEW, TableKind::Current),
            "CREATE TABLE IF NOT EXISTS `db`.`t` (`id` Int64, `name` Nullable(String), `__sinkfleet_version` UInt128, \
             `__sinkfleet_deleted` UInt8) ENGINE = ReplacingMergeTree(`__sinkfleet_version`, `__sinkfleet_deleted`) \
             ORDER BY (`id`) SETTINGS non_replicated_deduplication_window = 1000"
        );
    }

    #[test]
    fn types_per_server() {
        let ts = ColumnType::Timestamp;
        assert_eq!(ch_type(&ts, None, &OLD), "String", "no sub-second type");
        assert_eq!(ch_type(&ts, None, &NEW), "DateTime64(6, 'UTC')");
        assert_eq!(
            ch_type(
                &ColumnType::Decimal {
                    precision: Some(12),
                    scale: 2
                },
                None,
                &OLD
            ),
            "Decimal(12, 2)"
        );
        assert_eq!(ch_type(&ColumnType::VariableDecimal, None, &OLD), "String");
        assert_eq!(
            ch_type(&ColumnType::Array(Box::new(ColumnType::Text)), None, &OLD),
            "Array(Nullable(String))"
        );
    }
}
