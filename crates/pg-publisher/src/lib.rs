//! pg-publisher: tails the Postgres WAL through a logical replication slot
//! (pgoutput over `START_REPLICATION`, no triggers, no polling) and
//! produces Debezium-compatible change events to Kafka.
//!
//! * Accepts a Debezium PostgreSQL connector config as-is ([`config`]).
//! * Creates the publication and the slot if missing; never drops them on
//!   stop unless `slot.drop.on.stop` says so ([`control`]).
//! * Takes the initial snapshot inside the snapshot exported at slot
//!   creation, so snapshot and stream meet exactly ([`snapshot`]).
//! * Confirms a flush LSN only after Kafka acknowledged every event of
//!   every transaction up to that commit ([`stream`]).

pub mod avro;
pub mod column_mappers;
pub mod config;
mod connect_schema;
pub mod control;
pub mod event;
pub mod headers;
pub mod incremental;
pub mod json_schema;
pub mod metrics;
mod ordered_json;
pub mod pgoutput;
pub mod producer;
pub mod properties;
pub mod protobuf;
pub mod snapshot;
pub mod stream;
pub mod tls;
pub mod transaction;
pub mod types;

use crate::metrics::PUBLISHER_RECONNECTS_TOTAL;
use config::{ConnectorConfig, PublisherSettings, SnapshotMode};
use control::ControlError;
use pgwire_replication::{ReplicationClient, ReplicationConfig};
use producer::EventProducer;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;
use types::registry::TypeRegistry;

/// Why the publisher stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Catalog, publication, slot or table problem.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Streaming failed.
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    /// The replication connection could not be set up.
    #[error("replication connection: {0}")]
    Replication(String),
    /// Kafka could not be reached or refused events.
    #[error("kafka: {0}")]
    Kafka(String),
}

/// Session settings pinning the text format of values (walsender and
/// snapshot alike), which [`types`] parses.
const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c extra_float_digits=3 -c bytea_output=hex -c IntervalStyle=postgres";

/// Runs the publisher until `shutdown` completes.
pub async fn run(
    cfg: ConnectorConfig,
    settings: PublisherSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PublishError> {
    crate::metrics::at_zero::publisher();
    let connect = cfg.tls.sql(
        PgConnectOptions::new()
            .host(&cfg.host)
            .port(cfg.port)
            .username(&cfg.user)
            .password(&cfg.password)
            .database(&cfg.dbname)
            .application_name("sinkfleet-publisher")
            // The text of defaults (`pg_get_expr`) and of snapshot values
            // in the walsender's formats, which `types` reads.
            .options([
                ("TimeZone", "UTC"),
                ("DateStyle", "ISO,YMD"),
                ("IntervalStyle", "postgres"),
                ("extra_float_digits", "3"),
                ("bytea_output", "hex"),
            ]),
    );
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect.clone())
        .await
        .map_err(|source| ControlError::Sql {
            context: "connecting to the source database",
            source,
        })?;

    let registry = TypeRegistry::load(&pool)
        .await
        .map_err(|source| ControlError::Sql {
            context: "reading the source's types",
            source,
        })?;
    // Refuse at start, by name, any captured table that cannot be keyed
    // or has a column that cannot be read.
    let tables = control::captured_tables(&pool, &cfg).await?;
    for table in &tables {
        snapshot::table_codec(&pool, table, &cfg, &registry).await?;
    }
    tracing::info!(tables = tables.len(), "captured tables");
    // The signal table's inserts must reach the stream, captured or not.
    let mut published = tables.clone();
    if let Some((schema, name)) = &cfg.signal_table {
        let signal = control::table_named(&pool, schema, name)
            .await?
            .ok_or_else(|| {
                ControlError::Refused(format!(
                    "signal.data.collection: table {schema}.{name} does not exist \
                     (create it: id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))"
                ))
            })?;
        if !published.iter().any(|t| t.oid == signal.oid) {
            published.push(signal);
        }
    }
    let new_tables = incremental::new_tables(&pool, &cfg, &tables).await?;
    control::ensure_publication(&pool, &cfg, &published).await?;

    let client = sinkfleet_kafka::client_config(&sinkfleet_kafka::KafkaConfig {
        brokers: settings.brokers.clone(),
        group_id: String::new(),
        topics: Vec::new(),
        group_instance_id: None,
        properties: settings.kafka_properties.clone(),
    });
    let key_format = part_format(&cfg, avro::Part::Key)?;
    let value_format = part_format(&cfg, avro::Part::Value)?;
    let mut producer =
        EventProducer::new(client, settings.topic_partitions, settings.create_topics)
            .map_err(|e| PublishError::Kafka(e.to_string()))?
            .with_formats(key_format, value_format);

    let existing = control::slot(&pool, &cfg).await?;
    let repl_config = ReplicationConfig::new(
        cfg.host.clone(),
        cfg.user.clone(),
        cfg.password.clone(),
        cfg.dbname.clone(),
        cfg.slot_name.clone(),
        cfg.publication_name.clone(),
    )
    .with_port(cfg.port)
    .with_tls(cfg.tls.replication())
    .with_options(SESSION_OPTIONS)
    .with_application_name("sinkfleet-publisher")
    // Short: an acknowledgement reaches the server within this interval.
    .with_status_interval(Duration::from_millis(500));

    // Tables the stream picks up from now on: their rows so far come
    // through an incremental snapshot (a new slot's snapshot reads them).
    if existing.is_some() && !new_tables.is_empty() {
        incremental::request(&pool, &cfg, &new_tables).await?;
    }
    let repl = match existing {
        Some(slot) => {
            tracing::info!(slot = %cfg.slot_name, confirmed = ?slot.confirmed_flush_lsn, "resuming from the existing slot");
            // A crash between copying the staging slot and dropping it
            // leaves it behind, holding WAL: it is not needed any more.
            drop_staging_slot(&pool, &staging_slot_name(&cfg.slot_name)).await;
            if cfg.snapshot_mode == SnapshotMode::InitialOnly {
                tracing::info!("snapshot.mode=initial_only and the slot exists: nothing to do");
                return Ok(());
            }
            let start = pgwire_replication::Lsn::from_u64(slot.confirmed_flush_lsn.unwrap_or(0));
            ReplicationClient::connect(repl_config.clone().with_start_lsn(start))
                .await
                .map_err(|e| PublishError::Replication(e.to_string()))?
        }
        None => {
            // With a snapshot, the slot is created under a staging name and
            // gets its real name (a copy) only once the snapshot is complete
            // in Kafka: a publisher killed mid-snapshot leaves no slot under
            // the real name, so the next start snapshots again instead of
            // streaming on from a half-read table. A leftover staging slot
            // from such a crash is dropped first.
            let snapshotting = cfg.snapshot_mode != SnapshotMode::Never;
            let staging = staging_slot_name(&cfg.slot_name);
            if snapshotting {
                drop_staging_slot(&pool, &staging).await;
            }
            let create_as = if snapshotting {
                &staging
            } else {
                &cfg.slot_name
            };
            let mut repl = ReplicationClient::connect_gated(repl_config.clone())
                .await
                .map_err(|e| PublishError::Replication(e.to_string()))?;
            let rows = repl
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {create_as} LOGICAL pgoutput EXPORT_SNAPSHOT"
                ))
                .await
                .map_err(|e| PublishError::Replication(e.to_string()))?;
            let field = |i: usize| {
                rows.first()
                    .and_then(|r| r.get(i).cloned().flatten())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            };
            let (Some(point), Some(snapshot_name)) = (field(1), field(2)) else {
                return Err(PublishError::Replication(
                    "CREATE_REPLICATION_SLOT returned no snapshot".into(),
                ));
            };
            let snapshot_lsn = control::parse_lsn(&point).unwrap_or(0);
            tracing::info!(slot = %create_as, consistent_point = %point, "slot created");
            if snapshotting {
                let started = std::time::Instant::now();
                let result = snapshot::run(
                    &connect,
                    &pool,
                    &snapshot_name,
                    snapshot_lsn,
                    &tables,
                    &cfg,
                    &registry,
                    &mut producer,
                )
                .await;
                let result = match result {
                    Ok(r) => r,
                    Err(e) => {
                        drop(repl);
                        drop_staging_slot(&pool, &staging).await;
                        return Err(e.into());
                    }
                };
                // Everything of the snapshot is in Kafka before the slot
                // gets its real name and anything past the consistent point
                // is confirmed.
                for d in result.deliveries {
                    if let Err(e) = snapshot::acknowledged(d).await {
                        drop(repl);
                        drop_staging_slot(&pool, &staging).await;
                        return Err(PublishError::Kafka(e));
                    }
                }
                tracing::info!(
                    rows = result.rows,
                    seconds = started.elapsed().as_secs_f64(),
                    "snapshot complete"
                );
                // Ends the exported snapshot and frees the staging slot.
                drop(repl);
                control::copy_slot(&pool, &staging, &cfg.slot_name).await?;
                drop_staging_slot(&pool, &staging).await;
                if cfg.snapshot_mode == SnapshotMode::InitialOnly {
                    return Ok(());
                }
                resume(&pool, &cfg, repl_config.clone()).await?
            } else {
                repl.start()
                    .await
                    .map_err(|e| PublishError::Replication(e.to_string()))?;
                repl
            }
        }
    };

    // The shutdown signal as a flag every (re)connected stream can watch.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let stop_signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        std::future::pending::<()>().await
    };
    let streaming = stream_with_reconnects(
        repl,
        repl_config,
        &pool,
        &cfg,
        registry,
        &mut producer,
        stop,
    );
    let result = tokio::select! {
        result = streaming => result,
        () = stop_signal => Ok(()),
    };
    result?;
    if cfg.slot_drop_on_stop {
        // A slot left behind holds WAL on the source until its disk fills:
        // a stop that cannot drop it fails, naming it.
        drop_slot(&pool, &cfg.slot_name).await.map_err(|e| {
            PublishError::Control(ControlError::Refused(format!(
                "slot.drop.on.stop: {e}; drop it by hand (SELECT pg_drop_replication_slot('{}'))",
                cfg.slot_name
            )))
        })?;
    }
    Ok(())
}

/// What the producer does to the keys (or values) the publisher writes.
fn part_format(cfg: &ConnectorConfig, part: avro::Part) -> Result<avro::PartFormat, PublishError> {
    let converter = match part {
        avro::Part::Key => &cfg.key_converter,
        avro::Part::Value => &cfg.value_converter,
    };
    Ok(match converter {
        config::Converter::Json { schemas: true } => avro::PartFormat::Json,
        // The writer puts schemas in only because the other part is Avro.
        config::Converter::Json { schemas: false } if cfg.schemas_enable => {
            avro::PartFormat::JsonPayloadOnly
        }
        config::Converter::Json { schemas: false } => avro::PartFormat::Json,
        config::Converter::Avro(registry) => avro::PartFormat::Avro(avro::AvroConverter::new(
            part,
            sinkfleet_schema_registry::RegistryClient::new(registry)
                .map_err(|e| ControlError::Refused(e.to_string()))?,
        )),
        config::Converter::JsonSchema(registry) => avro::PartFormat::Avro(avro::AvroConverter::of(
            avro::Kind::JsonSchema,
            part,
            sinkfleet_schema_registry::RegistryClient::new(registry)
                .map_err(|e| ControlError::Refused(e.to_string()))?,
        )),
        config::Converter::Protobuf(registry, options) => {
            avro::PartFormat::Avro(avro::AvroConverter::of(
                avro::Kind::Protobuf(*options),
                part,
                sinkfleet_schema_registry::RegistryClient::new(registry)
                    .map_err(|e| ControlError::Refused(e.to_string()))?,
            ))
        }
    })
}

/// Reconnects after this many replication failures in a row, then gives up.
const MAX_RECONNECTS: u32 = 5;
/// A stream that ran this long counts as recovered: the failure count restarts.
const STABLE_STREAM: Duration = Duration::from_secs(60);

/// Streams the slot; when the replication connection fails (the server
/// restarted, a network cut, a transient decoding error), reconnects from
/// the slot's confirmed LSN with backoff. Events after that LSN are
/// produced again: at-least-once, which the sinks' version checks absorb.
/// Kafka and decoding errors are not retried here: they stop the publisher.
async fn stream_with_reconnects(
    mut repl: ReplicationClient,
    repl_config: ReplicationConfig,
    pool: &sqlx::PgPool,
    cfg: &ConnectorConfig,
    mut registry: TypeRegistry,
    producer: &mut EventProducer,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), stream::StreamError> {
    let mut failures = 0u32;
    loop {
        let mut watch = stop.clone();
        let started = std::time::Instant::now();
        let stopped = async move {
            let _ = watch.wait_for(|stop| *stop).await;
        };
        let failure = match stream::run(repl, pool.clone(), cfg, &mut registry, producer, stopped)
            .await
        {
            Err(
                e @ (stream::StreamError::Replication(_) | stream::StreamError::HeartbeatAction(_)),
            ) if !*stop.borrow() => e,
            other => return other,
        };
        if started.elapsed() >= STABLE_STREAM {
            failures = 0;
        }
        repl = loop {
            failures += 1;
            if failures > MAX_RECONNECTS {
                return Err(failure);
            }
            ::metrics::counter!(PUBLISHER_RECONNECTS_TOTAL).increment(1);
            tracing::warn!(error = %failure, attempt = failures, "replication stream failed: reconnecting from the confirmed LSN");
            tokio::time::sleep(Duration::from_millis(500 << failures.min(5))).await;
            if *stop.borrow() {
                return Ok(());
            }
            // The slot stays active until the server notices the old
            // connection is gone (55006): that is retried like the rest.
            match resume(pool, cfg, repl_config.clone()).await {
                Ok(client) => break client,
                Err(e) => tracing::warn!(error = %e, "reconnecting failed"),
            }
        };
    }
}

/// A replication client streaming from the slot's confirmed LSN.
async fn resume(
    pool: &sqlx::PgPool,
    cfg: &ConnectorConfig,
    repl_config: ReplicationConfig,
) -> Result<ReplicationClient, PublishError> {
    let slot = control::slot(pool, cfg)
        .await?
        .ok_or_else(|| PublishError::Replication(format!("slot {} is gone", cfg.slot_name)))?;
    let start = pgwire_replication::Lsn::from_u64(slot.confirmed_flush_lsn.unwrap_or(0));
    ReplicationClient::connect(repl_config.with_start_lsn(start))
        .await
        .map_err(|e| PublishError::Replication(e.to_string()))
}

/// The name a slot has while its snapshot is being read.
fn staging_slot_name(slot: &str) -> String {
    format!("{}_snap", &slot[..slot.len().min(58)])
}

/// How long a slot may stay active after its replication connection was
/// closed: the walsender lets go once it has seen the connection end.
const SLOT_RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Drops `slot` if it exists. A slot stays active until its walsender has
/// noticed that the replication connection is gone, so an active slot is
/// waited for (up to [`SLOT_RELEASE_TIMEOUT`]) and the drop retried.
async fn drop_slot(pool: &sqlx::PgPool, slot: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + SLOT_RELEASE_TIMEOUT;
    loop {
        let dropped = sqlx::query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(slot)
        .execute(pool)
        .await;
        let error = match dropped {
            Ok(result) => {
                if result.rows_affected() > 0 {
                    tracing::info!(%slot, "slot dropped");
                }
                return Ok(());
            }
            Err(e) => e,
        };
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "slot {slot} could not be dropped within {}s: {error}",
                SLOT_RELEASE_TIMEOUT.as_secs()
            ));
        }
        tracing::debug!(%slot, %error, "slot still in use: waiting for its walsender to let go");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`drop_slot`] for the staging slot, whose leftovers are only logged:
/// the next start drops it again.
async fn drop_staging_slot(pool: &sqlx::PgPool, slot: &str) {
    if let Err(e) = drop_slot(pool, slot).await {
        tracing::error!(error = %e, "drop the staging slot by hand");
    }
}
