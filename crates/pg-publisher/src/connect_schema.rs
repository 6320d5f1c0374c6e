//! Kafka Connect schemas and values in JsonConverter's JSON form, as the
//! Avro, JSON Schema and Protobuf converters read them.

use base64::Engine;
use serde_json::Value;

// Connect's logical types, by schema name.
pub(crate) const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
pub(crate) const DATE: &str = "org.apache.kafka.connect.data.Date";
pub(crate) const TIME: &str = "org.apache.kafka.connect.data.Time";
pub(crate) const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

pub(crate) fn s_type(s: &Value) -> &str {
    s.get("type").and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn s_optional(s: &Value) -> bool {
    s.get("optional").and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn s_name(s: &Value) -> Option<&str> {
    s.get("name").and_then(Value::as_str)
}

/// The schema's default (a JSON null default is no default).
pub(crate) fn s_default(s: &Value) -> Option<&Value> {
    s.get("default").filter(|d| !d.is_null())
}

pub(crate) fn params(s: &Value) -> Vec<(&str, &Value)> {
    match s.get("parameters") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn param<'a>(s: &'a Value, key: &str) -> Option<&'a Value> {
    s.get("parameters").and_then(|p| p.get(key))
}

pub(crate) fn param_str(s: &Value, key: &str) -> Option<String> {
    param(s, key).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

pub(crate) fn fields(s: &Value) -> &[Value] {
    s.get("fields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn field_name(f: &Value) -> &str {
    f.get("field").and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn decimal_scale(s: &Value) -> Result<i64, String> {
    match param_str(s, "scale") {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| format!("Decimal scale `{v}` is not an integer")),
    }
}

pub(crate) fn non_optional(s: &Value) -> Value {
    let mut c = s.clone();
    c["optional"] = Value::Bool(false);
    c
}

pub(crate) fn base64_bytes(v: &Value) -> Result<Vec<u8>, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("{v} where base64 bytes are expected"))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("`{text}` is not base64: {e}"))
}
