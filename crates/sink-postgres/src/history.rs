//! History tables: every change of a table kept as its own row, for
//! slowly-changing-dimension (SCD2) models and audits.
//!
//! A history table has the current table's data columns (all nullable but
//! the key) plus the change's version, its op (`c`, `r`, `u`, `d`), its
//! source commit time and the columns the event left out as unchanged (a
//! TOASTed value Debezium did not send: NULL in the row, named in that
//! list, so a reader can tell "unchanged" from "set to NULL"). Its primary
//! key is `(key columns, version)`, and rows go in with `ON CONFLICT DO
//! NOTHING`: a replayed change adds nothing, a late one takes its place in
//! version order, whatever order they arrive in.
//!
//! A delete is a row with the key, op `d`, and NULL data. A truncate is no
//! change of a row and adds nothing (the current table, if kept, still
//! applies it).

use crate::Columns;
use crate::catalog::{self, TableMeta};
use crate::config::PostgresSinkConfig;
use crate::error::classify;
use crate::ident::{Ident, QualifiedName, fit_name, idents};
use sinkfleet_core::{Change, SinkError, TableId, Value};
use sqlx::PgConnection;

pub use sinkfleet_core::table::history::{OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN};

/// The history table of `target` when `source` is kept as history.
pub(crate) fn table_of(
    source: &TableId,
    target: &QualifiedName,
    cfg: &PostgresSinkConfig,
) -> Result<Option<QualifiedName>, SinkError> {
    if !cfg.history.covers(&source.schema, &source.table) {
        return Ok(None);
    }
    let name = fit_name(&format!("{}{}", target.table.as_str(), cfg.history.suffix));
    Ok(Some(QualifiedName {
        schema: target.schema.clone(),
        table: Ident::new(&name).map_err(|e| SinkError::schema(e.to_string()))?,
    }))
}

/// Appends every change of `changes` (upserts and deletes, in any order,
/// not collapsed) to the history table `meta`. Returns rows added.
pub(crate) async fn append(
    conn: &mut PgConnection,
    meta: &TableMeta,
    changes: &[&Change],
    cfg: &PostgresSinkConfig,
) -> Result<u64, SinkError> {
    let own = catalog::history_columns(cfg);
    let (hints, names): (Vec<usize>, Vec<String>) = meta
        .columns
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| !own.iter().any(|(o, _)| o == n))
        .map(|(i, (n, _))| (i, n.clone()))
        .unzip();
    let mut cols = Columns::new(meta, names, hints);
    let mut ops = Vec::with_capacity(changes.len());
    let mut times = Vec::with_capacity(changes.len());
    let mut unchanged = Vec::with_capacity(changes.len());
    for &change in changes {
        let image = match &change.row {
            Some(row) if change.op.is_upsert() => row,
            _ => &change.key,
        };
        cols.push(image, change);
        ops.push(change.op.code());
        times.push(change.source_ts_ms);
        unchanged.push((!change.unchanged.is_empty()).then(|| array_literal(&change.unchanged)));
    }
    let n = cols.names.len();
    let params: Vec<String> = (1..=n + 1)
        .map(|i| format!("${i}::text[]"))
        .chain([
            format!("${}::text[]", n + 2),
            format!("${}::bigint[]", n + 3),
            format!("${}::text[]", n + 4),
        ])
        .collect();
    let aliases: Vec<String> = (0..n)
        .map(|i| format!("c{i}"))
        .chain(["v", "op", "ts", "u"].map(String::from))
        .collect();
    let casts: Vec<String> = cols
        .names
        .iter()
        .enumerate()
        .map(|(i, c)| format!("s.c{i}::{}", meta.column_type(c).unwrap_or("text")))
        .collect();
    let own_names: Vec<String> = own.into_iter().map(|(n, _)| n).collect();
    let mut select = casts;
    select.extend([
        "s.v::numeric".to_owned(),
        "s.op".to_owned(),
        "timestamptz 'epoch' + s.ts * interval '1 millisecond'".to_owned(),
        "s.u::text[]".to_owned(),
    ]);
    let all: Vec<String> = cols.names.iter().chain(&own_names).cloned().collect();
    let sql = format!(
        "INSERT INTO {table} ({columns}) SELECT {select} FROM unnest({params}) AS s({aliases}) \
         ON CONFLICT DO NOTHING",
        table = meta.name,
        columns = idents(&all)?,
        select = select.join(", "),
        params = params.join(", "),
        aliases = aliases.join(", "),
    );
    let (columns, versions) = cols.texts(meta)?;
    let mut query = sqlx::query(&sql);
    for column in &columns {
        query = query.bind(column);
    }
    let result = query
        .bind(&versions)
        .bind(&ops)
        .bind(&times)
        .bind(&unchanged)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    Ok(result.rows_affected())
}

/// A Postgres array literal of `names`, every element quoted.
fn array_literal(names: &[String]) -> String {
    let items: Vec<Value> = names.iter().map(|n| Value::Text(n.clone())).collect();
    let mut out = String::new();
    crate::types::write_array(&items, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::array_literal;

    #[test]
    fn array_literals_quote_every_name() {
        assert_eq!(array_literal(&["a".into()]), r#"{"a"}"#);
        assert_eq!(
            array_literal(&["a,b".into(), r#"q"\"#.into()]),
            r#"{"a,b","q\"\\"}"#
        );
    }
}
