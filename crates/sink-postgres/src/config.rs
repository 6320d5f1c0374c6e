//! Configuration of the Postgres sink (`sink.postgres` in the YAML file).

use serde::Deserialize;
use sinkfleet_core::IdentifierPolicy;
pub use sinkfleet_core::table::history::HistoryConfig;
use std::collections::BTreeMap;

/// How deletes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The row stays with the deleted flag set and the delete's version.
    #[default]
    Soft,
    /// The row is removed; `(key, version)` is kept in a tombstone table for
    /// `tombstone_retention_secs` so a late older insert cannot resurrect it.
    Hard,
}

/// How a batch reaches Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WritePath {
    /// One `INSERT .. SELECT FROM unnest($1::text[], ..) ON CONFLICT ..`
    /// statement per column set, every value as text.
    Unnest,
    /// `COPY … (FORMAT binary)` into a temporary staging table typed per
    /// column, then the same merge statement (chosen by measurement, see
    /// docs/performance.md).
    #[default]
    Copy,
}

/// How batches of changes are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// Batches of changes as they come, per partition: a reader of the
    /// target may see part of a source transaction.
    #[default]
    PerTable,
    /// Whole source transactions, in commit order, one target transaction
    /// each (or several whole ones): needs the transaction topic, offsets
    /// in the target and one active worker per group (see docs/transactions.md).
    Transactional,
}

/// Where a partition's next offset is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OffsetStorage {
    /// Only in Kafka (the group's committed offsets): at least once, and
    /// versions make replays harmless.
    #[default]
    Kafka,
    /// Also in `<meta_schema>.offsets`, in the same transaction as the
    /// rows, fenced per partition: exactly once, even without versions.
    Target,
}

/// Connections of a sink whose `pool_size` is unset.
pub const DEFAULT_POOL_SIZE: u32 = 2;

/// `sink.postgres` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// Connection URL, e.g. `postgres://user:pass@host:5432/db`.
    pub url: String,
    /// Connections in the pool, shared by the process's writers (a batch
    /// uses one connection).
    /// Unset: one connection per writer (the binary sets it to
    /// `worker.writers`), or [`DEFAULT_POOL_SIZE`] for a sink used alone.
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Schema for tables not listed in `tables`; default: the source schema.
    #[serde(default)]
    pub target_schema: Option<String>,
    /// Explicit mapping `source_schema.source_table` → `target_schema.target_table`.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// Create a missing target table from the event's schema.
    #[serde(default = "defaults::yes")]
    pub create_tables: bool,
    /// Add a nullable column for a new field; widen types safely.
    #[serde(default = "defaults::yes")]
    pub evolve_schema: bool,
    /// Soft or hard deletes.
    #[serde(default)]
    pub delete_mode: DeleteMode,
    /// Column holding each row's version (`numeric(39,0)`).
    #[serde(default = "defaults::version_column")]
    pub version_column: String,
    /// Column holding the soft-delete flag.
    #[serde(default = "defaults::deleted_column")]
    pub deleted_column: String,
    /// Schema for sinkfleet's bookkeeping (tombstones, truncations).
    #[serde(default = "defaults::meta_schema")]
    pub meta_schema: String,
    /// How long hard-delete tombstones are kept (seconds). A replayed insert
    /// older than a delete is refused only within this window.
    #[serde(default = "defaults::tombstone_retention_secs")]
    pub tombstone_retention_secs: u64,
    /// Write path.
    #[serde(default)]
    pub write_path: WritePath,
    /// `statement_timeout` of the sink's sessions (milliseconds).
    #[serde(default = "defaults::statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// How long to wait for a connection (milliseconds).
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Which schema, table and column names from events are accepted
    /// (`strict` by default); records with other names are dead-lettered.
    #[serde(default)]
    pub identifiers: IdentifierPolicy,
    /// Where partitions' offsets are kept (see [`OffsetStorage`]).
    #[serde(default)]
    pub offset_storage: OffsetStorage,
    /// Tables kept as history (every change a row).
    #[serde(default)]
    pub history: HistoryConfig,
    /// Per table (default) or whole source transactions.
    #[serde(default)]
    pub apply: ApplyMode,
    /// With `apply: transactional`: the topic of the publisher's BEGIN and
    /// END records, `<topic.prefix>.transaction`.
    #[serde(default)]
    pub transaction_topic: Option<String>,
    /// With `apply: transactional`: how long a transaction's END waits for
    /// its events before the transaction is applied as far as it arrived.
    #[serde(default = "defaults::transaction_max_wait_ms")]
    pub transaction_max_wait_ms: u64,
}

impl PostgresSinkConfig {
    /// A config with defaults for everything but the URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        PostgresSinkConfig {
            url: url.into(),
            pool_size: None,
            target_schema: None,
            tables: BTreeMap::new(),
            create_tables: true,
            evolve_schema: true,
            delete_mode: DeleteMode::Soft,
            version_column: defaults::version_column(),
            deleted_column: defaults::deleted_column(),
            meta_schema: defaults::meta_schema(),
            tombstone_retention_secs: defaults::tombstone_retention_secs(),
            write_path: WritePath::Copy,
            statement_timeout_ms: defaults::statement_timeout_ms(),
            connect_timeout_ms: defaults::connect_timeout_ms(),
            identifiers: IdentifierPolicy::default(),
            offset_storage: OffsetStorage::Kafka,
            history: HistoryConfig::default(),
            apply: ApplyMode::PerTable,
            transaction_topic: None,
            transaction_max_wait_ms: defaults::transaction_max_wait_ms(),
        }
    }

    /// Checks what deserialization cannot: returns `(field path, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            problems.push((
                "url".into(),
                "expected a postgres:// or postgresql:// URL".into(),
            ));
        } else if let Err(e) = self.url.parse::<sqlx::postgres::PgConnectOptions>() {
            problems.push(("url".into(), e.to_string()));
        }
        if self.pool_size == Some(0) {
            problems.push(("pool_size".into(), "must be at least 1".into()));
        }
        for (field, name) in [
            ("version_column", &self.version_column),
            ("deleted_column", &self.deleted_column),
            ("meta_schema", &self.meta_schema),
        ] {
            if let Err(e) = crate::ident::Ident::new(name) {
                problems.push((field.into(), e.to_string()));
            }
        }
        problems.extend(self.history.validate());
        if self.apply == ApplyMode::Transactional {
            if self.transaction_topic.is_none() {
                problems.push((
                    "transaction_topic".into(),
                    "apply: transactional needs the transaction topic (`<topic.prefix>.transaction`)"
                        .into(),
                ));
            }
            if self.offset_storage != OffsetStorage::Target {
                problems.push((
                    "offset_storage".into(),
                    "apply: transactional needs `target`: the data and transaction topics must resume at one consistent point".into(),
                ));
            }
        }
        if let Some(schema) = &self.target_schema
            && let Err(e) = crate::ident::Ident::new(schema)
        {
            problems.push(("target_schema".into(), e.to_string()));
        }
        for (source, target) in &self.tables {
            if crate::ident::parse_qualified(target).is_err() {
                problems.push((
                    format!("tables.{source}"),
                    "expected `schema.table` with valid identifiers".into(),
                ));
            }
        }
        problems
    }
}

mod defaults {
    pub fn yes() -> bool {
        true
    }
    pub fn version_column() -> String {
        "__sinkfleet_version".into()
    }
    pub fn deleted_column() -> String {
        "__sinkfleet_deleted".into()
    }
    pub fn transaction_max_wait_ms() -> u64 {
        60_000
    }
    pub fn meta_schema() -> String {
        "sinkfleet".into()
    }
    pub fn tombstone_retention_secs() -> u64 {
        7 * 24 * 3600
    }
    pub fn statement_timeout_ms() -> u64 {
        30_000
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
}
