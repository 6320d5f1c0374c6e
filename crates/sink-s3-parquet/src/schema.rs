//! Parquet (Arrow) schemas of the files: the event's columns with proper
//! logical types, plus the bookkeeping columns readers deduplicate by.

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sinkfleet_core::table::plan::wanted_columns;
use sinkfleet_core::{Change, ColumnType, TableSchema};
use std::sync::Arc;

/// Debezium's operation code: `c`, `r`, `u`, `d`, `t`.
pub const OP: &str = "__op";
/// True for deletes and truncates: the key has no row at this version.
pub const DELETED: &str = "__deleted";
/// Version, first half: the commit LSN (order by both, descending, to find
/// the newest change of a key).
pub const COMMIT_LSN: &str = "__commit_lsn";
/// Version, second half: the change LSN within the transaction.
pub const CHANGE_LSN: &str = "__change_lsn";
/// When the change happened at the source.
pub const SOURCE_TS: &str = "__source_ts";
/// Kafka topic the change was read from.
pub const TOPIC: &str = "__topic";
/// Kafka partition.
pub const PARTITION: &str = "__partition";
/// Kafka offset: with topic and partition, the record's unique identity.
pub const OFFSET: &str = "__offset";
/// Columns this change left out (unchanged TOASTed values): readers take
/// them from the key's previous version. Null for complete rows.
pub const UNCHANGED: &str = "__unchanged";

/// Every bookkeeping column, in file order after the data columns.
pub const BOOKKEEPING: [&str; 9] = [
    OP, DELETED, COMMIT_LSN, CHANGE_LSN, SOURCE_TS, TOPIC, PARTITION, OFFSET, UNCHANGED,
];

/// The Arrow type a declared column is stored as.
///
/// Exact where Parquet has the logical type (decimal with its precision
/// and scale, date, time and timestamps in microseconds, lists); text where
/// it has none that every reader agrees on (UUID, JSON, zoned time,
/// variable-scale decimals, schema-less values).
pub fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Int16 => DataType::Int16,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Bytes => DataType::Binary,
        ColumnType::Decimal { precision, scale } => {
            // Debezium omits the precision for some columns: 38 digits then.
            // Postgres allows a scale above the precision (numeric(5,6)
            // holds 0.012345): such values need `scale` digits. Past 38
            // digits Decimal256 (76), past that the exact text.
            let p = precision.unwrap_or(38).max(*scale).max(1);
            match (u8::try_from(p), i8::try_from(*scale)) {
                (Ok(p), Ok(s)) if p <= 38 => DataType::Decimal128(p, s),
                (Ok(p), Ok(s)) if p <= 76 => DataType::Decimal256(p, s),
                _ => DataType::Utf8,
            }
        }
        ColumnType::Date => DataType::Date32,
        ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Array(inner) => {
            DataType::List(Arc::new(Field::new("item", arrow_type(inner), true)))
        }
        ColumnType::Text
        | ColumnType::VariableDecimal
        | ColumnType::TimeTz
        | ColumnType::Uuid
        | ColumnType::Json
        | ColumnType::Enum
        | ColumnType::Interval
        | ColumnType::Bits { .. }
        | ColumnType::Inferred => DataType::Utf8,
    }
}

/// The data columns of a change, by the column plan's rule
/// ([`wanted_columns`]): key columns, then declared ones in schema order
/// (with their logical types), then any row column the schema does not
/// declare (as text: a schema-less value's text is exact).
pub fn data_fields(change: &Change, declared: Option<&TableSchema>) -> Vec<Field> {
    let key: Vec<String> = change.key.names().map(str::to_owned).collect();
    wanted_columns(&key, &[change])
        .iter()
        .map(|name| {
            let ty = declared
                .and_then(|s| s.column(name))
                .map_or(DataType::Utf8, |c| arrow_type(&c.ty));
            Field::new(name, ty, true)
        })
        .collect()
}

/// The full file schema: data columns, then the bookkeeping columns.
/// Every column is nullable: deletes carry only the key, truncates nothing.
pub fn file_schema(data: &[Field]) -> Result<SchemaRef, String> {
    if let Some(clash) = data
        .iter()
        .find(|f| BOOKKEEPING.contains(&f.name().as_str()))
    {
        return Err(format!(
            "source column `{}` collides with a sinkfleet bookkeeping column",
            clash.name()
        ));
    }
    let mut fields = data.to_vec();
    fields.extend([
        Field::new(OP, DataType::Utf8, false),
        Field::new(DELETED, DataType::Boolean, false),
        Field::new(COMMIT_LSN, DataType::UInt64, false),
        Field::new(CHANGE_LSN, DataType::UInt64, false),
        Field::new(
            SOURCE_TS,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new(TOPIC, DataType::Utf8, false),
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(OFFSET, DataType::Int64, false),
        Field::new(
            UNCHANGED,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]);
    Ok(Arc::new(Schema::new(fields)))
}

/// Remembers the data fields of recently seen declared schemas: the
/// decoder shares one `Arc<TableSchema>` per distinct schema, so most
/// records are a pointer comparison away from their fields. A schema-less
/// change's fields follow from its key's and row's column names alone,
/// so those are remembered by the names.
#[derive(Default)]
pub struct FieldCache {
    entries: Vec<(Arc<TableSchema>, Arc<Vec<Field>>)>,
    schemaless: Vec<Shape>,
}

/// A schema-less change's column names and the fields they give.
struct Shape {
    key_columns: usize,
    /// Key column names, then row column names.
    names: Vec<Arc<str>>,
    fields: Arc<Vec<Field>>,
}

impl FieldCache {
    const CAPACITY: usize = 64;

    /// The data fields of `change`.
    pub fn fields(&mut self, change: &Change) -> Arc<Vec<Field>> {
        let Some(schema) = &change.schema else {
            return self.schemaless_fields(change);
        };
        if let Some((_, fields)) = self.entries.iter().find(|(s, _)| Arc::ptr_eq(s, schema)) {
            let fields = Arc::clone(fields);
            // Key columns outside the declared schema are rare; check cheaply.
            if change
                .key
                .names()
                .all(|k| fields.iter().any(|f| f.name() == k))
            {
                return fields;
            }
        }
        let fields = Arc::new(data_fields(change, Some(schema)));
        if self.entries.len() >= Self::CAPACITY {
            self.entries.remove(0);
        }
        self.entries.push((Arc::clone(schema), Arc::clone(&fields)));
        fields
    }

    /// The data fields of a change without a declared schema. Names are
    /// compared as text (the decoder mostly hands out the same `Arc`s,
    /// which compare by pointer first).
    fn schemaless_fields(&mut self, change: &Change) -> Arc<Vec<Field>> {
        let key = &change.key.columns;
        let row = change.row.as_ref().map_or(&[][..], |r| &r.columns[..]);
        let names = || key.iter().chain(row).map(|(name, _)| name);
        let known = self.schemaless.iter().find(|shape| {
            shape.key_columns == key.len()
                && shape.names.len() == key.len() + row.len()
                && shape.names.iter().eq(names())
        });
        if let Some(shape) = known {
            return Arc::clone(&shape.fields);
        }
        let fields = Arc::new(data_fields(change, None));
        if self.schemaless.len() >= Self::CAPACITY {
            self.schemaless.remove(0);
        }
        self.schemaless.push(Shape {
            key_columns: key.len(),
            names: names().cloned().collect(),
            fields: Arc::clone(&fields),
        });
        fields
    }
}

/// Whether a change with data fields `record` can go into a file with data
/// fields `file`: when the file has every column of the change with the
/// same type (the file's other columns are null for it).
///
/// So a new or retyped column starts a new file, while a change with fewer
/// columns does not: within one partition that is an event from before an
/// `ADD COLUMN` that arrives late (a producer retry, a replayed range), a
/// schema-less delete carrying only the key, or a dropped column. Requiring
/// an exact match would close a file at every such event.
pub fn fits(file: &[Field], record: &[Field]) -> bool {
    record.iter().all(|r| {
        file.iter()
            .any(|f| f.name() == r.name() && f.data_type() == r.data_type())
    })
}

/// The data fields of a new file for a schema-less change that did not fit:
/// the previous file's columns plus the new ones, so alternating shapes do
/// not produce a file each.
pub fn union(file: &[Field], record: &[Field]) -> Vec<Field> {
    let mut out = file.to_vec();
    for r in record {
        if !out.iter().any(|f| f.name() == r.name()) {
            out.push(r.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_types_are_exact_where_parquet_has_them() {
        assert_eq!(
            arrow_type(&ColumnType::Decimal {
                precision: Some(10),
                scale: 2
            }),
            DataType::Decimal128(10, 2)
        );
        let decimal = |precision, scale| arrow_type(&ColumnType::Decimal { precision, scale });
        assert_eq!(decimal(None, 4), DataType::Decimal128(38, 4));
        assert_eq!(
            decimal(Some(5), 6),
            DataType::Decimal128(6, 6),
            "scale > precision"
        );
        assert_eq!(decimal(Some(39), 2), DataType::Decimal256(39, 2));
        assert_eq!(decimal(Some(76), 76), DataType::Decimal256(76, 76));
        assert_eq!(
            decimal(Some(77), 0),
            DataType::Utf8,
            "beyond 76 digits: text"
        );
        assert_eq!(decimal(Some(1000), 500), DataType::Utf8);
        assert_eq!(
            arrow_type(&ColumnType::TimestampTz),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(arrow_type(&ColumnType::Uuid), DataType::Utf8);
        assert!(matches!(
            arrow_type(&ColumnType::Array(Box::new(ColumnType::Int32))),
            DataType::List(_)
        ));
    }

    /// Remembered schema-less fields are the fields of each change's own
    /// names, whichever shape came before.
    #[test]
    fn schemaless_fields_follow_each_changes_names() {
        use sinkfleet_core::{Op, Row, TableId, Value, Version};
        let row = |names: &[&str]| Row {
            columns: names
                .iter()
                .map(|n| (Arc::from(*n), Value::Int(1)))
                .collect(),
        };
        let change = |key: &[&str], after: Option<&[&str]>| Change {
            table: TableId::new("public", "t"),
            op: if after.is_some() {
                Op::Update
            } else {
                Op::Delete
            },
            key: row(key),
            row: after.map(row),
            version: Version::new(1, 1),
            schema: None,
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        };
        let mut cache = FieldCache::default();
        for c in [
            change(&["id"], Some(&["id", "a"])),
            change(&["id"], Some(&["id", "a"])),
            change(&["id"], Some(&["id", "a", "b"])),
            change(&["id"], None),
            change(&["id", "a"], Some(&["b"])),
            change(&["id"], Some(&["a", "id"])),
            change(&["id"], Some(&["id", "a"])),
        ] {
            assert_eq!(*cache.fields(&c), data_fields(&c, None));
        }
        assert_eq!(cache.schemaless.len(), 5);
    }

    #[test]
    fn a_column_named_like_bookkeeping_is_refused() {
        let fields = vec![Field::new("__op", DataType::Utf8, true)];
        assert!(file_schema(&fields).is_err());
    }

    #[test]
    fn records_fit_when_the_file_has_their_columns() {
        let file = vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
        ];
        let key_only = vec![Field::new("id", DataType::Utf8, true)];
        assert!(fits(&file, &key_only));
        let wider = vec![Field::new("email", DataType::Utf8, true)];
        assert!(!fits(&file, &wider));
        let retyped = vec![Field::new("id", DataType::Int64, true)];
        assert!(!fits(&file, &retyped));
        assert_eq!(union(&file, &wider).len(), 3);
    }
}
