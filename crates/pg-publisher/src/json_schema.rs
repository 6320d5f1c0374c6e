//! Confluent's `io.confluent.connect.json.JsonSchemaConverter` (default
//! settings), for records the publisher has written in JsonConverter's
//! envelope form (`{"schema", "payload"}`):
//!
//! 1. the Connect schema → the JSON Schema `JsonSchemaData.fromConnectSchema`
//!    makes, as the text the converter registers (everit's `toString`,
//!    re-read and written compactly by Jackson; `properties`, `connect.*`
//!    keywords and `connect.parameters` in Java `HashMap` order: key order
//!    matters to no validator, but the same schema must always read the
//!    same so that it is registered once, and read as Confluent's would);
//! 2. the payload → the JSON `JsonSchemaData.fromConnectData` makes of the
//!    same Connect value ([`json_value`]);
//! 3. registration and framing are the Avro converter's (`AvroConverter`
//!    in the `avro` module, which calls this one): TopicNameStrategy subjects,
//!    `schemaType: JSON`, magic byte 0 + 4-byte id + the JSON text.

use crate::connect_schema::{
    field_name, fields, non_optional, params, s_default, s_name, s_optional, s_type,
};
use crate::ordered_json::{J, ordered};
use serde_json::{Value, json};

mod value;

pub use value::json_text;
use value::json_value;

/// Connect parameters with this prefix are the converter's own (ids,
/// enums, unions) and are not copied into `connect.parameters`.
const NAMESPACE: &str = "io.confluent.connect.json";
const CONNECT_ENUM: &str = "org.apache.kafka.connect.data.Enum";
const CONNECT_UNION: &str = "org.apache.kafka.connect.data.Union";
const ONE_OF: &str = "io.confluent.connect.json.OneOf";

// ------------------------------------------------- Java HashMap iteration

/// `String.hashCode` (over UTF-16 code units).
fn java_hash(s: &str) -> u32 {
    s.encode_utf16()
        .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)))
}

/// The order a `java.util.HashMap` of capacity `cap` iterates `keys`
/// inserted in this order (bucket by bucket; a bucket in insertion order).
fn hash_order<T>(mut entries: Vec<(String, T)>, cap: u32) -> Vec<(String, T)> {
    entries.sort_by_key(|(k, _)| {
        let h = java_hash(k);
        (h ^ (h >> 16)) & (cap - 1)
    });
    entries
}

/// The capacity a HashMap holding `n` entries grew to from `cap`
/// (it doubles when the size passes three quarters of the capacity).
fn grown(mut cap: u32, n: usize) -> u32 {
    while n > (cap as usize * 3) / 4 {
        cap *= 2;
    }
    cap
}

/// `tableSizeFor`: the power of two at least `n` (at least 1).
fn table_size_for(n: usize) -> u32 {
    (n.max(1) as u32).next_power_of_two()
}

/// How everit prints a schema's unprocessed properties: JsonSchemaData
/// puts them in a `new HashMap<>()` and everit's `Schema` copies it with
/// `new HashMap<>(map)` (capacity `tableSizeFor(n / 0.75 + 1)`).
fn unprocessed_order(entries: Vec<(String, J)>) -> Vec<(String, J)> {
    let n = entries.len();
    let first = hash_order(entries, grown(16, n));
    let copy = table_size_for((n as f32 / 0.75 + 1.0) as usize);
    hash_order(first, grown(copy, n))
}

/// An object's `properties`: everit's `ObjectSchema.Builder` keeps them in
/// a `new HashMap<>()` and prints that map as is, so they come in hash
/// order, not field order (as in the registered text Confluent pins in
/// `SchemaValuesTest.testSchemaValueComplexJsonMD5`).
fn properties_order<T>(entries: Vec<(String, T)>) -> Vec<(String, T)> {
    let n = entries.len();
    hash_order(entries, grown(16, n))
}

/// `connect.parameters`: collected into a HashMap (`Collectors.toMap`),
/// then printed by org.json's `JSONObject(Map)` (a `HashMap(n)`).
fn parameters_order(entries: Vec<(String, J)>) -> Vec<(String, J)> {
    let n = entries.len();
    let first = hash_order(entries, grown(16, n));
    hash_order(first, grown(table_size_for(n), n))
}

// ------------------------------------------------------------ the schema

/// The everit schema `rawSchemaFromConnectSchema` builds, before printing.
enum Raw {
    Number {
        integer: bool,
    },
    Boolean,
    Text,
    Object {
        properties: Vec<(String, Node)>,
        additional: Option<Box<Node>>,
    },
    Array {
        items: Box<Node>,
    },
    OneOf(Vec<Node>),
    Null,
}

/// A schema with the keywords `visitSchema` prints for every kind.
struct Node {
    raw: Raw,
    title: Option<String>,
    description: Option<Value>,
    default: Option<J>,
    unprocessed: Vec<(String, J)>,
}

impl Node {
    fn bare(raw: Raw) -> Node {
        Node {
            raw,
            title: None,
            description: None,
            default: None,
            unprocessed: Vec::new(),
        }
    }

    /// everit's `ToStringVisitor`, keyword by keyword in its order.
    fn print(self) -> J {
        let mut out: Vec<(String, J)> = Vec::new();
        let common = |out: &mut Vec<(String, J)>,
                      title: Option<String>,
                      description: Option<Value>,
                      default: Option<J>,
                      unprocessed: Vec<(String, J)>| {
            if let Some(t) = title {
                out.push(("title".into(), J::V(Value::String(t))));
            }
            if let Some(d) = description {
                out.push(("description".into(), J::V(d)));
            }
            if let Some(d) = default {
                out.push(("default".into(), d));
            }
            out.extend(unprocessed_order(unprocessed));
        };
        let Node {
            raw,
            title,
            description,
            default,
            unprocessed,
        } = self;
        match raw {
            Raw::Number { integer } => {
                let t = if integer { "integer" } else { "number" };
                out.push(("type".into(), J::s(t)));
                common(&mut out, title, description, default, unprocessed);
            }
            Raw::Text => {
                out.push(("type".into(), J::s("string")));
                common(&mut out, title, description, default, unprocessed);
            }
            // everit prints a boolean's type after the common keywords.
            Raw::Boolean => {
                common(&mut out, title, description, default, unprocessed);
                out.push(("type".into(), J::s("boolean")));
            }
            Raw::Null => {
                out.push(("type".into(), J::s("null")));
                common(&mut out, title, description, default, unprocessed);
            }
            Raw::Object {
                properties,
                additional,
            } => {
                out.push(("type".into(), J::s("object")));
                common(&mut out, title, description, default, unprocessed);
                if let Some(a) = additional {
                    out.push(("additionalProperties".into(), a.print()));
                }
                if !properties.is_empty() {
                    let props = properties_order(properties)
                        .into_iter()
                        .map(|(k, n)| (k, n.print()))
                        .collect();
                    out.push(("properties".into(), J::O(props)));
                }
            }
            Raw::Array { items } => {
                out.push(("type".into(), J::s("array")));
                common(&mut out, title, description, default, unprocessed);
                out.push(("items".into(), items.print()));
            }
            Raw::OneOf(branches) => {
                common(&mut out, title, description, default, unprocessed);
                let branches = branches.into_iter().map(Node::print).collect();
                out.push(("oneOf".into(), J::A(branches)));
            }
        }
        J::O(out)
    }
}

fn index_entry(index: Option<usize>) -> Option<(String, J)> {
    index.map(|i| ("connect.index".to_owned(), J::V(json!(i))))
}

/// `rawSchemaFromConnectSchema(schema, index, ignoreOptional)` with
/// JsonSchemaDataConfig's defaults (decimal.format BASE64,
/// object.additional.properties true).
fn convert(s: &Value, index: Option<usize>, ignore_optional: bool) -> Result<Node, String> {
    let t = s_type(s);
    let name = s_name(s);
    let mut unprocessed: Vec<(String, J)> = Vec::new();
    let connect_type = |unprocessed: &mut Vec<(String, J)>, ct: &str| {
        unprocessed.push(("connect.type".into(), J::s(ct)));
    };
    if params(s)
        .iter()
        .any(|(k, _)| *k == CONNECT_ENUM || *k == CONNECT_UNION || k.starts_with(NAMESPACE))
        || name == Some(ONE_OF)
    {
        return Err(format!(
            "{}: JsonSchemaConverter's enum, union and id parameters are not written by sinkfleet",
            name.unwrap_or(t)
        ));
    }
    let raw = match t {
        "int8" | "int16" | "int32" | "int64" => {
            connect_type(&mut unprocessed, t);
            Raw::Number { integer: true }
        }
        "float" => {
            connect_type(&mut unprocessed, "float32");
            Raw::Number { integer: false }
        }
        "double" => {
            connect_type(&mut unprocessed, "float64");
            Raw::Number { integer: false }
        }
        "boolean" => Raw::Boolean,
        "string" => Raw::Text,
        // decimal.format=BASE64: a Decimal is a string too.
        "bytes" => {
            connect_type(&mut unprocessed, "bytes");
            Raw::Text
        }
        "array" => {
            let items = s.get("items").ok_or("an array schema without items")?;
            Raw::Array {
                items: Box::new(convert(items, None, false)?),
            }
        }
        "map" => {
            let ks = s.get("keys").ok_or("a map schema without keys")?;
            let vs = s.get("values").ok_or("a map schema without values")?;
            connect_type(&mut unprocessed, "map");
            if s_type(ks) == "string" && !s_optional(ks) {
                Raw::Object {
                    properties: Vec::new(),
                    additional: Some(Box::new(convert(vs, None, false)?)),
                }
            } else {
                let entry = Raw::Object {
                    properties: vec![
                        ("key".into(), convert(ks, Some(0), false)?),
                        ("value".into(), convert(vs, Some(1), false)?),
                    ],
                    additional: None,
                };
                Raw::Array {
                    items: Box::new(Node::bare(entry)),
                }
            }
        }
        "struct" if s_optional(s) => {
            let inner = convert(&non_optional(s), None, false)?;
            let mut node = Node::bare(Raw::OneOf(vec![Node::bare(Raw::Null), inner]));
            node.unprocessed.extend(index_entry(index));
            return Ok(node);
        }
        "struct" => {
            let mut properties = Vec::new();
            for (i, f) in fields(s).iter().enumerate() {
                properties.push((field_name(f).to_owned(), convert(f, Some(i), false)?));
            }
            Raw::Object {
                properties,
                additional: None,
            }
        }
        other => return Err(format!("unknown Connect schema type `{other}`")),
    };
    if let Some(version) = s.get("version").filter(|v| !v.is_null()) {
        unprocessed.push(("connect.version".into(), ordered(version)));
    }
    let kept: Vec<(String, J)> = params(s)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(NAMESPACE))
        .map(|(k, v)| (k.to_owned(), ordered(v)))
        .collect();
    if !kept.is_empty() {
        unprocessed.push(("connect.parameters".into(), J::O(parameters_order(kept))));
    }
    let default = match s_default(s) {
        Some(d) => Some(default_json(s, d)?),
        None => None,
    };
    let mut node = Node {
        raw,
        title: name.map(str::to_owned),
        description: s.get("doc").filter(|d| !d.is_null()).cloned(),
        default,
        unprocessed,
    };
    if !ignore_optional && s_optional(s) {
        node = Node::bare(Raw::OneOf(vec![Node::bare(Raw::Null), node]));
    }
    node.unprocessed.extend(index_entry(index));
    Ok(node)
}

/// `toJsonSchemaValue(fromConnectData(schema, default))` as everit prints
/// it (org.json writes a double without a fraction as an integer).
fn default_json(s: &Value, d: &Value) -> Result<J, String> {
    if matches!(s_type(s), "struct" | "map") {
        return Err(format!(
            "a {} default is not supported by sinkfleet's JSON Schema writer",
            s_type(s)
        ));
    }
    Ok(match json_value(s, d, "<default>")? {
        J::V(Value::Number(n)) if n.is_f64() => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 1e7 => J::V(json!(x as i64)),
            _ => J::V(Value::Number(n)),
        },
        other => other,
    })
}

/// The JSON Schema text JsonSchemaConverter registers for a Connect schema
/// (JsonConverter's JSON form).
pub fn json_schema(connect: &Value) -> Result<String, String> {
    let mut text = String::new();
    convert(connect, None, false)?.print().write(&mut text);
    Ok(text)
}

#[cfg(test)]
mod tests;
