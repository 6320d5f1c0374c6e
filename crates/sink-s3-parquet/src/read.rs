//! Reading the sink's output back: every object under a prefix, decoded.
//! For tests, tools and checks; readers in production use their own engine
//! (DuckDB, ClickHouse, Spark: see docs/sinks/parquet.md).

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sinkfleet_core::SinkError;

/// Every `.parquet` object under `prefix` (empty: all), in name order,
/// with its record batches.
pub async fn objects(
    store: &dyn ObjectStore,
    prefix: &str,
) -> Result<Vec<(String, Vec<RecordBatch>)>, SinkError> {
    let err = |e: String| SinkError::Retryable(format!("reading {prefix}: {e}"));
    let mut listing: Vec<_> = store
        .list((!prefix.is_empty()).then(|| Path::from(prefix)).as_ref())
        .try_collect()
        .await
        .map_err(|e| err(e.to_string()))?;
    listing.retain(|m| m.location.as_ref().ends_with(".parquet"));
    listing.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Vec::with_capacity(listing.len());
    for meta in listing {
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|e| err(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| err(e.to_string()))?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| err(format!("{}: {e}", meta.location)))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("{}: {e}", meta.location)))?;
        out.push((meta.location.to_string(), batches));
    }
    Ok(out)
}
