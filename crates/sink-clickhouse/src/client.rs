//! The HTTP interface: queries, inserts, server version, and error
//! classification by ClickHouse error code.

use crate::config::ClickHouseSinkConfig;
use flate2::Compression;
use flate2::write::GzEncoder;
use sinkfleet_core::error::with_causes;
use sinkfleet_core::{ConfigError, SinkError};
use std::io::Write;
use std::time::Duration;

/// Server features the sink uses when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFeatures {
    /// `(major, minor)` of `SELECT version()`.
    pub version: (u32, u32),
}

impl ServerFeatures {
    /// `ReplacingMergeTree(ver, is_deleted)` (23.2+).
    pub fn is_deleted_engine(&self) -> bool {
        self.version >= (23, 2)
    }

    /// `insert_deduplication_token` with `non_replicated_deduplication_window` (22.2+).
    pub fn dedup_token(&self) -> bool {
        self.version >= (22, 2)
    }

    /// `UInt128` (21.6+): the full `(commit_lsn, change_lsn)` version.
    pub fn uint128(&self) -> bool {
        self.version >= (21, 6)
    }

    /// `DateTime64(6)` (20.1+).
    pub fn datetime64(&self) -> bool {
        self.version >= (20, 1)
    }
}

/// A thin ClickHouse HTTP client (keep-alive pool inside reqwest).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
    compress: bool,
}

/// ClickHouse error codes worth retrying: timeouts, network, too many
/// queries/parts, memory, a table or column not there *yet* (another
/// worker's DDL), server shutting down.
fn retryable_code(code: u32) -> bool {
    matches!(
        code,
        159 | 202 | 209 | 210 | 241 | 242 | 252 | 319 | 394 | 425 | 439 | 999 | 16 | 60 | 81
    )
}

/// `Code: 60, e.displayText() = ...` → 60.
fn error_code(body: &str) -> Option<u32> {
    let rest = body.split("Code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Classifies a failed response.
pub fn classify(status: u16, body: &str) -> SinkError {
    let text = body.trim().chars().take(500).collect::<String>();
    match error_code(body) {
        Some(code) if retryable_code(code) => {
            SinkError::Retryable(format!("ClickHouse {status}: {text}"))
        }
        Some(_) => SinkError::apply(format!("ClickHouse {status}: {text}")),
        None if status >= 500 => SinkError::Retryable(format!("ClickHouse {status}: {text}")),
        None => SinkError::apply(format!("ClickHouse {status}: {text}")),
    }
}

impl Client {
    /// Creates the client.
    pub fn new(cfg: &ClickHouseSinkConfig) -> Result<Self, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(path) = &cfg.ca_cert {
            let bad =
                |e: String| ConfigError::new("sink.clickhouse.ca_cert", format!("`{path}`: {e}"));
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no certificate in the file".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::new("sink.clickhouse", e))?;
        Ok(Client {
            http,
            url: cfg.url.trim_end_matches('/').to_owned(),
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            compress: cfg.compress,
        })
    }

    /// Runs a statement; returns the response body. `body` (data) follows
    /// the query for inserts.
    pub async fn execute(
        &self,
        query: &str,
        body: Option<Vec<u8>>,
        settings: &[(&str, String)],
    ) -> Result<String, SinkError> {
        // An INSERT's statement goes in the URL and its data in the body;
        // any other statement goes in the body (URLs have length limits,
        // and key lists for partial rows can be long).
        let mut params: Vec<(&str, String)> = Vec::new();
        if body.is_some() {
            params.push(("query", query.to_owned()));
        }
        params.extend(settings.iter().cloned());
        let mut request = self
            .http
            .post(&self.url)
            .query(&params)
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password);
        if let Some(data) = body {
            if self.compress {
                let mut gz =
                    GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
                gz.write_all(&data)
                    .map_err(|e| SinkError::Retryable(e.to_string()))?;
                let compressed = gz
                    .finish()
                    .map_err(|e| SinkError::Retryable(e.to_string()))?;
                request = request.header("Content-Encoding", "gzip").body(compressed);
            } else {
                request = request.body(data);
            }
        } else {
            request = request.body(query.to_owned());
        }
        let response = request.send().await.map_err(|e| {
            SinkError::Retryable(format!("ClickHouse unreachable: {}", with_causes(&e)))
        })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| SinkError::Retryable(format!("ClickHouse response: {e}")))?;
        if status == 200 {
            Ok(text)
        } else {
            Err(classify(status, &text))
        }
    }

    /// Detects the server version.
    pub async fn features(&self) -> Result<ServerFeatures, SinkError> {
        let v = self.execute("SELECT version()", None, &[]).await?;
        let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        Ok(ServerFeatures {
            version: (parts.next().unwrap_or(0), parts.next().unwrap_or(0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified() {
        let unknown_table = "Code: 60, e.displayText() = DB::Exception: Table db.t doesn't exist., e.what() = DB::Exception";
        assert!(classify(404, unknown_table).is_retryable());
        let parse = "Code: 27, e.displayText() = DB::Exception: Cannot parse input";
        assert!(!classify(400, parse).is_retryable());
        assert!(classify(503, "overloaded").is_retryable());
        assert!(!classify(400, "bad").is_retryable());
        assert_eq!(error_code("Code: 241, e.displayText()"), Some(241));
    }

    #[test]
    fn an_unreadable_ca_file_is_a_configuration_error_naming_its_key() {
        let mut cfg = ClickHouseSinkConfig::with_url("https://127.0.0.1:1");
        cfg.ca_cert = Some("/nonexistent/ca.pem".into());
        let Err(e) = Client::new(&cfg) else {
            panic!("a missing CA file was accepted")
        };
        assert_eq!(e.key, "sink.clickhouse.ca_cert");
        assert!(e.reason.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn features_by_version() {
        let old = ServerFeatures { version: (18, 16) };
        assert!(
            !old.is_deleted_engine() && !old.dedup_token() && !old.uint128() && !old.datetime64()
        );
        let new = ServerFeatures { version: (24, 3) };
        assert!(new.is_deleted_engine() && new.dedup_token() && new.uint128() && new.datetime64());
    }
}
