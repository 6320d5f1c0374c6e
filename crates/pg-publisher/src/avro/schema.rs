//! The Connect schema (JsonConverter's form) → the Avro schema Confluent's
//! `AvroData.fromConnectSchema` makes with default settings, as text.

use super::*;
use crate::connect_schema::{
    DATE, DECIMAL, TIME, TIMESTAMP, base64_bytes, decimal_scale, field_name, fields, non_optional,
    param, param_str, params, s_default, s_name, s_optional, s_type,
};
use crate::ordered_json::{J, ordered};

/// Equality of Connect schemas (`ConnectSchema.equals`) as a map key.
pub(crate) fn canon(s: &Value, optional: Option<bool>) -> Value {
    let sub = |k: &str| s.get(k).map(|x| canon(x, None)).unwrap_or(Value::Null);
    json!({
        "type": s_type(s),
        "optional": optional.unwrap_or_else(|| s_optional(s)),
        "default": s.get("default").cloned().unwrap_or(Value::Null),
        "name": s.get("name").cloned().unwrap_or(Value::Null),
        "version": s.get("version").cloned().unwrap_or(Value::Null),
        "doc": s.get("doc").cloned().unwrap_or(Value::Null),
        "parameters": s.get("parameters").cloned().unwrap_or(json!({})),
        "fields": fields(s).iter().map(|f| json!([field_name(f), canon(f, None)])).collect::<Vec<_>>(),
        "keys": sub("keys"), "values": sub("values"), "items": sub("items"),
    })
}

pub(crate) fn split_name(name: &str) -> (Option<String>, String) {
    match name.rfind('.') {
        None => (None, name.to_owned()),
        Some(i) => (Some(name[..i].to_owned()), name[i + 1..].to_owned()),
    }
}

pub(crate) fn namespace_j(ns: Option<String>) -> J {
    ns.map_or(J::V(Value::Null), |n| J::V(Value::String(n)))
}

/// `AvroData.fromConnectSchema` with default settings (connect.meta.data
/// on, enhanced schema support off, names not scrubbed).
#[derive(Default)]
pub(crate) struct FromConnect {
    /// canon(non-optional schema) → its Avro schema.
    schema_map: HashMap<String, J>,
    /// Struct name → its Avro record.
    cycle: HashMap<String, J>,
    name_index: u32,
    seen_named: HashSet<String>,
}

impl FromConnect {
    fn name_or_default(&mut self, name: Option<&str>) -> (Option<String>, String) {
        if let Some(name) = name {
            return split_name(name);
        }
        self.name_index += 1;
        let n = if self.name_index > 1 {
            format!("ConnectDefault{}", self.name_index)
        } else {
            "ConnectDefault".to_owned()
        };
        (Some(NAMESPACE.to_owned()), n)
    }

    fn convert(&mut self, s: &Value, ignore_optional: bool) -> Result<J, String> {
        let optional = s_optional(s);
        let key = (!optional).then(|| canon(s, None).to_string());
        if let Some(hit) = key.as_ref().and_then(|k| self.schema_map.get(k)) {
            return Ok(hit.clone());
        }
        let t = s_type(s);
        let name = s_name(s);
        let connect_type = matches!(t, "int8" | "int16").then_some(t);
        let mut base = match t {
            "int8" | "int16" | "int32" | "int64" | "float" | "double" | "boolean" | "string"
            | "bytes" => {
                let physical = match t {
                    "int8" | "int16" | "int32" => "int",
                    "int64" => "long",
                    other => other,
                };
                let mut base = J::O(vec![("type".into(), J::s(physical))]);
                if t == "bytes" && name == Some(DECIMAL) {
                    base.set("scale", J::V(json!(decimal_scale(s)?)));
                    let precision = match param_str(s, PRECISION_PARAM) {
                        None => PRECISION_DEFAULT,
                        Some(p) => p
                            .parse()
                            .map_err(|_| format!("{PRECISION_PARAM} `{p}` is not an integer"))?,
                    };
                    base.set("precision", J::V(json!(precision)));
                }
                base
            }
            "array" => {
                let items = s.get("items").ok_or("an array schema without items")?;
                J::O(vec![
                    ("type".into(), J::s("array")),
                    ("items".into(), self.with_cycle(items, false)?),
                ])
            }
            "map" => {
                let ks = s.get("keys").ok_or("a map schema without keys")?;
                let vs = s.get("values").ok_or("a map schema without values")?;
                if s_type(ks) == "string" && !s_optional(ks) {
                    J::O(vec![
                        ("type".into(), J::s("map")),
                        ("values".into(), self.with_cycle(vs, false)?),
                    ])
                } else {
                    let (ns, n) = match name {
                        None => (Some(NAMESPACE.to_owned()), "MapEntry".to_owned()),
                        Some(_) => self.name_or_default(name),
                    };
                    let mut entry = J::O(vec![
                        ("type".into(), J::s("record")),
                        ("name".into(), J::V(Value::String(n))),
                        ("namespace".into(), namespace_j(ns)),
                    ]);
                    let fields = vec![self.field("key", ks, None)?, self.field("value", vs, None)?];
                    entry.set("fields", J::A(fields));
                    if name.is_some() {
                        entry.set("connect.internal.type", J::s("MapEntry"));
                    }
                    J::O(vec![
                        ("type".into(), J::s("array")),
                        ("items".into(), entry),
                    ])
                }
            }
            "struct" if optional => J::A(vec![
                J::s("null"),
                self.with_cycle(&non_optional(s), false)?,
            ]),
            "struct" => {
                let (ns, n) = self.name_or_default(name);
                let mut base = J::O(vec![
                    ("type".into(), J::s("record")),
                    ("name".into(), J::V(Value::String(n))),
                    ("namespace".into(), namespace_j(ns)),
                ]);
                if let Some(doc) = param(s, &format!("{NAMESPACE}.record.doc")) {
                    base.set("doc", ordered(doc));
                }
                let mut avro_fields = Vec::new();
                for f in fields(s) {
                    let fname = field_name(f);
                    let doc = param(s, &format!("{NAMESPACE}.field.doc.{fname}")).cloned();
                    avro_fields.push(self.field(fname, f, doc)?);
                }
                base.set("fields", J::A(avro_fields));
                base
            }
            other => return Err(format!("unknown Connect schema type `{other}`")),
        };

        let mut result = base.clone();
        if matches!(base, J::O(_)) {
            if let Some(doc) = s.get("doc").filter(|d| !d.is_null()) {
                base.set("connect.doc", ordered(doc));
            }
            if let Some(version) = s.get("version").filter(|d| !d.is_null()) {
                base.set("connect.version", ordered(version));
            }
            let field_default = format!("{NAMESPACE}.field.default");
            let kept: Vec<(String, J)> = params(s)
                .into_iter()
                .filter(|(k, _)| *k != field_default)
                .map(|(k, v)| (k.to_owned(), ordered(v)))
                .collect();
            if !kept.is_empty() {
                base.set("connect.parameters", J::O(kept));
            }
            if let Some(d) = s_default(s)
                && param(s, &field_default).is_none()
            {
                base.set("connect.default", default_json(s, d)?);
            }
            if let Some(name) = name {
                base.set("connect.name", J::s(name));
            }
            if let Some(ct) = connect_type {
                base.set("connect.type", J::s(ct));
            }
            match name {
                Some(DECIMAL) => base.set("logicalType", J::s("decimal")),
                Some(TIME) => base.set("logicalType", J::s("time-millis")),
                Some(TIMESTAMP) => base.set("logicalType", J::s("timestamp-millis")),
                Some(DATE) => base.set("logicalType", J::s("date")),
                _ => {}
            }
            for (k, v) in params(s) {
                if k.starts_with("avro") && !base.has(k) {
                    base.set(k, ordered(v));
                }
            }
            if t == "struct"
                && let Some(n) = name
            {
                self.cycle.insert(n.to_owned(), base.clone());
            }
            result = if !ignore_optional && optional {
                if s_default(s).is_some() {
                    J::A(vec![base, J::s("null")])
                } else {
                    J::A(vec![J::s("null"), base])
                }
            } else {
                base
            };
        }
        if let Some(key) = key {
            self.schema_map.insert(key, result.clone());
        }
        Ok(result)
    }

    fn with_cycle(&mut self, s: &Value, ignore_optional: bool) -> Result<J, String> {
        if let Some(r) = s_name(s).and_then(|n| self.cycle.get(n)).cloned() {
            if !ignore_optional && s_optional(s) {
                return Ok(if s_default(s).is_some() {
                    J::A(vec![r, J::s("null")])
                } else {
                    J::A(vec![J::s("null"), r])
                });
            }
            return Ok(r);
        }
        self.convert(s, ignore_optional)
    }

    fn field(&mut self, fname: &str, fs: &Value, doc: Option<Value>) -> Result<J, String> {
        let name = s_name(fs);
        let already = name.is_some_and(|n| self.seen_named.contains(n));
        if let Some(n) = name {
            self.seen_named.insert(n.to_owned());
        }
        let avro = self.convert(fs, false)?;
        let mut f = J::O(vec![
            ("name".into(), J::s(fname)),
            ("type".into(), avro.clone()),
        ]);
        if let Some(doc) = doc {
            f.set("doc", ordered(&doc));
        }
        if let Some(d) = s_default(fs) {
            let d = default_json(fs, d)?;
            let first = match &avro {
                J::A(branches) => branches.first().cloned(),
                other => Some(other.clone()),
            };
            // Avro rejects a default the union's first branch does not take.
            if first != Some(J::s("null")) {
                f.set("default", d);
            }
        } else if s_optional(fs) {
            f.set("default", J::V(Value::Null));
        }
        let ps = params(fs);
        if already && !ps.is_empty() && is_named(&avro) {
            f.set(
                "connect.parameters",
                J::O(
                    ps.into_iter()
                        .map(|(k, v)| (k.to_owned(), ordered(v)))
                        .collect(),
                ),
            );
        }
        Ok(f)
    }
}

pub(crate) fn is_named(avro: &J) -> bool {
    match avro {
        J::A(branches) => branches.iter().any(is_named),
        J::O(_) => matches!(avro.get_str("type"), Some("record" | "enum" | "fixed")),
        J::V(_) => false,
    }
}

/// Bytes as Avro's JSON form of a bytes default: one char per byte.
pub(crate) fn latin1(bytes: &[u8]) -> J {
    J::V(Value::String(bytes.iter().map(|&b| b as char).collect()))
}

/// `defaultValueFromConnect`: the JsonConverter form of a default → Avro's
/// JSON form.
pub(crate) fn default_json(s: &Value, d: &Value) -> Result<J, String> {
    if d.is_null() {
        return Ok(J::V(Value::Null));
    }
    Ok(match s_type(s) {
        "bytes" if s_name(s) == Some(DECIMAL) => latin1(&java_bytes(&base64_bytes(d)?)),
        "bytes" => latin1(&base64_bytes(d)?),
        "array" => {
            let items = s.get("items").ok_or("an array schema without items")?;
            J::A(
                d.as_array()
                    .ok_or("an array default that is not an array")?
                    .iter()
                    .map(|e| default_json(items, e))
                    .collect::<Result<_, _>>()?,
            )
        }
        "map" | "struct" => {
            return Err(format!(
                "a {} default is not supported by sinkfleet's Avro writer",
                s_type(s)
            ));
        }
        _ => ordered(d),
    })
}

/// `BigInteger.toByteArray()` of a two's complement number: minimal
/// big-endian bytes (what `AvroData` hands to Avro for a Decimal).
pub fn java_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    if bytes.is_empty() {
        vec![0]
    } else {
        bytes[start..].to_vec()
    }
}

/// Avro Java's `Schema.toString`: named types defined once then referred
/// to by name, namespaces relative to the enclosing one.
pub(crate) fn to_text(avro: &J) -> String {
    fn walk(a: &J, space: Option<&str>, names: &mut HashSet<String>) -> J {
        match a {
            J::A(items) => J::A(items.iter().map(|b| walk(b, space, names)).collect()),
            J::V(_) => a.clone(),
            J::O(entries) => {
                let t = a.get_str("type").unwrap_or("");
                if matches!(t, "record" | "enum" | "fixed") {
                    let ns = a.get_str("namespace");
                    let n = a.get_str("name").unwrap_or("");
                    let full = ns.map_or_else(|| n.to_owned(), |ns| format!("{ns}.{n}"));
                    if names.contains(&full) {
                        return J::s(if ns == space { n } else { &full });
                    }
                    names.insert(full);
                    let mut out = J::O(vec![("type".into(), J::s(t)), ("name".into(), J::s(n))]);
                    if ns != space {
                        out.set("namespace", J::s(ns.unwrap_or("")));
                    }
                    for (k, v) in entries {
                        match k.as_str() {
                            "type" | "name" | "namespace" => {}
                            "fields" => {
                                let fs = match v {
                                    J::A(fs) => fs
                                        .iter()
                                        .map(|f| {
                                            let mut f = f.clone();
                                            if let Some(ft) = f.get("type") {
                                                let ft = walk(ft, ns, names);
                                                f.set("type", ft);
                                            }
                                            f
                                        })
                                        .collect(),
                                    _ => Vec::new(),
                                };
                                out.set("fields", J::A(fs));
                            }
                            _ => out.set(k, v.clone()),
                        }
                    }
                    return out;
                }
                let mut out = a.clone();
                if t == "array"
                    && let Some(items) = a.get("items")
                {
                    out.set("items", walk(items, space, names));
                } else if t == "map"
                    && let Some(values) = a.get("values")
                {
                    out.set("values", walk(values, space, names));
                }
                if entries.len() == 1 {
                    return J::s(t);
                }
                out
            }
        }
    }
    let mut text = String::new();
    walk(avro, None, &mut HashSet::new()).write(&mut text);
    text
}

/// The Avro schema text AvroConverter registers for a Connect schema
/// (JsonConverter's JSON form). Checked to parse as Avro: names Avro
/// rejects fail here rather than at the registry.
pub fn avro_schema(connect: &Value) -> Result<String, String> {
    let text = to_text(&FromConnect::default().convert(connect, false)?);
    apache_avro::Schema::parse_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok(text)
}
