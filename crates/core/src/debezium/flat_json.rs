//! The JSON path of flattened records: decode the flat row (and the key)
//! with the usual codecs and caches, then hand them to [`Flattener`].

use super::flattened::{FlatRecord, FlattenedOptions, Flattener};
use super::schema::RowCodec;
use super::{Decoder, json_err, prefix, whole, wire};
use crate::change::{Change, Row};
use crate::error::DecodeError;
use serde_json::value::RawValue;
use std::sync::Arc;

impl Decoder {
    /// Decodes one record of a flattened topic (see [`super::flattened`]).
    pub(super) fn decode_flat(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
        flat: &FlattenedOptions,
    ) -> Result<Option<Change>, DecodeError> {
        let Some(value) = value else {
            return self.flat_tombstone(key, offset, flat);
        };
        let (raw, codec) = match self.value_prefixes.find(value).and_then(|(codec, rest)| {
            prefix::payload::<&RawValue>(rest).map(|payload| (payload, codec))
        }) {
            Some(found) => found,
            None => {
                let top: &RawValue =
                    serde_json::from_slice(value).map_err(|e| json_err("value", e))?;
                match self.flat_envelope(top)? {
                    Some((schema, payload)) => {
                        let codec = match schema.get() {
                            "null" => Arc::new(RowCodec::default()),
                            text => {
                                let codec = self.codec(text, "schema", whole)?;
                                self.value_prefixes.remember(value, text, &codec);
                                codec
                            }
                        };
                        (payload, codec)
                    }
                    // A bare row (schemas.enable=false).
                    None => (top, Arc::new(RowCodec::default())),
                }
            }
        };
        if raw.get() == "null" {
            return self.flat_tombstone(key, offset, flat);
        }
        let mut unchanged = Vec::new();
        let row = wire::decode_row(
            raw,
            &codec,
            "value",
            Some(&mut unchanged),
            &mut self.value_names,
        )?;
        let table = Flattener::table_of(&row, flat)?;
        let key_columns = self.opts.key_columns_for(&table).map(<[String]>::to_vec);
        let key = match (key_columns.is_some(), key) {
            (false, Some(raw)) => Some(self.flat_key(raw, Some(&codec))?),
            _ => None,
        };
        let record = FlatRecord {
            row,
            schema: (!codec.schema.columns.is_empty()).then(|| Arc::clone(&codec.schema)),
            unchanged,
            key,
            offset,
        };
        self.flattener
            .change(record, &self.opts.version, key_columns.as_deref(), flat)
            .map(Some)
    }

    /// `Some((schema, payload))` for a JsonConverter envelope: an object of
    /// exactly those two fields (a bare row may have columns of those
    /// names, but not only them).
    fn flat_envelope<'v>(
        &self,
        top: &'v RawValue,
    ) -> Result<Option<(&'v RawValue, &'v RawValue)>, DecodeError> {
        if !top.get().starts_with('{') {
            return Err(super::field("value", "expected an object"));
        }
        let envelope: wire::KeyEnvelope<'v> =
            serde_json::from_str(top.get()).map_err(|e| json_err("value", e))?;
        let (Some(schema), Some(payload)) = (envelope.schema, envelope.payload) else {
            return Ok(None);
        };
        let names = wire::column_names(top).map_err(|e| json_err("value", e))?;
        Ok((names.len() == 2).then_some((schema, payload)))
    }

    fn flat_tombstone(
        &mut self,
        key: Option<&[u8]>,
        offset: i64,
        flat: &FlattenedOptions,
    ) -> Result<Option<Change>, DecodeError> {
        let key = match key {
            Some(raw) if flat.deletes == super::FlatDeletes::Tombstone => {
                Some(self.flat_key(raw, None)?)
            }
            _ => None,
        };
        self.flattener
            .tombstone(key, offset, &self.opts.version, flat)
    }

    /// The Kafka key as a row: with its own schema's codec, else the value
    /// row's (schema-less keys), else inferred.
    pub(super) fn flat_key(
        &mut self,
        raw: &[u8],
        value: Option<&Arc<RowCodec>>,
    ) -> Result<Row, DecodeError> {
        let (raw, key_codec) = self.key_row(raw)?;
        let fallback = RowCodec::default();
        let codec = key_codec
            .as_deref()
            .or(value.map(Arc::as_ref))
            .unwrap_or(&fallback);
        wire::decode_row(raw, codec, "key", None, &mut self.key_names)
    }
}
