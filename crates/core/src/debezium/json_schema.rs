//! Debezium events in JSON Schema, as Kafka Connect's `JsonSchemaConverter`
//! writes them through a Schema Registry (Confluent wire format: magic
//! byte 0, a 4-byte schema id, the JSON text of the value).
//!
//! The JSON Schema carries the Connect schema in its annotations
//! (`connect.type`, `title` for the Connect name, `connect.parameters`,
//! `connect.version`, `connect.index`, optional fields as
//! `oneOf: [{"type": "null"}, T]`): it is translated once per registry id
//! into the Connect schema `JsonConverter` would have written, so a column
//! gets the same type and codec as its JSON twin.
//!
//! With the converter's default settings the value is the JSON
//! `JsonConverter` writes for the same Connect value (bytes and Decimals
//! as base64, dates and timestamps as integers, float32 as its shortest
//! decimal), so a payload is decoded by the very path of a JSON envelope's
//! payload. The one difference is `decimal.format=NUMERIC`, where a Decimal
//! is a JSON number: its text is read exactly, at any length, and handed
//! on as the base64 `JsonConverter` writes (see `json_schema_check`), or
//! refused when the column's scale cannot hold it.
//!
//! A payload is checked against its schema first (JSON types, `null` only
//! where the schema allows it, required and closed properties): the
//! serializer validated it, and a record that does not match was written
//! with another schema or by hand.
//!
//! Schemas without Connect annotations (another producer) map as
//! `JsonSchemaData` maps them: `integer` is int64, `number` float64, a
//! string enum a string; what has no single Connect type (unions of several
//! types, `allOf`, untyped schemas, remote references) is refused, and so
//! are maps with keys that are not strings (their JSON is not
//! `JsonConverter`'s).

use super::json_schema_check::{Check, Invalid, Kind};
use super::schema::{self, RowCodec};
use super::wire::Event;
use crate::change::{Change, Row};
use crate::error::DecodeError;
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json, json};
use std::borrow::Cow;
use std::sync::Arc;

/// Deepest nesting of schemas (and `$ref` hops) translated; a recursive
/// schema has no Connect type.
const MAX_DEPTH: usize = 64;

/// One registry schema, translated for decoding.
#[derive(Debug)]
pub struct JsonSchema {
    /// The codec of the row: the `after` struct of an envelope, or the
    /// object itself (a key).
    row: Arc<RowCodec>,
    /// True for a Debezium envelope (`before`/`after`/`op`/`source`).
    envelope: bool,
    /// What a payload must be to match the schema.
    check: Check,
}

impl JsonSchema {
    /// Translates a schema's text as the registry returned it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let root: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let (connect, check) = Translator { root: &root }.translate(&root, 0)?;
        if connect.get("type").and_then(Json::as_str) != Some("struct") {
            return Err("the schema is not an object with properties".into());
        }
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
            _ => return Err("the envelope's `after` is not an object with properties".into()),
        };
        Ok(JsonSchema {
            row: Arc::new(row),
            envelope,
            check: check.kind_only(),
        })
    }

    /// The row codec (the `after` struct of an envelope, or the object).
    pub(crate) fn row_codec(&self) -> &Arc<RowCodec> {
        &self.row
    }

    /// True for a Debezium change event envelope.
    pub fn is_envelope(&self) -> bool {
        self.envelope
    }

    /// Checks a framed record's JSON body against the schema: `Json` if it
    /// is no JSON, `SchemaMismatch` naming the first field that does not
    /// match. The text to decode is the body, with numeric Decimals as
    /// `JsonConverter`'s base64 (see `json_schema_check`).
    pub(crate) fn validate<'b>(
        &self,
        part: &'static str,
        id: u32,
        body: &'b [u8],
    ) -> Result<Cow<'b, [u8]>, DecodeError> {
        self.check.validate(body).map_err(|invalid| match invalid {
            Invalid::NotJson(e) => DecodeError::Json {
                part,
                message: format!("the payload of schema id {id} is not JSON: {e}"),
            },
            Invalid::Mismatch(message) => DecodeError::SchemaMismatch { part, id, message },
        })
    }
}

/// Translates JSON Schema elements, resolving local `$ref`s in `root`.
struct Translator<'r> {
    root: &'r Json,
}

impl<'r> Translator<'r> {
    /// The Connect schema (`JsonConverter`'s form, without `field` and
    /// with `optional`) of a JSON Schema element, and its check.
    fn translate(&self, schema: &'r Json, depth: usize) -> Result<(Json, Check), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "schemas nested deeper than {MAX_DEPTH} (a recursive schema?) have no Connect type"
            ));
        }
        let object = match schema {
            Json::Object(o) => o,
            Json::Bool(_) => return Err("a boolean schema has no Connect type".into()),
            other => return Err(format!("unexpected JSON Schema element {other}")),
        };
        if let Some(reference) = object.get("$ref") {
            return self.translate(self.resolve(reference)?, depth + 1);
        }
        for union in ["oneOf", "anyOf"] {
            if let Some(branches) = object.get(union) {
                return self.union(union, branches, depth);
            }
        }
        if object.contains_key("allOf") {
            return Err("`allOf` has no single Connect type".into());
        }
        let (ty, nullable) = type_of(object)?;
        let connect_type = object.get("connect.type").and_then(Json::as_str);
        let (mut connect, kind) = match (ty, connect_type) {
            ("boolean", _) => (json!({"type": "boolean"}), Kind::Bool),
            ("integer" | "number", Some(t @ ("int8" | "int16" | "int32" | "int64"))) => {
                (json!({"type": t}), Kind::Integer)
            }
            ("integer", None) => (json!({"type": "int64"}), Kind::Integer),
            ("number", Some("float32")) => (json!({"type": "float"}), Kind::Number),
            ("number", Some("float64") | None) => (json!({"type": "double"}), Kind::Number),
            // A Decimal with `decimal.format=NUMERIC`.
            ("number", Some("bytes")) => {
                let scale = object
                    .get("connect.parameters")
                    .and_then(|p| p.get("scale"))
                    .and_then(Json::as_str)
                    .map_or(Ok(0), str::parse)
                    .map_err(|e| format!("a Decimal's scale: {e}"))?;
                (json!({"type": "bytes"}), Kind::Decimal { scale })
            }
            ("string", Some("bytes")) => (json!({"type": "bytes"}), Kind::String),
            ("string", None) => (json!({"type": "string"}), Kind::String),
            // JsonSchemaData writes such a map as [{"key", "value"}, ...],
            // JsonConverter as [[key, value], ...]: the column's JSON would
            // not be its twin's.
            ("array", Some("map")) => {
                return Err("a Connect map with keys that are not strings (an array of \
                            {key, value} objects) is not read: JsonConverter writes it as \
                            [[key, value], ...], which a column would store differently"
                    .into());
            }
            ("array", None) => {
                let (items, check) = self.items(object, depth)?;
                (
                    json!({"type": "array", "items": items}),
                    Kind::Array(Box::new(check)),
                )
            }
            ("object", Some("map")) => {
                let values = object
                    .get("additionalProperties")
                    .filter(|v| v.is_object())
                    .ok_or("a Connect map without a schema of its values")?;
                let (values, check) = self.translate(values, depth + 1)?;
                (
                    json!({"type": "map", "keys": {"type": "string", "optional": false}, "values": values}),
                    Kind::Map(Box::new(check.kind_only())),
                )
            }
            ("object", None) => self.object(object, depth)?,
            ("enum", None) => (json!({"type": "string"}), Kind::String),
            (ty, Some(connect)) => {
                return Err(format!(
                    "a `{ty}` with connect.type `{connect}` has no Connect type"
                ));
            }
            (ty, None) => return Err(format!("a `{ty}` has no Connect type")),
        };
        if let Json::Object(c) = &mut connect {
            // An enum's title is no Connect name (JsonSchemaData writes none).
            if let Some(title) = object.get("title").and_then(Json::as_str)
                && ty != "enum"
            {
                c.insert("name".into(), Json::from(title));
            }
            if let Some(version) = object.get("connect.version").and_then(Json::as_i64) {
                c.insert("version".into(), Json::from(version));
            }
            if let Some(params) = object.get("connect.parameters").filter(|p| p.is_object()) {
                c.insert("parameters".into(), params.clone());
            }
            c.insert("optional".into(), Json::Bool(nullable));
        }
        let check = Check {
            kind,
            nullable,
            // Connect's own fields carry their index; a non-optional one
            // must be there (Connect refuses a struct without it).
            required: !nullable && object.contains_key("connect.index"),
        };
        Ok((connect, check))
    }

    /// A local `$ref` (`#`, `#/definitions/...`, `#/$defs/...`).
    fn resolve(&self, reference: &Json) -> Result<&'r Json, String> {
        let text = reference.as_str().ok_or("a `$ref` that is not a string")?;
        let pointer = text
            .strip_prefix('#')
            .ok_or_else(|| format!("`$ref` {text} is not local to the schema (not read)"))?;
        self.root
            .pointer(pointer)
            .ok_or_else(|| format!("`$ref` {text} names nothing in the schema"))
    }

    /// A `oneOf`/`anyOf`: `null` and one type is that type, optional.
    fn union(
        &self,
        union: &str,
        branches: &'r Json,
        depth: usize,
    ) -> Result<(Json, Check), String> {
        let branches = branches
            .as_array()
            .ok_or_else(|| format!("`{union}` is not an array"))?;
        let is_null = |b: &Json| b.get("type").and_then(Json::as_str) == Some("null");
        let others: Vec<&Json> = branches.iter().filter(|b| !is_null(b)).collect();
        let nullable = others.len() < branches.len();
        match others.as_slice() {
            [one] => {
                let (mut connect, mut check) = self.translate(one, depth + 1)?;
                if nullable {
                    connect["optional"] = Json::Bool(true);
                    check.nullable = true;
                }
                check.required = false;
                Ok((connect, check))
            }
            _ => Err(format!(
                "a `{union}` of {} types has no single Connect type",
                others.len()
            )),
        }
    }

    fn items(&self, array: &'r Map<String, Json>, depth: usize) -> Result<(Json, Check), String> {
        let items = array
            .get("items")
            .filter(|i| i.is_object())
            .ok_or("an array without one schema of its items")?;
        let (connect, check) = self.translate(items, depth + 1)?;
        Ok((connect, check.kind_only()))
    }

    /// A struct: its properties as fields, in Connect's order
    /// (`connect.index`, else the order of their names).
    fn object(&self, object: &'r Map<String, Json>, depth: usize) -> Result<(Json, Kind), String> {
        let required: Vec<&str> = object
            .get("required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let mut properties: Vec<(&String, &'r Json)> = object
            .get("properties")
            .and_then(Json::as_object)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let index = |schema: &Json| schema.get("connect.index").and_then(Json::as_u64);
        properties.sort_by_key(|(_, schema)| index(schema).unwrap_or(u64::MAX));
        let mut fields = Vec::with_capacity(properties.len());
        let mut checks = Vec::with_capacity(properties.len());
        for (name, schema) in properties {
            let (mut connect, mut check) = self
                .translate(schema, depth + 1)
                .map_err(|e| format!("property `{name}`: {e}"))?;
            connect["field"] = Json::from(name.as_str());
            check.required |= required.contains(&name.as_str());
            fields.push(connect);
            checks.push((name.clone(), check));
        }
        let closed = object.get("additionalProperties") == Some(&Json::Bool(false));
        Ok((
            json!({"type": "struct", "fields": fields}),
            Kind::Object {
                properties: checks,
                closed,
            },
        ))
    }
}

/// An element's JSON type (`enum` for a typeless enum or const of
/// strings), and whether `null` is allowed (`"type": ["null", T]`).
fn type_of(object: &Map<String, Json>) -> Result<(&str, bool), String> {
    match object.get("type") {
        Some(Json::String(t)) if t == "null" => Err("a `null` has no Connect type".into()),
        Some(Json::String(t)) => Ok((t, false)),
        Some(Json::Array(types)) => {
            let others: Vec<&str> = types
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect();
            match others.as_slice() {
                [one] => Ok((one, others.len() < types.len())),
                _ => Err(format!(
                    "a `type` of {} types has no single Connect type",
                    others.len()
                )),
            }
        }
        Some(other) => Err(format!("unexpected `type` {other}")),
        None => {
            let strings = |v: &Json| match v {
                Json::Array(vs) => vs.iter().all(Json::is_string),
                v => v.is_string(),
            };
            match object.get("enum").or(object.get("const")) {
                Some(values) if strings(values) => Ok(("enum", false)),
                Some(_) => Err("an enum of values that are not all strings".into()),
                None => Err("a schema without `type` has no Connect type".into()),
            }
        }
    }
}

impl super::Decoder {
    /// The held JSON Schema of a framed record, and the record's body.
    fn json_schema_held<'r>(
        &self,
        part: &'static str,
        record: &'r [u8],
    ) -> Result<(u32, Arc<JsonSchema>, &'r [u8]), DecodeError> {
        let (id, body) = super::avro::frame(part, record)?;
        match self.held(part, super::Format::JsonSchema, record)? {
            (_, super::registry::Held::JsonSchema(schema)) => Ok((id, Arc::clone(schema), body)),
            (_, other) => Err(DecodeError::UnusableSchema {
                part,
                id,
                message: format!("schema id {id} is a {} schema", other.schema_type()),
            }),
        }
    }

    /// A JSON Schema key as a row: the key object, checked against its
    /// schema, decoded as a JsonConverter key's payload is.
    pub(super) fn json_schema_key(&mut self, raw: &[u8]) -> Result<Row, DecodeError> {
        let (id, schema, body) = self.json_schema_held("key", raw)?;
        let body = schema.validate("key", id, body)?;
        let row: &RawValue =
            serde_json::from_slice(&body).map_err(|e| super::json_err("key", e))?;
        super::wire::decode_row(row, schema.row_codec(), "key", None, &mut self.key_names)
    }

    /// A Debezium envelope in JSON Schema: checked against its schema, then
    /// decoded as the payload of a JsonConverter envelope with the Connect
    /// schema the JSON Schema translates to.
    pub(super) fn decode_json_schema(
        &mut self,
        kafka_key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
        key_format: super::Format,
    ) -> Result<Option<Change>, DecodeError> {
        // A Kafka tombstone carries no change.
        let Some(value) = value else { return Ok(None) };
        let (id, schema, body) = self.json_schema_held("value", value)?;
        if !schema.is_envelope() {
            return Err(DecodeError::UnusableSchema {
                part: "value",
                id,
                message: "the schema is no Debezium change event envelope \
                          (properties `op`, `source`, `before`, `after`)"
                    .into(),
            });
        }
        let body = schema.validate("value", id, body)?;
        let event: Event<'_> =
            serde_json::from_slice(&body).map_err(|e| super::json_err("value", e))?;
        if event.op.is_none() {
            return Err(super::not_an_event("value", &body));
        }
        self.decode_event(kafka_key, key_format, &event, schema.row_codec(), offset)
    }
}
