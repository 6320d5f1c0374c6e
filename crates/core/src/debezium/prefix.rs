//! Recognising a repeated schema envelope by its bytes.
//!
//! With `schemas.enable=true` the JsonConverter writes every record as
//! `{"schema":<schema>,"payload":<payload>}`, and the schema text repeats
//! byte for byte for every record of a table. Scanning that text to find
//! where the payload starts, and hashing it to find its codec, was most of
//! the remaining cost of decoding. A record that starts with the bytes of a
//! recently seen `{"schema":<schema>,"payload":` prefix has that (already
//! validated) schema, and its payload starts right after the prefix: a
//! `memcmp` replaces the scan and the hash.
//!
//! Anything else (other field order, whitespace, a third field, a new
//! schema) misses and takes the general path, which remembers the prefix
//! when the record has this exact layout.

use super::schema::RowCodec;
use serde::Deserialize;
use std::sync::Arc;

/// How many prefixes are kept: a partition mostly carries one table, and a
/// worker's decoder sees a handful of partitions' tables interleaved.
const RECENT: usize = 8;

/// Recently seen envelope prefixes with their codecs, newest first.
#[derive(Debug, Default)]
pub(super) struct Prefixes {
    recent: Vec<(Box<[u8]>, Arc<RowCodec>)>,
}

impl Prefixes {
    /// The codec and the payload's bytes with the closing brace (`<payload>}`)
    /// if `record` starts with a known prefix.
    pub fn find<'r>(&self, record: &'r [u8]) -> Option<(Arc<RowCodec>, &'r [u8])> {
        self.recent.iter().find_map(|(prefix, codec)| {
            let rest = record.strip_prefix(&prefix[..])?;
            Some((Arc::clone(codec), rest))
        })
    }

    /// How many prefixes are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Remembers the prefix `schema` makes, if `record` starts with it (so
    /// the prefix can match the next record of this layout at all).
    pub fn remember(&mut self, record: &[u8], schema: &str, codec: &Arc<RowCodec>) {
        const HEAD: &[u8] = br#"{"schema":"#;
        const TAIL: &[u8] = br#","payload":"#;
        let len = HEAD.len() + schema.len() + TAIL.len();
        let matches = record.len() > len
            && record.starts_with(HEAD)
            && record[HEAD.len()..].starts_with(schema.as_bytes())
            && record[HEAD.len() + schema.len()..].starts_with(TAIL);
        if !matches {
            return;
        }
        if self.recent.len() >= RECENT {
            self.recent.pop();
        }
        self.recent
            .insert(0, (record[..len].into(), Arc::clone(codec)));
    }
}

/// Parses the one JSON value `rest` starts with, which must be followed by
/// the envelope's closing brace and nothing else. `None` when it is not
/// (the caller then takes the general path, which reports the error).
pub(super) fn payload<'r, T: Deserialize<'r>>(rest: &'r [u8]) -> Option<T> {
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
    let value = stream.next()?.ok()?;
    (rest[stream.byte_offset()..].trim_ascii() == b"}").then_some(value)
}
