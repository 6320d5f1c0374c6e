//! Debezium change events for one table: key, envelope, schemas.
//!
//! [`TableCodec`] is built from a table's shape (a Relation message, or
//! the catalog for the snapshot), its columns' NOT NULL and defaults, and
//! the source's types; it turns tuples into rows ([`TableCodec::row`]) and
//! rows into Kafka keys and values in the connector's layout
//! ([`envelope`]). The sinks read the version from `source.sequence`:
//! this publisher puts the event's own transaction commit LSN first, and
//! snapshot rows carry `(snapshot_lsn, 0)`.

pub mod envelope;
pub mod message;
mod schema;

use crate::column_mappers::{self, ColumnMapper};
use crate::config::ConnectorConfig;
use crate::pgoutput::{Relation, ReplicaIdentity, TupleValue};
use crate::types::registry::TypeRegistry;
use crate::types::{self, ColumnCodec, ColumnType, Kind, Unmapped};
use base64::Engine;
pub use envelope::{Snapshot, Source, TxOrder};
use serde_json::{Value, json};
use sinkfleet_core::debezium::UNAVAILABLE_VALUE;
use std::collections::HashMap;

/// Why a table cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}: {reason}")]
pub struct TableError {
    /// `schema.table`.
    pub table: String,
    /// What to do about it.
    pub reason: String,
}

/// A value the configured mapping cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}, column {column}: {reason}")]
pub struct ValueError {
    /// `schema.table`.
    pub table: String,
    /// The column.
    pub column: String,
    /// Why, and the option that would carry it where one exists.
    pub reason: String,
}

/// A column's NOT NULL and default, from the catalog (pgoutput's Relation
/// messages carry neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnFacts {
    /// NOT NULL, the column's own or its domain's.
    pub not_null: bool,
    /// The default expression, `pg_get_expr(adbin)`.
    pub default: Option<String>,
}

/// A tuple's column values, in the table's column order, each already
/// written as its JSON text (`null` for SQL NULL; left-out columns hold
/// `null` and are never written). Events are copied together from these
/// texts in the connector's field order: no `Value` is built per value,
/// and a key and a value share one encoding of each column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    json: Vec<u8>,
    /// Where each column's text ends in `json`; it starts where the
    /// previous one ends.
    ends: Vec<usize>,
}

impl Row {
    /// Column `i`'s value as JSON text.
    fn value(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(self.json.len()),
        };
        match self.ends.get(i) {
            Some(&end) => &self.json[start..end],
            None => b"null",
        }
    }
}

/// One column of a table: its name, `"name":` escaped once, its codec
/// (`None`: a type without a mapping, left out of the events), and the
/// mapper its `before` and `after` values go through (never its key).
#[derive(Debug, Clone)]
struct Column {
    name: String,
    field: String,
    codec: Option<ColumnCodec>,
    mapper: Option<ColumnMapper>,
}

/// Encodes the events of one table (one Relation message's shape).
#[derive(Debug, Clone)]
pub struct TableCodec {
    /// Source schema.
    pub schema: String,
    /// Source table.
    pub table: String,
    /// Kafka topic.
    pub topic: String,
    /// `schema.table`, as transaction metadata and errors name the table.
    pub collection: String,
    columns: Vec<Column>,
    key: Vec<usize>,
    envelope: envelope::Layout,
    key_schema: Option<String>,
}

impl TableCodec {
    /// Builds the codec. `primary_key` comes from the catalog;
    /// `message.key.columns` overrides it. A table without either needs
    /// `REPLICA IDENTITY FULL` (then every column is the key).
    pub fn new(
        rel: &Relation,
        facts: &HashMap<String, ColumnFacts>,
        primary_key: &[String],
        cfg: &ConnectorConfig,
        registry: &TypeRegistry,
    ) -> Result<Self, TableError> {
        let name = format!("{}.{}", rel.namespace, rel.name);
        let err = |reason: String| TableError {
            table: name.clone(),
            reason,
        };
        let include = crate::config::column_patterns(&cfg.column_include).map_err(&err)?;
        let exclude = crate::config::column_patterns(&cfg.column_exclude).map_err(&err)?;
        // column.include.list / column.exclude.list: a filtered column is
        // left out of every event (value, `before`, schema), as a column
        // without a mapping is.
        let filtered = |column: &str| {
            let id = format!("{name}.{column}");
            if include.is_empty() {
                exclude.iter().any(|r| r.is_match(&id))
            } else {
                !include.iter().any(|r| r.is_match(&id))
            }
        };
        let mut columns = Vec::with_capacity(rel.columns.len());
        let mut left_out = Vec::new();
        for c in &rel.columns {
            if filtered(&c.name) {
                left_out.push(c.name.clone());
                columns.push(Column {
                    field: format!("{}:", json!(c.name)),
                    name: c.name.clone(),
                    codec: None,
                    mapper: None,
                });
                continue;
            }
            let fact = facts.get(&c.name).cloned().unwrap_or_default();
            let column = ColumnType {
                oid: c.type_oid,
                typmod: c.type_modifier,
                not_null: fact.not_null,
                default: fact.default.as_deref(),
            };
            let codec = match types::codec(column, registry, &cfg.types) {
                Ok(codec) => Some(codec),
                Err(Unmapped::Unknown(type_name)) => {
                    tracing::warn!(table = %name, column = %c.name, %type_name,
                        "column left out of the events: Debezium has no mapping for its type \
                         (include.unknown.datatypes=true carries it as the bytes of its text)");
                    None
                }
                Err(Unmapped::Unreadable(why)) => {
                    return Err(err(format!("column {}: {why}", c.name)));
                }
            };
            let mapper = codec.as_ref().and_then(|codec| {
                let rule = cfg
                    .column_mappers
                    .for_column(&format!("{name}.{}", c.name))?;
                let (carrier, length) =
                    column_mappers::carrier(c.type_oid, c.type_modifier, &codec.kind, registry);
                ColumnMapper::bind(rule, carrier, length)
            });
            columns.push(Column {
                field: format!("{}:", json!(c.name)),
                name: c.name.clone(),
                codec,
                mapper,
            });
        }
        let key_names: Vec<String> = match cfg.message_key_columns.get(&name) {
            Some(cols) => cols.clone(),
            None if !primary_key.is_empty() => primary_key.to_vec(),
            None if rel.replica_identity == ReplicaIdentity::Full => columns
                .iter()
                .filter(|c| c.codec.is_some())
                .map(|c| c.name.clone())
                .collect(),
            None => {
                return Err(err(
                    "has no primary key: add one, set REPLICA IDENTITY FULL, or name its key in message.key.columns".into(),
                ));
            }
        };
        let mut key = Vec::with_capacity(key_names.len());
        for k in &key_names {
            // Debezium would still send it in the Kafka key: a column
            // filtered for privacy must not leave that way.
            if left_out.contains(k) {
                return Err(err(format!(
                    "key column `{k}` is filtered out by column.include.list/column.exclude.list, \
                     but a key column reaches Kafka in the key: leave it in, or name other \
                     key columns in message.key.columns"
                )));
            }
            let i = columns
                .iter()
                .position(|c| c.name == *k)
                .ok_or_else(|| err(format!("key column `{k}` does not exist")))?;
            if columns[i].codec.is_none() {
                return Err(err(format!(
                    "key column `{k}` has a type without a mapping; set include.unknown.datatypes=true"
                )));
            }
            // Debezium masks only the value: the key would carry the
            // clear value beside the masked one.
            if columns[i].mapper.as_ref().is_some_and(ColumnMapper::hides) {
                return Err(err(format!(
                    "key column `{k}` is masked or hashed (column.mask.*), but a key column \
                     reaches Kafka in the key unmasked: leave it out of the mask, or name other \
                     key columns in message.key.columns"
                )));
            }
            key.push(i);
        }
        let mut codec = TableCodec {
            schema: rel.namespace.clone(),
            table: rel.name.clone(),
            topic: cfg.topic(&rel.namespace, &rel.name),
            collection: name,
            columns,
            key,
            envelope: envelope::Layout::default(),
            key_schema: None,
        };
        codec.envelope = envelope::Layout::new(&codec, cfg);
        if cfg.schemas_enable {
            codec.key_schema = Some(schema::key(&codec, &cfg.topic_prefix).to_string());
        }
        Ok(codec)
    }

    /// The columns carried in events, with their codecs.
    fn carried(&self) -> impl Iterator<Item = (usize, &str, &ColumnCodec)> {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.name.as_str(), c.codec.as_ref()?)))
    }

    /// A tuple as a Debezium row. Unchanged TOAST values become the
    /// placeholder (sinks keep their stored value); a NOT NULL column
    /// absent from the image (a key-only `before`) gets its fallback, so
    /// the value fits its schema. A value the mapping cannot carry is an
    /// error naming the column.
    pub fn row(&self, tuple: &[TupleValue]) -> Result<Row, ValueError> {
        let mut json = Vec::with_capacity(16 * self.columns.len());
        let mut ends = Vec::with_capacity(self.columns.len());
        for (i, column) in self.columns.iter().enumerate() {
            // Writing a `Value` into a `Vec` cannot fail.
            match (&column.codec, tuple.get(i)) {
                (None, _) => json.extend_from_slice(b"null"),
                (Some(codec), None | Some(TupleValue::Null)) if codec.optional => {
                    json.extend_from_slice(b"null")
                }
                (Some(codec), None | Some(TupleValue::Null)) => {
                    let _ = serde_json::to_writer(&mut json, &codec.fallback);
                }
                (Some(codec), Some(TupleValue::UnchangedToast)) => {
                    let _ = serde_json::to_writer(&mut json, &placeholder(&codec.kind));
                }
                (Some(codec), Some(TupleValue::Text(bytes) | TupleValue::Binary(bytes))) => {
                    std::str::from_utf8(bytes)
                        .map_err(|_| "the value is not UTF-8".to_owned())
                        .and_then(|text| codec.kind.write_json(text, &mut json))
                        .map_err(|reason| ValueError {
                            table: self.collection.clone(),
                            column: column.name.clone(),
                            reason,
                        })?
                }
            }
            ends.push(json.len());
        }
        Ok(Row { json, ends })
    }

    /// Writes `{"column":value,...}` of the columns at `indexes`; `image`:
    /// a `before` or `after`, whose values go through the column mappers.
    fn write_object(
        &self,
        row: &Row,
        indexes: impl Iterator<Item = usize>,
        image: bool,
        out: &mut Vec<u8>,
    ) {
        out.push(b'{');
        for (n, i) in indexes.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let column = &self.columns[i];
            out.extend_from_slice(column.field.as_bytes());
            match column.mapper.as_ref().filter(|_| image) {
                Some(mapper) => mapper.apply_json(row.value(i), out),
                None => out.extend_from_slice(row.value(i)),
            }
        }
        out.push(b'}');
    }

    /// The key columns' values as JSON, without any schema: the same for
    /// two codecs of one table, so an incremental snapshot's chunk (read
    /// with the catalog's codec) and the stream (the Relation's) agree on
    /// which row a change is of.
    pub fn key_identity(&self, row: &Row) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * self.key.len() + 2);
        self.write_object(row, self.key.iter().copied(), false, &mut out);
        out
    }

    /// The Kafka key of a row (its key columns).
    pub fn key(&self, row: &Row) -> Vec<u8> {
        let schema = self.key_schema.as_deref();
        let mut out = Vec::with_capacity(schema.map_or(0, str::len) + 32 + 16 * self.key.len());
        envelope::open_envelope(schema, &mut out);
        self.write_object(row, self.key.iter().copied(), false, &mut out);
        envelope::close_envelope(schema, &mut out);
        out
    }

    /// The key of a row as Kafka Connect's default header converter
    /// (`SimpleHeaderConverter`) writes a key struct: `{"id":1}`, decimals
    /// as plain numbers. Debezium puts it in the `__debezium.oldkey` /
    /// `__debezium.newkey` headers of a primary-key change.
    pub fn key_header(&self, row: &Row) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * self.key.len() + 2);
        out.push(b'{');
        for (n, &i) in self.key.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.columns[i].field.as_bytes());
            let value = row.value(i);
            let decimal_scale = match self.columns[i].codec.as_ref().map(|c| &c.kind) {
                Some(Kind::Numeric {
                    mode: types::options::DecimalMode::Precise,
                    scale: Some(scale),
                })
                | Some(Kind::Money {
                    mode: types::options::DecimalMode::Precise,
                    scale,
                }) => Some(*scale),
                _ => None,
            };
            // A precise decimal's value is a base64 JSON string: no escapes.
            let unscaled = decimal_scale.and_then(|scale| {
                let b64 = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
                Some((
                    base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
                    scale,
                ))
            });
            match unscaled {
                Some((bytes, scale)) => out.extend_from_slice(
                    sinkfleet_core::debezium::unscaled_to_decimal(&bytes, scale).as_bytes(),
                ),
                None => out.extend_from_slice(value),
            }
        }
        out.push(b'}');
        out
    }

    /// Whether two rows have the same key.
    pub fn same_key(&self, a: &Row, b: &Row) -> bool {
        self.key.iter().all(|&i| a.value(i) == b.value(i))
    }

    /// The record value of a change (`op` = c, r, u, d, t) in the
    /// connector's layout (see [`envelope`]).
    pub fn value(
        &self,
        op: &str,
        before: Option<&Row>,
        after: Option<&Row>,
        src: &Source<'_>,
    ) -> Vec<u8> {
        envelope::value(self, op, before, after, src)
    }
}

/// The TOAST placeholder in the column's own encoding.
fn placeholder(kind: &Kind) -> Value {
    match kind {
        Kind::Bytes(_) => {
            json!(base64::engine::general_purpose::STANDARD.encode(UNAVAILABLE_VALUE))
        }
        Kind::Array(_) => json!([UNAVAILABLE_VALUE]),
        _ => json!(UNAVAILABLE_VALUE),
    }
}

#[cfg(test)]
mod tests;
