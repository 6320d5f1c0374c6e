//! Configuration of the Parquet sink (`sink.s3_parquet` in the YAML file).

use serde::Deserialize;
use sinkfleet_core::IdentifierPolicy;

/// `sink.s3_parquet` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Where objects go: a local directory or an S3 bucket.
    pub target: Target,
    /// Key prefix inside the target (no leading or trailing `/` needed).
    #[serde(default)]
    pub prefix: String,
    /// Directory layout under the prefix. Placeholders: `{schema}`,
    /// `{table}` (both required, so two tables never share a directory),
    /// `{date}` (`YYYY-MM-DD` of the file's first change at the source),
    /// `{topic}`, `{partition}`. The object name inside it is always
    /// `<topic>+<partition>+<first offset>.parquet`.
    #[serde(default = "defaults::path")]
    pub path: String,
    /// When an open file is closed and uploaded.
    #[serde(default)]
    pub rotation: Rotation,
    /// Rows per Parquet row group (at most).
    #[serde(default = "defaults::row_group_rows")]
    pub row_group_rows: usize,
    /// Encoded bytes at which a row group is closed early.
    #[serde(default = "defaults::row_group_bytes")]
    pub row_group_bytes: usize,
    /// Column compression.
    #[serde(default)]
    pub compression: Compression,
    /// Bound on the bytes held by all open files together; past it the
    /// largest files are closed and uploaded early.
    #[serde(default = "defaults::max_buffer_bytes")]
    pub max_buffer_bytes: usize,
    /// Objects at least this large are uploaded in parts (multipart).
    #[serde(default = "defaults::multipart_threshold_bytes")]
    pub multipart_threshold_bytes: usize,
    /// Size of each part of a multipart upload (S3 needs at least 5 MiB).
    #[serde(default = "defaults::multipart_part_bytes")]
    pub multipart_part_bytes: usize,
    /// Which schema, table and column names from events are accepted
    /// (`strict` by default); records with other names are dead-lettered.
    /// Schema and table names become directory names.
    #[serde(default)]
    pub identifiers: IdentifierPolicy,
}

/// The object store behind the sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A directory on this machine (created if missing).
    Local {
        /// Directory path.
        path: String,
    },
    /// An S3-compatible bucket.
    S3(S3Target),
}

/// S3 connection settings. Unset credentials and region come from the
/// standard AWS environment variables (`AWS_ACCESS_KEY_ID`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint for S3-compatible servers, e.g. `http://127.0.0.1:59900`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as most S3-compatible
    /// servers want.
    #[serde(default)]
    pub path_style: bool,
    /// Access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints.
    #[serde(default)]
    pub allow_http: bool,
    /// PEM file of the CA(s) an `https://` endpoint's certificate must chain
    /// to, instead of the system's roots (a private CA).
    #[serde(default)]
    pub ca_cert: Option<String>,
}

impl S3Target {
    /// An S3-compatible server (MinIO, moto, ...) at `endpoint`: path-style
    /// requests, region `us-east-1`, plain HTTP allowed when the endpoint
    /// is `http://`, and the given static credentials.
    pub fn compatible(bucket: &str, endpoint: &str, access_key_id: &str, secret: &str) -> Self {
        S3Target {
            bucket: bucket.to_owned(),
            endpoint: Some(endpoint.to_owned()),
            region: Some("us-east-1".to_owned()),
            path_style: true,
            access_key_id: Some(access_key_id.to_owned()),
            secret_access_key: Some(secret.to_owned()),
            allow_http: endpoint.starts_with("http://"),
            ca_cert: None,
        }
    }
}

/// File rotation policy: a file is closed at whichever limit comes first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// Rows per file.
    #[serde(default = "defaults::max_rows")]
    pub max_rows: usize,
    /// Encoded bytes per file.
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: usize,
    /// Wall-clock age of an open file (milliseconds). Bounds how long
    /// records wait before their offsets can be committed.
    #[serde(default = "defaults::max_age_ms")]
    pub max_age_ms: u64,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_rows: defaults::max_rows(),
            max_bytes: defaults::max_bytes(),
            max_age_ms: defaults::max_age_ms(),
        }
    }
}

/// Parquet column compression.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Zstandard (level 3).
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// No compression.
    None,
}

impl ParquetSinkConfig {
    /// A config writing to a local directory, defaults for everything else.
    pub fn local(path: impl Into<String>) -> Self {
        ParquetSinkConfig {
            target: Target::Local { path: path.into() },
            prefix: String::new(),
            path: defaults::path(),
            rotation: Rotation::default(),
            row_group_rows: defaults::row_group_rows(),
            row_group_bytes: defaults::row_group_bytes(),
            compression: Compression::default(),
            max_buffer_bytes: defaults::max_buffer_bytes(),
            multipart_threshold_bytes: defaults::multipart_threshold_bytes(),
            multipart_part_bytes: defaults::multipart_part_bytes(),
            identifiers: IdentifierPolicy::default(),
        }
    }

    /// The share of `max_buffer_bytes` one of `writers` sink instances
    /// keeps its open files under: the bound holds for the whole process.
    pub fn buffer_share(&self, writers: usize) -> usize {
        self.max_buffer_bytes / writers.max(1)
    }

    /// Checks what deserialization cannot: returns `(field path, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, problem: String| problems.push((field.to_owned(), problem));
        for needed in ["{schema}", "{table}"] {
            if !self.path.contains(needed) {
                bad(
                    "path",
                    format!("must contain {needed}: objects of different tables would collide"),
                );
            }
        }
        if let Err(e) = crate::layout::check_template(&self.path) {
            bad("path", e);
        }
        if self.prefix.contains("..") || self.prefix.contains('{') {
            bad("prefix", "must be a plain key prefix".into());
        }
        match &self.target {
            Target::Local { path } if path.is_empty() => {
                bad("target.local.path", "must not be empty".into())
            }
            Target::S3(s3) => {
                if s3.bucket.is_empty() {
                    bad("target.s3.bucket", "must not be empty".into());
                }
                if let Some(endpoint) = &s3.endpoint {
                    if endpoint.starts_with("http://") && !s3.allow_http {
                        bad(
                            "target.s3.endpoint",
                            "is http://: set allow_http: true to permit it".into(),
                        );
                    }
                    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                        bad("target.s3.endpoint", "expected an http(s):// URL".into());
                    }
                }
                if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
                    bad(
                        "target.s3",
                        "set both access_key_id and secret_access_key, or neither".into(),
                    );
                }
            }
            Target::Local { .. } => {}
        }
        if self.rotation.max_rows == 0 {
            bad("rotation.max_rows", "must be at least 1".into());
        }
        if self.rotation.max_age_ms == 0 {
            bad("rotation.max_age_ms", "must be at least 1".into());
        }
        if self.row_group_rows == 0 {
            bad("row_group_rows", "must be at least 1".into());
        }
        if self.row_group_bytes == 0 {
            bad("row_group_bytes", "must be at least 1".into());
        }
        if self.multipart_part_bytes < 5 * 1024 * 1024 {
            bad(
                "multipart_part_bytes",
                "S3 parts must be at least 5 MiB (5242880)".into(),
            );
        }
        if self.max_buffer_bytes < self.rotation.max_bytes {
            bad(
                "max_buffer_bytes",
                "must be at least rotation.max_bytes (one full file)".into(),
            );
        }
        problems
    }
}

mod defaults {
    pub fn path() -> String {
        "{schema}/{table}/date={date}".into()
    }
    pub fn max_rows() -> usize {
        1_000_000
    }
    pub fn max_bytes() -> usize {
        64 * 1024 * 1024
    }
    pub fn max_age_ms() -> u64 {
        60_000
    }
    pub fn row_group_rows() -> usize {
        128 * 1024
    }
    pub fn row_group_bytes() -> usize {
        16 * 1024 * 1024
    }
    pub fn max_buffer_bytes() -> usize {
        256 * 1024 * 1024
    }
    pub fn multipart_threshold_bytes() -> usize {
        16 * 1024 * 1024
    }
    pub fn multipart_part_bytes() -> usize {
        8 * 1024 * 1024
    }
}
