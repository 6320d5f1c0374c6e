//! The worker's configuration file: YAML plus environment overrides.
//!
//! Every section rejects unknown keys, and errors name the key's path, so a
//! typo stops the process at start instead of being ignored. Any key can be
//! overridden from the environment: `SINKFLEET__KAFKA__BROKERS=host:9092`
//! sets `kafka.brokers` (double underscores separate path segments).

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use serde::Deserialize;
use sinkfleet_core::VersionSource;
use sinkfleet_core::debezium::{
    DeclaredColumns, DecodeOptions, FlattenedOptions, Format as RecordFormat, Formats, RecordShape,
    TopicFormats,
};
use sinkfleet_kafka::status::StatusConfig;
use sinkfleet_kafka::{DeadLetterConfig, KafkaConfig, RuntimeConfig, WorkerConfig};
use sinkfleet_schema_registry::{RegistryClient, RegistryConfig};
use sinkfleet_sink_clickhouse::ClickHouseSinkConfig;
use sinkfleet_sink_postgres::PostgresSinkConfig;
use sinkfleet_sink_s3_parquet::ParquetSinkConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka connection and group.
    pub kafka: KafkaConfig,
    /// Dead-letter routing.
    pub dead_letter: DeadLetterConfig,
    /// Batching, budgets, retries, timeouts.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// How records are decoded.
    #[serde(default)]
    pub decode: DecodeConfig,
    /// The sink (exactly one).
    pub sink: SinkConfig,
    /// Metrics and health endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Status reports, read by `sinkfleet status`.
    #[serde(default)]
    pub status: StatusConfig,
}

/// `decode:` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Version source for every topic.
    #[serde(default)]
    pub version: VersionSource,
    /// Key columns per source table (`schema.table`, or `*`), used instead
    /// of the Kafka key.
    #[serde(default)]
    pub key_columns: HashMap<String, Vec<String>>,
    /// Declared types of schema-less events' columns: source table
    /// (`schema.table`, or `*`) → column → Debezium encoding.
    #[serde(default)]
    pub columns: BTreeMap<String, BTreeMap<String, String>>,
    /// Records flattened by Debezium's `ExtractNewRecordState` (absent:
    /// Debezium change events).
    #[serde(default)]
    pub flattened: Option<FlattenedOptions>,
    /// Key and value formats by topic, first matching rule first (topics
    /// no rule matches are JSON).
    #[serde(default)]
    pub formats: Vec<FormatRule>,
    /// The Schema Registry that `avro` topics name their schemas in.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
}

/// One `decode.formats` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatRule {
    /// A topic name, or a regex (matching whole names) starting with `^`.
    pub topics: String,
    /// Format of the Kafka keys.
    #[serde(default)]
    pub key: RecordFormat,
    /// Format of the Kafka values.
    #[serde(default)]
    pub value: RecordFormat,
    /// With `protobuf`: how its converter wrote NULLs (required, as the
    /// records cannot tell).
    #[serde(default)]
    pub nulls: Option<ProtobufNulls>,
}

/// How `ProtobufConverter` wrote a NULL column. Its default writes a NULL
/// number, text or boolean as nothing, which is exactly what a 0, "" or
/// false is written as: the records cannot tell them apart, so the user
/// says which converter setting wrote them. Decoding is the same either
/// way; what differs is whether the target's zeros may be NULLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtobufNulls {
    /// `optional.for.nullables=true` or `wrapper.for.nullables=true`: a
    /// nullable column's field has presence and NULL stays NULL.
    Presence,
    /// The converter's defaults: a NULL scalar is stored as its zero value.
    Zero,
}

impl DecodeConfig {
    /// The rules as the decoder takes them.
    fn topic_formats(&self) -> Result<TopicFormats, String> {
        TopicFormats::new(self.formats.iter().map(|r| {
            (
                r.topics.clone(),
                Formats {
                    key: r.key,
                    value: r.value,
                },
            )
        }))
    }

    /// Problems of the formats and the registry, by config path.
    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (i, rule) in self.formats.iter().enumerate() {
            let protobuf =
                rule.key == RecordFormat::Protobuf || rule.value == RecordFormat::Protobuf;
            match (protobuf, rule.nulls) {
                (true, None) => problems.push((
                    format!("decode.formats[{i}].nulls"),
                    "required with protobuf: `presence` if the converter ran with \
                     optional.for.nullables=true or wrapper.for.nullables=true (NULL stays NULL), \
                     `zero` if it ran with its defaults (it writes a NULL number, text or boolean \
                     as nothing, the same bytes as 0, \"\" or false: the target gets those)"
                        .into(),
                )),
                (false, Some(_)) => problems.push((
                    format!("decode.formats[{i}].nulls"),
                    "only for protobuf keys or values".into(),
                )),
                _ => {}
            }
        }
        match self.topic_formats() {
            Err(e) => problems.push(("decode.formats".into(), e)),
            Ok(formats) => match (&self.registry, formats.use_registry()) {
                (None, true) => problems.push((
                    "decode.registry".into(),
                    "missing: a decode.formats rule reads a registry format (avro, protobuf, json_schema)".into(),
                )),
                (Some(_), false) => problems.push((
                    "decode.registry".into(),
                    "set, but no decode.formats rule reads a registry format (avro, protobuf, json_schema)".into(),
                )),
                (Some(registry), true) => {
                    if let Err(e) = RegistryClient::new(registry) {
                        problems.push(("decode.registry".into(), e.to_string()));
                    }
                }
                (None, false) => {}
            },
        }
        if self.flattened.is_some() {
            for (i, rule) in self.formats.iter().enumerate() {
                for (part, format) in [("key", rule.key), ("value", rule.value)] {
                    if !matches!(format, RecordFormat::Json | RecordFormat::Avro) {
                        problems.push((
                            "decode.flattened".into(),
                            format!(
                                "flattened records are read from json and avro topics: decode.formats[{i}].{part} is {}",
                                format.name()
                            ),
                        ));
                    }
                }
            }
        }
        problems
    }
}

/// `sink:` section: one of the sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// The Postgres sink.
    Postgres(PostgresSinkConfig),
    /// The ClickHouse sink (HTTP interface).
    Clickhouse(ClickHouseSinkConfig),
    /// The Parquet sink (S3 or a local directory).
    S3Parquet(ParquetSinkConfig),
}

/// `metrics:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Config {
    /// The target table (`namespace.table`) the sink writes the source
    /// table `source` (`schema.table`) to, as the sink routes it; `None`
    /// for the Parquet sink (its targets are paths) or a source name the
    /// sink would refuse.
    pub fn target_table(&self, source: &str) -> Option<String> {
        let (schema, table) = source.split_once('.')?;
        let (mapping, namespace) = match &self.sink {
            SinkConfig::Postgres(pg) => (&pg.tables, pg.target_schema.as_deref()),
            SinkConfig::Clickhouse(ch) => (&ch.tables, ch.database.as_deref()),
            SinkConfig::S3Parquet(_) => return None,
        };
        sinkfleet_core::table::route(
            &sinkfleet_core::TableId::new(schema, table),
            mapping,
            namespace,
            sinkfleet_core::identifier::IdentifierPolicy::Printable,
            usize::MAX,
        )
        .ok()
        .map(|(namespace, name)| format!("{namespace}.{name}"))
    }

    /// Loads `path`, applies `SINKFLEET__*` overrides, validates.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.is_file() {
            bail!("config file {} not found", path.display());
        }
        let config: Config = Figment::new()
            .merge(Yaml::file_exact(path))
            .merge(Env::prefixed("SINKFLEET__").split("__"))
            .extract()
            .map_err(|e| {
                // Figment names keys with its profile (`default.`): drop it.
                let all: Vec<String> = e
                    .into_iter()
                    .map(|e| e.to_string().replace("for key \"default.", "for key \""))
                    .collect();
                anyhow::anyhow!("invalid configuration:\n  {}", all.join("\n  "))
            })
            .with_context(|| format!("loading {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut problems = self.worker.validate();
        if self.kafka.topics.is_empty() {
            problems.push(("kafka.topics".into(), "at least one topic".into()));
        }
        if self.kafka.topics.contains(&self.dead_letter.topic) {
            problems.push((
                "dead_letter.topic".into(),
                "must not be one of kafka.topics".into(),
            ));
        }
        let status_topic = self.status.topic(&self.kafka.group_id);
        if self.kafka.topics.contains(&status_topic) || status_topic == self.dead_letter.topic {
            problems.push((
                "status.topic".into(),
                "must be neither one of kafka.topics nor dead_letter.topic".into(),
            ));
        }
        if self.status.interval_ms < 100 {
            problems.push(("status.interval_ms".into(), "at least 100".into()));
        }
        let resolved = self.dead_letter.resolved_topic();
        if self.kafka.topics.contains(&resolved)
            || resolved == self.dead_letter.topic
            || resolved == self.dead_letter.parked_topic()
        {
            problems.push((
                "dead_letter.resolved_topic".into(),
                "must be none of kafka.topics, dead_letter.topic and dead_letter.parked_topic"
                    .into(),
            ));
        }
        if self.dead_letter.on_error == sinkfleet_kafka::OnError::ParkKey {
            let parked = self.dead_letter.parked_topic();
            if self.kafka.topics.contains(&parked) || parked == self.dead_letter.topic {
                problems.push((
                    "dead_letter.parked_topic".into(),
                    "must be neither one of kafka.topics nor dead_letter.topic".into(),
                ));
            }
        }
        if let VersionSource::Field { field } = &self.decode.version
            && field.is_empty()
        {
            problems.push(("decode.version.field".into(), "empty".into()));
        }
        if let Err(e) = DeclaredColumns::parse(&self.decode.columns) {
            problems.push(("decode.columns".into(), e));
        }
        problems.extend(self.decode.problems());
        if let Some(flat) = &self.decode.flattened {
            problems.extend(
                flat.problems(
                    &self.decode.version,
                    !self.decode.key_columns.is_empty(),
                    !self.decode.columns.is_empty(),
                )
                .into_iter()
                .map(|(p, m)| (format!("decode.{p}"), m)),
            );
        }
        if let Err(e) = self.metrics.listen.parse::<std::net::SocketAddr>() {
            problems.push(("metrics.listen".into(), e.to_string()));
        }
        match &self.sink {
            SinkConfig::Postgres(pg) => {
                if pg.apply == sinkfleet_sink_postgres::ApplyMode::Transactional
                    && self.decode.topic_formats().is_ok_and(|f| f.use_registry())
                {
                    problems.push((
                        "sink.postgres.apply".into(),
                        "transactional apply reads JSON topics only: a decode.formats rule reads a registry format".into(),
                    ));
                }
                problems.extend(
                    pg.validate()
                        .into_iter()
                        .map(|(p, m)| (format!("sink.postgres.{p}"), m)),
                );
                // Writers share the pool: fewer connections than writers
                // would leave a writer waiting for one on every batch.
                if let Some(pool) = pg.pool_size
                    && (pool as usize) < self.worker.writers
                {
                    problems.push((
                        "sink.postgres.pool_size".into(),
                        format!(
                            "{pool} is fewer than worker.writers ({}): every writer needs a connection",
                            self.worker.writers
                        ),
                    ));
                }
            }
            SinkConfig::Clickhouse(ch) => {
                problems.extend(
                    ch.validate()
                        .into_iter()
                        .map(|(p, m)| (format!("sink.clickhouse.{p}"), m)),
                );
            }
            SinkConfig::S3Parquet(s3) => {
                problems.extend(
                    s3.validate()
                        .into_iter()
                        .map(|(p, m)| (format!("sink.s3_parquet.{p}"), m)),
                );
                // Each writer keeps its share of the buffer, and a share
                // must hold one full file.
                let share = s3.buffer_share(self.worker.writers);
                if self.worker.writers > 1 && share < s3.rotation.max_bytes {
                    problems.push((
                        "sink.s3_parquet.max_buffer_bytes".into(),
                        format!(
                            "shared by worker.writers ({}): each gets {share}, less than rotation.max_bytes ({})",
                            self.worker.writers, s3.rotation.max_bytes
                        ),
                    ));
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = problems
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect();
        bail!("invalid configuration:\n  {}", lines.join("\n  "))
    }

    /// The identifier policy in effect, as one line for `validate`.
    pub fn identifiers(&self) -> String {
        match &self.sink {
            SinkConfig::Postgres(pg) => pg
                .identifiers
                .describe(sinkfleet_sink_postgres::ident::MAX_IDENT_BYTES),
            SinkConfig::Clickhouse(ch) => ch
                .identifiers
                .describe(sinkfleet_sink_clickhouse::schema::MAX_NAME_BYTES),
            SinkConfig::S3Parquet(s3) => s3
                .identifiers
                .describe(sinkfleet_sink_s3_parquet::MAX_NAME_BYTES),
        }
    }

    /// The consumer runtime's part.
    pub fn runtime(&self) -> anyhow::Result<RuntimeConfig> {
        Ok(RuntimeConfig {
            kafka: self.kafka.clone(),
            worker: self.worker.clone(),
            dead_letter: self.dead_letter.clone(),
            decode: DecodeOptions {
                version: self.decode.version.clone(),
                key_columns: self.decode.key_columns.clone(),
                columns: DeclaredColumns::parse(&self.decode.columns)
                    .map_err(|e| anyhow::anyhow!("decode.columns: {e}"))?,
                formats: self
                    .decode
                    .topic_formats()
                    .map_err(|e| anyhow::anyhow!("decode.formats: {e}"))?,
                record: match &self.decode.flattened {
                    None => RecordShape::Debezium,
                    Some(flat) => RecordShape::Flattened(flat.clone()),
                },
            },
            registry: self
                .decode
                .registry
                .as_ref()
                .map(RegistryClient::new)
                .transpose()
                .map_err(|e| anyhow::anyhow!("decode.registry: {e}"))?,
            transactions: None,
            status: self.status.clone(),
        })
    }
}
