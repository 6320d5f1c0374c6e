//! Postgres sink: applies change events as idempotent `(key, version)` upserts.
//!
//! Per batch, in one transaction:
//! 1. group the records by target table and split them at truncates;
//! 2. collapse each run to the newest version per key;
//! 3. upsert the rows with `INSERT .. ON CONFLICT (pk) DO UPDATE .. WHERE
//!    t.version < excluded.version`, delete versioned (soft or hard), apply
//!    truncates as versioned deletes plus a per-table floor.
//!
//! The commit makes the whole batch durable at once, so `write` returns
//! [`Durability::Durable`]. Table DDL (create, add column, widen) runs in
//! the same transaction, before the rows: a batch that fails leaves no DDL
//! behind, so a record that ends in the dead-letter topic changes nothing.

pub mod binary;
mod catalog;
pub mod config;
mod error;
pub mod history;
pub mod ident;
pub mod metrics;
mod offsets;
mod ownership;
mod sql;
pub mod types;

pub use config::{
    ApplyMode, DeleteMode, HistoryConfig, OffsetStorage, PostgresSinkConfig, WritePath,
};
pub use offsets::TargetOffsets;
pub use ownership::Ownership;

use binary::{CopyData, Refusal, Wire};
use catalog::{Catalog, TableKind, TableMeta};
use error::classify;
use ident::{Ident, QualifiedName};
use sinkfleet_core::batch::collapse;
use sinkfleet_core::table::{self, TableTarget};
use sinkfleet_core::{
    Change, Durability, PartitionId, Position, Row, Sink, SinkError, SinkRecord, TableId, Value,
};
use sql::RowSource;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often expired hard-delete tombstones are purged.
const TOMBSTONE_EXPIRY_EVERY: Duration = Duration::from_secs(600);

/// The Postgres sink.
pub struct PostgresSink {
    pool: PgPool,
    cfg: PostgresSinkConfig,
    catalog: Catalog,
    meta_ready: bool,
    last_expiry: Instant,
    /// Offsets kept in the target, shared by the process's instances.
    offsets: Option<Arc<TargetOffsets>>,
    /// The next offsets of the batch being written, for `offsets` (set by
    /// `write`, written by the commit hook).
    batch_offsets: Vec<(PartitionId, i64)>,
    /// Records that needed no write ([`Sink::skipped`]), whose offsets go
    /// with the next batch.
    skipped: Vec<Position>,
}

impl PostgresSink {
    /// Creates the sink. Connections are opened lazily, so a target that is
    /// down at start is retried like any other outage.
    pub fn new(cfg: PostgresSinkConfig) -> Result<Self, sinkfleet_core::ConfigError> {
        let mut options = PgConnectOptions::from_str(&cfg.url)
            .map_err(|e| sinkfleet_core::ConfigError::new("sink.postgres.url", e))?
            .options([("statement_timeout", cfg.statement_timeout_ms.to_string())]);
        // `?application_name=` in the URL names one pipeline's connections
        // in pg_stat_activity; without it they are all `sinkfleet`.
        if options.get_application_name().is_none() {
            options = options.application_name("sinkfleet");
        }
        let pool = PgPoolOptions::new()
            .max_connections(cfg.pool_size.unwrap_or(config::DEFAULT_POOL_SIZE))
            .acquire_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .connect_lazy_with(options);
        Ok(PostgresSink::with_pool(pool, cfg))
    }

    /// Another instance for another writer of the same process: it shares
    /// the connection pool (so `pool_size` bounds the process's
    /// connections) and learns the target's tables on its own.
    pub fn sibling(&self) -> Self {
        let mut sibling = PostgresSink::with_pool(self.pool.clone(), self.cfg.clone());
        sibling.offsets = self.offsets.clone();
        sibling
    }

    /// With `offset_storage: target`: the store of consumer group
    /// `group`'s offsets, for the runtime's assign callback. This instance
    /// and its later siblings write their batches' offsets to it. `None`
    /// when offsets are kept in Kafka only.
    pub fn offset_store(&mut self, group: &str) -> Result<Option<Arc<TargetOffsets>>, SinkError> {
        if self.cfg.offset_storage != OffsetStorage::Target {
            return Ok(None);
        }
        let store = Arc::new(TargetOffsets::new(
            self.pool.clone(),
            self.cfg.clone(),
            group,
        )?);
        self.offsets = Some(Arc::clone(&store));
        Ok(Some(store))
    }

    fn with_pool(pool: PgPool, cfg: PostgresSinkConfig) -> Self {
        PostgresSink {
            pool,
            cfg,
            catalog: Catalog::default(),
            meta_ready: false,
            last_expiry: Instant::now(),
            offsets: None,
            batch_offsets: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// The target table of a source table ([`table::route`]).
    fn target(&self, table: &TableId) -> Result<QualifiedName, SinkError> {
        let (schema, name) = table::route(
            table,
            &self.cfg.tables,
            self.cfg.target_schema.as_deref(),
            self.cfg.identifiers,
            ident::MAX_IDENT_BYTES,
        )?;
        let bad = |e: ident::IdentError| SinkError::schema(e.to_string());
        Ok(QualifiedName {
            schema: Ident::new(&schema).map_err(bad)?,
            table: Ident::new(&name).map_err(bad)?,
        })
    }

    async fn expire_tombstones(&mut self) {
        if self.cfg.delete_mode != DeleteMode::Hard
            || self.last_expiry.elapsed() < TOMBSTONE_EXPIRY_EVERY
        {
            return;
        }
        self.last_expiry = Instant::now();
        let current = self.catalog.tables.values();
        for meta in current.filter(|m| m.kind == TableKind::Current) {
            let sql = sql::expire_tombstones(meta);
            if let Err(e) = sqlx::query(&sql)
                .bind(self.cfg.tombstone_retention_secs as f64)
                .execute(&self.pool)
                .await
            {
                tracing::warn!(table = %meta.name.plain(), error = %e, "tombstone expiry failed; will retry");
            }
        }
    }
}

impl Sink for PostgresSink {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Durability, SinkError> {
        if self.offsets.is_some() {
            let positions = batch.iter().map(|r| &r.position).chain(&self.skipped);
            self.batch_offsets = offsets::next_offsets(positions);
        }
        table::apply(self, batch, "postgres").await?;
        self.skipped.clear();
        self.expire_tombstones().await;
        Ok(Durability::Durable)
    }

    fn skipped(&mut self, positions: &[Position]) -> bool {
        if self.offsets.is_none() {
            return false;
        }
        self.skipped.extend_from_slice(positions);
        true
    }

    async fn revoke(&mut self, partitions: &[PartitionId]) {
        self.skipped.retain(|p| {
            !partitions
                .iter()
                .any(|(t, n)| *t == p.topic && *n == p.partition)
        });
    }
}

/// The batch is one transaction: table DDL (create, add column, widen)
/// runs in it before the rows, so a batch that fails leaves no DDL behind
/// and a record that ends in the dead-letter topic changes nothing.
impl TableTarget for PostgresSink {
    type Target = QualifiedName;
    type Meta = Tables;
    type Session = Transaction<'static, Postgres>;

    fn route(&self, table: &TableId) -> Result<QualifiedName, SinkError> {
        self.target(table)
    }

    fn label(target: &QualifiedName) -> String {
        target.plain()
    }

    async fn begin(&mut self) -> Result<Self::Session, SinkError> {
        if !self.meta_ready {
            let mut conn = self.pool.acquire().await.map_err(classify)?;
            catalog::ensure_meta(&mut conn, &self.cfg).await?;
            self.meta_ready = true;
        }
        self.pool.begin().await.map_err(classify)
    }

    async fn prepare(
        &mut self,
        tx: &mut Self::Session,
        name: &QualifiedName,
        changes: &[&Change],
    ) -> Result<Tables, SinkError> {
        // One target table per source table: the first change names it.
        let history = match changes.first() {
            Some(c) => history::table_of(&c.table, name, &self.cfg)?,
            None => None,
        };
        let current = match history {
            Some(_) if !self.cfg.history.keep_current => None,
            _ => Some(
                self.prepare_table(tx, name, changes, TableKind::Current)
                    .await?,
            ),
        };
        let history = match history {
            Some(h) => Some(
                self.prepare_table(tx, &h, changes, TableKind::History)
                    .await?,
            ),
            None => None,
        };
        Ok(Tables { current, history })
    }

    async fn truncate(
        &mut self,
        tx: &mut Self::Session,
        _: &QualifiedName,
        tables: &mut Tables,
        truncate: &Change,
    ) -> Result<(), SinkError> {
        match &tables.current {
            Some(meta) => apply_truncate(tx, meta, truncate, &self.cfg).await,
            None => Ok(()),
        }
    }

    async fn apply_run(
        &mut self,
        tx: &mut Self::Session,
        tables: &mut Tables,
        _records: &[&SinkRecord],
        _index: usize,
        run: Vec<&Change>,
    ) -> Result<u64, SinkError> {
        let mut applied = 0;
        if let Some(meta) = &tables.history {
            applied = history::append(tx, meta, &run, &self.cfg).await?;
        }
        if let Some(meta) = &tables.current {
            applied = 0;
            for round in collapse(run) {
                applied += apply_round(tx, meta, round, &self.cfg).await?;
            }
        }
        Ok(applied)
    }

    async fn commit(&mut self, mut tx: Self::Session) -> Result<(), SinkError> {
        if let Some(offsets) = &self.offsets {
            offsets.advance(&mut tx, &self.batch_offsets).await?;
        }
        tx.commit().await.map_err(classify)
    }

    fn remember(&mut self, _: QualifiedName, tables: Tables) {
        for meta in [tables.current, tables.history].into_iter().flatten() {
            self.catalog.tables.insert(meta.name.clone(), meta);
        }
    }

    fn forget(&mut self) {
        self.catalog.tables.clear();
    }
}

/// The tables one source table is written to: its current-state table,
/// its history table, or both (`history` in the config).
pub struct Tables {
    current: Option<TableMeta>,
    history: Option<TableMeta>,
}

impl PostgresSink {
    /// Makes table `name` of `kind` fit `changes` and returns its metadata.
    async fn prepare_table(
        &mut self,
        tx: &mut PgConnection,
        name: &QualifiedName,
        changes: &[&Change],
        kind: TableKind,
    ) -> Result<TableMeta, SinkError> {
        let existing = match self.catalog.tables.remove(name) {
            Some(meta) => Some(meta),
            None => catalog::load(tx, name, &self.cfg, kind).await?,
        };
        catalog::ensure_table(tx, name, existing, changes, &self.cfg, kind).await
    }
}

/// Text literals by column (`None`: NULL), and the versions as text.
type TextColumns = (Vec<Vec<Option<String>>>, Vec<String>);

/// The values of one statement, by column: `values[i][row]` (`None`: the
/// row does not carry the column, which stores NULL), plus the versions.
/// Rendered or encoded only by the write path ([`execute`]).
struct Columns<'a> {
    names: Vec<String>,
    /// Each column's target type, resolved once per statement.
    types: Vec<String>,
    /// Where each column usually sits in the rows pushed ([`Row::get_at`]).
    hints: Vec<usize>,
    values: Vec<Vec<Option<&'a Value>>>,
    versions: Vec<u128>,
}

impl<'a> Columns<'a> {
    fn new(meta: &TableMeta, names: Vec<String>, hints: Vec<usize>) -> Self {
        Columns {
            types: names
                .iter()
                .map(|n| meta.column_type(n).unwrap_or("text").to_owned())
                .collect(),
            hints,
            values: vec![Vec::new(); names.len()],
            names,
            versions: Vec::new(),
        }
    }

    fn push(&mut self, image: &'a Row, change: &'a Change) {
        for (i, name) in self.names.iter().enumerate() {
            let value = image
                .get_at(name, self.hints[i])
                .or_else(|| change.key.get(name));
            self.values[i].push(value);
        }
        self.versions.push(change.version.as_u128());
    }

    /// A value its column cannot hold exactly fails the batch (the record
    /// is isolated and dead-lettered), naming the column.
    fn refused(&self, meta: &TableMeta, column: usize, reason: String) -> SinkError {
        SinkError::apply(format!(
            "{}.{}: {reason}",
            meta.name.plain(),
            self.names[column]
        ))
    }

    /// The columns as text literals and the versions as text, for
    /// `unnest($n::text[], ..)`.
    fn texts(&self, meta: &TableMeta) -> Result<TextColumns, SinkError> {
        let mut columns = Vec::with_capacity(self.values.len());
        for (i, values) in self.values.iter().enumerate() {
            let texts = values
                .iter()
                .map(|v| match v {
                    Some(v) => types::to_text(v, &self.types[i]),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| self.refused(meta, i, e))?;
            columns.push(texts);
        }
        let versions = self.versions.iter().map(u128::to_string).collect();
        Ok((columns, versions))
    }

    /// The rows as a COPY binary stream, and the wire of each column: its
    /// type's binary form where every value has one, else text.
    fn copy_data(&self, meta: &TableMeta) -> Result<(Vec<u8>, Vec<Wire>), SinkError> {
        let mut wires: Vec<Wire> = self.types.iter().map(|t| Wire::of(t)).collect();
        'attempt: loop {
            let mut data = CopyData::with_capacity(self.versions.len() * 64);
            for (row, version) in self.versions.iter().enumerate() {
                data.row(self.values.len() + 1);
                for (i, values) in self.values.iter().enumerate() {
                    let prepared = match values[row] {
                        Some(v) => types::prepare(v, &self.types[i])
                            .map_err(|e| self.refused(meta, i, e))?,
                        None => None,
                    };
                    match data.field(prepared.as_deref(), &self.types[i], wires[i]) {
                        Ok(()) => {}
                        Err(Refusal::NotBinary) => {
                            wires[i] = Wire::Text;
                            continue 'attempt;
                        }
                        Err(Refusal::Refused(e)) => return Err(self.refused(meta, i, e)),
                    }
                }
                data.version(*version);
            }
            return Ok((data.finish(), wires));
        }
    }
}

/// Applies one round of a collapsed run (one change per key, no
/// truncates). Returns rows applied.
async fn apply_round(
    conn: &mut PgConnection,
    meta: &TableMeta,
    mut changes: Vec<&Change>,
    cfg: &PostgresSinkConfig,
) -> Result<u64, SinkError> {
    // A stable key order keeps concurrent transactions from deadlocking.
    changes.sort_by_cached_key(|c| c.identity());
    // Upserts grouped by the set of columns they carry: a partial row (an
    // unchanged TOAST column left out) must not overwrite what is stored.
    let mut upserts: HashMap<Vec<usize>, Columns> = HashMap::new();
    let key_hints = (0..meta.key.len()).collect();
    let mut deletes = Columns::new(meta, meta.key.clone(), key_hints);
    for &change in &changes {
        match &change.row {
            Some(row) if change.op.is_upsert() => {
                let present: Vec<usize> = meta
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(i, (n, _))| row.get_at(n, *i).is_some() || change.key.contains(n))
                    .map(|(i, _)| i)
                    .collect();
                upserts
                    .entry(present.clone())
                    .or_insert_with(|| {
                        let names = present.iter().map(|&i| meta.columns[i].0.clone()).collect();
                        Columns::new(meta, names, present)
                    })
                    .push(row, change);
            }
            _ => deletes.push(&change.key, change),
        }
    }
    let mut applied = 0;
    let mut groups: Vec<Columns> = upserts.into_values().collect();
    groups.sort_by(|a, b| a.names.cmp(&b.names));
    for group in &groups {
        applied += execute(conn, meta, group, cfg, Statement::Upsert).await?;
    }
    if !deletes.versions.is_empty() {
        applied += execute(conn, meta, &deletes, cfg, Statement::Delete).await?;
    }
    Ok(applied)
}

#[derive(Clone, Copy)]
enum Statement {
    Upsert,
    Delete,
}

async fn execute(
    conn: &mut PgConnection,
    meta: &TableMeta,
    cols: &Columns<'_>,
    cfg: &PostgresSinkConfig,
    kind: Statement,
) -> Result<u64, SinkError> {
    let build = |source: &RowSource| match kind {
        Statement::Upsert => sql::upsert(meta, &cols.names, cfg, source),
        Statement::Delete => sql::delete(meta, cfg, source),
    };
    // The upsert takes the truncate floor key as $1; the delete has no $1.
    let first_param = match kind {
        Statement::Upsert => 2,
        Statement::Delete => 1,
    };
    let result = match cfg.write_path {
        WritePath::Unnest => {
            let (columns, versions) = cols.texts(meta)?;
            let statement = build(&RowSource::Unnest { first_param })?;
            let mut query = sqlx::query(&statement);
            if let Statement::Upsert = kind {
                query = query.bind(meta.name.plain());
            }
            for column in &columns {
                query = query.bind(column);
            }
            query.bind(&versions).execute(&mut *conn).await
        }
        WritePath::Copy => {
            let (data, wires) = cols.copy_data(meta)?;
            let (stage, prepare) = sql::stage(&wires);
            sqlx::Executor::execute(&mut *conn, prepare.as_str())
                .await
                .map_err(classify)?;
            let mut copy = conn
                .copy_in_raw(&format!("COPY {stage} FROM STDIN (FORMAT binary)"))
                .await
                .map_err(classify)?;
            copy.send(data).await.map_err(classify)?;
            copy.finish().await.map_err(classify)?;
            let statement = build(&RowSource::Stage(&stage))?;
            let mut query = sqlx::query(&statement);
            if let Statement::Upsert = kind {
                query = query.bind(meta.name.plain());
            }
            query.execute(&mut *conn).await
        }
    };
    Ok(result.map_err(classify)?.rows_affected())
}

async fn apply_truncate(
    conn: &mut PgConnection,
    meta: &TableMeta,
    change: &Change,
    cfg: &PostgresSinkConfig,
) -> Result<(), SinkError> {
    let version = change.version.as_u128().to_string();
    let [rows, floor] = sql::truncate(meta, cfg)?;
    sqlx::query(&rows)
        .bind(&version)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    sqlx::query(&floor)
        .bind(&version)
        .bind(meta.name.plain())
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    Ok(())
}
