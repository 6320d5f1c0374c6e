//! Encodes change events the way Debezium's PostgreSQL connector does
//! (JsonConverter, with or without `schemas.enable`).

use base64::Engine;
use serde_json::{Map, Value, json};

/// A column of a generated table: name, Connect type, optional logical name
/// and parameters.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Connect physical type (`int64`, `string`, `bytes`, ...).
    pub connect_type: &'static str,
    /// Logical name (`org.apache.kafka.connect.data.Decimal`, ...).
    pub logical: Option<&'static str>,
    /// Schema parameters (`scale`, ...).
    pub parameters: Option<Value>,
    /// Nullable.
    pub optional: bool,
}

/// A generated source table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Source schema.
    pub schema: &'static str,
    /// Source table.
    pub table: &'static str,
    /// Primary key column names.
    pub key: Vec<&'static str>,
    /// Columns in order.
    pub columns: Vec<Column>,
}

/// Debezium's stand-in for an unchanged TOAST value.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

impl Table {
    fn field_schema(c: &Column) -> Value {
        let mut f = json!({"type": c.connect_type, "optional": c.optional, "field": c.name});
        if let Some(l) = c.logical {
            f["name"] = json!(l);
            f["version"] = json!(1);
        }
        if let Some(p) = &c.parameters {
            f["parameters"] = p.clone();
        }
        f
    }

    fn row_schema(&self, columns: &[&Column], field: &str) -> Value {
        json!({
            "type": "struct",
            "fields": columns.iter().map(|c| Self::field_schema(c)).collect::<Vec<_>>(),
            "optional": true,
            "name": format!("app.{}.{}.Value", self.schema, self.table),
            "field": field,
        })
    }

    /// A row as JSON text with its columns in table order (then any others),
    /// as the connector writes it: a `Map` alone would sort them by name.
    fn row_text(&self, row: &Map<String, Value>) -> String {
        let known = self
            .columns
            .iter()
            .filter_map(|c| row.get_key_value(c.name));
        let others = row
            .iter()
            .filter(|(k, _)| !self.columns.iter().any(|c| c.name == k.as_str()));
        object(
            known
                .chain(others)
                .map(|(k, v)| (k.as_str(), v.to_string())),
        )
    }

    /// The Kafka key: `{"id": ..}`, optionally with its schema envelope.
    pub fn key(&self, row: &Map<String, Value>, with_schema: bool) -> Vec<u8> {
        let mut payload = Map::new();
        for k in &self.key {
            payload.insert((*k).to_owned(), row.get(*k).cloned().unwrap_or(Value::Null));
        }
        let payload = self.row_text(&payload);
        let v = if with_schema {
            let cols: Vec<&Column> = self
                .columns
                .iter()
                .filter(|c| self.key.contains(&c.name))
                .collect();
            let mut schema = self.row_schema(&cols, "key");
            if let Some(obj) = schema.as_object_mut() {
                obj.remove("field");
                // Debezium's key schema is required (a row image is not).
                obj.insert("optional".into(), Value::Bool(false));
            }
            object([("schema", schema.to_string()), ("payload", payload)])
        } else {
            payload
        };
        v.into_bytes()
    }

    /// A change event value. `columns` limits the schema to the columns
    /// known at that point (a column added mid-stream appears later).
    #[allow(clippy::too_many_arguments)]
    pub fn value(
        &self,
        op: &str,
        before: Option<&Map<String, Value>>,
        after: Option<&Map<String, Value>>,
        commit_lsn: u64,
        lsn: u64,
        columns: usize,
        with_schema: bool,
    ) -> Vec<u8> {
        let source = json!({
            "version": "2.7.0.Final", "connector": "postgresql", "name": "app",
            "ts_ms": 1_700_000_000_000u64 + lsn, "snapshot": if op == "r" { "true" } else { "false" },
            "db": "app", "sequence": format!("[\"{commit_lsn}\",\"{lsn}\"]"),
            "schema": self.schema, "table": self.table, "txId": lsn / 10, "lsn": lsn, "xmin": null,
        });
        let image = |row: Option<&Map<String, Value>>| match row {
            Some(row) => self.row_text(row),
            None => "null".to_owned(),
        };
        // Debezium's field order: before, after, source, op, ts_ms, ...
        let payload = object([
            ("before", image(before)),
            ("after", image(after)),
            ("source", source.to_string()),
            ("op", json!(op).to_string()),
            ("ts_ms", (1_700_000_000_000u64 + lsn).to_string()),
            ("transaction", "null".to_owned()),
        ]);
        let v = if with_schema {
            let cols: Vec<&Column> = self.columns.iter().take(columns).collect();
            let schema = json!({
                    "type": "struct",
                    "fields": [
                        self.row_schema(&cols, "before"),
                        self.row_schema(&cols, "after"),
                        // Debezium's PostgreSQL `source` block, declared
                        // as the connector declares it.
                        {"type": "struct", "fields": [
                            {"type": "string", "optional": false, "field": "version"},
                            {"type": "string", "optional": false, "field": "connector"},
                            {"type": "string", "optional": false, "field": "name"},
                            {"type": "int64", "optional": false, "field": "ts_ms"},
                            {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
                             "parameters": {"allowed": "true,last,false,incremental"}, "default": "false", "field": "snapshot"},
                            {"type": "string", "optional": false, "field": "db"},
                            {"type": "string", "optional": true, "field": "sequence"},
                            {"type": "string", "optional": false, "field": "schema"},
                            {"type": "string", "optional": false, "field": "table"},
                            {"type": "int64", "optional": true, "field": "txId"},
                            {"type": "int64", "optional": true, "field": "lsn"},
                            {"type": "int64", "optional": true, "field": "xmin"},
                        ], "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source"},
                        {"type": "string", "optional": false, "field": "op"},
                        {"type": "int64", "optional": true, "field": "ts_ms"},
                        {"type": "struct", "fields": [
                            {"type": "string", "optional": false, "field": "id"},
                            {"type": "int64", "optional": false, "field": "total_order"},
                            {"type": "int64", "optional": false, "field": "data_collection_order"},
                        ], "optional": true, "name": "event.block", "version": 1, "field": "transaction"},
                    ],
                    "optional": false,
                    "name": format!("app.{}.{}.Envelope", self.schema, self.table),
            });
            // The JsonConverter writes the schema first.
            object([("schema", schema.to_string()), ("payload", payload)])
        } else {
            payload
        };
        v.into_bytes()
    }
}

/// A JSON object from `(name, JSON text)` pairs, in the order given.
fn object<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json!(name).to_string());
        out.push(':');
        out.push_str(&value);
    }
    out.push('}');
    out
}

/// Connect's Decimal encoding: big-endian two's complement of the unscaled value.
pub fn decimal_bytes(unscaled: i64) -> String {
    let bytes = unscaled.to_be_bytes();
    // Shortest two's-complement form.
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}
