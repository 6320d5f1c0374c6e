//! The statements that apply a collapsed batch. Every identifier comes from
//! [`crate::ident`] (quoted); every value is a bound parameter or COPY data.
//!
//! Rows reach the statement as columns named `c0..cN` plus `v` (the
//! version), either as text from `unnest($1::text[], ..)` or from a staging
//! table filled by COPY's binary format (typed per [`Wire`]), and are cast
//! to the target column types in SQL.

use crate::binary::Wire;
use crate::catalog::TableMeta;
use crate::config::{DeleteMode, PostgresSinkConfig};
use crate::ident::{Ident, idents};
use sinkfleet_core::SinkError;

/// Where the text rows come from.
pub(crate) enum RowSource<'a> {
    /// `unnest($first::text[], ..)` over `n` columns plus the version.
    Unnest { first_param: usize },
    /// A staging table with columns `c0..`, `v`.
    Stage(&'a str),
}

impl RowSource<'_> {
    fn sql(&self, columns: usize) -> String {
        match self {
            RowSource::Unnest { first_param } => {
                let params: Vec<String> = (0..=columns)
                    .map(|i| format!("${}::text[]", first_param + i))
                    .collect();
                let names: Vec<String> = (0..columns)
                    .map(|i| format!("c{i}"))
                    .chain(["v".into()])
                    .collect();
                format!("unnest({}) AS s({})", params.join(", "), names.join(", "))
            }
            RowSource::Stage(table) => format!("{table} AS s"),
        }
    }
}

/// The staging table for columns travelling as `wires` plus the version
/// (`numeric`), and the statements that make it ready: created once per
/// session (one per sequence of wires, emptied at every commit), truncated
/// before each use because one transaction may stage several groups.
pub(crate) fn stage(wires: &[Wire]) -> (String, String) {
    let signature: String = wires.iter().map(|w| w.code()).collect();
    // Postgres keeps 63 bytes of a name: a long signature goes by its hash.
    let table = if signature.len() <= 40 {
        format!("sinkfleet_stage_{signature}")
    } else {
        let hash = signature.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("sinkfleet_stage_{}_{hash:016x}", wires.len())
    };
    let cols: Vec<String> = wires
        .iter()
        .enumerate()
        .map(|(i, w)| format!("c{i} {}", w.sql_type()))
        .chain(["v numeric".into()])
        .collect();
    let prepare = format!(
        "CREATE TEMP TABLE IF NOT EXISTS {table} ({}) ON COMMIT DELETE ROWS; TRUNCATE {table}",
        cols.join(", ")
    );
    (table, prepare)
}

fn ident(name: &str) -> Result<Ident, SinkError> {
    Ident::new(name).map_err(|e| SinkError::schema(e.to_string()))
}

fn cast(meta: &TableMeta, column: &str, i: usize) -> String {
    format!("s.c{i}::{}", meta.column_type(column).unwrap_or("text"))
}

/// Conditional upsert of rows carrying `columns` (key columns included).
///
/// A row is written only when its version is newer than the stored one,
/// newer than the table's last truncate, and (hard deletes) newer than a
/// tombstone for its key. The truncate floor is parameter `$1`.
pub(crate) fn upsert(
    meta: &TableMeta,
    columns: &[String],
    cfg: &PostgresSinkConfig,
    source: &RowSource,
) -> Result<String, SinkError> {
    let version = ident(&cfg.version_column)?;
    let deleted = ident(&cfg.deleted_column)?;
    let meta_schema = ident(&cfg.meta_schema)?;
    let table = &meta.name;
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cast(meta, c, i))
        .collect();
    let mut set: Vec<String> = Vec::new();
    for c in columns.iter().filter(|c| !meta.key.contains(c)) {
        let c = ident(c)?;
        set.push(format!("{c} = EXCLUDED.{c}"));
    }
    set.push(format!("{version} = EXCLUDED.{version}"));
    set.push(format!("{deleted} = false"));
    let mut filter = format!(
        "s.v::numeric > coalesce((SELECT version FROM {meta_schema}.truncations WHERE target_table = $1), -1)"
    );
    if cfg.delete_mode == DeleteMode::Hard {
        let mut on = Vec::new();
        for k in &meta.key {
            let i = columns
                .iter()
                .position(|c| c == k)
                .ok_or_else(|| SinkError::schema(format!("key column `{k}` missing from row")))?;
            on.push(format!("tb.{} = {}", ident(k)?, cast(meta, k, i)));
        }
        filter.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM {} tb WHERE {} AND tb.{version} >= s.v::numeric)",
            meta.tombstones,
            on.join(" AND ")
        ));
    }
    Ok(format!(
        "INSERT INTO {table} AS t ({cols}, {version}, {deleted}) \
         SELECT {casts}, s.v::numeric, false FROM {from} WHERE {filter} \
         ON CONFLICT ({pk}) DO UPDATE SET {set} WHERE t.{version} < EXCLUDED.{version}",
        cols = idents(columns)?,
        casts = casts.join(", "),
        from = source.sql(columns.len()),
        pk = idents(&meta.key)?,
        set = set.join(", "),
    ))
}

/// Versioned delete of keys (`meta.key` columns in order).
///
/// Soft: the row keeps its data, gets the deleted flag and the delete's
/// version (inserted as a key-only row if absent, so a late older insert
/// still loses). Hard: the row is removed if older than the delete, and
/// `(key, version)` goes to the tombstone table.
pub(crate) fn delete(
    meta: &TableMeta,
    cfg: &PostgresSinkConfig,
    source: &RowSource,
) -> Result<String, SinkError> {
    let version = ident(&cfg.version_column)?;
    let deleted = ident(&cfg.deleted_column)?;
    let table = &meta.name;
    let pk = idents(&meta.key)?;
    let casts: Vec<String> = meta
        .key
        .iter()
        .enumerate()
        .map(|(i, c)| cast(meta, c, i))
        .collect();
    let from = source.sql(meta.key.len());
    Ok(match cfg.delete_mode {
        DeleteMode::Soft => format!(
            "INSERT INTO {table} AS t ({pk}, {version}, {deleted}) \
             SELECT {casts}, s.v::numeric, true FROM {from} \
             ON CONFLICT ({pk}) DO UPDATE SET {version} = EXCLUDED.{version}, {deleted} = true \
             WHERE t.{version} < EXCLUDED.{version}",
            casts = casts.join(", "),
        ),
        DeleteMode::Hard => {
            let named: Vec<String> = casts
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} AS k{i}"))
                .collect();
            let mut on = Vec::new();
            for (i, k) in meta.key.iter().enumerate() {
                on.push(format!("t.{} = d.k{i}", ident(k)?));
            }
            let ks: Vec<String> = (0..meta.key.len()).map(|i| format!("k{i}")).collect();
            // Data-modifying CTEs always run to completion, referenced or not.
            format!(
                "WITH d AS (SELECT {named}, s.v::numeric AS v FROM {from}), \
                 gone AS (DELETE FROM {table} t USING d WHERE {on} AND t.{version} < d.v) \
                 INSERT INTO {tomb} AS tb ({pk}, {version}, deleted_at) SELECT {ks}, v, now() FROM d \
                 ON CONFLICT ({pk}) DO UPDATE SET {version} = EXCLUDED.{version}, deleted_at = now() \
                 WHERE tb.{version} < EXCLUDED.{version}",
                named = named.join(", "),
                on = on.join(" AND "),
                tomb = meta.tombstones,
                ks = ks.join(", "),
            )
        }
    })
}

/// A versioned truncate (`$1` = version, `$2` = target table key): rows
/// older than the truncate go; the floor keeps late older inserts out.
pub(crate) fn truncate(
    meta: &TableMeta,
    cfg: &PostgresSinkConfig,
) -> Result<[String; 2], SinkError> {
    let version = ident(&cfg.version_column)?;
    let deleted = ident(&cfg.deleted_column)?;
    let meta_schema = ident(&cfg.meta_schema)?;
    let table = &meta.name;
    let rows = match cfg.delete_mode {
        DeleteMode::Soft => format!(
            "UPDATE {table} SET {version} = $1::numeric, {deleted} = true WHERE {version} < $1::numeric"
        ),
        DeleteMode::Hard => format!("DELETE FROM {table} WHERE {version} < $1::numeric"),
    };
    let floor = format!(
        "INSERT INTO {meta_schema}.truncations AS tr (target_table, version) VALUES ($2, $1::numeric) \
         ON CONFLICT (target_table) DO UPDATE SET version = greatest(tr.version, EXCLUDED.version), truncated_at = now()"
    );
    Ok([rows, floor])
}

/// Removes tombstones older than the retention window.
pub(crate) fn expire_tombstones(meta: &TableMeta) -> String {
    format!(
        "DELETE FROM {} WHERE deleted_at < now() - make_interval(secs => $1::double precision)",
        meta.tombstones
    )
}
