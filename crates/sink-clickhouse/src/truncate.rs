//! Versioned truncates: tombstones for the rows a truncate removes, and a
//! per-table floor that keeps out the rows it never saw.
//!
//! A truncate event travels on its own (no key), so in a multi-partition
//! topic it can be applied before an older insert of a row that the
//! truncate removed at the source. Tombstones only cover rows present when
//! the truncate runs; the floor covers the rest: a change older than the
//! table's last truncate is dropped before it is inserted. The floor lives
//! in ClickHouse (`<database>.__sinkfleet_truncations`), so every worker of
//! the fleet sees it, and it is read once per batch and table.

use crate::client::{Client, ServerFeatures};
use crate::config::ClickHouseSinkConfig;
use crate::ident::{literal, quote};
use crate::schema::TableMeta;
use crate::{encode_version, version_key};
use sinkfleet_core::{SinkError, Version};

/// The bookkeeping table: one row per truncate, `(table, version)`.
pub const TRUNCATIONS: &str = "__sinkfleet_truncations";

/// `CREATE TABLE IF NOT EXISTS` for the bookkeeping table of `database`.
pub fn create_sql(database: &str, features: &ServerFeatures) -> String {
    let version_type = if features.uint128() {
        "UInt128"
    } else {
        "UInt64"
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (`table` String, `version` {version_type}) \
         ENGINE = ReplacingMergeTree(`version`) ORDER BY `table`",
        quote(database),
        quote(TRUNCATIONS)
    )
}

/// The version of `table`'s last truncate, in the version column's
/// encoding (0: never truncated).
pub async fn floor(client: &Client, database: &str, table: &str) -> Result<u128, SinkError> {
    let sql = format!(
        "SELECT toString(max(`version`)) FROM {}.{} WHERE `table` = {} FORMAT TSV",
        quote(database),
        quote(TRUNCATIONS),
        literal(table)
    );
    let body = client.execute(&sql, None, &[]).await?;
    body.trim()
        .parse()
        .map_err(|e| SinkError::Retryable(format!("truncate floor of {table}: `{body}`: {e}")))
}

/// Applies a truncate of `meta` (target `table` in `database`): records
/// the floor, then gives every live row older than the truncate a
/// tombstone carrying its version (`INSERT … SELECT … FINAL`, which 18.16
/// has). Replaying it inserts equal rows, which change nothing. Returns the
/// new floor.
pub async fn apply(
    client: &Client,
    (database, table): (&str, &str),
    meta: &TableMeta,
    version: Version,
    cfg: &ClickHouseSinkConfig,
    features: &ServerFeatures,
) -> Result<u128, SinkError> {
    if meta.key.is_empty() {
        return Err(SinkError::schema(format!(
            "{}: no sorting key known for the truncate",
            meta.name
        )));
    }
    let v = encode_version(version, features);
    // The floor first: a worker inserting this table's older rows from
    // another partition stops at the floor even before the tombstones land.
    let sql = format!(
        "INSERT INTO {}.{} (`table`, `version`) VALUES ({}, {v})",
        quote(database),
        quote(TRUNCATIONS),
        literal(table)
    );
    client.execute(&sql, None, &[]).await?;
    let key: Vec<String> = meta.key.iter().map(|k| quote(k)).collect();
    let (ver, del) = (quote(&cfg.version_column), quote(&cfg.deleted_column));
    let sql = format!(
        "INSERT INTO {t} ({k}, {ver}, {del}) SELECT {k}, {v}, 1 FROM {t} FINAL WHERE {del} = 0 AND {ver} < {v}",
        t = meta.name,
        k = key.join(", "),
    );
    client.execute(&sql, None, &[]).await?;
    Ok(version_key(version, features))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_stored_like_the_version_column() {
        let old = ServerFeatures { version: (18, 16) };
        let modern = ServerFeatures { version: (24, 3) };
        assert_eq!(
            create_sql("db", &old),
            "CREATE TABLE IF NOT EXISTS `db`.`__sinkfleet_truncations` (`table` String, `version` UInt64) \
             ENGINE = ReplacingMergeTree(`version`) ORDER BY `table`"
        );
        assert!(create_sql("db", &modern).contains("`version` UInt128"));
        // The same truncate compares by the commit LSN alone on 18.16, by
        // the whole (commit, change) pair where UInt128 exists.
        let v = Version { major: 7, minor: 3 };
        assert_eq!(version_key(v, &old), 7);
        assert_eq!(version_key(v, &modern), (7u128 << 64) | 3);
    }
}
