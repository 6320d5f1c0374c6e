//! JSON that keeps its objects' keys in insertion order, for schema texts
//! that must read the same every time they are made.

use serde_json::Value;

/// JSON whose objects keep their keys in insertion order: the schema text
/// must come out in the order Avro Java's `Schema.toString` writes (the
/// registry keeps the text as given; the same schema must always read the
/// same so that it is registered once).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J {
    V(Value),
    A(Vec<J>),
    O(Vec<(String, J)>),
}

impl J {
    pub(crate) fn s(v: &str) -> J {
        J::V(Value::String(v.to_owned()))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::O(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(J::V(Value::String(s))) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, in place if present (as a Python dict does), else last.
    pub(crate) fn set(&mut self, key: &str, value: J) {
        if let J::O(entries) = self {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key.to_owned(), value)),
            }
        }
    }

    pub(crate) fn write(&self, out: &mut String) {
        match self {
            J::V(v) => out.push_str(&v.to_string()),
            J::A(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::O(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A plain JSON value as an ordered one (object keys as serde_json holds them).
pub(crate) fn ordered(v: &Value) -> J {
    match v {
        Value::Array(items) => J::A(items.iter().map(ordered).collect()),
        Value::Object(map) => J::O(map.iter().map(|(k, v)| (k.clone(), ordered(v))).collect()),
        other => J::V(other.clone()),
    }
}
