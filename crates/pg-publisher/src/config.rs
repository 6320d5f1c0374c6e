//! The publisher's configuration: a Debezium PostgreSQL connector config,
//! as-is, plus the publisher's own settings beside it.
//!
//! ```yaml
//! name: pg-source
//! config:                      # Debezium connector properties
//!   connector.class: io.debezium.connector.postgresql.PostgresConnector
//!   database.hostname: 127.0.0.1
//!   ...
//! publisher:                   # sinkfleet's own settings
//!   kafka: { brokers: 127.0.0.1:59092 }
//! ```
//!
//! Every connector property is either supported (and applied), known to
//! change nothing here (accepted), or refused by name at start: a property
//! that would change the events' meaning is never silently ignored.

use crate::column_mappers::ColumnMappers;
use crate::properties;
use crate::tls::{SourceSslMode, SourceTls};
use crate::types::options::TypeOptions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `publication.autocreate.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationMode {
    /// The publication covers exactly the included tables.
    Filtered,
    /// `FOR ALL TABLES`.
    AllTables,
    /// The publication must exist already.
    Disabled,
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot when the slot is created, then stream.
    Initial,
    /// Never snapshot (`never` / `no_data`): stream from the slot.
    Never,
    /// Snapshot when the slot is created, then stop.
    InitialOnly,
}

/// The connector settings, parsed and validated.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// `database.hostname`.
    pub host: String,
    /// `database.port`.
    pub port: u16,
    /// `database.user`.
    pub user: String,
    /// `database.password`.
    pub password: String,
    /// `database.dbname`.
    pub dbname: String,
    /// `topic.prefix`.
    pub topic_prefix: String,
    /// `slot.name` (default `debezium`).
    pub slot_name: String,
    /// `slot.drop.on.stop` (default false).
    pub slot_drop_on_stop: bool,
    /// `publication.name` (default `dbz_publication`).
    pub publication_name: String,
    /// `publication.autocreate.mode` (default `all_tables`).
    pub publication_mode: PublicationMode,
    /// `table.include.list`: anchored regexes over `schema.table`.
    pub table_include: Vec<String>,
    /// `table.exclude.list`.
    pub table_exclude: Vec<String>,
    /// `schema.include.list`: anchored regexes over schema names.
    pub schema_include: Vec<String>,
    /// `schema.exclude.list`.
    pub schema_exclude: Vec<String>,
    /// `column.include.list`: anchored, case-insensitive regexes over
    /// `schema.table.column`; only matching columns are in the value.
    pub column_include: Vec<String>,
    /// `column.exclude.list`: matching columns are left out of the value.
    pub column_exclude: Vec<String>,
    /// `signal.data.collection`: the signal table, `(schema, table)`.
    pub signal_table: Option<(String, String)>,
    /// `incremental.snapshot.chunk.size` (default 1024): rows per chunk.
    pub incremental_chunk_size: usize,
    /// `snapshot.new.tables: incremental` (sinkfleet's property; default
    /// `off`): a table the filtered publication gains on a restart is
    /// backfilled by an incremental snapshot.
    pub snapshot_new_tables: bool,
    /// `message.prefix.include.list`: anchored, case-insensitive regexes
    /// over logical decoding message prefixes; only matching ones are
    /// published.
    pub message_prefix_include: Vec<String>,
    /// `message.prefix.exclude.list`: matching prefixes are not published.
    pub message_prefix_exclude: Vec<String>,
    /// `column.truncate.to.N.chars`, `column.mask.with.N.chars`,
    /// `column.mask.hash[.v2].ALG.with.salt.SALT`.
    pub column_mappers: ColumnMappers,
    /// `snapshot.mode` (default `initial`).
    pub snapshot_mode: SnapshotMode,
    /// `tombstones.on.delete` (default true).
    pub tombstones_on_delete: bool,
    /// `heartbeat.interval.ms` (0 = off).
    pub heartbeat_interval_ms: u64,
    /// `heartbeat.action.query`: SQL run on the source at every heartbeat
    /// (needs `heartbeat.interval.ms`).
    pub heartbeat_action_query: Option<String>,
    /// `message.key.columns`: `schema.table` → key columns.
    pub message_key_columns: BTreeMap<String, Vec<String>>,
    /// Whether the publisher writes `{"schema", "payload"}` envelopes:
    /// JsonConverter's `schemas.enable`, and always when a part is Avro
    /// (AvroConverter needs the schema; the producer turns the envelope
    /// into Avro, or strips it for a JSON part with `schemas.enable=false`).
    pub schemas_enable: bool,
    /// `key.converter` and its options.
    pub key_converter: Converter,
    /// `value.converter` and its options (also used for heartbeat and
    /// transaction metadata values, as in Kafka Connect).
    pub value_converter: Converter,
    /// `database.sslmode`, `database.sslrootcert`, `database.sslcert`,
    /// `database.sslkey`.
    pub tls: SourceTls,
    /// `provide.transaction.metadata` (default false): BEGIN and END
    /// records on [`ConnectorConfig::transaction_topic`], and a
    /// `transaction` block in every streamed event.
    pub provide_transaction_metadata: bool,
    /// How values are represented (`decimal.handling.mode`, ...).
    pub types: TypeOptions,
    /// `skipped.operations` (default `t`): streamed changes of these ops
    /// (`c`, `u`, `d`, `t`) are not published.
    pub skipped_operations: Vec<char>,
    /// `extended.headers.enabled` (default true): every change record
    /// carries Debezium's `__debezium.context.*` headers.
    pub extended_headers: bool,
}

/// A Kafka Connect converter for record keys or values.
#[derive(Debug, Clone)]
pub enum Converter {
    /// `org.apache.kafka.connect.json.JsonConverter`, with `schemas.enable`.
    Json {
        /// `*.converter.schemas.enable` (default true).
        schemas: bool,
    },
    /// `io.confluent.connect.avro.AvroConverter` through this registry.
    Avro(sinkfleet_schema_registry::RegistryConfig),
    /// `io.confluent.connect.json.JsonSchemaConverter` through this registry.
    JsonSchema(sinkfleet_schema_registry::RegistryConfig),
    /// `io.confluent.connect.protobuf.ProtobufConverter` through this registry.
    Protobuf(
        sinkfleet_schema_registry::RegistryConfig,
        crate::protobuf::Options,
    ),
}

impl Converter {
    /// Whether this is AvroConverter.
    pub fn is_avro(&self) -> bool {
        matches!(self, Converter::Avro(_))
    }

    /// Whether this converter writes through a Schema Registry (and so
    /// needs the record's schema).
    pub fn uses_registry(&self) -> bool {
        matches!(
            self,
            Converter::Avro(_) | Converter::JsonSchema(_) | Converter::Protobuf(..)
        )
    }
}

const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
const JSON_SCHEMA_CONVERTER: &str = "io.confluent.connect.json.JsonSchemaConverter";
const PROTOBUF_CONVERTER: &str = "io.confluent.connect.protobuf.ProtobufConverter";

/// `<part>.converter` and its options (`part` is `key` or `value`).
fn converter(
    part: &str,
    get: &dyn Fn(&str) -> Option<String>,
    err: &mut dyn FnMut(&str, String),
) -> Converter {
    let class_key = format!("{part}.converter");
    let schemas_key = format!("{part}.converter.schemas.enable");
    let url_key = format!("{part}.converter.schema.registry.url");
    let source_key = format!("{part}.converter.basic.auth.credentials.source");
    let info_key = format!("{part}.converter.basic.auth.user.info");
    let truststore_key = format!("{part}.converter.schema.registry.ssl.truststore.location");
    let truststore_type_key = format!("{part}.converter.schema.registry.ssl.truststore.type");
    let schemas = match get(&schemas_key).as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            err(
                &schemas_key,
                format!("expected true or false, found `{other}`"),
            );
            true
        }
    };
    let class = get(&class_key);
    match class.as_deref() {
        None | Some(JSON_CONVERTER) => {
            for k in [&url_key, &source_key, &info_key, &truststore_key] {
                if get(k).is_some() {
                    err(
                        k,
                        format!(
                            "a Schema Registry converter's option, but {class_key} is JsonConverter"
                        ),
                    );
                }
            }
            Converter::Json { schemas }
        }
        Some(registry_class @ (AVRO_CONVERTER | JSON_SCHEMA_CONVERTER | PROTOBUF_CONVERTER)) => {
            if !schemas {
                // Kafka Connect's AvroConverter, JsonSchemaConverter and ProtobufConverter
                // ignore schemas.enable: their records always have a
                // schema, in the registry.
                tracing::warn!(
                    property = %schemas_key,
                    converter = registry_class,
                    "ignored (as Kafka Connect does): the records always have their schema in the registry"
                );
            }
            let (username, password) = match (get(&source_key).as_deref(), get(&info_key)) {
                (None, None) => (None, None),
                (Some("USER_INFO"), Some(info)) => match info.split_once(':') {
                    Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                    None => {
                        err(&info_key, "expected user:password".into());
                        (None, None)
                    }
                },
                (Some("USER_INFO"), None) => {
                    err(&info_key, format!("required with {source_key}=USER_INFO"));
                    (None, None)
                }
                (None, Some(_)) => {
                    err(
                        &source_key,
                        "must be USER_INFO for basic.auth.user.info to be used (Confluent's default, URL, ignores it)".into(),
                    );
                    (None, None)
                }
                (Some(other), _) => {
                    err(
                        &source_key,
                        format!(
                            "`{other}` is not supported: only USER_INFO (with basic.auth.user.info)"
                        ),
                    );
                    (None, None)
                }
            };
            let Some(url) = get(&url_key) else {
                err(
                    &url_key,
                    format!("required with {class_key}={registry_class}"),
                );
                return Converter::Json { schemas };
            };
            if url.contains(',') {
                err(&url_key, "one registry URL is supported, not a list".into());
            }
            if url
                .split("//")
                .nth(1)
                .is_some_and(|rest| rest.split('/').next().unwrap_or("").contains('@'))
            {
                err(
                    &url_key,
                    format!(
                        "credentials in the URL are not supported: set {source_key}=USER_INFO and {info_key}"
                    ),
                );
            }
            // Confluent's truststore type defaults to JKS, which is not
            // read here: a location means PEM only when the type says so.
            let ca_file = get(&truststore_key).map(std::path::PathBuf::from);
            if ca_file.is_some() && get(&truststore_type_key).as_deref() != Some("PEM") {
                err(
                    &truststore_type_key,
                    format!(
                        "required: PEM with {truststore_key} (a JKS or PKCS12 truststore is not read; give the CA certificates as a PEM file)"
                    ),
                );
            }
            let registry = sinkfleet_schema_registry::RegistryConfig {
                url,
                username,
                password,
                ca_file,
                timeout_ms: 5_000,
                attempts: 3,
            };
            match registry_class {
                AVRO_CONVERTER => Converter::Avro(registry),
                JSON_SCHEMA_CONVERTER => Converter::JsonSchema(registry),
                _ => {
                    let optional_key = format!("{part}.converter.optional.for.nullables");
                    let optional_for_nullables = match get(&optional_key).as_deref() {
                        None | Some("false") => false,
                        Some("true") => true,
                        Some(other) => {
                            err(
                                &optional_key,
                                format!("expected true or false, found `{other}`"),
                            );
                            false
                        }
                    };
                    Converter::Protobuf(
                        registry,
                        crate::protobuf::Options {
                            optional_for_nullables,
                        },
                    )
                }
            }
        }
        Some(other) => {
            err(
                &class_key,
                format!(
                    "`{other}` is not supported: use {JSON_CONVERTER}, {AVRO_CONVERTER}, {JSON_SCHEMA_CONVERTER} or {PROTOBUF_CONVERTER}"
                ),
            );
            Converter::Json { schemas }
        }
    }
}

/// The file: `name`, `config` (connector properties), `publisher`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherFile {
    /// Connector name (informational).
    #[serde(default)]
    pub name: Option<String>,
    /// Debezium connector properties (all values as strings or scalars).
    pub config: BTreeMap<String, serde_yaml_scalar::Scalar>,
    /// sinkfleet's publisher settings.
    pub publisher: PublisherSettings,
}

/// `publisher:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherSettings {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Extra librdkafka producer properties.
    #[serde(default)]
    pub kafka_properties: BTreeMap<String, String>,
    /// Partitions of topics the publisher creates (brokers without
    /// auto-creation need them created).
    #[serde(default = "default_partitions")]
    pub topic_partitions: i32,
    /// Create missing topics (turn off where topics are managed elsewhere).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// `/metrics`, `/healthz`, `/readyz` address.
    #[serde(default = "default_listen")]
    pub metrics_listen: String,
}

fn default_true() -> bool {
    true
}

fn default_partitions() -> i32 {
    4
}

fn default_listen() -> String {
    "127.0.0.1:9465".into()
}

/// Scalars as Debezium properties arrive in YAML: strings, numbers, booleans.
pub mod serde_yaml_scalar {
    use serde::Deserialize;

    /// A property value, kept as its text.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Scalar(pub String);

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Any {
                S(String),
                I(i64),
                F(f64),
                B(bool),
            }
            Ok(Scalar(match Any::deserialize(d)? {
                Any::S(s) => s,
                Any::I(i) => i.to_string(),
                Any::F(f) => f.to_string(),
                Any::B(b) => b.to_string(),
            }))
        }
    }
}

/// A refused or malformed property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config.{property}: {problem}")]
pub struct PropertyError {
    /// The property name.
    pub property: String,
    /// What is wrong.
    pub problem: String,
}

impl ConnectorConfig {
    /// How often heartbeats go out (and `heartbeat.action.query` runs):
    /// `heartbeat.interval.ms` as given; `None` when it is 0 (off).
    pub fn heartbeat_period(&self) -> Option<std::time::Duration> {
        (self.heartbeat_interval_ms > 0)
            .then(|| std::time::Duration::from_millis(self.heartbeat_interval_ms))
    }

    /// Parses connector properties; returns every problem at once.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, Vec<PropertyError>> {
        let mut errors = Vec::new();
        let mut err = |p: &str, m: String| {
            errors.push(PropertyError {
                property: p.to_owned(),
                problem: m,
            })
        };
        let get = |k: &str| props.get(k).map(String::as_str);
        let required = |k: &str, err: &mut dyn FnMut(&str, String)| match get(k) {
            Some(v) if !v.is_empty() || k == "database.password" => v.to_owned(),
            _ => {
                err(k, "required".into());
                String::new()
            }
        };
        let flag = |k: &str, default: bool, err: &mut dyn FnMut(&str, String)| match get(k) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                err(k, format!("expected true or false, found `{other}`"));
                default
            }
        };

        let types = TypeOptions::from_properties(|k| get(k).map(str::to_owned), &mut err);
        // This publisher stops on a value it cannot encode (Debezium's
        // `fail`); it never drops an event or leaves a field null.
        for key in [
            "event.converting.failure.handling.mode",
            "event.processing.failure.handling.mode",
        ] {
            match get(key) {
                None | Some("fail") => {}
                Some(other) => err(
                    key,
                    format!("`{other}` would drop events or null values; only `fail` is supported"),
                ),
            }
        }
        // JsonConverter's replace.null.with.default writes a column's
        // default where the value is NULL: that changes values.
        if flag("value.converter.replace.null.with.default", false, &mut err) {
            err(
                "value.converter.replace.null.with.default",
                "`true` would write a column's default in place of its NULL; only `false` is supported".into(),
            );
        }
        if let Some(v) = get("unavailable.value.placeholder")
            && v != sinkfleet_core::debezium::UNAVAILABLE_VALUE
        {
            err(
                "unavailable.value.placeholder",
                format!(
                    "`{v}`: the sinks recognise only Debezium's default, {}",
                    sinkfleet_core::debezium::UNAVAILABLE_VALUE
                ),
            );
        }
        let skipped_operations = match get("skipped.operations").unwrap_or("t").trim() {
            "none" => Vec::new(),
            list => {
                let mut ops = Vec::new();
                for op in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    match op {
                        "c" | "u" | "d" | "t" => ops.extend(op.chars()),
                        // Debezium accepts `r` and never skips snapshot reads.
                        "r" => {}
                        other => err(
                            "skipped.operations",
                            format!("`{other}`: expected c, u, d, t or none"),
                        ),
                    }
                }
                ops
            }
        };

        let port = match get("database.port").unwrap_or("5432").parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                err("database.port", "expected a port number".into());
                0
            }
        };
        let publication_mode = match get("publication.autocreate.mode").unwrap_or("all_tables") {
            "filtered" => PublicationMode::Filtered,
            "all_tables" => PublicationMode::AllTables,
            "disabled" => PublicationMode::Disabled,
            other => {
                err(
                    "publication.autocreate.mode",
                    format!("`{other}`: expected filtered, all_tables or disabled"),
                );
                PublicationMode::AllTables
            }
        };
        let snapshot_mode = match get("snapshot.mode").unwrap_or("initial") {
            "initial" => SnapshotMode::Initial,
            "never" | "no_data" => SnapshotMode::Never,
            "initial_only" => SnapshotMode::InitialOnly,
            other => {
                err(
                    "snapshot.mode",
                    format!("`{other}`: supported are initial, never, no_data, initial_only"),
                );
                SnapshotMode::Initial
            }
        };
        let heartbeat_interval_ms = match get("heartbeat.interval.ms").unwrap_or("0").parse() {
            Ok(v) => v,
            Err(_) => {
                err("heartbeat.interval.ms", "expected milliseconds".into());
                0
            }
        };
        let signal_table =
            get("signal.data.collection").and_then(|v| match v.trim().split_once('.') {
                Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
                    Some((schema.to_owned(), table.to_owned()))
                }
                _ => {
                    err(
                        "signal.data.collection",
                        format!("`{v}`: expected `schema.table`"),
                    );
                    None
                }
            });
        let incremental_chunk_size = match get("incremental.snapshot.chunk.size")
            .unwrap_or("1024")
            .parse::<usize>()
        {
            Ok(n) if n > 0 => n,
            _ => {
                err(
                    "incremental.snapshot.chunk.size",
                    "expected a number of rows, at least 1".into(),
                );
                1024
            }
        };
        let snapshot_new_tables = match get("snapshot.new.tables").unwrap_or("off") {
            "off" => false,
            "incremental" => {
                if signal_table.is_none() {
                    err(
                        "snapshot.new.tables",
                        "`incremental` needs signal.data.collection (the snapshot is signalled there)".into(),
                    );
                }
                if publication_mode != PublicationMode::Filtered {
                    err(
                        "snapshot.new.tables",
                        "`incremental` needs publication.autocreate.mode=filtered (only then does the publisher know which tables are new)".into(),
                    );
                }
                true
            }
            other => {
                err(
                    "snapshot.new.tables",
                    format!("`{other}`: expected off or incremental (a sinkfleet property)"),
                );
                false
            }
        };
        let heartbeat_action_query = get("heartbeat.action.query")
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        if heartbeat_action_query.is_some() && heartbeat_interval_ms == 0 {
            err(
                "heartbeat.action.query",
                "runs at every heartbeat, and heartbeat.interval.ms is 0 (off): set it".into(),
            );
        }
        let list = |k: &str| -> Vec<String> { get(k).map(regex_list).unwrap_or_default() };
        let mut message_key_columns = BTreeMap::new();
        if let Some(spec) = get("message.key.columns") {
            // `schema.table:col1,col2;schema.other:col`
            for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                match entry.split_once(':') {
                    Some((table, cols)) if table.contains('.') && !cols.trim().is_empty() => {
                        message_key_columns.insert(
                            table.trim().to_owned(),
                            cols.split(',').map(|c| c.trim().to_owned()).collect(),
                        );
                    }
                    _ => err(
                        "message.key.columns",
                        format!("`{entry}`: expected schema.table:col1,col2"),
                    ),
                }
            }
        }
        let slot_name = get("slot.name").unwrap_or("debezium").to_owned();
        // The slot name goes into START_REPLICATION unquoted.
        if slot_name.is_empty()
            || slot_name.len() > 63
            || !slot_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            err(
                "slot.name",
                format!("`{slot_name}`: use lower-case letters, digits and _ (at most 63)"),
            );
        }
        let owned = |k: &str| get(k).map(str::to_owned);
        let value_converter = converter("value", &owned, &mut err);
        // JsonConverter's key.converter.schemas.enable defaults to the
        // value's here (one flag used to cover both).
        let key_converter = match converter("key", &owned, &mut err) {
            Converter::Json { .. } if get("key.converter.schemas.enable").is_none() => {
                Converter::Json {
                    schemas: !matches!(value_converter, Converter::Json { schemas: false }),
                }
            }
            other => other,
        };
        let schemas_enable = match (&key_converter, &value_converter) {
            (Converter::Json { schemas: k }, Converter::Json { schemas: v }) => {
                if k != v {
                    err(
                        "key.converter.schemas.enable",
                        "must equal value.converter.schemas.enable".into(),
                    );
                }
                *v
            }
            _ => true,
        };

        // What the parsing above and below does not read is checked
        // against the connector's property table.
        for (key, value) in props {
            if properties::support(key) != Some(properties::Support::Implemented)
                && let Err(problem) = properties::check(key, value)
            {
                err(key, problem);
            }
        }
        let tls = SourceTls {
            mode: match get("database.sslmode") {
                None => SourceSslMode::default(),
                Some(v) => SourceSslMode::parse(v).unwrap_or_else(|| {
                    err(
                        "database.sslmode",
                        format!("`{v}`: expected disable, allow, prefer, require, verify-ca or verify-full"),
                    );
                    SourceSslMode::default()
                }),
            },
            root_cert: get("database.sslrootcert").map(PathBuf::from),
            client_cert: match (get("database.sslcert"), get("database.sslkey")) {
                (Some(cert), Some(key)) => Some((cert.into(), key.into())),
                (None, None) => None,
                (Some(_), None) => {
                    err("database.sslkey", "required with database.sslcert".into());
                    None
                }
                (None, Some(_)) => {
                    err("database.sslcert", "required with database.sslkey".into());
                    None
                }
            },
        };
        // Debezium's include/exclude pairs: one or the other, never both;
        // `anchored`: compiled here as whole-name, case-insensitive regexes
        // (the table and schema lists are compiled by the table filter).
        let mut pair = |include: &str, exclude: &str, anchored: bool| {
            let (inc, exc) = (list(include), list(exclude));
            if !inc.is_empty() && !exc.is_empty() {
                err(
                    exclude,
                    format!("cannot be combined with {include} (as in Debezium)"),
                );
            }
            for (property, patterns) in [(include, &inc), (exclude, &exc)] {
                if anchored && let Err(e) = column_patterns(patterns) {
                    err(property, e);
                }
            }
            (inc, exc)
        };
        let (table_include, table_exclude) =
            pair("table.include.list", "table.exclude.list", false);
        let (schema_include, schema_exclude) =
            pair("schema.include.list", "schema.exclude.list", false);
        let (column_include, column_exclude) =
            pair("column.include.list", "column.exclude.list", true);
        let (message_prefix_include, message_prefix_exclude) = pair(
            "message.prefix.include.list",
            "message.prefix.exclude.list",
            true,
        );
        let (column_mappers, problems) = ColumnMappers::from_properties(props);
        for (property, problem) in problems {
            err(&property, problem);
        }

        let config = ConnectorConfig {
            host: required("database.hostname", &mut err),
            port,
            user: required("database.user", &mut err),
            password: required("database.password", &mut err),
            dbname: required("database.dbname", &mut err),
            topic_prefix: required("topic.prefix", &mut err),
            slot_name,
            slot_drop_on_stop: flag("slot.drop.on.stop", false, &mut err),
            publication_name: get("publication.name")
                .unwrap_or("dbz_publication")
                .to_owned(),
            publication_mode,
            table_include,
            table_exclude,
            schema_include,
            schema_exclude,
            column_include,
            column_exclude,
            signal_table,
            incremental_chunk_size,
            snapshot_new_tables,
            message_prefix_include,
            message_prefix_exclude,
            column_mappers,
            snapshot_mode,
            tombstones_on_delete: flag("tombstones.on.delete", true, &mut err),
            heartbeat_interval_ms,
            heartbeat_action_query,
            message_key_columns,
            schemas_enable,
            key_converter,
            value_converter,
            tls,
            provide_transaction_metadata: flag("provide.transaction.metadata", false, &mut err),
            types,
            skipped_operations,
            extended_headers: flag("extended.headers.enabled", true, &mut err),
        };
        if config.tls.mode == SourceSslMode::VerifyFull
            && config.host.parse::<std::net::IpAddr>().is_ok()
        {
            err(
                "database.sslmode",
                format!(
                    "verify-full needs database.hostname to be the DNS name in the server's certificate, \
                     not the address `{}` (the replication client cannot match addresses); \
                     use verify-ca to verify the chain only",
                    config.host
                ),
            );
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// Topic of transaction BEGIN and END records:
    /// `<topic.prefix>.transaction`, as Debezium names it.
    pub fn transaction_topic(&self) -> String {
        format!("{}.transaction", self.topic_prefix)
    }

    /// Topic of a table: `<topic.prefix>.<schema>.<table>`.
    pub fn topic(&self, schema: &str, table: &str) -> String {
        format!("{}.{schema}.{table}", self.topic_prefix)
    }
}

/// A comma-separated list of regexes as Debezium reads one: `\,` is a
/// comma inside an entry (`c{1\,3}`), entries are trimmed, empty ones
/// dropped.
pub(crate) fn regex_list(value: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut entry = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                entry.push(',');
                chars.next();
            }
            ',' => entries.push(std::mem::take(&mut entry)),
            c => entry.push(c),
        }
    }
    entries.push(entry);
    entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `column.include.list`/`column.exclude.list` (and message prefix list)
/// entries compiled as Debezium matches them: the whole name, ignoring case.
pub fn column_patterns(patterns: &[String]) -> Result<Vec<regex::Regex>, String> {
    patterns
        .iter()
        .map(|p| {
            regex::RegexBuilder::new(&format!("^(?:{p})$"))
                .case_insensitive(true)
                .build()
                .map_err(|e| format!("`{p}`: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut p: BTreeMap<String, String> = [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("database.hostname", "pg"),
            ("database.port", "5432"),
            ("database.user", "cdc"),
            ("database.password", "cdc"),
            ("database.dbname", "app"),
            ("topic.prefix", "app"),
            ("plugin.name", "pgoutput"),
            ("publication.autocreate.mode", "filtered"),
            ("table.include.list", "public.orders,public.users"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            p.insert(k.to_string(), v.to_string());
        }
        p
    }

    #[test]
    fn the_issue_example_runs_as_is() {
        let c = ConnectorConfig::from_properties(&props(&[])).unwrap();
        assert_eq!(c.publication_mode, PublicationMode::Filtered);
        assert_eq!(c.table_include, vec!["public.orders", "public.users"]);
        assert_eq!(
            (c.slot_name.as_str(), c.publication_name.as_str()),
            ("debezium", "dbz_publication")
        );
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert!(c.tombstones_on_delete && c.schemas_enable);
        assert_eq!(c.topic("public", "orders"), "app.public.orders");
    }

    #[test]
    fn tls_follows_debezium_sslmode() {
        let c = ConnectorConfig::from_properties(&props(&[])).unwrap();
        assert_eq!(c.tls.mode, SourceSslMode::Prefer, "Debezium's default");
        let c = ConnectorConfig::from_properties(&props(&[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", "/etc/ca.pem"),
            ("database.sslcert", "/etc/client.pem"),
            ("database.sslkey", "/etc/client.key"),
        ]))
        .unwrap();
        assert_eq!(c.tls.mode, SourceSslMode::VerifyFull);
        let replication = c.tls.replication();
        assert_eq!(
            replication.ca_pem_path.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert!(replication.client_key_pem_path.is_some());

        let errs = ConnectorConfig::from_properties(&props(&[
            ("database.sslmode", "verify-full"),
            ("database.hostname", "10.0.0.5"),
            ("database.sslcert", "/etc/client.pem"),
        ]))
        .unwrap_err();
        let names: Vec<&str> = errs.iter().map(|e| e.property.as_str()).collect();
        assert_eq!(names, ["database.sslkey", "database.sslmode"]);
        let errs =
            ConnectorConfig::from_properties(&props(&[("database.sslmode", "on")])).unwrap_err();
        assert_eq!(errs[0].property, "database.sslmode");
    }

    #[test]
    fn regex_lists_read_an_escaped_comma_as_part_of_the_entry() {
        let cfg = ConnectorConfig::from_properties(&props(&[(
            "column.exclude.list",
            r" public\.t\.c{1\,3} , public.u.x,,",
        )]))
        .unwrap();
        assert_eq!(cfg.column_exclude, vec![r"public\.t\.c{1,3}", "public.u.x"]);
    }

    #[test]
    fn the_heartbeat_period_is_the_interval_as_given() {
        let period = |ms: &str| {
            ConnectorConfig::from_properties(&props(&[("heartbeat.interval.ms", ms)]))
                .unwrap()
                .heartbeat_period()
        };
        assert_eq!(period("250"), Some(std::time::Duration::from_millis(250)));
        assert_eq!(period("0"), None);
    }

    #[test]
    fn the_heartbeat_action_query_needs_the_heartbeat_interval() {
        let query = "INSERT INTO app.beats DEFAULT VALUES";
        let errs = ConnectorConfig::from_properties(&props(&[("heartbeat.action.query", query)]))
            .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].property, "heartbeat.action.query");
        let cfg = ConnectorConfig::from_properties(&props(&[
            ("heartbeat.action.query", query),
            ("heartbeat.interval.ms", "1000"),
        ]))
        .unwrap();
        assert_eq!(cfg.heartbeat_action_query.as_deref(), Some(query));
    }

    #[test]
    fn semantic_properties_it_cannot_honour_are_refused_by_name() {
        let errs = ConnectorConfig::from_properties(&props(&[
            ("time.precision.mode", "nanoseconds"),
            ("decimal.handling.mode", "exact"),
            ("transforms", "unwrap"),
            ("slot.name", "Bad-Slot"),
            ("snapshot.mode", "when_needed"),
            ("slot.stream.params", "origin=none"),
            ("event.converting.failure.handling.mode", "warn"),
            ("value.converter.replace.null.with.default", "true"),
            ("skipped.operations", "c,x"),
        ]))
        .unwrap_err();
        let names: Vec<&str> = errs.iter().map(|e| e.property.as_str()).collect();
        for refused in [
            "time.precision.mode",
            "decimal.handling.mode",
            "transforms",
            "slot.name",
            "snapshot.mode",
            "slot.stream.params",
            "event.converting.failure.handling.mode",
            "value.converter.replace.null.with.default",
            "skipped.operations",
        ] {
            assert!(names.contains(&refused), "{refused} in {names:?}");
        }
    }

    #[test]
    fn representation_options_and_skipped_operations() {
        use crate::types::options::{BinaryMode, DecimalMode, IntervalMode};
        let c = ConnectorConfig::from_properties(&props(&[])).unwrap();
        assert_eq!(c.skipped_operations, vec!['t'], "Debezium's default");
        assert_eq!(c.types, TypeOptions::default());
        assert!(c.extended_headers);
        let c = ConnectorConfig::from_properties(&props(&[
            ("decimal.handling.mode", "string"),
            ("interval.handling.mode", "string"),
            ("binary.handling.mode", "hex"),
            ("money.fraction.digits", "4"),
            ("skipped.operations", "none"),
            ("extended.headers.enabled", "false"),
        ]))
        .unwrap();
        assert_eq!(c.types.decimal, DecimalMode::String);
        assert_eq!(c.types.interval, IntervalMode::String);
        assert_eq!(c.types.binary, BinaryMode::Hex);
        assert_eq!(c.types.money_fraction_digits, 4);
        assert!(c.skipped_operations.is_empty() && !c.extended_headers);
        let c =
            ConnectorConfig::from_properties(&props(&[("skipped.operations", "u, d")])).unwrap();
        assert_eq!(c.skipped_operations, vec!['u', 'd']);
    }

    #[test]
    fn message_key_columns_and_harmless_properties() {
        let c = ConnectorConfig::from_properties(&props(&[
            (
                "message.key.columns",
                "public.orders:tenant,id; public.log:seq",
            ),
            ("tasks.max", "1"),
            ("name", "x"),
        ]))
        .unwrap();
        assert_eq!(c.message_key_columns["public.orders"], vec!["tenant", "id"]);
        assert_eq!(c.message_key_columns["public.log"], vec!["seq"]);
    }

    const AVRO: &str = "io.confluent.connect.avro.AvroConverter";

    #[test]
    fn avro_converters_key_and_value_independently() {
        let c = ConnectorConfig::from_properties(&props(&[
            ("value.converter", AVRO),
            ("value.converter.schema.registry.url", "https://r:8081"),
            ("value.converter.basic.auth.credentials.source", "USER_INFO"),
            ("value.converter.basic.auth.user.info", "me:se:cret"),
            ("key.converter.schemas.enable", "false"),
            ("value.converter.schemas.enable", "false"),
        ]))
        .unwrap();
        match &c.value_converter {
            Converter::Avro(r) => {
                assert_eq!(r.url, "https://r:8081");
                assert_eq!(r.username.as_deref(), Some("me"));
                assert_eq!(r.password.as_deref(), Some("se:cret"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.key_converter,
            Converter::Json { schemas: false }
        ));
        // The writer puts schemas in for the Avro part; the JSON key strips them.
        assert!(c.schemas_enable);

        let c = ConnectorConfig::from_properties(&props(&[
            ("key.converter", AVRO),
            ("key.converter.schema.registry.url", "http://r:8081"),
        ]))
        .unwrap();
        assert!(c.key_converter.is_avro() && !c.value_converter.is_avro());
    }

    #[test]
    fn a_registry_ca_is_a_pem_truststore() {
        let c = ConnectorConfig::from_properties(&props(&[
            ("value.converter", AVRO),
            ("value.converter.schema.registry.url", "https://r:8081"),
            (
                "value.converter.schema.registry.ssl.truststore.location",
                "/etc/ca.pem",
            ),
            ("value.converter.schema.registry.ssl.truststore.type", "PEM"),
        ]))
        .unwrap();
        match &c.value_converter {
            Converter::Avro(r) => {
                assert_eq!(
                    r.ca_file.as_deref(),
                    Some(std::path::Path::new("/etc/ca.pem"))
                );
            }
            other => panic!("{other:?}"),
        }
        // Confluent reads a location without a type as JKS.
        for truststore_type in [None, Some("JKS")] {
            let mut p = vec![
                ("value.converter", AVRO),
                ("value.converter.schema.registry.url", "https://r:8081"),
                (
                    "value.converter.schema.registry.ssl.truststore.location",
                    "/etc/ca.jks",
                ),
            ];
            if let Some(t) = truststore_type {
                p.push(("value.converter.schema.registry.ssl.truststore.type", t));
            }
            let errs = ConnectorConfig::from_properties(&props(&p)).unwrap_err();
            assert!(
                errs.iter()
                    .any(|e| e.property == "value.converter.schema.registry.ssl.truststore.type"),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn avro_options_it_does_not_implement_are_refused_by_name() {
        let errs = ConnectorConfig::from_properties(&props(&[
            ("value.converter", AVRO),
            (
                "value.converter.basic.auth.credentials.source",
                "SASL_INHERIT",
            ),
            ("value.converter.auto.register.schemas", "false"),
            (
                "value.converter.schema.registry.ssl.keystore.location",
                "/k.jks",
            ),
            (
                "key.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
        ]))
        .unwrap_err();
        let names: Vec<&str> = errs.iter().map(|e| e.property.as_str()).collect();
        for refused in [
            "value.converter.schema.registry.url", // required with Avro
            "value.converter.basic.auth.credentials.source",
            "value.converter.auto.register.schemas",
            "value.converter.schema.registry.ssl.keystore.location",
            "key.converter",
        ] {
            assert!(names.contains(&refused), "{refused} in {names:?}");
        }
        let errs = ConnectorConfig::from_properties(&props(&[
            ("value.converter", AVRO),
            ("value.converter.schema.registry.url", "http://u:p@r:8081"),
            ("value.converter.basic.auth.user.info", "u:p"),
        ]))
        .unwrap_err();
        let names: Vec<&str> = errs.iter().map(|e| e.property.as_str()).collect();
        assert!(names.contains(&"value.converter.schema.registry.url"));
        assert!(names.contains(&"value.converter.basic.auth.credentials.source"));
        // An Avro option on a JsonConverter part.
        let errs = ConnectorConfig::from_properties(&props(&[(
            "key.converter.schema.registry.url",
            "http://r:8081",
        )]))
        .unwrap_err();
        assert_eq!(errs[0].property, "key.converter.schema.registry.url");
    }
}
