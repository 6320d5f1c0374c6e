//! The one place that builds the configured sink, for a worker's writers
//! or for the writes of one command (`dlq replay --through-sink`).
//!
//! What is done with the sink is generic over its type ([`UseSink`]), so
//! each use is written once for the three sinks, and each sink's build
//! rules (pool size, buffer share, offset store) live here only.

use crate::config::SinkConfig;
use sinkfleet_core::{ConfigError, OffsetStore, Sink};
use sinkfleet_sink_clickhouse::ClickHouseSink;
use sinkfleet_sink_postgres::{ApplyMode, OffsetStorage, PostgresSink};
use sinkfleet_sink_s3_parquet::ParquetSink;
use std::sync::Arc;

/// What the sink is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A worker with this many writers, one sink instance each.
    Worker {
        /// Writers (sink instances).
        writers: usize,
    },
    /// One command's writes, one at a time: no claimed partitions to fence
    /// offsets with, no transaction to assemble.
    OneOff,
}

/// What is done with a sink: `new_sink` makes an instance (one per writer),
/// `offsets` is the store of offsets kept in the target, if any.
pub(crate) trait UseSink {
    /// Its result.
    type Output;

    /// Uses sinks of type `S`.
    async fn use_sink<S: Sink + 'static>(
        self,
        new_sink: impl FnMut() -> Result<S, ConfigError> + Send + 'static,
        offsets: Option<Arc<dyn OffsetStore>>,
    ) -> anyhow::Result<Self::Output>;
}

/// Builds the sink of `config` for `purpose` (consumer group `group`) and
/// hands it to `user`.
pub async fn with_sink<U: UseSink>(
    config: SinkConfig,
    purpose: Purpose,
    group: &str,
    user: U,
) -> anyhow::Result<U::Output> {
    match config {
        SinkConfig::Postgres(mut pg) => {
            match purpose {
                Purpose::OneOff => {
                    pg.offset_storage = OffsetStorage::Kafka;
                    pg.apply = ApplyMode::PerTable;
                    pg.pool_size = Some(1);
                }
                // The writers share one connection pool, by default one
                // connection each, and one to claim partitions with when
                // offsets are kept in the target.
                Purpose::Worker { writers } => {
                    let claims = usize::from(pg.offset_storage == OffsetStorage::Target);
                    pg.pool_size
                        .get_or_insert(u32::try_from(writers + claims).unwrap_or(u32::MAX));
                }
            }
            let mut first = PostgresSink::new(pg)?;
            let offsets = match purpose {
                Purpose::Worker { .. } => first
                    .offset_store(group)?
                    .map(|store| store as Arc<dyn OffsetStore>),
                Purpose::OneOff => None,
            };
            user.use_sink(move || Ok(first.sibling()), offsets).await
        }
        SinkConfig::Clickhouse(ch) => {
            user.use_sink(move || ClickHouseSink::new(ch.clone()), None)
                .await
        }
        SinkConfig::S3Parquet(mut s3) => {
            // `max_buffer_bytes` bounds the process: each writer's sink
            // instance keeps its share of it.
            if let Purpose::Worker { writers } = purpose {
                s3.max_buffer_bytes = s3.buffer_share(writers);
            }
            user.use_sink(move || ParquetSink::new(s3.clone()), None)
                .await
        }
    }
}
