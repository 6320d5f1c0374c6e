//! ClickHouse sink over HTTP: `(key, version)` dedup with
//! `ReplacingMergeTree(version)` and a deleted flag.
//!
//! Every change becomes one inserted row carrying its version; a delete is
//! a row with the deleted flag set. ClickHouse keeps, per key, the row with
//! the highest version when parts merge, and `SELECT … FINAL` applies that
//! rule at read time, so replays and older versions never win. Current
//! state: `SELECT … FROM t FINAL WHERE __sinkfleet_deleted = 0`.
//!
//! Server versions are detected at start. Modern servers get
//! `ReplacingMergeTree(version, is_deleted)`, a `UInt128` version holding
//! `(commit_lsn, change_lsn)` exactly, `DateTime64(6)` and an
//! `insert_deduplication_token` per batch. Old servers (Debian's 18.16)
//! get a `UInt64` version holding the major part (the commit LSN, a Kafka
//! offset, or a field value) and a second column with the minor part; see
//! [`encode_version`].

pub mod client;
pub mod config;
pub mod ident;
mod probe;
mod rows;
pub mod schema;
pub mod truncate;
mod versions;

pub use config::ClickHouseSinkConfig;

use client::{Client, ServerFeatures};
use ident::{literal, quote};
use schema::{TableKind, TableMeta};
use sinkfleet_core::batch::collapse;
use sinkfleet_core::table::{self, TableTarget};
use sinkfleet_core::{Change, Durability, Sink, SinkError, SinkRecord, TableId, Value, Version};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use versions::StoredVersions;

/// The ClickHouse sink.
pub struct ClickHouseSink {
    client: Client,
    cfg: ClickHouseSinkConfig,
    features: Option<ServerFeatures>,
    tables: HashMap<(String, String), TableMeta>,
    /// Databases whose truncation table this process has created.
    truncation_tables: HashSet<String>,
    /// Stored versions of keys this writer has seen (servers without
    /// `UInt128`).
    versions: StoredVersions,
}

/// The version as the column stores it.
///
/// With `UInt128` the whole `(commit_lsn, change_lsn)` pair fits. A
/// `UInt64` (servers before 21.6) holds only the major part (the commit
/// LSN for CDC events); the minor part goes to its own column
/// ([`ClickHouseSinkConfig::minor_version_column`]), and the sink inserts
/// only changes newer than the stored row by the whole pair, so changes
/// that share a commit LSN still win and lose in version order (see
/// `drop_stale`).
pub fn encode_version(version: Version, features: &ServerFeatures) -> String {
    version_key(version, features).to_string()
}

/// The stored version as a number, for comparing with stored versions.
pub fn version_key(version: Version, features: &ServerFeatures) -> u128 {
    if features.uint128() {
        version.as_u128()
    } else {
        u128::from(version.major)
    }
}

impl ClickHouseSink {
    /// Creates the sink (the server is contacted on the first write).
    pub fn new(cfg: ClickHouseSinkConfig) -> Result<Self, sinkfleet_core::ConfigError> {
        Ok(ClickHouseSink {
            client: Client::new(&cfg)?,
            features: None,
            tables: HashMap::new(),
            truncation_tables: HashSet::new(),
            versions: StoredVersions::new(cfg.version_cache_keys),
            cfg,
        })
    }

    /// Makes table `target` of `kind` fit `changes` and returns its
    /// metadata, cached or loaded.
    async fn prepare_table(
        &mut self,
        features: &ServerFeatures,
        target: &(String, String),
        changes: &[&Change],
        kind: TableKind,
    ) -> Result<TableMeta, SinkError> {
        // A history table's sorting key ends with the version: the key of
        // its rows is the rest.
        let row_key = |mut meta: TableMeta| {
            meta.key.retain(|k| !self.cfg.is_bookkeeping(k));
            meta
        };
        let existing = match self.tables.remove(target) {
            Some(meta) => Some(meta),
            None => schema::load(&self.client, &target.0, &target.1)
                .await?
                .map(row_key),
        };
        let plan = schema::plan(
            &target.0,
            &target.1,
            existing.as_ref(),
            changes,
            &self.cfg,
            features,
            kind,
        )?;
        match existing {
            Some(meta) if plan.ddl.is_empty() => Ok(meta),
            _ => {
                // ClickHouse DDL is not transactional: decide it only from
                // records the server accepts, so a record that will be
                // dead-lettered adds or widens nothing.
                probe::check(&self.client, &plan.columns, changes, &self.cfg, features).await?;
                schema::apply(&self.client, &target.0, &target.1, &plan)
                    .await
                    .map(row_key)
            }
        }
    }

    /// The target `(database, table)` of a source table ([`table::route`]).
    fn target(&self, table: &TableId) -> Result<(String, String), SinkError> {
        let (db, t) = table::route(
            table,
            &self.cfg.tables,
            self.cfg.database.as_deref(),
            self.cfg.identifiers,
            ident::MAX_NAME_BYTES,
        )?;
        ident::check_ident(&db)?;
        ident::check_ident(&t)?;
        Ok((db, t))
    }

    /// A partial row (an unchanged TOAST column left out) must still be a
    /// whole row in ClickHouse, where every insert replaces the row: the
    /// missing values are read from the current state (`FINAL`), one query
    /// per batch and table that has partial rows.
    ///
    /// An event with a declared schema names what it left out; a column it
    /// does not declare (added later, or dropped) is not part of the source
    /// row and takes the column's default. Without a declared schema every
    /// column the table has and the row lacks is read back.
    async fn complete_partial_rows<'a>(
        &self,
        meta: &TableMeta,
        changes: Vec<&'a Change>,
    ) -> Result<Vec<Cow<'a, Change>>, SinkError> {
        // Only the partial changes are copied, to be completed.
        let mut changes: Vec<Cow<'a, Change>> = changes.into_iter().map(Cow::Borrowed).collect();
        let data_columns: Vec<&String> = meta
            .columns
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !self.cfg.is_bookkeeping(n))
            .collect();
        // Per partial change: the columns to read back.
        let partial: Vec<(usize, Vec<&String>)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let row = c.row.as_ref()?;
                let missing: Vec<&String> = match c.unchanged_columns() {
                    Some(unchanged) => data_columns
                        .iter()
                        .filter(|n| unchanged.contains(&n.as_str()))
                        .copied()
                        .collect(),
                    None => data_columns
                        .iter()
                        .filter(|n| !row.contains(n) && !c.key.contains(n))
                        .copied()
                        .collect(),
                };
                (!missing.is_empty()).then_some((i, missing))
            })
            .collect();
        if partial.is_empty() {
            return Ok(changes);
        }
        let partial_changes: Vec<&Change> = partial.iter().map(|&(i, _)| &*changes[i]).collect();
        // Decimals and floats come back as text: JSON numbers would pass
        // through a double and lose digits (or turn NaN into null).
        let select: Vec<String> = meta
            .columns
            .iter()
            .map(|(n, t)| {
                if t.contains("Decimal") || t.contains("Float") {
                    format!("toString({q}) AS {q}", q = quote(n))
                } else {
                    quote(n)
                }
            })
            .collect();
        let current = self.read_current(meta, &partial_changes, &select).await?;
        for (i, missing) in partial {
            let stored = current.get(&key_id(&changes[i]));
            if let Some(row) = changes[i].to_mut().row.as_mut() {
                for n in missing {
                    if !row.contains(n) {
                        let v = stored
                            .and_then(|s| s.get(n))
                            .unwrap_or(&serde_json::Value::Null);
                        row.set(
                            n.clone(),
                            from_stored(v, meta.column_type(n).unwrap_or("String")),
                        );
                    }
                }
            }
        }
        Ok(changes)
    }

    /// The current rows (`FINAL`, deleted ones included) of the keys of
    /// `changes`, columns `select`, by [`key_id`]. One query.
    async fn read_current(
        &self,
        meta: &TableMeta,
        changes: &[&Change],
        select: &[String],
    ) -> Result<HashMap<String, serde_json::Map<String, serde_json::Value>>, SinkError> {
        let Some(first) = changes.first() else {
            return Ok(HashMap::new());
        };
        let key_names: Vec<&str> = first.key.names().collect();
        let keys: Vec<String> = changes
            .iter()
            .map(|c| {
                let tuple: Vec<String> =
                    c.key.columns.iter().map(|(_, v)| sql_literal(v)).collect();
                format!("({})", tuple.join(", "))
            })
            .collect();
        let key_list: Vec<String> = key_names.iter().map(|k| quote(k)).collect();
        let sql = format!(
            "SELECT {} FROM {} FINAL WHERE ({}) IN ({}) FORMAT JSONEachRow",
            select.join(", "),
            meta.name,
            key_list.join(", "),
            keys.join(", ")
        );
        // 64-bit integers unquoted, so stored keys compare with ours.
        let body = self
            .client
            .execute(
                &sql,
                None,
                &[("output_format_json_quote_64bit_integers", "0".into())],
            )
            .await?;
        let mut current = HashMap::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                SinkError::Retryable(format!("unreadable row from {}: {e}", meta.name))
            })?;
            if let serde_json::Value::Object(row) = row {
                let id: Vec<String> = key_names
                    .iter()
                    .map(|k| row.get(*k).map(|v| v.to_string()).unwrap_or_default())
                    .collect();
                current.insert(id.join("\u{1}"), row);
            }
        }
        Ok(current)
    }

    /// Drops the changes that are not newer than what the table stores, on
    /// servers without `UInt128` (see [`encode_version`]).
    ///
    /// There the version column holds only the major part, and two changes
    /// of a key with the same commit LSN (one transaction updating a row
    /// twice, or snapshot rows, whose commit LSN is null) would tie: the
    /// merge keeps the row inserted last, so a replayed older change could
    /// win. Comparing the whole `(major, minor)` with the stored row first
    /// means every insert is strictly newer than the row it follows, and
    /// "inserted last" then agrees with the version order. One worker owns
    /// a key's partition, so no other writer interleaves. Only runs whose
    /// versions have a minor part pay for the query, and only for keys
    /// whose stored version this writer does not know ([`StoredVersions`]).
    async fn drop_stale<'a>(
        &mut self,
        meta: &TableMeta,
        run: Vec<&'a Change>,
    ) -> Result<Vec<&'a Change>, SinkError> {
        let minor = self.cfg.minor_version_column();
        if meta.column_type(&minor).is_none() || run.iter().all(|c| c.version.minor == 0) {
            return Ok(run);
        }
        let unknown: Vec<&Change> = run
            .iter()
            .copied()
            .filter(|c| {
                !c.key.columns.is_empty() && self.versions.get(&meta.name, &key_id(c)).is_none()
            })
            .collect();
        let select = [quote(&self.cfg.version_column), quote(&minor)];
        let select: Vec<String> = meta.key.iter().map(|k| quote(k)).chain(select).collect();
        let current = if unknown.is_empty() {
            HashMap::new()
        } else {
            self.read_current(meta, &unknown, &select).await?
        };
        let stored =
            |row: &serde_json::Map<String, serde_json::Value>| -> Result<Version, SinkError> {
                let part = |name: &str| {
                    row.get(name)
                        .and_then(serde_json::Value::as_u64)
                        .ok_or_else(|| {
                            SinkError::Retryable(format!(
                                "{}: stored `{name}` is not a UInt64",
                                meta.name
                            ))
                        })
                };
                Ok(Version::new(part(&self.cfg.version_column)?, part(&minor)?))
            };
        let mut fresh = Vec::with_capacity(run.len());
        for change in run {
            let id = key_id(change);
            let known = match self.versions.get(&meta.name, &id) {
                Some(known) => known,
                None => current.get(&id).map(stored).transpose()?,
            };
            self.versions.record(&meta.name, id, known);
            match known {
                Some(v) if change.version <= v => {}
                _ => fresh.push(change),
            }
        }
        Ok(fresh)
    }

    async fn insert(
        &self,
        meta: &TableMeta,
        changes: &[&Change],
        features: &ServerFeatures,
        token: &str,
    ) -> Result<(), SinkError> {
        if changes.is_empty() {
            return Ok(());
        }
        let (names, body) = rows::insert_body(&meta.columns, changes, &self.cfg, features)?;
        let sql = format!(
            "INSERT INTO {} ({}) FORMAT JSONEachRow",
            meta.name,
            names.join(", ")
        );
        let mut settings = vec![("input_format_skip_unknown_fields", "0".to_owned())];
        if features.dedup_token() {
            settings.push(("insert_deduplication_token", token.to_owned()));
        }
        self.client
            .execute(&sql, Some(body.into_bytes()), &settings)
            .await?;
        Ok(())
    }
}

/// Identifies a batch's records of one table for `insert_deduplication_token`:
/// a retried insert of the same records gets the same token.
fn dedup_token_base(records: &[&SinkRecord]) -> String {
    let mut ranges: HashMap<(&str, i32), (i64, i64)> = HashMap::new();
    for r in records {
        let e = ranges
            .entry((&r.position.topic, r.position.partition))
            .or_insert((r.position.offset, r.position.offset));
        e.0 = e.0.min(r.position.offset);
        e.1 = e.1.max(r.position.offset);
    }
    let mut parts: Vec<String> = ranges
        .into_iter()
        .map(|((t, p), (a, b))| format!("{t}:{p}:{a}-{b}"))
        .collect();
    parts.sort();
    parts.join(",")
}

/// A stored value (JSONEachRow output) back as a [`Value`] that writes the
/// same way it was read.
fn from_stored(json: &serde_json::Value, ch_type: &str) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) if ch_type.contains("Decimal") => Value::Decimal(n.to_string()),
        J::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0))),
        J::String(s) if ch_type.contains("Decimal") => Value::Decimal(s.clone()),
        // Calendar columns come back as the server's text of their value:
        // as text they would read as Postgres' `infinity`, which a calendar
        // column refuses.
        J::String(s) if ch_type.contains("DateTime") => {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .map_or_else(|_| Value::Text(s.clone()), Value::Timestamp)
        }
        J::String(s) if ch_type.contains("Date") => {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_or_else(|_| Value::Text(s.clone()), Value::Date)
        }
        J::String(s) => Value::Text(s.clone()),
        J::Array(items) => Value::Array(items.iter().map(|i| from_stored(i, ch_type)).collect()),
        J::Object(_) => Value::Text(json.to_string()),
    }
}

/// A change's key as [`ClickHouseSink::read_current`] identifies stored rows.
fn key_id(change: &Change) -> String {
    let mut id = String::with_capacity(16);
    for (n, (_, v)) in change.key.columns.iter().enumerate() {
        if n > 0 {
            id.push('\u{1}');
        }
        match v {
            // What `json_of` gives for an integer, without the round trip.
            Value::Int(i) => id.push_str(itoa::Buffer::new().format(*i)),
            other => id.push_str(&json_of(other).to_string()),
        }
    }
    id
}

/// A value as JSON (for key matching against JSONEachRow output).
fn json_of(v: &Value) -> serde_json::Value {
    let mut s = String::new();
    match rows::write_value(&mut s, v, "String") {
        Ok(()) => serde_json::from_str(&s).unwrap_or(serde_json::Value::Null),
        // Cannot happen for a String column; matches nothing stored.
        Err(_) => serde_json::Value::Null,
    }
}

/// A value as an SQL literal (for `IN` lists of keys).
fn sql_literal(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Decimal(d) => d.clone(),
        Value::Null => "NULL".into(),
        other => {
            let mut s = String::new();
            if rows::write_value(&mut s, other, "String").is_err() {
                return "NULL".into(); // cannot happen for a String column
            }
            let text: String = serde_json::from_str(&s).unwrap_or_default();
            literal(&text)
        }
    }
}

impl Sink for ClickHouseSink {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Durability, SinkError> {
        table::apply(self, batch, "clickhouse").await?;
        // A 200 from an INSERT means the parts are written.
        Ok(Durability::Durable)
    }

    async fn revoke(&mut self, _partitions: &[sinkfleet_core::PartitionId]) {
        // The keys of those partitions may be written by another worker next.
        self.versions.clear();
    }
}

/// The tables one source table is written to: its current-state table
/// (with its truncate floor: changes older than the table's last truncate
/// were removed at the source after them), its history table, or both.
pub struct PreparedTable {
    current: Option<(TableMeta, u128)>,
    history: Option<TableMeta>,
}

/// Every insert is durable on its own (no session); the session is the
/// server's features, detected on the first batch.
impl TableTarget for ClickHouseSink {
    type Target = (String, String);
    type Meta = PreparedTable;
    type Session = ServerFeatures;

    fn route(&self, table: &TableId) -> Result<(String, String), SinkError> {
        self.target(table)
    }

    fn label((database, table): &(String, String)) -> String {
        format!("{database}.{table}")
    }

    async fn begin(&mut self) -> Result<ServerFeatures, SinkError> {
        if let Some(features) = self.features {
            return Ok(features);
        }
        let f = self.client.features().await?;
        tracing::info!(version = ?f.version, is_deleted = f.is_deleted_engine(), dedup_token = f.dedup_token(),
            uint128 = f.uint128(), "ClickHouse server detected");
        self.features = Some(f);
        Ok(f)
    }

    async fn prepare(
        &mut self,
        features: &mut ServerFeatures,
        target: &(String, String),
        changes: &[&Change],
    ) -> Result<PreparedTable, SinkError> {
        // One target table per source table: the first change names it.
        let history = match changes.first() {
            Some(c) if self.cfg.history.covers(&c.table.schema, &c.table.table) => {
                let name = format!("{}{}", target.1, self.cfg.history.suffix);
                ident::check_ident(&name)?;
                Some((target.0.clone(), name))
            }
            _ => None,
        };
        let current = match history {
            Some(_) if !self.cfg.history.keep_current => None,
            _ => {
                let meta = self
                    .prepare_table(features, target, changes, TableKind::Current)
                    .await?;
                if !self.truncation_tables.contains(&target.0) {
                    let sql = truncate::create_sql(&target.0, features);
                    self.client.execute(&sql, None, &[]).await?;
                    self.truncation_tables.insert(target.0.clone());
                }
                let floor = truncate::floor(&self.client, &target.0, &target.1).await?;
                Some((meta, floor))
            }
        };
        let history = match history {
            Some(h) => Some(
                self.prepare_table(features, &h, changes, TableKind::History)
                    .await?,
            ),
            None => None,
        };
        Ok(PreparedTable { current, history })
    }

    async fn truncate(
        &mut self,
        features: &mut ServerFeatures,
        (database, name): &(String, String),
        table: &mut PreparedTable,
        truncate: &Change,
    ) -> Result<(), SinkError> {
        // History keeps the changes; a truncate is not one of a row.
        let Some((meta, floor)) = table.current.as_mut() else {
            return Ok(());
        };
        let applied = truncate::apply(
            &self.client,
            (database, name),
            meta,
            truncate.version,
            &self.cfg,
            features,
        )
        .await?;
        *floor = (*floor).max(applied);
        // Its tombstones replaced stored versions.
        self.versions.clear();
        Ok(())
    }

    async fn apply_run(
        &mut self,
        features: &mut ServerFeatures,
        table: &mut PreparedTable,
        records: &[&SinkRecord],
        index: usize,
        mut run: Vec<&Change>,
    ) -> Result<u64, SinkError> {
        let token_base = dedup_token_base(records);
        let mut inserted = 0u64;
        if let Some(meta) = &table.history {
            // Every change, as it came: the (key, version) order key makes
            // replays collapse.
            self.insert(
                meta,
                &run,
                features,
                &format!("{token_base}-{index}-history"),
            )
            .await?;
            inserted = run.len() as u64;
        }
        let Some((meta, floor)) = &table.current else {
            return Ok(inserted);
        };
        // Older than the last truncate: the row was removed at the source
        // after this change (strictly older, because on servers with a
        // UInt64 version a change in the truncate's own transaction shares
        // its version and may follow it).
        run.retain(|c| version_key(c.version, features) >= *floor);
        let run = self.drop_stale(meta, run).await?;
        inserted = 0;
        for (round, changes) in collapse(run).into_iter().enumerate() {
            let changes = self.complete_partial_rows(meta, changes).await?;
            let changes: Vec<&Change> = changes.iter().map(|c| &**c).collect();
            inserted += changes.len() as u64;
            let token = format!("{token_base}-{index}-{round}");
            self.insert(meta, &changes, features, &token).await?;
            if meta.column_type(&self.cfg.minor_version_column()).is_some() {
                for c in &changes {
                    self.versions.record(&meta.name, key_id(c), Some(c.version));
                }
            }
        }
        Ok(inserted)
    }

    async fn commit(&mut self, _: ServerFeatures) -> Result<(), SinkError> {
        Ok(())
    }

    fn remember(&mut self, target: (String, String), table: PreparedTable) {
        if let Some(history) = table.history {
            let name = format!("{}{}", target.1, self.cfg.history.suffix);
            self.tables.insert((target.0.clone(), name), history);
        }
        if let Some((meta, _)) = table.current {
            self.tables.insert(target, meta);
        }
    }

    fn forget(&mut self) {
        self.tables.clear();
        // A failed write may have inserted rows without saying so.
        self.versions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_calendar_values_come_back_as_what_writes_them_again() {
        let t = |text: &str, ty: &str| {
            let mut out = String::new();
            rows::write_value(&mut out, &from_stored(&serde_json::json!(text), ty), ty)
                .map(|()| out)
        };
        let at = "Nullable(DateTime64(6, 'UTC'))";
        assert_eq!(
            t("2023-11-14 22:51:08.006804", at).as_deref(),
            Ok("\"2023-11-14 22:51:08.006804\"")
        );
        assert_eq!(
            t("2022-01-08", "Nullable(Date)").as_deref(),
            Ok("\"2022-01-08\"")
        );
        assert_eq!(
            t("2022-01-08 10:00:00", "DateTime").as_deref(),
            Ok("\"2022-01-08 10:00:00\"")
        );
    }
    use sinkfleet_core::{Op, Position, Row, TableId};
    use std::sync::Arc;

    fn record(partition: i32, offset: i64) -> SinkRecord {
        SinkRecord {
            position: Position {
                topic: Arc::from("t"),
                partition,
                offset,
            },
            change: Change {
                table: TableId::new("s", "t"),
                op: Op::Create,
                key: Row::default(),
                row: None,
                version: Version::ZERO,
                schema: None,
                unchanged: Vec::new(),
                source_ts_ms: None,
                transaction: None,
            },
        }
    }

    #[test]
    fn dedup_token_depends_only_on_the_offsets_a_batch_covers() {
        let (a, b, c) = (record(0, 7), record(0, 9), record(1, 3));
        let token = dedup_token_base(&[&a, &b, &c]);
        assert_eq!(token, "t:0:7-9,t:1:3-3");
        // A retry of the same records, in any order, gets the same token.
        assert_eq!(dedup_token_base(&[&c, &b, &a]), token);
        assert_ne!(dedup_token_base(&[&a, &c]), token);
    }

    #[test]
    fn versions_per_server() {
        let v = Version::new(5, 7);
        assert_eq!(
            encode_version(v, &ServerFeatures { version: (18, 16) }),
            "5"
        );
        assert_eq!(
            encode_version(v, &ServerFeatures { version: (24, 1) }),
            ((5u128 << 64) | 7).to_string()
        );
    }
}
