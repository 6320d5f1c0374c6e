//! Records flattened by Debezium's `io.debezium.transforms.ExtractNewRecordState`.
//!
//! The transform replaces the change event by its row image (`after`; for a
//! rewritten delete, `before`) and can copy metadata into the row under a
//! prefix (`add.fields.prefix`, default `__`): `add.fields=op,table,lsn,
//! source.ts_ms` adds `__op`, `__table`, `__lsn`, `__source_ts_ms`. An
//! unqualified name is looked up in `source` (in the envelope for `op` and
//! `ts_ms`, in `transaction` for `id`, `total_order`,
//! `data_collection_order`) and keeps its bare name; a qualified one
//! (`source.sequence`) becomes `<prefix><struct>_<field>`
//! (`__source_sequence`). A renamed entry (`lsn:pos`) is `<prefix>pos`,
//! which this module does not know: renames are not supported.
//!
//! Deletes (`delete.tombstone.handling.mode`, or the older
//! `delete.handling.mode` with `drop.tombstones`) arrive either rewritten
//! (the `before` row plus `__deleted: "true"`, a field whose name is fixed
//! whatever the prefix; every other record carries `__deleted: "false"`),
//! as a Kafka tombstone (a null value with the key), or not at all (`drop`).
//! Truncates are dropped by the transform.
//!
//! Everything here works on a row already decoded into [`Value`]s, whatever
//! the wire format: the JSON path ([`super::Decoder`]) decodes the flat row
//! with the usual codecs and calls [`Flattener::change`]; an Avro path can
//! do the same.

use super::{field, field_version, lsn_pair};
use crate::change::{Change, Op, Row, TableId, TableSchema};
use crate::error::DecodeError;
use crate::value::Value;
use crate::version::{Version, VersionSource};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// The field a rewritten delete is marked with. Debezium's constant
/// (`ExtractNewRecordStateConfigDefinition.DELETED_FIELD`): it does not
/// follow `add.fields.prefix`.
pub const DELETED_FIELD: &str = "__deleted";

/// The shape of a topic's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RecordShape {
    /// Debezium change events (`before`, `after`, `source`, `op`).
    #[default]
    Debezium,
    /// Rows flattened by `ExtractNewRecordState`.
    Flattened(FlattenedOptions),
}

/// How deletes reach a flattened topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlatDeletes {
    /// `rewrite` (or `rewrite-with-tombstone`): the `before` row with
    /// `__deleted: "true"`. Tombstones that follow are compaction markers
    /// and are skipped.
    #[default]
    Rewrite,
    /// `tombstone`: a delete is a Kafka tombstone (null value, the key).
    /// It carries no version, so it needs `version.source: kafka_offset`.
    Tombstone,
}

/// `decode.flattened`: what the transform was configured with.
///
/// Self-contained (nothing here refers to other decode options), so it can
/// move under a per-topic mapping as it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenedOptions {
    /// How deletes arrive.
    #[serde(default)]
    pub deletes: FlatDeletes,
    /// `add.fields.prefix`: fields whose names start with it are metadata,
    /// not columns.
    #[serde(default = "default_prefix")]
    pub field_prefix: String,
    /// `schema.table` of every record, for records without `__table`
    /// (and tombstones, which carry nothing but their key).
    #[serde(default)]
    pub table: Option<String>,
}

fn default_prefix() -> String {
    "__".into()
}

impl Default for FlattenedOptions {
    fn default() -> Self {
        FlattenedOptions {
            deletes: FlatDeletes::default(),
            field_prefix: default_prefix(),
            table: None,
        }
    }
}

impl FlattenedOptions {
    /// Configuration problems as `(path under decode, message)`, given the
    /// rest of the decode options: the version source, and whether key
    /// columns and declared columns are configured.
    pub fn problems(
        &self,
        version: &VersionSource,
        key_columns: bool,
        declared_columns: bool,
    ) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.field_prefix.is_empty() {
            // Every column would be metadata.
            problems.push(("flattened.field_prefix".into(), "empty".into()));
        }
        if let Some(table) = &self.table
            && let Err(e) = parse_table(table)
        {
            problems.push(("flattened.table".into(), e));
        }
        if self.deletes == FlatDeletes::Tombstone {
            // A tombstone is a null value: no `__lsn`, no column. Only its
            // offset orders it against the key's other records, which one
            // partition holds in order.
            if *version != VersionSource::KafkaOffset {
                problems.push((
                    "flattened.deletes".into(),
                    "tombstone deletes carry no version field: they need `version.source: kafka_offset`".into(),
                ));
            }
            if self.table.is_none() {
                problems.push((
                    "flattened.table".into(),
                    "tombstone deletes carry no `__table`: set the table (`schema.table`)".into(),
                ));
            }
            if key_columns {
                problems.push((
                    "key_columns".into(),
                    "tombstone deletes carry only the Kafka key: decode.key_columns cannot be read from them".into(),
                ));
            }
        }
        if declared_columns {
            problems.push((
                "columns".into(),
                "decode.columns is not supported with flattened records yet: send schemas (schemas.enable=true)".into(),
            ));
        }
        problems
    }

    /// The configured table, parsed.
    fn configured_table(&self) -> Result<Option<TableId>, DecodeError> {
        self.table
            .as_deref()
            .map(parse_table)
            .transpose()
            .map_err(|e| field("decode.flattened.table", &e))
    }

    fn is_metadata(&self, name: &str) -> bool {
        name == DELETED_FIELD || name.starts_with(&self.field_prefix)
    }
}

/// `schema.table`, exactly one dot, both parts non-empty (names with dots
/// cannot be written this way: exact or refused).
fn parse_table(text: &str) -> Result<TableId, String> {
    match text.split_once('.') {
        Some((schema, table))
            if !schema.is_empty() && !table.is_empty() && !table.contains('.') =>
        {
            Ok(TableId::new(schema, table))
        }
        _ => Err(format!("expected `schema.table`, found {text:?}")),
    }
}

/// One flattened record, decoded from its wire format.
#[derive(Debug, Clone, Default)]
pub struct FlatRecord {
    /// The flat row: the columns plus the metadata fields.
    pub row: Row,
    /// Its declared schema (metadata fields included), if it carried one.
    pub schema: Option<Arc<TableSchema>>,
    /// Columns left out of `row` as unchanged (TOAST placeholder).
    pub unchanged: Vec<String>,
    /// The decoded Kafka key; `None` when the record has none, or when the
    /// caller skipped it because key columns are configured for the table.
    pub key: Option<Row>,
    /// The Kafka offset (for `version.source: kafka_offset`).
    pub offset: i64,
}

/// Most distinct flat schemas kept (see [`Flattener::stripped`]).
const SCHEMA_CACHE_CAPACITY: usize = 1024;

/// Turns flattened rows into changes; keeps the stripped schemas so that
/// records of one schema share one `Arc` (sinks compare them by pointer).
#[derive(Debug, Default)]
pub struct Flattener {
    /// Flat schema (kept alive, so its address is not reused) → the same
    /// schema without the metadata fields.
    schemas: HashMap<usize, (Arc<TableSchema>, Arc<TableSchema>)>,
}

/// The metadata fields read, by their names under the default prefix.
struct Meta<'r> {
    op: Option<&'r Value>,
    deleted: Option<&'r Value>,
    table: Option<&'r Value>,
    schema: Option<&'r Value>,
    lsn: Option<&'r Value>,
    sequence: Option<&'r Value>,
    source_ts_ms: Option<&'r Value>,
    ts_ms: Option<&'r Value>,
    transaction_id: Option<&'r Value>,
}

impl<'r> Meta<'r> {
    fn read(row: &'r Row, prefix: &str) -> Self {
        // A null is what the transform writes when the source field is
        // null: the same as absent.
        let get = |names: &[&str]| {
            names.iter().find_map(|name| {
                row.get(&format!("{prefix}{name}"))
                    .filter(|v| **v != Value::Null)
            })
        };
        Meta {
            op: get(&["op"]),
            deleted: row.get(DELETED_FIELD).filter(|v| **v != Value::Null),
            table: get(&["table", "source_table"]),
            schema: get(&["schema", "source_schema"]),
            lsn: get(&["lsn", "source_lsn"]),
            sequence: get(&["source_sequence", "sequence"]),
            source_ts_ms: get(&["source_ts_ms"]),
            ts_ms: get(&["ts_ms"]),
            transaction_id: get(&["transaction_id"]),
        }
    }
}

impl Flattener {
    /// The table of a flat row: `__table` with `__schema` (or
    /// `__source_table`, `__source_schema`), else the configured table.
    /// A caller reads it first to know whether key columns apply.
    pub fn table_of(row: &Row, flat: &FlattenedOptions) -> Result<TableId, DecodeError> {
        let meta = Meta::read(row, &flat.field_prefix);
        table(&meta, flat)
    }

    /// The change a flattened row stands for. `opts` are the decode
    /// options (version source, key columns); `flat` the transform's.
    pub fn change(
        &mut self,
        record: FlatRecord,
        version_source: &VersionSource,
        key_columns: Option<&[String]>,
        flat: &FlattenedOptions,
    ) -> Result<Change, DecodeError> {
        let FlatRecord {
            row,
            schema,
            unchanged,
            key,
            offset,
        } = record;
        let p = &flat.field_prefix;
        let meta = Meta::read(&row, p);
        let table = table(&meta, flat)?;
        let op = op(&meta, p)?;

        let version = match version_source {
            VersionSource::DebeziumLsn => {
                let json = |v: Option<&Value>| v.map(lsn_json);
                lsn_pair(
                    json(meta.sequence).as_ref(),
                    json(meta.lsn).as_ref(),
                    &format!("{p}source_sequence"),
                    &format!("{p}lsn"),
                )?
                .ok_or_else(|| {
                    field(
                        &format!("{p}lsn"),
                        &format!(
                            "missing: cannot version this record; add `lsn` to the transform's \
                             add.fields (it writes `{p}lsn`; `source.sequence` writes \
                             `{p}source_sequence`), or set decode.version.source to `field` or \
                             `kafka_offset`"
                        ),
                    )
                })?
            }
            VersionSource::KafkaOffset => Version::new(offset.max(0) as u64, 0),
            // Looked up in the whole flat row: a metadata field may be the
            // configured version (`__source_ts_ms`, say).
            VersionSource::Field { field: name } => field_version(row.get(name), name)?,
        };
        let source_ts_ms = meta.source_ts_ms.or(meta.ts_ms).and_then(|v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        });
        let transaction = match meta.transaction_id {
            Some(Value::Text(id)) => Some(Arc::from(id.as_str())),
            _ => None,
        };

        let columns = Row {
            columns: row
                .columns
                .into_iter()
                .filter(|(name, _)| !flat.is_metadata(name))
                .collect(),
        };
        let key = match key_columns {
            Some(names) => {
                let mut key = Row::default();
                for name in names {
                    let value = columns.get(name).ok_or_else(|| {
                        field(
                            &format!("key.{name}"),
                            "configured key column missing from the row",
                        )
                    })?;
                    key.set(name.clone(), value.clone());
                }
                key
            }
            None => strip(key, flat).ok_or_else(|| DecodeError::MissingKey(table.to_string()))?,
        };
        let schema = schema
            .map(|s| self.stripped(s, flat))
            .filter(|s| !s.columns.is_empty());
        Ok(Change {
            table,
            op,
            key,
            row: op.is_upsert().then_some(columns),
            version,
            schema,
            unchanged: if op.is_upsert() {
                unchanged
            } else {
                Vec::new()
            },
            source_ts_ms,
            transaction,
        })
    }

    /// The delete a Kafka tombstone stands for, or `None` when tombstones
    /// are compaction markers (rewrite mode: the rewritten delete came
    /// first). Its version is its offset: it has no other.
    pub fn tombstone(
        &self,
        key: Option<Row>,
        offset: i64,
        version_source: &VersionSource,
        flat: &FlattenedOptions,
    ) -> Result<Option<Change>, DecodeError> {
        if flat.deletes != FlatDeletes::Tombstone {
            return Ok(None);
        }
        // The configuration is refused at start otherwise; this is for
        // callers that build options by hand.
        if *version_source != VersionSource::KafkaOffset {
            return Err(field(
                "value",
                "a tombstone delete has no version field: it needs `version.source: kafka_offset`",
            ));
        }
        let table = flat.configured_table()?.ok_or_else(|| {
            field(
                "value",
                "a tombstone delete has no `__table`: set decode.flattened.table",
            )
        })?;
        let key = strip(key, flat).ok_or_else(|| DecodeError::MissingKey(table.to_string()))?;
        Ok(Some(Change {
            table,
            op: Op::Delete,
            key,
            row: None,
            version: Version::new(offset.max(0) as u64, 0),
            schema: None,
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        }))
    }

    /// `schema` without its metadata fields, one `Arc` per flat schema.
    fn stripped(&mut self, schema: Arc<TableSchema>, flat: &FlattenedOptions) -> Arc<TableSchema> {
        let id = Arc::as_ptr(&schema) as usize;
        if let Some((_, stripped)) = self.schemas.get(&id) {
            return Arc::clone(stripped);
        }
        let stripped = Arc::new(TableSchema {
            columns: schema
                .columns
                .iter()
                .filter(|c| !flat.is_metadata(&c.name))
                .cloned()
                .collect(),
        });
        if self.schemas.len() >= SCHEMA_CACHE_CAPACITY {
            self.schemas.clear();
        }
        self.schemas.insert(id, (schema, Arc::clone(&stripped)));
        stripped
    }
}

/// A key without metadata fields; `None` if nothing is left.
fn strip(key: Option<Row>, flat: &FlattenedOptions) -> Option<Row> {
    let mut key = key?;
    key.columns.retain(|(name, _)| !flat.is_metadata(name));
    (!key.columns.is_empty()).then_some(key)
}

fn table(meta: &Meta<'_>, flat: &FlattenedOptions) -> Result<TableId, DecodeError> {
    let p = &flat.field_prefix;
    let text = |v: &Value, name: &str| match v {
        Value::Text(s) if !s.is_empty() => Ok(s.clone()),
        other => Err(field(
            &format!("{p}{name}"),
            &format!("expected a name, found {other:?}"),
        )),
    };
    let configured = flat.configured_table()?;
    let found = match (meta.table, meta.schema) {
        (Some(t), Some(s)) => Some(TableId::new(text(s, "schema")?, text(t, "table")?)),
        (Some(t), None) => {
            let t = text(t, "table")?;
            match &configured {
                // The configured schema completes a bare `__table` of the
                // same name.
                Some(c) if c.table == t => Some(c.clone()),
                _ => {
                    return Err(field(
                        &format!("{p}schema"),
                        &format!(
                            "missing: `{p}table` is {t:?} but its schema is unknown; add `schema` to \
                             the transform's add.fields (it writes `{p}schema`), or set \
                             decode.flattened.table"
                        ),
                    ));
                }
            }
        }
        (None, _) => None,
    };
    match (found, configured) {
        (Some(found), Some(configured)) if found != configured => Err(field(
            &format!("{p}table"),
            &format!("the record is of {found}, but decode.flattened.table says {configured}"),
        )),
        (Some(found), _) => Ok(found),
        (None, Some(configured)) => Ok(configured),
        (None, None) => Err(field(
            &format!("{p}table"),
            &format!(
                "missing: add `table,schema` to the transform's add.fields (they write `{p}table`, \
                 `{p}schema`), or set decode.flattened.table"
            ),
        )),
    }
}

/// The op: `__op` where present, else `__deleted`, else an upsert.
///
/// Without `__op` a create cannot be told from an update: it is recorded
/// as an update (`u`), which every sink applies the same way (upsert).
fn op(meta: &Meta<'_>, p: &str) -> Result<Op, DecodeError> {
    let deleted = match meta.deleted {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Text(t)) if t == "true" => Some(true),
        Some(Value::Text(t)) if t == "false" => Some(false),
        Some(other) => {
            return Err(field(
                DELETED_FIELD,
                &format!("expected \"true\" or \"false\", found {other:?}"),
            ));
        }
    };
    let op = match meta.op {
        None => {
            return Ok(if deleted == Some(true) {
                Op::Delete
            } else {
                Op::Update
            });
        }
        Some(Value::Text(code)) => match code.as_str() {
            "c" => Op::Create,
            "r" => Op::Read,
            "u" => Op::Update,
            "d" => Op::Delete,
            // The transform drops truncates; one here was not made by it.
            "t" => {
                return Err(field(
                    &format!("{p}op"),
                    "a truncate has no row to flatten (ExtractNewRecordState drops them)",
                ));
            }
            "m" => return Err(DecodeError::LogicalMessage),
            other => return Err(DecodeError::UnknownOp(other.to_owned())),
        },
        Some(other) => {
            return Err(field(
                &format!("{p}op"),
                &format!("expected a string, found {other:?}"),
            ));
        }
    };
    // A delete not marked deleted (or the other way round) is no record
    // the transform writes: which of the two is true is unknown.
    if let Some(deleted) = deleted
        && deleted != (op == Op::Delete)
    {
        return Err(field(
            DELETED_FIELD,
            &format!("is {deleted:?} but `{p}op` is {:?}", op.code()),
        ));
    }
    Ok(op)
}

/// An LSN field's value as the JSON the envelope would have held, for the
/// parser shared with unflattened events.
fn lsn_json(value: &Value) -> Json {
    match value {
        Value::Int(i) => Json::from(*i),
        Value::Text(s) | Value::Decimal(s) => Json::String(s.clone()),
        Value::Null => Json::Null,
        other => Json::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests;
