//! The control plane (plain SQL): which tables are captured, their keys
//! and columns, the publication, the slot's state.

use crate::config::{ConnectorConfig, PublicationMode};
use crate::event::ColumnFacts;
use crate::pgoutput::{Relation, RelationColumn, ReplicaIdentity};
use regex::Regex;
use sqlx::PgPool;

/// A control-plane failure, with what the operator should do.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The database refused a query.
    #[error("{context}: {source}")]
    Sql {
        /// What was being done.
        context: &'static str,
        /// The driver error.
        source: sqlx::Error,
    },
    /// A table/publication/slot problem the operator must fix.
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn sql(context: &'static str) -> impl FnOnce(sqlx::Error) -> ControlError {
    move |source| ControlError::Sql { context, source }
}

/// A captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedTable {
    /// Table OID.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
}

/// Debezium's table lists, compiled: which `schema.table` names are
/// captured. Each entry is a regex that must match the whole name; with
/// an include list, only what it matches, else all but what the exclude
/// list matches. Applied to the snapshot and to every streamed change,
/// whatever the publication covers.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    schema_include: Vec<Regex>,
    schema_exclude: Vec<Regex>,
}

impl TableFilter {
    /// Compiles `table.include.list` and `table.exclude.list`.
    pub fn new(cfg: &ConnectorConfig) -> Result<TableFilter, ControlError> {
        let patterns = |list: &[String]| {
            list.iter()
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| ControlError::Refused(format!("table list entry `{p}`: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(TableFilter {
            include: patterns(&cfg.table_include)?,
            exclude: patterns(&cfg.table_exclude)?,
            schema_include: patterns(&cfg.schema_include)?,
            schema_exclude: patterns(&cfg.schema_exclude)?,
        })
    }

    /// Whether changes of `schema.table` are published: its schema passes
    /// the schema lists and its name the table lists.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        let passes = |include: &[Regex], exclude: &[Regex], name: &str| {
            if include.is_empty() {
                !exclude.iter().any(|r| r.is_match(name))
            } else {
                include.iter().any(|r| r.is_match(name))
            }
        };
        passes(&self.schema_include, &self.schema_exclude, schema)
            && passes(&self.include, &self.exclude, &format!("{schema}.{table}"))
    }
}

/// The ordinary tables of the database that the include/exclude lists select.
pub async fn captured_tables(
    pool: &PgPool,
    cfg: &ConnectorConfig,
) -> Result<Vec<CapturedTable>, ControlError> {
    let filter = TableFilter::new(cfg)?;
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT c.oid::bigint, n.nspname::text, c.relname::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
          ORDER BY 2, 3",
    )
    .fetch_all(pool)
    .await
    .map_err(sql("listing tables"))?;
    Ok(rows
        .into_iter()
        .filter(|(_, s, t)| filter.captures(s, t))
        .map(|(oid, schema, name)| CapturedTable {
            oid: oid as u32,
            schema,
            name,
        })
        .collect())
}

/// An ordinary table by name, whatever the table lists say.
pub async fn table_named(
    pool: &PgPool,
    schema: &str,
    name: &str,
) -> Result<Option<CapturedTable>, ControlError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT c.oid::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
    )
    .bind(schema)
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(sql("looking a table up"))?;
    Ok(row.map(|(oid,)| CapturedTable {
        oid: oid as u32,
        schema: schema.to_owned(),
        name: name.to_owned(),
    }))
}

/// Primary key columns of a table, in key order (empty if none).
pub async fn primary_key(pool: &PgPool, oid: u32) -> Result<Vec<String>, ControlError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT a.attname::text FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
          WHERE i.indrelid = $1::bigint::oid AND i.indisprimary
          ORDER BY array_position(i.indkey, a.attnum)",
    )
    .bind(oid as i64)
    .fetch_all(pool)
    .await
    .map_err(sql("reading a primary key"))?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// NOT NULL and the default expression of every column of a table, by
/// name. Generated columns have no default (their expression is not one).
pub async fn column_facts(
    pool: &PgPool,
    oid: u32,
) -> Result<std::collections::HashMap<String, ColumnFacts>, ControlError> {
    let rows: Vec<(String, bool, Option<String>)> = sqlx::query_as(
        "SELECT a.attname::text, a.attnotnull OR (t.typtype = 'd' AND t.typnotnull),
                CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(oid as i64)
    .fetch_all(pool)
    .await
    .map_err(sql("reading column defaults"))?;
    Ok(rows
        .into_iter()
        .map(|(name, not_null, default)| (name, ColumnFacts { not_null, default }))
        .collect())
}

/// A table's current shape as a [`Relation`] (for the snapshot, which
/// reads tables before any Relation message arrives).
pub async fn relation(pool: &PgPool, table: &CapturedTable) -> Result<Relation, ControlError> {
    let identity: (String,) =
        sqlx::query_as("SELECT relreplident::text FROM pg_class WHERE oid = $1::bigint::oid")
            .bind(table.oid as i64)
            .fetch_one(pool)
            .await
            .map_err(sql("reading replica identity"))?;
    let columns: Vec<(String, i64, i32)> = sqlx::query_as(
        "SELECT attname::text, atttypid::bigint, atttypmod FROM pg_attribute
          WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    )
    .bind(table.oid as i64)
    .fetch_all(pool)
    .await
    .map_err(sql("reading columns"))?;
    let key = primary_key(pool, table.oid).await?;
    Ok(Relation {
        oid: table.oid,
        namespace: table.schema.clone(),
        name: table.name.clone(),
        replica_identity: match identity.0.as_str() {
            "f" => ReplicaIdentity::Full,
            "n" => ReplicaIdentity::Nothing,
            "i" => ReplicaIdentity::Index,
            _ => ReplicaIdentity::Default,
        },
        columns: columns
            .into_iter()
            .map(|(name, oid, typmod)| RelationColumn {
                key: key.contains(&name),
                name,
                type_oid: oid as u32,
                type_modifier: typmod,
            })
            .collect(),
    })
}

/// Creates or updates the publication according to
/// `publication.autocreate.mode` (publication first: one created after the
/// slot fails decoding of tables changed in between).
pub async fn ensure_publication(
    pool: &PgPool,
    cfg: &ConnectorConfig,
    tables: &[CapturedTable],
) -> Result<(), ControlError> {
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT pubname::text FROM pg_publication WHERE pubname = $1")
            .bind(&cfg.publication_name)
            .fetch_optional(pool)
            .await
            .map_err(sql("reading publications"))?;
    let name = quote(&cfg.publication_name);
    let list = || {
        tables
            .iter()
            .map(|t| format!("{}.{}", quote(&t.schema), quote(&t.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let statement = match (cfg.publication_mode, exists.is_some()) {
        (PublicationMode::Disabled, false) => {
            return Err(ControlError::Refused(format!(
                "publication {} does not exist and publication.autocreate.mode is disabled: create it, or use filtered/all_tables",
                cfg.publication_name
            )));
        }
        (PublicationMode::Disabled, true) | (PublicationMode::AllTables, true) => return Ok(()),
        (PublicationMode::AllTables, false) => format!("CREATE PUBLICATION {name} FOR ALL TABLES"),
        (PublicationMode::Filtered, _) if tables.is_empty() => {
            return Err(ControlError::Refused(
                "table.include.list selects no table".into(),
            ));
        }
        (PublicationMode::Filtered, false) => {
            format!("CREATE PUBLICATION {name} FOR TABLE {}", list())
        }
        (PublicationMode::Filtered, true) => {
            format!("ALTER PUBLICATION {name} SET TABLE {}", list())
        }
    };
    tracing::info!(%statement, "publication");
    sqlx::Executor::execute(pool, statement.as_str())
        .await
        .map_err(sql("creating the publication"))?;
    Ok(())
}

/// `(plugin, database, wal_status, confirmed_flush_lsn)` of a slot.
type SlotRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The slot's state, if it exists.
#[derive(Debug, Clone)]
pub struct SlotState {
    /// `confirmed_flush_lsn`.
    pub confirmed_flush_lsn: Option<u64>,
}

/// Looks the slot up; an invalidated (`wal_status = lost`) slot or one of
/// another plugin/database is an error saying what to do.
pub async fn slot(pool: &PgPool, cfg: &ConnectorConfig) -> Result<Option<SlotState>, ControlError> {
    let row: Option<SlotRow> = sqlx::query_as(
        "SELECT plugin::text, database::text, wal_status, confirmed_flush_lsn::text
           FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(&cfg.slot_name)
    .fetch_optional(pool)
    .await
    .map_err(sql("reading replication slots"))?;
    let Some((plugin, database, wal_status, confirmed)) = row else {
        return Ok(None);
    };
    let slot = &cfg.slot_name;
    if plugin.as_deref() != Some("pgoutput") || database.as_deref() != Some(cfg.dbname.as_str()) {
        return Err(ControlError::Refused(format!(
            "slot {slot} exists for plugin {plugin:?} on database {database:?}: use another slot.name"
        )));
    }
    if wal_status.as_deref() == Some("lost") {
        return Err(ControlError::Refused(format!(
            "slot {slot} is invalidated (the WAL it needed was removed, see max_slot_wal_keep_size): \
             drop it with SELECT pg_drop_replication_slot('{slot}') and restart to take a new snapshot"
        )));
    }
    Ok(Some(SlotState {
        confirmed_flush_lsn: confirmed.as_deref().and_then(parse_lsn),
    }))
}

/// An LSN as Postgres writes it (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// `16/B374D848` → u64.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Bytes of WAL the slot holds back (current WAL position − confirmed).
pub async fn slot_lag_bytes(pool: &PgPool, slot: &str) -> Result<Option<i64>, ControlError> {
    let row: Option<(Option<i64>,)> = sqlx::query_as(
        "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await
    .map_err(sql("reading slot lag"))?;
    Ok(row.and_then(|r| r.0))
}

/// Copies logical slot `from` to `to` (same plugin, same position): how a
/// slot gets its real name once its snapshot is complete.
pub async fn copy_slot(pool: &PgPool, from: &str, to: &str) -> Result<(), ControlError> {
    sqlx::query("SELECT pg_copy_logical_replication_slot($1, $2)")
        .bind(from)
        .bind(to)
        .execute(pool)
        .await
        .map_err(sql("copying the snapshot slot to its real name"))?;
    Ok(())
}

/// A quoted identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_patterns() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("x"), None);
    }

    fn filter(list: &str, value: &str) -> TableFilter {
        let props = [
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.password", ""),
            ("database.dbname", "d"),
            ("topic.prefix", "p"),
            (list, value),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        TableFilter::new(&ConnectorConfig::from_properties(&props).unwrap()).unwrap()
    }

    #[test]
    fn table_lists_match_whole_names() {
        let include = filter("table.include.list", "public.orders,inventory\\..*");
        assert!(include.captures("public", "orders"));
        assert!(!include.captures("public", "orders_archive"));
        assert!(include.captures("inventory", "customers"));
        assert!(!include.captures("other", "customers"));
        let exclude = filter("table.exclude.list", "public.audit.*");
        assert!(!exclude.captures("public", "audit_log"));
        assert!(exclude.captures("public", "orders"));
        let schemas = filter("schema.include.list", "inventory|sales");
        assert!(schemas.captures("sales", "orders"));
        assert!(!schemas.captures("sales_archive", "orders"));
        let schemas = filter("schema.exclude.list", "audit");
        assert!(!schemas.captures("audit", "log") && schemas.captures("public", "log"));
    }
}
