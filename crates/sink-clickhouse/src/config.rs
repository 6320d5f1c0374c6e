//! Configuration of the ClickHouse sink (`sink.clickhouse` in the YAML file).

use serde::Deserialize;
use sinkfleet_core::IdentifierPolicy;
pub use sinkfleet_core::table::history::HistoryConfig;
use sinkfleet_core::table::history::{OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN};
use std::collections::BTreeMap;

/// `sink.clickhouse` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSinkConfig {
    /// HTTP interface, e.g. `http://clickhouse:8123`.
    pub url: String,
    /// User (`X-ClickHouse-User`); default `default`.
    #[serde(default = "defaults::user")]
    pub user: String,
    /// Password (`X-ClickHouse-Key`).
    #[serde(default)]
    pub password: String,
    /// Database for tables not listed in `tables`; default: the source schema.
    #[serde(default)]
    pub database: Option<String>,
    /// Explicit mapping `source_schema.source_table` → `database.table`.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// Create a missing table from the event schema.
    #[serde(default = "defaults::yes")]
    pub create_tables: bool,
    /// Add a column for a new field.
    #[serde(default = "defaults::yes")]
    pub evolve_schema: bool,
    /// Version column (`ReplacingMergeTree` version).
    #[serde(default = "defaults::version_column")]
    pub version_column: String,
    /// Deleted flag column (UInt8).
    #[serde(default = "defaults::deleted_column")]
    pub deleted_column: String,
    /// Gzip request bodies.
    #[serde(default = "defaults::yes")]
    pub compress: bool,
    /// Request timeout (milliseconds).
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// PEM file of the CA(s) an `https://` server's certificate must chain
    /// to, instead of the system's roots (a private CA).
    #[serde(default)]
    pub ca_cert: Option<String>,
    /// Which database, table and column names from events are accepted
    /// (`strict` by default); records with other names are dead-lettered.
    #[serde(default)]
    pub identifiers: IdentifierPolicy,
    /// Tables kept as history (every change a row).
    #[serde(default)]
    pub history: HistoryConfig,
    /// On servers without `UInt128`: how many keys' stored versions each
    /// writer remembers, so the stale check reads only keys it has not
    /// seen (0: read every batch's keys).
    #[serde(default = "defaults::version_cache_keys")]
    pub version_cache_keys: usize,
}

impl ClickHouseSinkConfig {
    /// A config with defaults for everything but the URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        ClickHouseSinkConfig {
            url: url.into(),
            user: defaults::user(),
            password: String::new(),
            database: None,
            tables: BTreeMap::new(),
            create_tables: true,
            evolve_schema: true,
            version_column: defaults::version_column(),
            deleted_column: defaults::deleted_column(),
            compress: true,
            timeout_ms: defaults::timeout_ms(),
            ca_cert: None,
            identifiers: IdentifierPolicy::default(),
            history: HistoryConfig::default(),
            version_cache_keys: defaults::version_cache_keys(),
        }
    }

    /// The column holding a version's minor part (the change LSN of a CDC
    /// event) on servers without `UInt128`, where the version column holds
    /// only the major part. Named after the version column.
    pub fn minor_version_column(&self) -> String {
        format!("{}_minor", self.version_column)
    }

    /// True for the sink's own columns, which no source column may take.
    pub fn is_bookkeeping(&self, column: &str) -> bool {
        column == self.version_column
            || column == self.deleted_column
            || column == self.minor_version_column()
            || [OP_COLUMN, SOURCE_TS_COLUMN, UNCHANGED_COLUMN].contains(&column)
    }

    /// Checks what deserialization cannot: returns `(field path, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = self.history.validate();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            problems.push(("url".into(), "expected an http:// or https:// URL".into()));
        }
        for (field, name) in [
            ("version_column", &self.version_column),
            ("deleted_column", &self.deleted_column),
        ] {
            if crate::ident::check_ident(name).is_err() {
                problems.push((
                    field.into(),
                    format!("`{name}` is not a usable column name"),
                ));
            }
        }
        for (source, target) in &self.tables {
            if target.split_once('.').is_none() {
                problems.push((
                    format!("tables.{source}"),
                    "expected `database.table`".into(),
                ));
            }
        }
        problems
    }
}

mod defaults {
    pub fn user() -> String {
        "default".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn version_column() -> String {
        "__sinkfleet_version".into()
    }
    pub fn deleted_column() -> String {
        "__sinkfleet_deleted".into()
    }
    pub fn version_cache_keys() -> usize {
        100_000
    }
    pub fn timeout_ms() -> u64 {
        30_000
    }
}
