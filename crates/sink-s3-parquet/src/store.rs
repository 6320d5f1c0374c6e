//! The object store: one code path for a local directory and S3.
//!
//! Durability is the store's answer: a `put` (or a completed multipart
//! upload) that returned `Ok` is a complete object that survives us. Local
//! files are written to a temporary name and renamed, so a crash never
//! leaves a half-written object under a real name; an interrupted multipart
//! upload leaves only parts that are not an object (abort them with a
//! bucket lifecycle rule).

use crate::config::{ParquetSinkConfig, Target};
use crate::layout::{FileKey, Layout, parse_file_name};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Certificate, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use parquet::file::metadata::ParquetMetaDataReader;
use sinkfleet_core::error::with_causes;
use sinkfleet_core::{ConfigError, SinkError};
use std::sync::Arc;

/// Footer key: the last Kafka offset a file holds.
pub const LAST_OFFSET_KEY: &str = "sinkfleet.last_offset";

/// Opens the configured store.
pub fn open(cfg: &ParquetSinkConfig) -> Result<Arc<dyn ObjectStore>, ConfigError> {
    match &cfg.target {
        Target::Local { path } => {
            std::fs::create_dir_all(path).map_err(|e| {
                ConfigError::new(
                    "sink.s3_parquet.target.local.path",
                    format!("`{path}`: {e}"),
                )
            })?;
            let fs = LocalFileSystem::new_with_prefix(path)
                .map_err(|e| ConfigError::new("sink.s3_parquet.target.local", e))?;
            Ok(Arc::new(fs))
        }
        Target::S3(s3) => {
            let mut builder = AmazonS3Builder::new();
            if let Some(path) = &s3.ca_cert {
                builder = builder.with_client_options(private_ca(path)?);
            }
            // The environment (AWS_*) as `AmazonS3Builder::from_env` reads
            // it, on top of the CA; then what the config sets explicitly.
            for (key, value) in std::env::vars_os() {
                if let (Some(key), Some(value)) = (key.to_str(), value.to_str())
                    && key.starts_with("AWS_")
                    && let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
                {
                    builder = builder.with_config(key, value);
                }
            }
            let mut builder = builder
                .with_retry(request_retries())
                .with_bucket_name(&s3.bucket)
                .with_virtual_hosted_style_request(!s3.path_style)
                .with_allow_http(s3.allow_http);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(region) = &s3.region {
                builder = builder.with_region(region);
            }
            if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            let store = builder
                .build()
                .map_err(|e| ConfigError::new("sink.s3_parquet.target.s3", e))?;
            Ok(Arc::new(store))
        }
    }
}

/// Client options trusting only the CA(s) in the PEM file at `path`.
fn private_ca(path: &str) -> Result<ClientOptions, ConfigError> {
    let bad = |e: String| {
        ConfigError::new(
            "sink.s3_parquet.target.s3.ca_cert",
            format!("`{path}`: {e}"),
        )
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs
        .into_iter()
        .fold(ClientOptions::new(), ClientOptions::with_root_certificate)
        .with_no_system_certificates(true))
}

/// Retries inside one store request: a few, within seconds. The writer
/// retries a failed upload itself (with backoff, partitions paused), and
/// between its attempts it hears about revoked partitions; the client's
/// default (10 retries over up to 3 minutes) would hold one attempt, and
/// an upload for a partition this process no longer owns, that long.
fn request_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// Store errors: a missing bucket, bad credentials or a refused request
/// are configuration problems an operator must fix, but they are also what
/// a store says while it is briefly unavailable. Both are retried (the
/// partitions pause and the error is visible), never turned into dead
/// letters: no record is at fault.
fn retryable(what: &str, e: object_store::Error) -> SinkError {
    SinkError::Retryable(format!("object store: {what}: {}", with_causes(&e)))
}

/// Writes one complete object; large ones as a multipart upload.
pub async fn upload(
    store: &dyn ObjectStore,
    name: &str,
    data: Bytes,
    cfg: &ParquetSinkConfig,
) -> Result<(), SinkError> {
    let path = Path::from(name);
    if data.len() < cfg.multipart_threshold_bytes {
        store
            .put(&path, PutPayload::from(data))
            .await
            .map_err(|e| retryable(&format!("put {name}"), e))?;
    } else {
        let upload = store
            .put_multipart(&path)
            .await
            .map_err(|e| retryable(&format!("start multipart {name}"), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, cfg.multipart_part_bytes);
        writer.put(data);
        writer
            .finish()
            .await
            .map_err(|e| retryable(&format!("multipart {name}"), e))?;
    }
    if let Target::Local { path: root } = &cfg.target {
        sync_local(std::path::Path::new(root).join(name)).await?;
    }
    Ok(())
}

/// Flushes a local object and its directory entries to disk.
/// `LocalFileSystem` writes a staging file and renames it, which survives a
/// crash of this process but not of the machine: without this, an offset
/// committed after a power loss could point past a file that is gone.
async fn sync_local(file: std::path::PathBuf) -> Result<(), SinkError> {
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::File::open(&file)?.sync_all()?;
        // The rename lives in the file's directory; a directory created for
        // it (a new `date=` one) in the directory above.
        let mut dir = file.parent();
        for _ in 0..2 {
            let Some(d) = dir else { break };
            std::fs::File::open(d)?.sync_all()?;
            dir = d.parent();
        }
        Ok(())
    })
    .await
    .map_err(|e| SinkError::Retryable(format!("fsync: {e}")))?
    .map_err(|e| SinkError::Retryable(format!("fsync: {e}")))
}

/// The newest object of `key`'s table and partition, and the last offset
/// it holds (read from its Parquet footer); `None` if there is none.
///
/// Files of one table and partition never overlap and their names sort by
/// first offset, so the newest one ends where everything written ends.
pub async fn last_written(
    store: &dyn ObjectStore,
    layout: &Layout,
    key: &FileKey,
) -> Result<Option<(String, i64)>, SinkError> {
    let prefix = layout.list_prefix(key);
    let listing: Vec<_> = store
        .list(
            (!prefix.is_empty())
                .then(|| Path::from(prefix.as_str()))
                .as_ref(),
        )
        .try_collect()
        .await
        .map_err(|e| retryable(&format!("list {prefix}"), e))?;
    let newest = listing
        .into_iter()
        .filter_map(|meta| {
            let name = meta.location.to_string();
            let (topic, partition, first) = parse_file_name(&name)?;
            (topic == &*key.topic && partition == key.partition).then_some((first, name, meta.size))
        })
        .max_by_key(|(first, _, _)| *first);
    let Some((_, name, size)) = newest else {
        return Ok(None);
    };
    let last = footer_last_offset(store, &name, size).await?;
    Ok(Some((name, last)))
}

/// Reads `sinkfleet.last_offset` from an object's Parquet footer: two
/// ranged reads (the footer length, then the footer), not the whole file.
async fn footer_last_offset(
    store: &dyn ObjectStore,
    name: &str,
    size: u64,
) -> Result<i64, SinkError> {
    let path = Path::from(name);
    let corrupt = |why: String| {
        SinkError::schema(format!(
            "object {name} is not a complete sinkfleet Parquet file ({why}); \
             move it away so the partition can be reconciled"
        ))
    };
    if size < 12 {
        return Err(corrupt("too short".into()));
    }
    let tail = store
        .get_range(&path, size - 8..size)
        .await
        .map_err(|e| retryable(&format!("read {name}"), e))?;
    if &tail[4..] != b"PAR1" {
        return Err(corrupt("no PAR1 trailer".into()));
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len + 12 > size {
        return Err(corrupt("footer length out of range".into()));
    }
    let footer = store
        .get_range(&path, size - 8 - footer_len..size - 8)
        .await
        .map_err(|e| retryable(&format!("read {name}"), e))?;
    let metadata =
        ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| corrupt(e.to_string()))?;
    metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == LAST_OFFSET_KEY))
        .and_then(|kv| kv.value.as_deref())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(format!("no {LAST_OFFSET_KEY} in the footer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_cannot_be_made_is_a_configuration_error_naming_its_key() {
        let cfg: ParquetSinkConfig = serde_json::from_value(serde_json::json!({
            "target": {"local": {"path": "/proc/sinkfleet-cannot-be-made"}}
        }))
        .expect("config");
        let Err(e) = open(&cfg) else {
            panic!("a directory under /proc was accepted")
        };
        assert_eq!(e.key, "sink.s3_parquet.target.local.path");
    }
}
