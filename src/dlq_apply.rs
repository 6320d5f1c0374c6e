//! `sinkfleet dlq replay --through-sink`: dead letters applied directly by
//! the configured sink, without going back through Kafka.
//!
//! Each record keeps its original position (topic, partition, offset), so
//! a record versioned by its Kafka offset keeps its version, and records
//! are applied one at a time in their original order. A record the sink
//! refuses again stays where it is, in the dead-letter topic, and is
//! reported; nothing of it reaches the target. The sink is idempotent, so
//! applying a record twice, or one that a newer change of its key has
//! overtaken, changes nothing.
//!
//! This does not release a parked key (`on_error: park_key`): only the
//! key's partition, in stream order, can do that, so use `replay` into the
//! topic for those.

use crate::config::{Config, SinkConfig};
use anyhow::{Context, bail};
use sinkfleet_core::debezium::Decoder;
use sinkfleet_core::{FlushMode, Position, Sink, SinkError, SinkRecord};
use sinkfleet_kafka::inspect::Letter;
use sinkfleet_kafka::retry::Backoff;
use sinkfleet_sink_postgres::{ApplyMode, OffsetStorage};
use std::sync::Arc;

/// Tries of a write or flush that fails retryably before giving up (the
/// target is down: the operator can run the command again later).
const ATTEMPTS: u32 = 5;

/// What happened to each letter.
pub struct Outcome {
    /// One line per letter.
    pub report: String,
    /// Indices of the letters handled: applied, or nothing to apply (a
    /// tombstone). The others were refused again.
    pub handled: Vec<usize>,
}

/// Applies `letters` (in the order given) through the sink of `config`.
pub async fn apply(config: &Config, letters: &[&Letter]) -> anyhow::Result<Outcome> {
    match &config.sink {
        SinkConfig::Postgres(pg) => {
            // One-off writes: no claimed partitions to fence offsets with,
            // and no transaction to assemble.
            let mut pg = pg.clone();
            pg.offset_storage = OffsetStorage::Kafka;
            pg.apply = ApplyMode::PerTable;
            pg.pool_size = Some(1);
            apply_with(
                sinkfleet_sink_postgres::PostgresSink::new(pg)?,
                config,
                letters,
            )
            .await
        }
        SinkConfig::Clickhouse(ch) => {
            let sink = sinkfleet_sink_clickhouse::ClickHouseSink::new(ch.clone())?;
            apply_with(sink, config, letters).await
        }
        SinkConfig::S3Parquet(s3) => {
            let sink = sinkfleet_sink_s3_parquet::ParquetSink::new(s3.clone())?;
            apply_with(sink, config, letters).await
        }
    }
}

async fn apply_with<S: Sink>(
    mut sink: S,
    config: &Config,
    letters: &[&Letter],
) -> anyhow::Result<Outcome> {
    let runtime = config.runtime()?;
    let backoff = Backoff::from_config(&runtime.worker);
    let registry = runtime.registry.clone();
    let mut decoder = Decoder::new(runtime.decode);
    let mut report = String::new();
    let mut handled = Vec::new();
    for (i, l) in letters.iter().enumerate() {
        let Some((topic, partition, offset)) = &l.origin else {
            bail!(
                "dead letter {}@{} has no sinkfleet.original.* headers: its position is unknown",
                l.partition,
                l.offset
            );
        };
        let from = format!(
            "{}@{} ({topic}/{partition}@{offset})",
            l.partition, l.offset
        );
        for id in decoder.missing_schemas(topic, l.key.as_deref(), l.value.as_deref()) {
            // Validation guarantees a registry where a format needs one.
            if let Some(registry) = &registry {
                let schema = registry
                    .schema(id)
                    .await
                    .with_context(|| format!("dead letter {from}"))?;
                decoder.add_schema(id, schema);
            }
        }
        let change =
            match decoder.decode_record(topic, l.key.as_deref(), l.value.as_deref(), *offset) {
                Ok(Some(change)) => change,
                Ok(None) => {
                    report.push_str(&format!("nothing to apply {from}: a tombstone\n"));
                    handled.push(i);
                    continue;
                }
                Err(e) => {
                    report.push_str(&format!("refused {from}: decode: {e}\n"));
                    continue;
                }
            };
        let record = SinkRecord {
            position: Position {
                topic: Arc::from(topic.as_str()),
                partition: *partition,
                offset: *offset,
            },
            change,
        };
        match write(&mut sink, record, &backoff).await {
            Ok(()) => {
                report.push_str(&format!("applied {from}\n"));
                handled.push(i);
            }
            Err(SinkError::Permanent { class, message }) => {
                report.push_str(&format!("refused {from}: {}: {message}\n", class.as_str()));
            }
            Err(e @ SinkError::Retryable(_)) => {
                bail!("{report}stopped at {from}: the target keeps failing: {e}")
            }
        }
    }
    // A buffering sink (Parquet) holds what it was given until a flush.
    let mut attempt = 0;
    while let Err(e) = sink.flush(FlushMode::All).await {
        attempt += 1;
        if !e.is_retryable() || attempt >= ATTEMPTS {
            bail!("{report}flushing the sink: {e}");
        }
        tokio::time::sleep(backoff.delay(attempt)).await;
    }
    Ok(Outcome { report, handled })
}

/// Writes one record, retrying a retryable error a few times.
async fn write<S: Sink>(
    sink: &mut S,
    record: SinkRecord,
    backoff: &Backoff,
) -> Result<(), SinkError> {
    let batch = [record];
    let mut attempt = 0;
    loop {
        match sink.write(&batch).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "retryable error; retrying");
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
