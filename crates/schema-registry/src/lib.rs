//! A Schema Registry client (Confluent's REST API, which Karapace and
//! Apicurio's compatibility API serve too): what a sink worker needs,
//! which is a schema by its id.
//!
//! A schema never changes under its id, so an answer is cached for the
//! life of the process, "no such id" included. Failures are classified:
//! an unreachable registry, a 5xx or a refused login is an outage (the
//! caller waits and asks again: records wait, nothing is dead-lettered),
//! while a 404 for the id is an answer about the data.

use serde::Deserialize;
use sinkfleet_core::debezium::RegistrySchema;
use sinkfleet_core::error::with_causes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// Where the registry is and how to log in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL, `http://` or `https://` (e.g. `http://registry:8081`).
    pub url: String,
    /// HTTP basic auth user (Confluent's `basic.auth.user.info`).
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP basic auth password.
    #[serde(default)]
    pub password: Option<String>,
    /// PEM file of the CAs that sign the registry's certificate (instead
    /// of the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Per request.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per fetch before it is reported as an outage (the caller
    /// then waits and fetches again).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_attempts() -> u32 {
    3
}

/// A registry that cannot be used as configured.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The URL is not an http(s) URL.
    #[error("schema registry url {0:?}: expected http://host:port or https://host:port")]
    Url(String),
    /// A username without a password, or the reverse.
    #[error("schema registry: username and password go together")]
    Credentials,
    /// The CA file cannot be read or holds no certificate.
    #[error("schema registry ca_file {path}: {message}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The HTTP client cannot be built.
    #[error("schema registry client: {0}")]
    Client(String),
}

/// A fetch that got no answer about the schema: the registry is down,
/// unreachable, failing, or refuses the credentials. Retryable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("schema registry {url}: schema id {id}: {message}")]
pub struct Outage {
    /// The registry's base URL.
    pub url: String,
    /// The schema id asked for.
    pub id: u32,
    /// What went wrong on the last attempt.
    pub message: String,
}

/// The client. Cheap to clone (shared cache and connection pool).
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
    attempts: u32,
    cache: Arc<Mutex<HashMap<u32, RegistrySchema>>>,
    /// (subject, schema type + newline + text) → id of what this
    /// process registered.
    registered: Arc<Mutex<HashMap<(String, String), u32>>>,
}

/// A registration that got no id: the registry is down, unreachable,
/// failing, refuses the credentials, or refuses the schema (e.g. 409, not
/// compatible with the subject's earlier versions). The caller must not
/// produce the record.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("schema registry {url}: registering under subject {subject}: {message}")]
pub struct RegisterError {
    /// The registry's base URL.
    pub url: String,
    /// The subject.
    pub subject: String,
    /// What went wrong on the last attempt.
    pub message: String,
    /// Whether asking again may succeed (an outage), or the registry
    /// answered with a refusal about the schema (4xx other than 401/403/408/429).
    pub retryable: bool,
}

impl RegistryClient {
    /// Builds the client; nothing is contacted yet.
    pub fn new(cfg: &RegistryConfig) -> Result<Self, ConfigError> {
        let base = cfg.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 9 {
            return Err(ConfigError::Url(cfg.url.clone()));
        }
        let auth = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (None, None) => None,
            _ => return Err(ConfigError::Credentials),
        };
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms));
        if let Some(path) = &cfg.ca_file {
            let bad = |message: String| ConfigError::Ca {
                path: path.clone(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no certificate in the file".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        Ok(RegistryClient {
            http: builder
                .build()
                .map_err(|e| ConfigError::Client(with_causes(&e)))?,
            base,
            auth,
            attempts: cfg.attempts.max(1),
            cache: Arc::default(),
            registered: Arc::default(),
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The schema with id `id`: from the cache, or fetched (up to the
    /// configured attempts, with a short backoff between them).
    pub async fn schema(&self, id: u32) -> Result<RegistrySchema, Outage> {
        if let Some(s) = self.cached(id) {
            return Ok(s);
        }
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.fetch(id).await {
                Ok(answer) => {
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.insert(id, answer.clone());
                    }
                    return Ok(answer);
                }
                Err(message) => {
                    tracing::debug!(id, attempt, %message, "schema registry fetch failed");
                    last = message;
                }
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
        Err(Outage {
            url: self.base.clone(),
            id,
            message: last,
        })
    }

    /// Registers `schema_text` (Avro) under `subject`
    /// (`POST /subjects/{subject}/versions`) and returns its id. Each
    /// (subject, text) pair is asked for once per process: the registry
    /// answers the same id for a schema it already holds, so the answer
    /// is cached. Outages are retried up to the configured attempts; a
    /// refusal of the schema is not retried.
    pub async fn register(&self, subject: &str, schema_text: &str) -> Result<u32, RegisterError> {
        self.register_typed(subject, schema_text, "AVRO").await
    }

    /// [`RegistryClient::register`] for a schema of `schema_type`
    /// (`AVRO`, `JSON`, `PROTOBUF`): the body names the type unless it is
    /// AVRO (the registry's default, as Confluent's clients send it).
    pub async fn register_typed(
        &self,
        subject: &str,
        schema_text: &str,
        schema_type: &str,
    ) -> Result<u32, RegisterError> {
        let key = (subject.to_owned(), format!("{schema_type}\n{schema_text}"));
        if let Some(id) = self
            .registered
            .lock()
            .ok()
            .and_then(|c| c.get(&key).copied())
        {
            return Ok(id);
        }
        let mut delay = Duration::from_millis(100);
        let mut last = (String::new(), true);
        for attempt in 1..=self.attempts {
            match self.post(subject, schema_text, schema_type).await {
                Ok(id) => {
                    if let Ok(mut cache) = self.registered.lock() {
                        cache.insert(key, id);
                    }
                    return Ok(id);
                }
                Err((message, retryable)) => {
                    tracing::debug!(subject, attempt, %message, "schema registration failed");
                    last = (message, retryable);
                    if !retryable {
                        break;
                    }
                }
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
        Err(RegisterError {
            url: self.base.clone(),
            subject: subject.to_owned(),
            message: last.0,
            retryable: last.1,
        })
    }

    /// One registration request. `Err`: the message and whether it is an outage.
    async fn post(
        &self,
        subject: &str,
        schema_text: &str,
        schema_type: &str,
    ) -> Result<u32, (String, bool)> {
        let body = if schema_type == "AVRO" {
            serde_json::json!({ "schema": schema_text })
        } else {
            serde_json::json!({ "schema": schema_text, "schemaType": schema_type })
        };
        let mut request = self
            .http
            .post(format!(
                "{}/subjects/{}/versions",
                self.base,
                encode_path_segment(subject)
            ))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .body(body.to_string());
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| (with_causes(&e), true))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| (with_causes(&e), true))?;
        if !status.is_success() {
            let code = status.as_u16();
            let retryable = status.is_server_error() || matches!(code, 401 | 403 | 404 | 408 | 429);
            return Err((format!("HTTP {status}: {}", excerpt(&body)), retryable));
        }
        #[derive(Deserialize)]
        struct IdBody {
            id: u32,
        }
        serde_json::from_str::<IdBody>(&body)
            .map(|b| b.id)
            .map_err(|e| (format!("unreadable answer ({e}): {}", excerpt(&body)), true))
    }

    fn cached(&self, id: u32) -> Option<RegistrySchema> {
        self.cache.lock().ok()?.get(&id).cloned()
    }

    /// One request. `Err` is an outage's message.
    async fn fetch(&self, id: u32) -> Result<RegistrySchema, String> {
        let mut request = self
            .http
            .get(format!("{}/schemas/ids/{id}", self.base))
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            );
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| with_causes(&e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| with_causes(&e))?;
        if status.as_u16() == 404 {
            // Confluent: 40403 "Schema not found". A 404 of something else
            // (a wrong base path) is no answer about the id.
            return match serde_json::from_str::<ErrorBody>(&body) {
                Ok(ErrorBody { error_code: 40403 }) => Ok(RegistrySchema::NotFound),
                _ => Err(format!(
                    "404 without error code 40403 (is the url the registry's?): {}",
                    excerpt(&body)
                )),
            };
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", excerpt(&body)));
        }
        let answer: SchemaBody = serde_json::from_str(&body)
            .map_err(|e| format!("unreadable answer ({e}): {}", excerpt(&body)))?;
        Ok(RegistrySchema::Found {
            schema_type: answer.schema_type.unwrap_or_else(|| "AVRO".into()),
            text: answer.schema,
        })
    }
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: u32,
}

impl std::fmt::Debug for RegistryClient {
    // No credentials in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

/// A subject as one URL path segment (topics may hold `.`, `_`, `-`,
/// which pass; anything else is percent-encoded).
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn excerpt(body: &str) -> String {
    body.trim().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn config(url: &str) -> RegistryConfig {
        RegistryConfig {
            url: url.into(),
            username: None,
            password: None,
            ca_file: None,
            timeout_ms: 2_000,
            attempts: 2,
        }
    }

    #[test]
    fn a_config_that_cannot_work_is_refused() {
        assert!(matches!(
            RegistryClient::new(&config("registry:8081")),
            Err(ConfigError::Url(_))
        ));
        let mut half = config("http://registry:8081");
        half.username = Some("u".into());
        assert!(matches!(
            RegistryClient::new(&half),
            Err(ConfigError::Credentials)
        ));
        let mut ca = config("https://registry:8081");
        ca.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(
            RegistryClient::new(&ca),
            Err(ConfigError::Ca { .. })
        ));
    }

    /// A registry answering from a table: path → (status, body). Counts
    /// the requests it serves.
    async fn registry(
        answers: Vec<(&'static str, u16, &'static str)>,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&served);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 4096];
                let n = socket.read(&mut request).await.unwrap();
                let request = String::from_utf8_lossy(&request[..n]).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (status, body) = answers
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, s, b)| (*s, *b))
                    .unwrap_or((404, "not here"));
                count.fetch_add(1, Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            }
        });
        (url, served)
    }

    #[tokio::test]
    async fn answers_are_classified_and_cached() {
        let (url, served) = registry(vec![
            ("/schemas/ids/1", 200, r#"{"schema":"\"string\""}"#),
            (
                "/schemas/ids/2",
                404,
                r#"{"error_code":40403,"message":"Schema 2 not found"}"#,
            ),
            ("/schemas/ids/3", 500, r#"{"error_code":50001}"#),
            (
                "/schemas/ids/4",
                200,
                r#"{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}"#,
            ),
        ])
        .await;
        let client = RegistryClient::new(&config(&url)).unwrap();
        assert_eq!(
            client.schema(1).await.unwrap(),
            RegistrySchema::Found {
                schema_type: "AVRO".into(),
                text: "\"string\"".into()
            }
        );
        assert_eq!(client.schema(2).await.unwrap(), RegistrySchema::NotFound);
        let before = served.load(Ordering::SeqCst);
        client.schema(1).await.unwrap();
        client.schema(2).await.unwrap();
        assert_eq!(served.load(Ordering::SeqCst), before, "answers are cached");
        // A failing registry is an outage, after the configured attempts.
        let outage = client.schema(3).await.unwrap_err();
        assert!(outage.message.contains("500"), "{outage}");
        // A 404 that is not the registry's "no such schema" is no answer.
        let wrong_path = client.schema(5).await.unwrap_err();
        assert!(wrong_path.message.contains("40403"), "{wrong_path}");
        assert!(matches!(
            client.schema(4).await.unwrap(),
            RegistrySchema::Found { schema_type, .. } if schema_type == "PROTOBUF"
        ));
    }
}
