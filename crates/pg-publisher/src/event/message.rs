//! Logical decoding messages (`pg_logical_emit_message`) as Debezium's
//! message events, on `<topic.prefix>.message`:
//!
//! ```text
//! key:   {"prefix"}                                  (io.debezium.connector.postgresql.MessageKey)
//! value: {"op": "m", "ts_ms", "source", "transaction",
//!         "message": {"prefix", "content"}}          (io.debezium.connector.postgresql.MessageValue)
//! ```
//!
//! `content` is Connect bytes (base64 in JSON), or a string in the other
//! `binary.handling.mode`s. `source.schema` and `source.table` are empty.
//! A transactional message carries its transaction's xid, commit time and
//! commit LSN (first in `sequence`, as every streamed event of this
//! publisher); a non-transactional one has no transaction: `txId` null,
//! its own LSN twice in `sequence`, and the time the publisher read it.

use super::envelope::{self, Source, now_us};
use super::schema;
use crate::config::ConnectorConfig;
use crate::types::{self, options::BinaryMode};
use serde_json::json;

/// The topic of message events: `<topic.prefix>.message`, whatever the
/// topic naming options (as in Debezium).
pub fn topic(cfg: &ConnectorConfig) -> String {
    format!("{}.message", cfg.topic_prefix)
}

/// One logical decoding message, as pgoutput delivers it.
#[derive(Debug, Clone, Copy)]
pub struct LogicalMessage<'a> {
    /// Written inside a transaction (delivered with it, at its commit).
    pub transactional: bool,
    /// The message's LSN (the end of its WAL record).
    pub lsn: u64,
    /// The prefix it was written with.
    pub prefix: &'a str,
    /// Its content.
    pub content: &'a [u8],
}

/// Encodes the message events of one connector.
#[derive(Debug, Clone)]
pub struct MessageCodec {
    source_head: String,
    binary: BinaryMode,
    key_schema: Option<String>,
    value_schema: Option<String>,
}

impl MessageCodec {
    /// The codec of `cfg`'s message events.
    pub fn new(cfg: &ConnectorConfig) -> Self {
        let binary = cfg.types.binary;
        let (key_schema, value_schema) = if cfg.schemas_enable {
            let key = json!({
                "type": "struct",
                "fields": [schema::plain("string", "prefix", true)],
                "optional": false, "name": "io.debezium.connector.postgresql.MessageKey", "version": 1,
            });
            let mut content = types::binary_schema(binary);
            content["optional"] = json!(true);
            content["field"] = json!("content");
            let value = json!({
                "type": "struct",
                "fields": [
                    schema::plain("string", "op", false),
                    schema::plain("int64", "ts_ms", true),
                    schema::source(),
                    schema::transaction(),
                    {
                        "type": "struct",
                        "fields": [schema::plain("string", "prefix", true), content],
                        "optional": false, "name": "io.debezium.connector.postgresql.Message",
                        "version": 1, "field": "message",
                    },
                ],
                "optional": false, "name": "io.debezium.connector.postgresql.MessageValue", "version": 1,
            });
            (Some(key.to_string()), Some(value.to_string()))
        } else {
            (None, None)
        };
        MessageCodec {
            source_head: envelope::source_head(cfg),
            binary,
            key_schema,
            value_schema,
        }
    }

    /// The record key: the prefix.
    pub fn key(&self, prefix: &str) -> Vec<u8> {
        let schema = self.key_schema.as_deref();
        let mut out = Vec::with_capacity(schema.map_or(0, str::len) + 32 + prefix.len());
        envelope::open_envelope(schema, &mut out);
        out.extend_from_slice(br#"{"prefix":"#);
        envelope::push_json_str(&mut out, prefix);
        out.push(b'}');
        envelope::close_envelope(schema, &mut out);
        out
    }

    /// The record value.
    pub fn value(&self, message: &LogicalMessage<'_>, src: &Source<'_>) -> Vec<u8> {
        let schema = self.value_schema.as_deref();
        let mut out =
            Vec::with_capacity(schema.map_or(0, str::len) + 400 + message.content.len() * 4 / 3);
        envelope::open_envelope(schema, &mut out);
        out.extend_from_slice(br#"{"op":"m","ts_ms":"#);
        envelope::push_int(&mut out, now_us().div_euclid(1000));
        out.extend_from_slice(br#","source":"#);
        envelope::write_source(
            &mut out,
            &self.source_head,
            r#""schema":"","table":"""#,
            src,
        );
        out.extend_from_slice(br#","transaction":"#);
        envelope::write_transaction(&mut out, src.transaction.as_ref());
        out.extend_from_slice(br#","message":{"prefix":"#);
        envelope::push_json_str(&mut out, message.prefix);
        out.extend_from_slice(br#","content":"#);
        // Writing a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, &types::binary(message.content, self.binary));
        out.extend_from_slice(b"}}");
        envelope::close_envelope(schema, &mut out);
        out
    }
}

/// `message.prefix.include.list` / `message.prefix.exclude.list`: which
/// prefixes are published (anchored, case-insensitive regexes, as in
/// Debezium; neither set: all).
#[derive(Debug, Clone, Default)]
pub struct PrefixFilter {
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
}

impl PrefixFilter {
    /// The filter of `cfg` (its patterns were checked when it was read).
    pub fn new(cfg: &ConnectorConfig) -> Result<Self, String> {
        Ok(PrefixFilter {
            include: crate::config::column_patterns(&cfg.message_prefix_include)?,
            exclude: crate::config::column_patterns(&cfg.message_prefix_exclude)?,
        })
    }

    /// Whether messages of `prefix` are published.
    pub fn captures(&self, prefix: &str) -> bool {
        if !self.include.is_empty() {
            return self.include.iter().any(|r| r.is_match(prefix));
        }
        !self.exclude.iter().any(|r| r.is_match(prefix))
    }
}
