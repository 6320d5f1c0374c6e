//! One open Parquet file: records of one table from one partition, encoded
//! into memory as they arrive, uploaded as one object when it closes.

use crate::config::{Compression, ParquetSinkConfig};
use crate::encode;
use crate::layout::FileKey;
use crate::store::LAST_OFFSET_KEY;
use arrow_schema::{Field, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use sinkfleet_core::{DurableRange, SinkRecord};
use std::sync::Arc;
use std::time::Instant;

/// A file being filled.
pub struct OpenFile {
    /// Table and partition.
    pub key: FileKey,
    /// Object name, fixed by the first record.
    pub object: String,
    /// Data columns (the file schema without bookkeeping).
    pub data_fields: Arc<Vec<Field>>,
    /// Whether the data columns come from a declared schema.
    pub declared: bool,
    /// Rows so far.
    pub rows: usize,
    /// When the file was opened (wall clock, for age rotation).
    pub opened: Instant,
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    /// Offsets held, as inclusive runs in arrival (= offset) order.
    runs: Vec<(i64, i64)>,
}

/// A closed file: the complete object and the offsets it makes durable.
pub struct ClosedFile {
    /// Object name.
    pub object: String,
    /// The Parquet bytes.
    pub data: Bytes,
    /// Offsets the object holds.
    pub ranges: Vec<DurableRange>,
    /// Rows in it.
    pub rows: usize,
}

impl OpenFile {
    /// Opens a file with `schema` (from [`crate::schema::file_schema`]).
    pub fn open(
        key: FileKey,
        object: String,
        schema: SchemaRef,
        data_fields: Arc<Vec<Field>>,
        declared: bool,
        cfg: &ParquetSinkConfig,
    ) -> Result<Self, String> {
        let compression = match cfg.compression {
            Compression::Zstd => ParquetCompression::ZSTD(ZstdLevel::default()),
            Compression::Snappy => ParquetCompression::SNAPPY,
            Compression::None => ParquetCompression::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(cfg.row_group_rows))
            .set_max_row_group_bytes(Some(cfg.row_group_bytes))
            .set_key_value_metadata(Some(vec![
                KeyValue::new("sinkfleet.topic".into(), key.topic.to_string()),
                KeyValue::new("sinkfleet.partition".into(), key.partition.to_string()),
                KeyValue::new("sinkfleet.table".into(), key.table.to_string()),
            ]))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props))
            .map_err(|e| e.to_string())?;
        Ok(OpenFile {
            key,
            object,
            data_fields,
            declared,
            rows: 0,
            opened: Instant::now(),
            schema,
            writer,
            runs: Vec::new(),
        })
    }

    /// Encodes and appends records (offsets increasing, all past the last
    /// one appended). Nothing is appended if any record does not encode.
    pub fn append(&mut self, records: &[&SinkRecord]) -> Result<(), String> {
        let batch = encode::record_batch(&self.schema, records)?;
        self.writer.write(&batch).map_err(|e| e.to_string())?;
        for r in records {
            let offset = r.position.offset;
            match self.runs.last_mut() {
                Some(run) if run.1 + 1 == offset => run.1 = offset,
                _ => self.runs.push((offset, offset)),
            }
        }
        self.rows += records.len();
        Ok(())
    }

    /// Bytes held in memory: finished row groups plus the one being built.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    /// Finishes the Parquet file (footer with the last offset).
    pub fn close(mut self) -> Result<ClosedFile, String> {
        let last = self.runs.last().map_or(-1, |r| r.1);
        self.writer
            .append_key_value_metadata(KeyValue::new(LAST_OFFSET_KEY.into(), last.to_string()));
        let data = self.writer.into_inner().map_err(|e| e.to_string())?;
        let ranges = self
            .runs
            .iter()
            .map(|&(first, last)| DurableRange {
                topic: Arc::clone(&self.key.topic),
                partition: self.key.partition,
                first,
                last,
            })
            .collect();
        Ok(ClosedFile {
            object: self.object,
            data: Bytes::from(data),
            ranges,
            rows: self.rows,
        })
    }
}
