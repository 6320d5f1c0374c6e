//! Borrowed, typed reading of a record's JSON.
//!
//! The event's fields are taken as raw slices of the record, and row images
//! are decoded from the JSON text straight into [`Value`]s, column by
//! column. No `serde_json::Value` tree is built for the common values:
//! that tree (a map insert and an allocation per field, then a second walk
//! to convert it) used to be most of the cost of decoding a record.

use super::schema::{Codec, RowCodec};
use super::values;
use crate::change::Row;
use crate::error::DecodeError;
use crate::value::Value;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// `Some(raw)` for a present field, a JSON null included (which `Option`
/// alone would turn into `None`): `"payload": null` is a tombstone, while a
/// missing payload means a bare event.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The fields decoding reads from a record value: the envelope's two
/// (`schemas.enable=true`) and a bare payload's. Every other field
/// (`ts_us`, ...) is skipped without being built.
#[derive(Deserialize)]
pub(super) struct Event<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    pub schema: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub payload: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub before: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub after: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub op: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub source: Option<Source<'a>>,
    #[serde(default)]
    pub ts_ms: Option<Json>,
    #[serde(borrow, default)]
    pub transaction: Option<Transaction<'a>>,
}

/// The `transaction` block (with Debezium's `provide.transaction.metadata`):
/// only the id is read.
#[derive(Deserialize)]
pub(super) struct Transaction<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub id: Option<Cow<'a, str>>,
}

/// The `source` block fields decoding reads, borrowed from the record: a
/// name without escapes costs no allocation, and the LSNs are read as raw
/// text (see [`fast_lsn_version`]).
#[derive(Deserialize)]
pub(super) struct Source<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub schema: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub table: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub lsn: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub sequence: Option<&'a RawValue>,
    #[serde(default)]
    pub ts_ms: Option<Json>,
}

/// A string field, borrowed unless it has escapes. Anything that is not a
/// string (null, a number) reads as absent, which decoding reports.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    let raw = <&RawValue>::deserialize(d)?;
    Ok(match serde_json::from_str::<&str>(raw.get()) {
        Ok(borrowed) => Some(Cow::Borrowed(borrowed)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .ok()
            .map(Cow::Owned),
    })
}

/// An LSN as Debezium writes it: a decimal string or a JSON integer within
/// `u64`; `None` for null. Anything else fails, and the caller's slow path
/// says what was wrong.
struct Lsn(Option<u64>);

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Lsn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an LSN")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lsn, E> {
                Ok(Lsn(Some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lsn, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom("not an LSN"));
                }
                v.parse().map(|n| Lsn(Some(n))).map_err(E::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lsn, E> {
                Ok(Lsn(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The event's `(commit LSN, LSN)` from `source.sequence` (a JSON array
/// as a string, or as an array), else `(lsn, lsn)` from `source.lsn`,
/// read without building a JSON tree. `None` when the fields are not
/// exactly in Debezium's shape: the caller then reads them again the slow
/// way, to refuse them with the reason.
pub(super) fn fast_lsn_version(source: &Source<'_>) -> Option<(u64, u64)> {
    let pair = |text: &str| -> Option<(u64, u64)> {
        let (commit, change) = serde_json::from_str::<(Lsn, Lsn)>(text).ok()?;
        Some((commit.0.unwrap_or(0), change.0?))
    };
    match source.sequence.map(RawValue::get) {
        None | Some("null") => {}
        Some(quoted) if quoted.starts_with('"') => {
            return pair(&serde_json::from_str::<String>(quoted).ok()?);
        }
        Some(array) => return pair(array),
    }
    let lsn = serde_json::from_str::<Lsn>(source.lsn?.get()).ok()?.0?;
    Some((lsn, lsn))
}

/// The envelope of a Kafka key: `{"schema", "payload"}`, or neither for a
/// bare key (whose own fields are skipped here and read as the row).
#[derive(Deserialize)]
pub(super) struct KeyEnvelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    pub schema: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub payload: Option<&'a RawValue>,
}

/// The column names of a row image, in order (values skipped).
pub(super) fn column_names(raw: &RawValue) -> Result<Vec<String>, serde_json::Error> {
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                names.push(name);
            }
            Ok(names)
        }
    }
    serde_json::Deserializer::from_str(raw.get()).deserialize_map(Names)
}

/// The column names of the last whole row decoded of one kind (keys, or
/// values), handed out again to the next rows: rows of a table list the
/// same names in the same order, so a name at the same position that is
/// equal costs a reference count, not an allocation.
#[derive(Debug, Default)]
pub(super) struct RecentNames(Vec<Arc<str>>);

impl RecentNames {
    /// Remembers `row`'s names, unless they are the ones remembered.
    fn remember(&mut self, row: &Row) {
        let same = self.0.len() == row.columns.len()
            && self
                .0
                .iter()
                .zip(&row.columns)
                .all(|(a, (b, _))| Arc::ptr_eq(a, b));
        if !same {
            self.0 = row.columns.iter().map(|(n, _)| Arc::clone(n)).collect();
        }
    }
}

/// Decodes a row image. Columns carrying the TOAST placeholder are left
/// out: they are not part of this change (their names go to `unchanged`).
/// A column named twice is refused: which of the two values the source
/// meant is unknown. Names come from `recent` where they repeat it.
pub(super) fn decode_row(
    raw: &RawValue,
    codec: &RowCodec,
    part: &str,
    unchanged: Option<&mut Vec<String>>,
    recent: &mut RecentNames,
) -> Result<Row, DecodeError> {
    if !raw.get().starts_with('{') {
        return Err(super::field(part, "expected an object"));
    }
    let mut failure = None;
    let mut skipped = false;
    let seed = RowSeed {
        codec,
        unchanged,
        recent: &recent.0,
        skipped: &mut skipped,
        failure: &mut failure,
    };
    let result = seed.deserialize(&mut serde_json::Deserializer::from_str(raw.get()));
    if let Some((column, message)) = failure {
        return Err(DecodeError::Field {
            path: format!("{part}.{column}"),
            message,
        });
    }
    let row = result.map_err(|e| DecodeError::Json {
        part: if part == "key" { "key" } else { "value" },
        message: e.to_string(),
    })?;
    if let Some(name) = duplicate(&row) {
        return Err(DecodeError::Field {
            path: format!("{part}.{name}"),
            message: "the column appears twice in the row".into(),
        });
    }
    // A row missing a placeholder column would shift the names after it.
    if !skipped {
        recent.remember(&row);
    }
    Ok(row)
}

/// A column name that appears twice, if any. Rows are mostly narrow, where
/// comparing pairs beats sorting a copy.
fn duplicate(row: &Row) -> Option<&str> {
    let names = &row.columns;
    if names.len() <= 64 {
        return names
            .iter()
            .enumerate()
            .find(|(i, (a, _))| names[i + 1..].iter().any(|(b, _)| a == b))
            .map(|(_, (a, _))| &**a);
    }
    let mut sorted: Vec<&str> = names.iter().map(|(n, _)| &**n).collect();
    sorted.sort_unstable();
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Reads a row object column by column, each value with its column's codec.
struct RowSeed<'c> {
    codec: &'c RowCodec,
    unchanged: Option<&'c mut Vec<String>>,
    /// Names to reuse (see [`RecentNames`]).
    recent: &'c [Arc<str>],
    /// Set when a column was left out (the TOAST placeholder).
    skipped: &'c mut bool,
    /// The column and message of a value its codec refused. The serde error
    /// that stops the parse cannot carry them.
    failure: &'c mut Option<(String, String)>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Row, A::Error> {
        // A schema-less row has no codecs: the previous row's width is the
        // best guess, and growing from nothing costs a few reallocations
        // per row.
        let mut columns = Vec::with_capacity(self.codec.codecs.len().max(self.recent.len()));
        // Events list columns in schema order: try the next schema field
        // before searching.
        let mut next = 0;
        let mut at = 0;
        while let Some(name) = map.next_key_seed(NameSeed {
            recent: self.recent.get(at),
        })? {
            at += 1;
            let (hint, codec) = self.codec.codec_near(&name, next);
            next = hint;
            match map.next_value_seed(CellSeed(codec))? {
                Ok(Cell::Value(value)) => columns.push((name, value)),
                Ok(Cell::Unchanged) => {
                    *self.skipped = true;
                    if let Some(unchanged) = self.unchanged.as_deref_mut() {
                        unchanged.push(name.to_string());
                    }
                }
                Err(message) => {
                    *self.failure = Some((name.to_string(), message));
                    return Err(de::Error::custom("a column value was refused"));
                }
            }
        }
        Ok(Row { columns })
    }
}

/// A column name: the recent row's name at the same position when equal,
/// else a new one.
struct NameSeed<'c> {
    recent: Option<&'c Arc<str>>,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = Arc<str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Arc<str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Arc<str>, E> {
        Ok(match self.recent {
            Some(recent) if **recent == *name => Arc::clone(recent),
            _ => Arc::from(name),
        })
    }
}

/// One column value: a value, or the TOAST placeholder.
enum Cell {
    Value(Value),
    Unchanged,
}

/// Decodes one column value with its codec. Scalars take the direct paths
/// (`values::decode_str` and integers); anything else (arrays, objects, a
/// scalar of an unexpected JSON type) is built as JSON and handed to
/// `values::decode`, which gives the same value and the same error message
/// the tree-based decoder gave. `Err` is the refusal message.
struct CellSeed<'c>(&'c Codec);

impl CellSeed<'_> {
    fn json(&self, json: &Json) -> Result<Cell, String> {
        if values::is_unavailable(json) {
            return Ok(Cell::Unchanged);
        }
        values::decode(json, self.0).map(Cell::Value)
    }
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Result<Cell, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Result<Cell, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Cell::Value(Value::Null)))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(self.json(&Json::Bool(b)))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            Codec::Int | Codec::Infer => Ok(Cell::Value(Value::Int(i))),
            _ => self.json(&Json::from(i)),
        })
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        match i64::try_from(u) {
            Ok(i) => self.visit_i64(i),
            Err(_) => Ok(self.json(&Json::from(u))),
        }
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(self.json(&Json::from(f)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if values::is_unavailable_text(s) {
            return Ok(Ok(Cell::Unchanged));
        }
        Ok(match values::decode_str(s, self.0) {
            Some(value) => Ok(Cell::Value(value)),
            None => self.json(&Json::String(s.to_owned())),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let json = Json::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(self.json(&json))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let json = Json::deserialize(MapAccessDeserializer::new(map))?;
        Ok(self.json(&json))
    }
}
