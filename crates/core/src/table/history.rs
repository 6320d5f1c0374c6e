//! History tables: every change of a table kept as its own row, unique on
//! `(key, version)`, beside (or instead of) the current-state table. The
//! setting is shared by the sinks that keep history (Postgres,
//! ClickHouse); each lays the table out in its own types.

use serde::Deserialize;

/// The op column of a history table (`c`, `r`, `u`, `d`).
pub const OP_COLUMN: &str = "__sinkfleet_op";
/// The source commit time column of a history table.
pub const SOURCE_TS_COLUMN: &str = "__sinkfleet_source_ts";
/// The unchanged-columns column of a history table: columns the event left
/// out as unchanged (TOAST), NULL in the row.
pub const UNCHANGED_COLUMN: &str = "__sinkfleet_unchanged";

/// `history:`: tables whose every change is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Source tables (`schema.table`, or `*` for every table) kept as
    /// history.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Keep the current-state table beside the history table.
    #[serde(default = "yes")]
    pub keep_current: bool,
    /// Appended to the target table's name to name its history table.
    #[serde(default = "suffix")]
    pub suffix: String,
}

fn yes() -> bool {
    true
}

fn suffix() -> String {
    "__history".into()
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            tables: Vec::new(),
            keep_current: true,
            suffix: suffix(),
        }
    }
}

impl HistoryConfig {
    /// True if source table `schema.table` is kept as history.
    pub fn covers(&self, schema: &str, table: &str) -> bool {
        self.tables.iter().any(|t| {
            t == "*"
                || t.split_once('.')
                    .is_some_and(|(s, n)| s == schema && n == table)
        })
    }

    /// What deserialization cannot check: `(field path under history,
    /// problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (i, t) in self.tables.iter().enumerate() {
            if t != "*" && t.split_once('.').is_none() {
                problems.push((
                    format!("history.tables.{i}"),
                    "expected `schema.table` or `*`".into(),
                ));
            }
        }
        if self.suffix.is_empty() {
            problems.push((
                "history.suffix".into(),
                "must not be empty (the history table would be the current table)".into(),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_matched_by_schema_and_name_or_star() {
        let mut h = HistoryConfig {
            tables: vec!["public.orders".into()],
            ..HistoryConfig::default()
        };
        assert!(h.covers("public", "orders"));
        assert!(!h.covers("public", "order"));
        assert!(!h.covers("other", "orders"));
        h.tables = vec!["*".into()];
        assert!(h.covers("any", "table"));
        h.tables = vec!["orders".into()];
        h.suffix.clear();
        assert_eq!(h.validate().len(), 2);
    }
}
