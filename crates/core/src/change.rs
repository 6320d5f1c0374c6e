//! The change model: what one CDC event means, independent of its wire format.

use crate::value::Value;
use crate::version::Version;
use std::fmt;
use std::sync::Arc;

/// The source table a change belongs to (`source.schema`, `source.table`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// Source schema, e.g. `public`.
    pub schema: String,
    /// Source table name.
    pub table: String,
}

impl TableId {
    /// Builds a table id.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        TableId {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// The operation of a change event (Debezium's `op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `c`: a row was inserted.
    Create,
    /// `r`: a row read by the initial snapshot.
    Read,
    /// `u`: a row was updated.
    Update,
    /// `d`: a row was deleted.
    Delete,
    /// `t`: the table was truncated (no key, no row).
    Truncate,
}

impl Op {
    /// True for operations that carry a row image to upsert (`c`, `r`, `u`).
    pub fn is_upsert(self) -> bool {
        matches!(self, Op::Create | Op::Read | Op::Update)
    }

    /// Debezium's one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Read => "r",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
        }
    }
}

/// An ordered list of `(column, value)` pairs.
///
/// A column that is *absent* was not part of this change (for example an
/// unchanged TOASTed column that Debezium replaced by its placeholder): the
/// target keeps what it stores. A column present with [`Value::Null`] is a
/// real NULL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// The columns in source order. Names are shared (`Arc`) between the
    /// rows that repeat them: the decoder hands every row of a table the
    /// same names, so a row costs no allocation per column name.
    pub columns: Vec<(Arc<str>, Value)>,
}

impl Row {
    /// Value of a column, if present in this change.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.columns
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|(_, v)| v)
    }

    /// Value of a column, looked up first at position `hint`.
    ///
    /// Sinks walk a table's columns in order, and rows mostly carry them in
    /// that same order, so this finds a column in one comparison where
    /// [`Row::get`] scans: a row of `n` columns costs `n`, not `n²/2`.
    pub fn get_at(&self, name: &str, hint: usize) -> Option<&Value> {
        match self.columns.get(hint) {
            Some((n, v)) if **n == *name => Some(v),
            _ => self.get(name),
        }
    }

    /// True if the column is part of this change.
    pub fn contains(&self, name: &str) -> bool {
        self.columns.iter().any(|(n, _)| **n == *name)
    }

    /// Adds (or replaces) a column value.
    pub fn set(&mut self, name: impl Into<Arc<str>>, value: Value) {
        let name = name.into();
        match self.columns.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.columns.push((name, value)),
        }
    }

    /// Column names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _)| &**n)
    }

    /// Heap bytes of the row: its column slots and values. Names are not
    /// counted: rows share them, as changes share their schema.
    pub fn heap_bytes(&self) -> usize {
        self.columns
            .iter()
            .map(|(_, value)| std::mem::size_of::<(Arc<str>, Value)>() + value.heap_bytes())
            .sum()
    }
}

/// A column type as declared by the event's schema (Debezium/Kafka Connect
/// types with their logical names resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// int8/int16 (smallint).
    Int16,
    /// int32.
    Int32,
    /// int64.
    Int64,
    /// float32.
    Float32,
    /// float64.
    Float64,
    /// boolean.
    Bool,
    /// Plain string (also enums, XML, intervals as strings).
    Text,
    /// Raw bytes.
    Bytes,
    /// `org.apache.kafka.connect.data.Decimal` with fixed scale.
    Decimal {
        /// `connect.decimal.precision` when the connector sent it.
        precision: Option<u32>,
        /// Digits after the decimal point.
        scale: u32,
    },
    /// `io.debezium.data.VariableScaleDecimal` (numeric without precision).
    VariableDecimal,
    /// `io.debezium.time.Date`.
    Date,
    /// `io.debezium.time.Time`/`MicroTime`/`NanoTime`.
    Time,
    /// `io.debezium.time.Timestamp`/`MicroTimestamp`/`NanoTimestamp`.
    Timestamp,
    /// `io.debezium.time.ZonedTimestamp`.
    TimestampTz,
    /// `io.debezium.time.ZonedTime`.
    TimeTz,
    /// `io.debezium.data.Uuid`.
    Uuid,
    /// `io.debezium.data.Json`.
    Json,
    /// `io.debezium.data.Enum` (stored as text).
    Enum,
    /// `io.debezium.time.Interval`: ISO 8601 duration text (`P1Y2M3DT4H5M6.78S`).
    Interval,
    /// `io.debezium.data.Bits`: a bit string of `length` bits, as its text
    /// (`0101`).
    Bits {
        /// The column's length in bits.
        length: u32,
    },
    /// An array of the element type.
    Array(Box<ColumnType>),
    /// A schema-less event: the type is inferred from the JSON value.
    Inferred,
}

impl ColumnType {
    /// Whether a target type for this column depends on the values too
    /// (schema-less columns, and arrays of them), not only on the schema.
    pub fn depends_on_values(&self) -> bool {
        match self {
            ColumnType::Inferred => true,
            ColumnType::Array(item) => item.depends_on_values(),
            _ => false,
        }
    }
}

/// What the changes of a batch say about one column: per change, its
/// declared schema entry (if any) and its value (if present), for a sink
/// that picks a target type wide enough for all of them.
///
/// A change with the same declared schema (the same `Arc`: the decoder
/// shares one per distinct schema) as the previous one says nothing new
/// when the type depends on the schema alone, so it is skipped: a batch of
/// thousands of changes costs one look per schema, not one per change.
pub fn column_evidence<'a>(
    changes: &'a [&'a Change],
    column: &'a str,
) -> impl Iterator<Item = (Option<&'a ColumnSchema>, Option<&'a Value>)> + 'a {
    let mut previous: Option<&'a Arc<TableSchema>> = None;
    changes.iter().filter_map(move |change| {
        let declared = change.schema.as_ref().and_then(|s| s.column(column));
        if let (Some(schema), Some(prev), Some(col)) = (&change.schema, previous, declared)
            && Arc::ptr_eq(schema, prev)
            && !col.ty.depends_on_values()
        {
            return None;
        }
        previous = change.schema.as_ref();
        let sample = change
            .row
            .as_ref()
            .and_then(|r| r.get(column))
            .or_else(|| change.key.get(column));
        Some((declared, sample))
    })
}

/// One column of a table schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: ColumnType,
    /// Whether the column may be NULL.
    pub optional: bool,
}

/// The row shape declared by a schema-carrying event (`schema.fields[after]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSchema {
    /// Columns in source order.
    pub columns: Vec<ColumnSchema>,
}

impl TableSchema {
    /// Looks a column up by name.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One decoded change event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The source table.
    pub table: TableId,
    /// What happened.
    pub op: Op,
    /// Primary key columns and values (empty for truncate).
    pub key: Row,
    /// The row image to upsert (`after`), present for `c`, `r`, `u`.
    pub row: Option<Row>,
    /// The change's version; newer replaces older.
    pub version: Version,
    /// Declared schema of the row, when the event carried one.
    pub schema: Option<Arc<TableSchema>>,
    /// Columns the event marked unchanged with Debezium's TOAST placeholder
    /// (left out of `row`), known with or without a declared schema.
    pub unchanged: Vec<String>,
    /// When the change was made in the source database (`source.ts_ms`,
    /// else the event's `ts_ms`), ms since the epoch. Part of the event, so
    /// a replay sees the same value (unlike the time it is consumed).
    pub source_ts_ms: Option<i64>,
    /// The id of the source transaction that made the change, when the
    /// event carries transaction metadata (Debezium's `transaction.id`).
    pub transaction: Option<Arc<str>>,
}

impl Change {
    /// Bytes this change holds in memory (itself, its key, row, names), so
    /// budgets can bound what the worker holds, not just the raw records.
    /// An estimate: payload sizes, not allocator overhead; the shared
    /// schema is not counted (one per schema, not per change).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Change>()
            + self.table.schema.len()
            + self.table.table.len()
            + self.key.heap_bytes()
            + self.row.as_ref().map_or(0, Row::heap_bytes)
            + self
                .unchanged
                .iter()
                .map(|n| std::mem::size_of::<String>() + n.len())
                .sum::<usize>()
    }

    /// Canonical text identifying `(table, key)`: two changes of the same
    /// row have the same identity, different rows different identities.
    pub fn identity(&self) -> String {
        let mut out = String::with_capacity(32);
        out.push_str(&self.table.schema);
        out.push('\u{1}');
        out.push_str(&self.table.table);
        for (name, value) in &self.key.columns {
            out.push('\u{1}');
            out.push_str(name);
            out.push('=');
            value.write_canonical(&mut out);
        }
        out
    }

    /// Columns the event left out of its row image as unchanged: those its
    /// declared schema has but its row and key lack (the decoder drops
    /// Debezium's unchanged-TOAST placeholder). Empty for a whole row, a
    /// delete or a truncate. `None` when the event declared no schema: then
    /// a column that is absent cannot be told from one that is unchanged.
    pub fn unchanged_columns(&self) -> Option<Vec<&str>> {
        let Some(row) = &self.row else {
            return Some(Vec::new());
        };
        let declared = self.schema.as_ref()?;
        if row.columns.len() >= declared.columns.len() {
            return Some(Vec::new());
        }
        Some(
            declared
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| !row.contains(n) && !self.key.contains(n))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;

    fn change(schema: Option<Arc<TableSchema>>, amount: Value) -> Change {
        let mut row = Row::default();
        row.set("amount", amount);
        Change {
            table: TableId::new("s", "t"),
            op: Op::Create,
            key: Row::default(),
            row: Some(row),
            version: Version::ZERO,
            schema,
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        }
    }

    #[test]
    fn get_at_finds_a_column_at_its_hint_or_anywhere() {
        let mut row = Row::default();
        row.set("id", Value::Int(1));
        row.set("name", Value::Text("a".into()));
        assert_eq!(row.get_at("name", 1), Some(&Value::Text("a".into())));
        // A wrong or out-of-range hint still finds the column by name.
        assert_eq!(row.get_at("name", 0), Some(&Value::Text("a".into())));
        assert_eq!(row.get_at("id", 7), Some(&Value::Int(1)));
        assert_eq!(row.get_at("missing", 0), None);
    }

    #[test]
    fn evidence_is_one_per_schema_unless_values_matter() {
        let schema = |ty| {
            Arc::new(TableSchema {
                columns: vec![ColumnSchema {
                    name: "amount".into(),
                    ty,
                    optional: true,
                }],
            })
        };
        let narrow = schema(ColumnType::Int32);
        let wide = schema(ColumnType::Int64);
        let changes = [
            change(Some(Arc::clone(&narrow)), Value::Int(1)),
            change(Some(Arc::clone(&narrow)), Value::Int(2)),
            change(Some(Arc::clone(&wide)), Value::Int(3)),
            change(None, Value::Int(4)),
            change(None, Value::Text("x".into())),
        ];
        let changes: Vec<&Change> = changes.iter().collect();
        let seen: Vec<_> = column_evidence(&changes, "amount")
            .map(|(declared, sample)| (declared.map(|c| c.ty.clone()), sample.cloned()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (Some(ColumnType::Int32), Some(Value::Int(1))),
                (Some(ColumnType::Int64), Some(Value::Int(3))),
                (None, Some(Value::Int(4))),
                (None, Some(Value::Text("x".into()))),
            ]
        );
    }
}
