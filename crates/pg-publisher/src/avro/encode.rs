//! A JsonConverter payload → Avro binary of its Connect schema's Avro form.

use super::schema::*;
use super::*;
use crate::connect_schema::{
    DECIMAL, base64_bytes, field_name, fields, s_default, s_name, s_optional, s_type,
};

pub(super) fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        if z & !0x7f == 0 {
            out.push(z as u8);
            return;
        }
        out.push((z & 0x7f | 0x80) as u8);
        z >>= 7;
    }
}

pub(super) fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// Writes `v` (a JsonConverter payload) as Avro binary for the Avro schema
/// [`avro_schema`] makes of `s`: the layout follows from the Connect
/// schema (optional → a union, struct → record, ...). A value of the wrong
/// JSON type is an error (JsonConverter would read a zero or null: not
/// exact), so is a null for a required field without default.
pub fn write_value(s: &Value, v: &Value, path: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let here = || if path.is_empty() { "<root>" } else { path };
    let default = s_default(s);
    let v = match (v, default) {
        (Value::Null, Some(d)) => d,
        _ => v,
    };
    let optional = s_optional(s);
    let struct_ = s_type(s) == "struct";
    // The union's branches: structs are ["null", record] always; other
    // optional types [T, "null"] when they have a default, else ["null", T].
    let null_first = struct_ || default.is_none();
    if v.is_null() {
        if !optional {
            return Err(format!(
                "{}: null for a required {} field",
                here(),
                s_type(s)
            ));
        }
        write_long(if null_first { 0 } else { 1 }, out);
        return Ok(());
    }
    if optional {
        write_long(if null_first { 1 } else { 0 }, out);
    }
    let wrong = || format!("{}: {v} where {} is expected", here(), s_type(s));
    match s_type(s) {
        "int8" | "int16" | "int32" | "int64" => {
            let n = v.as_i64().ok_or_else(wrong)?;
            write_long(n, out);
        }
        "float" | "double" => {
            let x = match v {
                Value::Number(n) => n.as_f64().ok_or_else(wrong)?,
                // JsonConverter writes non-finite doubles as strings; the
                // Connect value was the double itself.
                Value::String(s) if s == "NaN" => f64::NAN,
                Value::String(s) if s == "Infinity" => f64::INFINITY,
                Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
                _ => return Err(wrong()),
            };
            if s_type(s) == "float" {
                out.extend_from_slice(&(x as f32).to_le_bytes());
            } else {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        "boolean" => out.push(u8::from(v.as_bool().ok_or_else(wrong)?)),
        "string" => write_bytes(v.as_str().ok_or_else(wrong)?.as_bytes(), out),
        "bytes" => {
            let raw = base64_bytes(v).map_err(|e| format!("{}: {e}", here()))?;
            if s_name(s) == Some(DECIMAL) {
                write_bytes(&java_bytes(&raw), out);
            } else {
                write_bytes(&raw, out);
            }
        }
        "array" => {
            let items = s.get("items").ok_or("an array schema without items")?;
            let values = v.as_array().ok_or_else(wrong)?;
            if !values.is_empty() {
                write_long(values.len() as i64, out);
                for (i, e) in values.iter().enumerate() {
                    write_value(items, e, &format!("{path}[{i}]"), out)?;
                }
            }
            write_long(0, out);
        }
        "map" => {
            let ks = s.get("keys").ok_or("a map schema without keys")?;
            let vs = s.get("values").ok_or("a map schema without values")?;
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
            if !pairs.is_empty() {
                write_long(pairs.len() as i64, out);
                let string_keys = s_type(ks) == "string" && !s_optional(ks);
                for (k, e) in &pairs {
                    if string_keys {
                        write_bytes(k.as_str().ok_or_else(wrong)?.as_bytes(), out);
                    } else {
                        write_value(ks, k, &format!("{path}.key"), out)?;
                    }
                    write_value(vs, e, &format!("{path}.value"), out)?;
                }
            }
            write_long(0, out);
        }
        "struct" => {
            let object = v.as_object().ok_or_else(wrong)?;
            for f in fields(s) {
                let name = field_name(f);
                let e = object.get(name).unwrap_or(&Value::Null);
                write_value(f, e, &format!("{path}.{name}"), out)?;
            }
        }
        other => return Err(format!("{}: unknown Connect schema type `{other}`", here())),
    }
    Ok(())
}
