//! The Avro path of flattened records: an `ExtractNewRecordState` row
//! written by `AvroConverter` is a flat record (columns and `__` metadata
//! fields side by side), decoded with its registry schema's codec and
//! handed to [`Flattener`] like the JSON path's rows.

use super::Decoder;
use super::avro;
use super::flattened::{FlatDeletes, FlatRecord, FlattenedOptions, Flattener};
use super::format::Format;
use crate::change::{Change, Row};
use crate::error::DecodeError;
use apache_avro::types::Value as Avro;
use std::sync::Arc;

impl Decoder {
    /// Decodes one Avro record of a flattened topic; its key is in
    /// `key_format` (JSON or Avro).
    pub(super) fn decode_avro_flat(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
        key_format: Format,
        flat: &FlattenedOptions,
    ) -> Result<Option<Change>, DecodeError> {
        let Some(value) = value else {
            let key = match key {
                Some(raw) if flat.deletes == FlatDeletes::Tombstone => {
                    Some(self.flat_key_in(raw, key_format)?)
                }
                _ => None,
            };
            return self
                .flattener
                .tombstone(key, offset, &self.opts.version, flat);
        };
        let (id, schema) = self.avro_held("value", value)?;
        if schema.is_envelope() {
            return Err(DecodeError::UnusableSchema {
                part: "value",
                id,
                message: "the schema is a Debezium change event envelope, but the topic is \
                          read as flattened (decode.flattened)"
                    .into(),
            });
        }
        let (_, body) = avro::frame("value", value)?;
        let fields = schema.datum("value", id, body)?;
        let mut unchanged = Vec::new();
        let row = avro::row(
            Avro::Record(fields),
            schema.row_codec(),
            schema.names(),
            "value",
            Some(&mut unchanged),
        )?;
        let table = Flattener::table_of(&row, flat)?;
        let key_columns = self.opts.key_columns_for(&table).map(<[String]>::to_vec);
        let key = match (key_columns.is_some(), key) {
            (false, Some(raw)) => Some(self.flat_key_in(raw, key_format)?),
            _ => None,
        };
        let codec = schema.row_codec();
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

    /// The Kafka key of a flattened record as a row.
    fn flat_key_in(&mut self, raw: &[u8], key_format: Format) -> Result<Row, DecodeError> {
        match key_format {
            Format::Json => self.flat_key(raw, None),
            Format::Avro => self.avro_key(raw),
            // Refused at start (decode.flattened with these formats).
            other => Err(DecodeError::Framing {
                part: "key",
                message: format!("flattened records' keys are not read in {}", other.name()),
            }),
        }
    }
}
