//! Debezium events in Protobuf, as Kafka Connect's `ProtobufConverter`
//! writes them through a Schema Registry (Confluent wire format: magic
//! byte 0, a 4-byte schema id, the message indexes, Protobuf binary).
//!
//! A registry schema (`.proto` text, or the base64 `FileDescriptorProto`
//! the Python serializer registers) is compiled once per id with protox.
//! Each of its messages is translated once into a [`plan::Plan`]: the
//! Connect schema `JsonConverter` would have written for it (so a column
//! gets the same type and codec as its JSON twin) and how to read its
//! values, which then go through the same cell decoding as Avro's, and so
//! the same [`super::values::decode`] and refusals as JSON.
//!
//! What `ProtobufData` keeps under its default settings, and so what can
//! be read exactly, is documented on [`plan`].

mod builtin;
mod frame;
pub(crate) mod plan;
mod read;

pub(crate) use frame::frame;

use super::declared::DeclaredColumns;
use super::schema::{self, RowCodec};
use crate::change::ColumnType;
use crate::error::DecodeError;
use apache_avro::types::Value as Avro;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use plan::MessagePlan;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use protox::file::{File, FileResolver};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The name the registry schema is compiled under.
const ROOT: &str = "registry-schema.proto";

/// One registry schema, compiled and translated for decoding.
#[derive(Debug)]
pub struct ProtobufSchema {
    /// The schema's top-level messages in file order (message index 0,
    /// 1, ...), each translated or why it is refused.
    messages: Vec<Result<Arc<Message>, String>>,
    /// The compiled file, for nested messages (longer message indexes).
    file: prost_reflect::FileDescriptor,
}

/// One message type, translated.
#[derive(Debug)]
pub(crate) struct Message {
    desc: MessageDescriptor,
    plan: Arc<MessagePlan>,
    /// The row codec: the `after` struct of an envelope, or the message.
    row: Arc<RowCodec>,
    names: Vec<Arc<str>>,
    envelope: bool,
    /// Per row column: true when the field is a bare carrier (a scalar or
    /// an array of them) whose Connect logical name `ProtobufData` dropped.
    carriers: Vec<bool>,
    /// Row codecs with `decode.columns` declarations, by table.
    declared: Mutex<HashMap<String, Arc<RowCodec>>>,
}

/// The registry schema: `.proto` text, or base64 of a serialized
/// `FileDescriptorProto` (as the Python serializer registers schemas),
/// under its own name; imports only of builtin files.
struct RegistryFile {
    name: String,
    source: Source,
    builtins: builtin::Builtins,
}

enum Source {
    Text(String),
    Descriptor(Vec<u8>),
}

impl RegistryFile {
    fn new(text: &str) -> Self {
        let (name, source) = match descriptor_proto(text) {
            Some((name, bytes)) => (name, Source::Descriptor(bytes)),
            None => (ROOT.to_owned(), Source::Text(text.to_owned())),
        };
        RegistryFile {
            name,
            source,
            builtins: builtin::Builtins::new(),
        }
    }
}

impl FileResolver for RegistryFile {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.name {
            return match &self.source {
                // Decoded by protox from the bytes, so the options'
                // extensions (`confluent.field_meta`) are kept.
                Source::Descriptor(bytes) => File::decode_file_descriptor_proto(bytes.as_slice())
                    .map_err(|e| protox::Error::new(e.to_string())),
                Source::Text(text) => File::from_source(name, text),
            };
        }
        if builtin::is_builtin(name) {
            return self.builtins.open_file(name);
        }
        Err(protox::Error::file_not_found(name))
    }
}

/// The name and bytes of a base64 serialized `FileDescriptorProto`;
/// `None` for anything else (`.proto` text).
fn descriptor_proto(text: &str) -> Option<(String, Vec<u8>)> {
    use prost::Message as _;
    let trimmed = text.trim();
    if trimmed.contains(char::is_whitespace) {
        return None;
    }
    let bytes = BASE64.decode(trimmed).ok()?;
    let proto = prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    let name = proto.name.filter(|n| !n.is_empty())?;
    Some((name, bytes))
}

impl ProtobufSchema {
    /// Compiles a schema's text as the registry returned it. Imports of
    /// files other than the builtin ones (references to other registry
    /// subjects) are refused: they are not fetched.
    pub fn parse(text: &str) -> Result<Self, String> {
        let resolver = RegistryFile::new(text);
        let root = resolver.name.clone();
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler.open_file(&root).map_err(|e| {
            let e = e.to_string();
            if e.contains("not found") {
                format!(
                    "{e}: the schema imports a file that is no builtin (a reference to \
                     another registry subject), and references are not resolved"
                )
            } else {
                e
            }
        })?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(&root)
            .ok_or("the compiled schema lost its file")?;
        let messages = file
            .messages()
            .map(|desc| Message::translate(desc).map(Arc::new))
            .collect();
        Ok(ProtobufSchema { messages, file })
    }

    /// The message a record's indexes name. Top-level messages are
    /// translated once, with the schema; a nested one (which Kafka Connect
    /// never names: its envelope is the file's first message) is translated
    /// for each record that names it.
    pub(crate) fn message(&self, indexes: &[usize]) -> Result<Arc<Message>, String> {
        let (first, nested) = indexes.split_first().ok_or("no message index")?;
        let unknown = || format!("message indexes {indexes:?} name no message of the schema");
        if nested.is_empty() {
            return self.messages.get(*first).ok_or_else(unknown)?.clone();
        }
        let mut desc = self.file.messages().nth(*first).ok_or_else(unknown)?;
        for i in nested {
            let child = desc.child_messages().nth(*i);
            desc = child.ok_or_else(unknown)?;
        }
        Message::translate(desc).map(Arc::new)
    }
}

impl Message {
    fn translate(desc: MessageDescriptor) -> Result<Self, String> {
        let plan = Arc::new(plan::message(&desc, 0)?);
        let connect = plan.connect();
        let fields = connect["fields"].as_array().cloned().unwrap_or_default();
        let field = |name: &str| fields.iter().find(|f| f["field"] == name);
        let envelope = field("op").is_some() && field("source").is_some();
        let row_schema = if envelope {
            field("after").or(field("before"))
        } else {
            Some(&connect)
        };
        let row = match row_schema {
            Some(s) if s["type"] == "struct" => {
                schema::parse_struct(s, if envelope { "schema.after" } else { "schema" })
                    .map_err(|e| e.to_string())?
            }
            _ => return Err(format!("message {} is no struct", desc.full_name())),
        };
        let names = row
            .schema
            .columns
            .iter()
            .map(|c| Arc::<str>::from(c.name.as_str()))
            .collect();
        let row_plan = if envelope {
            plan.fields
                .iter()
                .filter(|f| f.name == "after" || f.name == "before")
                .find_map(|f| match &f.plan {
                    plan::Plan::Struct(m) => Some(Arc::clone(m)),
                    _ => None,
                })
        } else {
            Some(Arc::clone(&plan))
        };
        let carriers = row_plan
            .map(|m| m.fields.iter().map(|f| f.plan.is_carrier()).collect())
            .unwrap_or_default();
        Ok(Message {
            desc,
            plan,
            row: Arc::new(row),
            names,
            envelope,
            carriers,
            declared: Mutex::new(HashMap::new()),
        })
    }

    /// The row codec (the `after` struct of an envelope, or the message).
    pub(crate) fn row_codec(&self) -> &Arc<RowCodec> {
        &self.row
    }

    /// The row codec for rows of `table` (`schema.table`): a column whose
    /// field is a bare carrier takes the type `decode.columns` declares for
    /// it (the Debezium logical name `ProtobufData` dropped, given back by
    /// the user); every other column keeps the schema's type.
    pub(crate) fn row_codec_for(&self, table: &str, declared: &DeclaredColumns) -> Arc<RowCodec> {
        if declared.is_empty() {
            return Arc::clone(&self.row);
        }
        let mut cache = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(codec) = cache.get(table) {
            return Arc::clone(codec);
        }
        let names = self.row.schema.columns.iter().map(|c| c.name.as_str());
        let codec = match declared.row_codec(table, names) {
            None => Arc::clone(&self.row),
            Some(decl) => {
                let mut schema = (*self.row.schema).clone();
                let mut codecs = self.row.codecs.clone();
                for (i, column) in schema.columns.iter_mut().enumerate() {
                    let ty = &decl.schema.columns[i].ty;
                    if self.carriers.get(i) == Some(&true) && *ty != ColumnType::Inferred {
                        column.ty = ty.clone();
                        codecs[i] = decl.codecs[i].clone();
                    }
                }
                Arc::new(RowCodec {
                    schema: Arc::new(schema),
                    codecs,
                })
            }
        };
        cache.insert(table.to_owned(), Arc::clone(&codec));
        codec
    }

    /// The row's column names.
    pub(crate) fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// True for a Debezium change event envelope.
    pub(crate) fn is_envelope(&self) -> bool {
        self.envelope
    }

    /// Decodes a record's Protobuf body into its top-level fields, as
    /// the values Avro's decoding reads (see [`read`]).
    pub(crate) fn datum(
        &self,
        part: &'static str,
        id: u32,
        body: &[u8],
    ) -> Result<Vec<(String, Avro)>, DecodeError> {
        let mismatch = |message: String| DecodeError::SchemaMismatch { part, id, message };
        let message = DynamicMessage::decode(self.desc.clone(), body).map_err(|e| {
            mismatch(format!(
                "undecodable payload: it does not decode as {}: {e}",
                self.desc.full_name()
            ))
        })?;
        read::message(message, &self.plan).map_err(|e| {
            mismatch(format!(
                "payload does not match its schema ({}): {e}",
                self.desc.full_name()
            ))
        })
    }
}

#[cfg(test)]
mod tests;
