//! Debezium events in Avro, as Kafka Connect's `AvroConverter` writes them
//! through a Schema Registry (Confluent wire format).
//!
//! The Avro schema carries the Connect schema in its annotations
//! (`connect.name`, `connect.parameters`, `connect.type`): it is translated
//! once per registry id into the Connect schema `JsonConverter` would have
//! written, so a column gets the same type and codec as its JSON twin, and a
//! value the same decoding and the same refusals ([`values::decode`]). Avro
//! logical types without Connect annotations (a producer other than Kafka
//! Connect) map to the Connect type of the same meaning.

use super::schema::{self, Codec, RowCodec};
use super::values;
use crate::change::Row;
use crate::error::DecodeError;
use crate::value::Value;
use apache_avro::types::Value as Avro;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The Confluent wire format's first byte.
const MAGIC: u8 = 0;

/// A record's schema id and its Avro body, from the Confluent framing
/// (magic byte 0, a 4-byte big-endian schema id, the payload).
pub fn frame<'r>(part: &'static str, record: &'r [u8]) -> Result<(u32, &'r [u8]), DecodeError> {
    match record {
        [MAGIC, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        [MAGIC, ..] => Err(DecodeError::Framing {
            part,
            message: format!(
                "truncated: {} bytes, the Confluent wire format needs at least 5 (magic byte, schema id)",
                record.len()
            ),
        }),
        [first, ..] => Err(DecodeError::Framing {
            part,
            message: format!(
                "wrong magic byte 0x{first:02x} (the Confluent wire format starts with 0x00){}",
                if *first == b'{' {
                    "; the record looks like JSON: is the topic's format `json`?"
                } else {
                    ""
                }
            ),
        }),
        [] => Err(DecodeError::Framing {
            part,
            message: "empty record: the Confluent wire format needs at least 5 bytes".into(),
        }),
    }
}

/// The single-object header apache-avro's reader expects: none, as the
/// Confluent framing is read by [`frame`].
struct NoHeader;

impl apache_avro::headers::HeaderBuilder for NoHeader {
    fn build_header(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// One registry schema, parsed for decoding.
pub struct AvroSchema {
    /// Holds the schema with its named types resolved once: decoding with
    /// `from_avro_datum` resolves them again for every record.
    reader: apache_avro::GenericSingleObjectReader,
    /// The codec of the row: the `after` struct of an envelope, or the
    /// record itself (a key).
    row: Arc<RowCodec>,
    /// The row's column names, shared by every row decoded with it.
    names: Vec<Arc<str>>,
    /// True for a Debezium envelope (`before`/`after`/`op`/`source`).
    envelope: bool,
}

impl std::fmt::Debug for AvroSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSchema")
            .field("row", &self.row.schema)
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

impl AvroSchema {
    /// Parses a schema's text as the registry returned it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let avro = apache_avro::Schema::parse_str(text).map_err(|e| e.to_string())?;
        let reader =
            apache_avro::GenericSingleObjectReader::new_with_header_builder(avro, NoHeader)
                .map_err(|e| e.to_string())?;
        let json: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut named = HashMap::new();
        let connect = connect_type(&json, None, &mut named)?.0;
        let fields = connect.get("fields").and_then(Json::as_array);
        let field = |name: &str| {
            fields.and_then(|f| {
                f.iter()
                    .find(|f| f.get("field").and_then(Json::as_str) == Some(name))
            })
        };
        let envelope = field("op").is_some() && field("source").is_some();
        let row_schema = if envelope {
            field("after").or(field("before"))
        } else {
            Some(&connect)
        };
        let row = match row_schema {
            Some(s) if s.get("type").and_then(Json::as_str) == Some("struct") => {
                schema::parse_struct(s, if envelope { "schema.after" } else { "schema" })
                    .map_err(|e| e.to_string())?
            }
            _ => return Err("the schema is not a record".into()),
        };
        let names = row
            .schema
            .columns
            .iter()
            .map(|c| Arc::<str>::from(c.name.as_str()))
            .collect();
        Ok(AvroSchema {
            reader,
            row: Arc::new(row),
            names,
            envelope,
        })
    }

    /// The row codec (the `after` struct of an envelope, or the record).
    pub(crate) fn row_codec(&self) -> &Arc<RowCodec> {
        &self.row
    }

    /// The row's column names (see [`row`]).
    pub(crate) fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// True for a Debezium change event envelope.
    pub fn is_envelope(&self) -> bool {
        self.envelope
    }

    /// Decodes a framed record's body into its top-level fields.
    pub(crate) fn datum(
        &self,
        part: &'static str,
        id: u32,
        body: &[u8],
    ) -> Result<Vec<(String, Avro)>, DecodeError> {
        let mismatch = |message: String| DecodeError::SchemaMismatch { part, id, message };
        let mut reader = body;
        let value = self
            .reader
            .read_value(&mut reader)
            .map_err(|e| mismatch(format!("payload does not decode with its schema: {e}")))?;
        if !reader.is_empty() {
            return Err(mismatch(format!(
                "{} bytes left after the record: the payload is not of this schema",
                reader.len()
            )));
        }
        // An optional top-level Connect schema is a union with null.
        match unwrap_union(value) {
            Avro::Record(fields) => Ok(fields),
            Avro::Null => Err(mismatch("a null record".into())),
            _ => Err(mismatch("not a record".into())),
        }
    }
}

/// Removes a union's branch wrapper.
pub(crate) fn unwrap_union(v: Avro) -> Avro {
    match v {
        Avro::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

/// Takes a field out of a decoded record.
pub(crate) fn take(fields: &mut [(String, Avro)], name: &str) -> Option<Avro> {
    fields
        .iter_mut()
        .find(|(n, _)| n == name)
        .map(|(_, v)| unwrap_union(std::mem::replace(v, Avro::Null)))
        .filter(|v| *v != Avro::Null)
}

/// A decoded record as a row, each column with its codec. Columns with
/// Debezium's unchanged-TOAST placeholder are left out (their names go to
/// `unchanged`), as in JSON.
pub(crate) fn row(
    value: Avro,
    codec: &RowCodec,
    names: &[Arc<str>],
    part: &str,
    mut unchanged: Option<&mut Vec<String>>,
) -> Result<Row, DecodeError> {
    let Avro::Record(fields) = unwrap_union(value) else {
        return Err(super::field(part, "expected a record"));
    };
    let columns_of = &codec.schema.columns;
    let mut columns = Vec::with_capacity(fields.len());
    let mut next = 0;
    for (name, value) in fields {
        // Records list their fields in schema order: try the next first.
        let at = if columns_of.get(next).is_some_and(|c| c.name == name) {
            Some(next)
        } else {
            columns_of.iter().position(|c| c.name == name)
        };
        let (shared, codec) = match at {
            Some(i) => {
                next = i + 1;
                (Arc::clone(&names[i]), &codec.codecs[i])
            }
            None => (Arc::from(name.as_str()), &Codec::Infer),
        };
        match cell(unwrap_union(value), codec) {
            Ok(Some(v)) => columns.push((shared, v)),
            Ok(None) => {
                if let Some(u) = unchanged.as_deref_mut() {
                    u.push(name);
                }
            }
            Err(message) => {
                return Err(DecodeError::Field {
                    path: format!("{part}.{name}"),
                    message,
                });
            }
        }
    }
    Ok(Row { columns })
}

/// One column value; `None` for the unchanged-TOAST placeholder. Common
/// scalars take a direct path; everything else becomes the JSON that
/// `JsonConverter` writes for it and is decoded exactly as JSON is.
fn cell(value: Avro, codec: &Codec) -> Result<Option<Value>, String> {
    Ok(Some(match (value, codec) {
        (Avro::Null, _) => Value::Null,
        (Avro::Int(i), Codec::Int | Codec::Infer) => Value::Int(i64::from(i)),
        (Avro::Long(i), Codec::Int | Codec::Infer) => Value::Int(i),
        (Avro::Double(f), Codec::Float | Codec::Infer) => Value::Float(f),
        (Avro::Float(f), Codec::Float | Codec::Infer) => Value::Float(widen(f)),
        (Avro::Boolean(b), Codec::Bool | Codec::Infer) => Value::Bool(b),
        (Avro::String(s), Codec::Text | Codec::Infer) => {
            if values::is_unavailable_text(&s) {
                return Ok(None);
            }
            Value::Text(s)
        }
        (Avro::Decimal(d), Codec::Decimal { scale }) => match Vec::<u8>::try_from(&d) {
            Ok(bytes) if !bytes.is_empty() => {
                Value::Decimal(values::unscaled_to_decimal(&bytes, *scale))
            }
            // Empty or unreadable: the JSON path says why.
            _ => values::decode(&to_json(Avro::Decimal(d))?, codec)?,
        },
        (Avro::Bytes(b), Codec::Bytes) => {
            if b == values::UNAVAILABLE_VALUE.as_bytes() {
                return Ok(None);
            }
            Value::Bytes(b)
        }
        (value, codec) => {
            let json = to_json(value)?;
            if values::is_unavailable(&json) {
                return Ok(None);
            }
            values::decode(&json, codec)?
        }
    }))
}

/// An Avro value as `JsonConverter` would have written the same Connect
/// value: bytes and decimals as base64, logical types as their numbers.
fn to_json(value: Avro) -> Result<Json, String> {
    Ok(match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => Json::from(i),
        Avro::Long(i)
        | Avro::TimeMicros(i)
        | Avro::TimestampMillis(i)
        | Avro::TimestampMicros(i)
        | Avro::TimestampNanos(i)
        | Avro::LocalTimestampMillis(i)
        | Avro::LocalTimestampMicros(i)
        | Avro::LocalTimestampNanos(i) => Json::from(i),
        // A float JSON cannot hold (NaN, infinities) stays text, as
        // JsonConverter writes it; `values::decode` reads it back.
        Avro::Float(f) => float_json(widen(f)),
        Avro::Double(f) => float_json(f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Json::String(BASE64.encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s),
        Avro::Uuid(u) => Json::String(u.to_string()),
        Avro::Decimal(d) => {
            let bytes: Vec<u8> = Vec::try_from(&d).map_err(|e| e.to_string())?;
            Json::String(BASE64.encode(bytes))
        }
        Avro::Union(_, inner) => to_json(*inner)?,
        Avro::Array(items) => {
            Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Avro::Map(entries) => Json::Object(
            entries
                .into_iter()
                .map(|(k, v)| Ok((k, to_json(v)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        Avro::Record(fields) => Json::Object(
            fields
                .into_iter()
                .map(|(k, v)| Ok((k, to_json(v)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        other => return Err(format!("no Kafka Connect value is an Avro {other:?}")),
    })
}

/// A 32-bit float as the number `JsonConverter` writes for it (its
/// shortest decimal form), not the binary widening: `1.1f32` is 1.1 in
/// the JSON twin, where `f64::from` would give 1.100000023841858.
fn widen(f: f32) -> f64 {
    f.to_string().parse().unwrap_or(f64::from(f))
}

fn float_json(f: f64) -> Json {
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .unwrap_or_else(|| Json::String(f.to_string()))
}

/// The Connect schema (`JsonConverter`'s form) of an Avro type, and
/// whether it is optional (a union with `null`). `named` collects the
/// record, enum and fixed types defined so far, by full name, for later
/// references.
fn connect_type(
    avro: &Json,
    namespace: Option<&str>,
    named: &mut HashMap<String, Json>,
) -> Result<(Json, bool), String> {
    match avro {
        Json::String(name) => Ok((primitive_or_named(name, namespace, named)?, false)),
        Json::Array(branches) => {
            let others: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
            let optional = others.len() < branches.len();
            match others.as_slice() {
                [one] => Ok((connect_type(one, namespace, named)?.0, optional)),
                // Connect has no unions of several types: kept as inferred.
                _ => Ok((json!({ "type": "union" }), optional)),
            }
        }
        Json::Object(object) => Ok((connect_object(object, namespace, named)?, false)),
        other => Err(format!("unexpected Avro schema element {other}")),
    }
}

fn primitive_or_named(
    name: &str,
    namespace: Option<&str>,
    named: &HashMap<String, Json>,
) -> Result<Json, String> {
    let physical = match name {
        "int" => "int32",
        "long" => "int64",
        "float" => "float",
        "double" => "double",
        "boolean" => "boolean",
        "string" => "string",
        "bytes" => "bytes",
        "null" => "null",
        _ => {
            let full = if name.contains('.') {
                name.to_owned()
            } else {
                namespace.map_or_else(|| name.to_owned(), |ns| format!("{ns}.{name}"))
            };
            return named
                .get(&full)
                .or_else(|| named.get(name))
                .cloned()
                .ok_or_else(|| format!("unknown Avro type `{name}`"));
        }
    };
    Ok(json!({ "type": physical }))
}

fn connect_object(
    object: &Map<String, Json>,
    namespace: Option<&str>,
    named: &mut HashMap<String, Json>,
) -> Result<Json, String> {
    let ty = object
        .get("type")
        .ok_or("an Avro schema object without `type`")?;
    let namespace = object.get("namespace").and_then(Json::as_str).or(namespace);
    let full_name = |name: &str| match namespace {
        Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_owned(),
    };
    let mut connect = match ty.as_str() {
        Some("record") => {
            let name = object.get("name").and_then(Json::as_str).unwrap_or("");
            let own_namespace = full_name(name)
                .rsplit_once('.')
                .map(|(ns, _)| ns.to_owned());
            let mut fields = Vec::new();
            for field in object
                .get("fields")
                .and_then(Json::as_array)
                .ok_or("a record without fields")?
            {
                let fname = field
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or("a record field without a name")?;
                let ftype = field.get("type").ok_or("a record field without a type")?;
                let (mut fschema, optional) = connect_type(ftype, own_namespace.as_deref(), named)?;
                if let Json::Object(f) = &mut fschema {
                    f.insert("field".into(), Json::from(fname));
                    f.insert("optional".into(), Json::Bool(optional));
                }
                fields.push(fschema);
            }
            let connect = json!({ "type": "struct", "fields": fields });
            named.insert(full_name(name), connect.clone());
            connect
        }
        Some("enum") => {
            let connect = json!({ "type": "string" });
            if let Some(name) = object.get("name").and_then(Json::as_str) {
                named.insert(full_name(name), connect.clone());
            }
            connect
        }
        Some("fixed") => {
            let connect = json!({ "type": "bytes" });
            if let Some(name) = object.get("name").and_then(Json::as_str) {
                named.insert(full_name(name), connect.clone());
            }
            connect
        }
        Some("array") => {
            let items = object.get("items").ok_or("an array without items")?;
            let (items, _) = connect_type(items, namespace, named)?;
            json!({ "type": "array", "items": items })
        }
        Some("map") => json!({ "type": "map" }),
        Some(primitive) => primitive_or_named(primitive, namespace, named)?,
        None => connect_type(ty, namespace, named)?.0,
    };
    // Connect's own annotations first; Avro's logical types where Connect
    // wrote none.
    if let Json::Object(c) = &mut connect {
        if let Some(t) = object.get("connect.type").and_then(Json::as_str) {
            c.insert("type".into(), Json::from(t));
        }
        if let Some(name) = object.get("connect.name").and_then(Json::as_str) {
            c.insert("name".into(), Json::from(name));
            if let Some(params) = object.get("connect.parameters") {
                c.insert("parameters".into(), params.clone());
            }
        } else if let Some(logical) = object.get("logicalType").and_then(Json::as_str) {
            let name = match logical {
                "decimal" => {
                    let scale = object.get("scale").and_then(Json::as_u64).unwrap_or(0);
                    let mut params = json!({ "scale": scale.to_string() });
                    if let Some(p) = object.get("precision").and_then(Json::as_u64) {
                        params["connect.decimal.precision"] = Json::from(p.to_string());
                    }
                    c.insert("parameters".into(), params);
                    Some("org.apache.kafka.connect.data.Decimal")
                }
                "date" => Some("org.apache.kafka.connect.data.Date"),
                "time-millis" => Some("org.apache.kafka.connect.data.Time"),
                "time-micros" => Some("io.debezium.time.MicroTime"),
                "timestamp-millis" | "local-timestamp-millis" => {
                    Some("org.apache.kafka.connect.data.Timestamp")
                }
                "timestamp-micros" | "local-timestamp-micros" => {
                    Some("io.debezium.time.MicroTimestamp")
                }
                "timestamp-nanos" | "local-timestamp-nanos" => {
                    Some("io.debezium.time.NanoTimestamp")
                }
                "uuid" => Some("io.debezium.data.Uuid"),
                _ => None,
            };
            if let Some(name) = name {
                c.insert("name".into(), Json::from(name));
            }
        }
    }
    Ok(connect)
}
