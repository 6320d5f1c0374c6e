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

use crate::config::Config;
use crate::sinks::{Purpose, UseSink};
use anyhow::{Context, bail};
use sinkfleet_core::debezium::Decoder;
use sinkfleet_core::{ConfigError, FlushMode, Position, Sink, SinkError, SinkRecord};
use sinkfleet_kafka::inspect::Letter;
use sinkfleet_kafka::retry::Backoff;
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
    let through = ThroughSink { config, letters };
    crate::sinks::with_sink(
        config.sink.clone(),
        Purpose::OneOff,
        &config.kafka.group_id,
        through,
    )
    .await
}

/// One sink instance, applying the letters one at a time.
struct ThroughSink<'a> {
    config: &'a Config,
    letters: &'a [&'a Letter],
}

impl UseSink for ThroughSink<'_> {
    type Output = Outcome;

    async fn use_sink<S: Sink + 'static>(
        self,
        mut new_sink: impl FnMut() -> Result<S, ConfigError> + Send + 'static,
        _offsets: Option<Arc<dyn sinkfleet_core::OffsetStore>>,
    ) -> anyhow::Result<Outcome> {
        apply_with(new_sink()?, self.config, self.letters).await
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
