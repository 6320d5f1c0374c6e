//! A JsonConverter payload → the JSON `JsonSchemaData.fromConnectData`
//! writes for the same Connect value (default settings).
//!
//! Both converters write most values alike (numbers, base64 bytes, base64
//! Decimals under `decimal.format=BASE64`, epoch numbers for Date, Time
//! and Timestamp), so a value is checked against its schema and copied;
//! what differs: a null takes the schema's default (`Struct.get`), struct
//! fields come in schema order, and a map with non-string keys is an array
//! of `{"key", "value"}` objects (JsonConverter's is of `[key, value]`).

use crate::connect_schema::{base64_bytes, field_name, fields, s_default, s_optional, s_type};
use crate::ordered_json::J;
use serde_json::Value;

/// The JSON value for payload `v` of Connect schema `s`. A value of the
/// wrong JSON type, or a null for a required field without default, is an
/// error (Connect would have refused the record before converting it).
pub(crate) fn json_value(s: &Value, v: &Value, path: &str) -> Result<J, String> {
    let here = || if path.is_empty() { "<root>" } else { path };
    let v = match (v, s_default(s)) {
        (Value::Null, Some(d)) => d,
        _ => v,
    };
    if v.is_null() {
        if s_optional(s) {
            return Ok(J::V(Value::Null));
        }
        return Err(format!(
            "{}: null for a required {} field",
            here(),
            s_type(s)
        ));
    }
    let wrong = || format!("{}: {v} where {} is expected", here(), s_type(s));
    Ok(match s_type(s) {
        "int8" | "int16" | "int32" | "int64" => {
            if !(v.is_i64() || v.is_u64()) {
                return Err(wrong());
            }
            J::V(v.clone())
        }
        "float" | "double" => match v {
            Value::Number(_) => J::V(v.clone()),
            // Jackson writes non-finite numbers as these strings, as
            // JsonConverter did.
            Value::String(t) if matches!(t.as_str(), "NaN" | "Infinity" | "-Infinity") => {
                J::V(v.clone())
            }
            _ => return Err(wrong()),
        },
        "boolean" if v.is_boolean() => J::V(v.clone()),
        "string" if v.is_string() => J::V(v.clone()),
        // Bytes and (decimal.format=BASE64) Decimals: Jackson's base64 of
        // the same bytes, which is JsonConverter's text.
        "bytes" => {
            base64_bytes(v).map_err(|e| format!("{}: {e}", here()))?;
            J::V(v.clone())
        }
        "array" => {
            let items = s.get("items").ok_or("an array schema without items")?;
            let values = v.as_array().ok_or_else(wrong)?;
            J::A(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, e)| json_value(items, e, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        "map" => {
            let ks = s.get("keys").ok_or("a map schema without keys")?;
            let vs = s.get("values").ok_or("a map schema without values")?;
            let object_mode = s_type(ks) == "string" && !s_optional(ks);
            let pairs: Vec<(Value, &Value)> = match v {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, e)| (Value::String(k.clone()), e))
                    .collect(),
                Value::Array(items) => items
                    .iter()
                    .map(|p| match p.as_array().map(Vec::as_slice) {
                        Some([k, e]) => Ok((k.clone(), e)),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(wrong()),
            };
            if object_mode {
                let mut entries = Vec::with_capacity(pairs.len());
                for (k, e) in &pairs {
                    let key = k.as_str().ok_or_else(wrong)?;
                    entries.push((key.to_owned(), json_value(vs, e, &format!("{path}.{key}"))?));
                }
                J::O(entries)
            } else {
                let mut entries = Vec::with_capacity(pairs.len());
                for (k, e) in &pairs {
                    entries.push(J::O(vec![
                        ("key".into(), json_value(ks, k, &format!("{path}.key"))?),
                        ("value".into(), json_value(vs, e, &format!("{path}.value"))?),
                    ]));
                }
                J::A(entries)
            }
        }
        "struct" => {
            let object = v.as_object().ok_or_else(wrong)?;
            let mut entries = Vec::new();
            for f in fields(s) {
                let name = field_name(f);
                let e = object.get(name).unwrap_or(&Value::Null);
                entries.push((
                    name.to_owned(),
                    json_value(f, e, &format!("{path}.{name}"))?,
                ));
            }
            J::O(entries)
        }
        "boolean" | "string" => return Err(wrong()),
        other => return Err(format!("{}: unknown Connect schema type `{other}`", here())),
    })
}

/// [`json_value`] as the text Jackson writes (compact).
pub fn json_text(s: &Value, v: &Value) -> Result<String, String> {
    let mut text = String::new();
    json_value(s, v, "")?.write(&mut text);
    Ok(text)
}
