//! Confluent's `io.confluent.connect.protobuf.ProtobufConverter` (default
//! settings), for records the publisher has written in JsonConverter's
//! envelope form (`{"schema", "payload"}`):
//!
//! 1. the Connect schema → the `.proto` file
//!    `ProtobufData.fromConnectSchema` makes: proto3; package and message
//!    name from the struct's name (`ConnectDefault1`, 2, ... when unnamed);
//!    fields numbered 1.. in order; nested structs are nested messages named
//!    by the struct's unqualified name (`Message` appended when that equals
//!    the field's name), defined once per enclosing message; `int8`/`int16`
//!    are `int32` with `confluent.field_meta` params `connect.type`; arrays
//!    are `repeated`; Connect Decimal is `confluent.type.Decimal` with params
//!    `precision`/`scale`; Connect Date/Time/Timestamp are `google.type.Date`
//!    / `google.type.TimeOfDay` / `google.protobuf.Timestamp`; every other
//!    logical name (Debezium's) is dropped (the field is its carrier type);
//!    with `optional.for.nullables` ([`Options`]) optional fields that are
//!    not arrays are proto3 `optional` (`ProtobufData.getLabel`);
//! 2. the payload → Protobuf binary of the same Connect value
//!    ([`encode::write_message`]);
//! 3. registration and framing are the Avro converter's (`AvroConverter`
//!    in the `avro` module, which calls this one): TopicNameStrategy subjects,
//!    `schemaType: PROTOBUF`, the builtin imports not registered as
//!    references (Confluent's serializer skips known dependencies); magic
//!    byte 0 + 4-byte id + message indexes (`0`: the file's first message)
//!    + the message.
//!
//! What is refused (the record is not produced, and the publisher stops
//! before confirming its LSN): Connect maps, nulls inside arrays (which
//! `ProtobufData` cannot write either), and names that are not Protobuf
//! identifiers (`scrub.invalid.names=false`: Confluent's converter fails
//! too). A Connect default is not in the registered text (`ProtobufSchema`
//! prints no proto3 default); a null value takes it (`Struct.get`).

use crate::connect_schema::{
    DATE, DECIMAL, TIME, TIMESTAMP, field_name, fields, param_str, s_name, s_optional, s_type,
};
use serde_json::Value;
use std::collections::HashSet;

pub(crate) mod encode;

pub use encode::write_message;

/// The converter's options sinkfleet implements (the others are accepted
/// at their defaults only: `crate::properties`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `optional.for.nullables` (default false): optional Connect fields
    /// (not arrays) are proto3 `optional`, so that a null is absent and a
    /// zero is present: NULL stays NULL.
    pub optional_for_nullables: bool,
}

/// A Connect logical type `ProtobufData` keeps: (message type, import).
fn logical(s: &Value) -> Option<(&'static str, &'static str)> {
    Some(match s_name(s)? {
        DECIMAL => ("confluent.type.Decimal", "confluent/type/decimal.proto"),
        DATE => ("google.type.Date", "google/type/date.proto"),
        TIME => ("google.type.TimeOfDay", "google/type/timeofday.proto"),
        TIMESTAMP => (
            "google.protobuf.Timestamp",
            "google/protobuf/timestamp.proto",
        ),
        _ => return None,
    })
}

/// Whether `name` is a Protobuf identifier.
fn identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `.proto` text being built.
struct Builder {
    options: Options,
    /// Unnamed structs seen so far (`ConnectDefault<n>`).
    unnamed: u32,
    imports: Vec<&'static str>,
}

impl Builder {
    fn name_or_default(&mut self, name: Option<&str>) -> String {
        match name {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => {
                self.unnamed += 1;
                format!("ConnectDefault{}", self.unnamed)
            }
        }
    }

    fn import(&mut self, path: &'static str) {
        if !self.imports.contains(&path) {
            self.imports.push(path);
        }
    }

    /// `message <name> { ... }` for struct schema `s`, indented by `depth`.
    fn message(&mut self, name: &str, s: &Value, depth: usize) -> Result<String, String> {
        let pad = "  ".repeat(depth);
        let mut body = String::new();
        let mut nested_text = String::new();
        let mut nested: HashSet<String> = HashSet::new();
        for (i, f) in fields(s).iter().enumerate() {
            let fname = field_name(f);
            if !identifier(fname) {
                return Err(format!(
                    "field `{fname}` is not a Protobuf identifier (scrub.invalid.names is off, as by default)"
                ));
            }
            let (label, item) = match s_type(f) {
                "array" => (
                    "repeated ",
                    f.get("items").ok_or("an array schema without items")?,
                ),
                "map" => {
                    return Err(format!(
                        "field `{fname}`: Connect maps are not written by sinkfleet's Protobuf converter"
                    ));
                }
                _ => ("", f),
            };
            let mut params: Vec<(&str, String)> = Vec::new();
            let type_name = if let Some((message, import)) = logical(item) {
                self.import(import);
                if s_name(item) == Some(DECIMAL) {
                    if let Some(p) = param_str(item, "connect.decimal.precision") {
                        params.push(("precision", p));
                    }
                    if let Some(p) = param_str(item, "scale") {
                        params.push(("scale", p));
                    }
                }
                message.to_owned()
            } else {
                match s_type(item) {
                    t @ ("int8" | "int16") => {
                        params.push(("connect.type", t.to_owned()));
                        "int32".to_owned()
                    }
                    "int32" => "int32".to_owned(),
                    "int64" => "int64".to_owned(),
                    "float" => "float".to_owned(),
                    "double" => "double".to_owned(),
                    "boolean" => "bool".to_owned(),
                    "string" => "string".to_owned(),
                    "bytes" => "bytes".to_owned(),
                    "struct" => {
                        let full = self.name_or_default(s_name(item));
                        let mut type_name = full.rsplit('.').next().unwrap_or(&full).to_owned();
                        if type_name == fname {
                            type_name.push_str("Message");
                        }
                        if !identifier(&type_name) {
                            return Err(format!(
                                "struct name `{full}` does not end in a Protobuf identifier"
                            ));
                        }
                        if nested.insert(type_name.clone()) {
                            nested_text.push_str(&self.message(&type_name, item, depth + 1)?);
                        }
                        type_name
                    }
                    "map" => {
                        return Err(format!(
                            "field `{fname}`: an array of maps is not supported"
                        ));
                    }
                    "array" => return Err(format!("field `{fname}`: arrays cannot be nested")),
                    other => {
                        return Err(format!("field `{fname}`: unknown Connect type `{other}`"));
                    }
                }
            };
            let number = i + 1;
            let label = if label.is_empty() && self.options.optional_for_nullables && s_optional(f)
            {
                "optional "
            } else {
                label
            };
            body.push_str(&format!("{pad}  {label}{type_name} {fname} = {number}"));
            if !params.is_empty() {
                self.import("confluent/meta.proto");
                let entries: Vec<String> = params
                    .iter()
                    .map(|(k, v)| format!("{{key: {}, value: {}}}", quote(k), quote(v)))
                    .collect();
                body.push_str(&format!(
                    " [(confluent.field_meta) = {{params: [{}]}}]",
                    entries.join(", ")
                ));
            }
            body.push_str(";\n");
        }
        Ok(format!(
            "{pad}message {name} {{\n{body}{nested_text}{pad}}}\n"
        ))
    }
}

/// A Protobuf text-format string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `.proto` text ProtobufConverter registers for a Connect struct
/// schema (JsonConverter's JSON form).
pub fn proto_schema(connect: &Value, options: Options) -> Result<String, String> {
    if s_type(connect) != "struct" {
        return Err(format!(
            "a {} key or value: only structs are written by sinkfleet's Protobuf converter",
            s_type(connect)
        ));
    }
    let mut b = Builder {
        options,
        unnamed: 0,
        imports: Vec::new(),
    };
    let full = b.name_or_default(s_name(connect));
    let (package, name) = match full.rsplit_once('.') {
        Some((p, n)) => (Some(p.to_owned()), n.to_owned()),
        None => (None, full.clone()),
    };
    if !identifier(&name)
        || package
            .as_deref()
            .is_some_and(|p| !p.split('.').all(identifier))
    {
        return Err(format!(
            "schema name `{full}` is not a Protobuf package and message name"
        ));
    }
    let message = b.message(&name, connect, 0)?;
    let mut text = String::from("syntax = \"proto3\";\n");
    if let Some(p) = package {
        text.push_str(&format!("package {p};\n"));
    }
    text.push('\n');
    b.imports.sort_unstable();
    for import in &b.imports {
        text.push_str(&format!("import \"{import}\";\n"));
    }
    if !b.imports.is_empty() {
        text.push('\n');
    }
    text.push_str(&message);
    Ok(text)
}

#[cfg(test)]
mod tests;
