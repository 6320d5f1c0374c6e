//! sinkfleet's Kafka consumer runtime.
//!
//! [`run`] consumes the configured topics in a consumer group and feeds
//! `worker.writers` instances of a [`Sink`], one write in flight each.
//! Guarantees:
//! * **Offsets after durability**: a partition's committed offset only moves
//!   over records that the sink made durable or that went to the
//!   dead-letter topic (acknowledged). Nothing in flight is committed.
//! * **Commits until acknowledged**: an offset counts as committed when the
//!   broker acknowledged it; a refused commit is retried until it lands or
//!   the partition is gone, so an idle partition never keeps a stale
//!   committed offset.
//! * **Per-partition order**: a partition is bound to one writer while it is
//!   assigned, and that writer applies one batch at a time.
//! * **Backpressure by pausing partitions**: in-flight records and bytes are
//!   budgeted per partition and globally; over budget, or while the sink is
//!   failing, partitions are paused. Polling never stops, so a slow sink
//!   never triggers a rebalance.
//! * **Rebalance drain**: a revoke waits (up to the drain timeout) for the
//!   revoked partitions' in-flight writes, commits what is durable, then
//!   lets them go. No offset is committed for a partition we no longer own.
//! * **Clean shutdown**: finish or abandon in-flight writes within the
//!   shutdown timeout, commit, leave the group.

pub mod admin;
mod clock;
mod commit_thread;
mod commit_tracker;
pub mod config;
mod consumer;
mod coordinator;
pub mod dead_letter;
mod end_offsets;
pub mod group;
pub mod inspect;
mod messages;
pub mod metrics;
pub mod parking;
mod partition;
pub mod producer;
mod progress;
pub mod reach;
mod reading;
pub mod resolution;
pub mod retry;
mod revocations;
pub mod status;
mod writer;

pub use config::{
    DeadLetterConfig, KafkaConfig, OnError, RateLimit, TransactionsConfig, WorkerConfig,
};
pub use coordinator::Health;

use consumer::{WorkerContext, poll_loop};
use coordinator::Coordinator;
use dead_letter::DeadLetterProducer;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sinkfleet_core::debezium::DecodeOptions;
use sinkfleet_core::{OffsetStore, Sink};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::mpsc;

/// Errors that stop the runtime at start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The dead-letter topic could not be created.
    #[error("dead-letter topic: {0}")]
    DeadLetterTopic(String),
    /// A sink instance could not be built from its configuration.
    #[error("sink: {0}")]
    Sink(#[from] sinkfleet_core::ConfigError),
    /// An internal task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// Everything [`run`] needs besides the sink.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Kafka connection and group.
    pub kafka: KafkaConfig,
    /// Batching, budgets, retries.
    pub worker: WorkerConfig,
    /// Dead-letter routing.
    pub dead_letter: DeadLetterConfig,
    /// How records become changes.
    pub decode: DecodeOptions,
    /// Transactional apply, if on (one writer, whole source transactions).
    pub transactions: Option<TransactionsConfig>,
    /// Status reports.
    pub status: status::StatusConfig,
    /// The Schema Registry of registry-format topics.
    pub registry: Option<sinkfleet_schema_registry::RegistryClient>,
}

/// The librdkafka settings shared by the consumer, the dead-letter producer
/// and the admin client: bootstrap servers plus user properties.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
    c
}

/// librdkafka's consumer-only properties (`C` in its CONFIGURATION.md).
/// `kafka.properties` is one map for the worker's consumer and its
/// producers (dead letters, status, parking, replay) and admin clients;
/// those ignore these, warning about each on every start.
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.protocol.type",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "offset.store.method",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "auto.offset.reset",
    "auto.commit.enable",
    "consume.callback.max.messages",
];

/// `client` without the consumer-only properties, for a producer or an
/// admin client (which would ignore them, with a warning each).
pub fn producer_side(client: &ClientConfig) -> ClientConfig {
    let mut c = client.clone();
    for key in CONSUMER_ONLY {
        c.remove(key);
    }
    c
}

fn consumer_config(cfg: &RuntimeConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.brokers)
        .set("group.id", &cfg.kafka.group_id)
        // Offsets are committed by the coordinator, only over durable records.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        // librdkafka's prefetch queue counts against memory: keep it modest.
        .set("queued.max.messages.kbytes", "16384")
        // Once that queue is full, librdkafka stops fetching a partition
        // for this long (default 1000 ms). With a small queue that is most
        // of the time: measured, the worker read at a third of its rate,
        // idle, waiting for the next fetch.
        .set("fetch.queue.backoff.ms", "10");
    if let Some(id) = &cfg.kafka.group_instance_id {
        c.set("group.instance.id", id);
    }
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v);
    }
    c
}

/// Consumes until `shutdown` completes, then drains, commits and leaves the
/// group. `new_sink` is called once per writer (`worker.writers`): each
/// instance is used by one writer only. `offsets` is given when the sink
/// keeps offsets in its target: assigned partitions then start where the
/// target says. Returns an error only for failures at start.
pub async fn run<S: Sink>(
    mut new_sink: impl FnMut() -> Result<S, sinkfleet_core::ConfigError>,
    offsets: Option<Arc<dyn OffsetStore>>,
    cfg: RuntimeConfig,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    // Whole transactions span partitions: one writer applies them in
    // commit order.
    let writers = match cfg.transactions {
        Some(_) => 1,
        None => cfg.worker.writers.max(1),
    };
    let sinks = (0..writers)
        .map(|_| new_sink())
        .collect::<Result<Vec<S>, _>>()?;
    let sink_name = sinks[0].name();
    let client = client_config(&cfg.kafka);
    if cfg.dead_letter.create_topic {
        admin::ensure_topic(&client, &cfg.dead_letter.topic, 1)
            .await
            .map_err(RuntimeError::DeadLetterTopic)?;
    }
    let dead_letters = Arc::new(DeadLetterProducer::new(
        &client,
        cfg.dead_letter.topic.clone(),
    )?);
    let parking = match cfg.dead_letter.on_error {
        OnError::Skip => None,
        OnError::ParkKey => {
            let topic = cfg.dead_letter.parked_topic();
            if cfg.dead_letter.create_topic {
                // One partition (a small set, read whole at every
                // assignment), compacted: only a key's latest state counts.
                admin::ensure_topic_with(&client, &topic, 1, &[("cleanup.policy", "compact")])
                    .await
                    .map_err(RuntimeError::DeadLetterTopic)?;
            }
            Some(Arc::new(parking::Parking::new(&client, topic)?))
        }
    };

    // Holds up to 4096 records, as when each was its own event.
    let (poll_tx, poll_rx) = mpsc::channel(4096 / consumer::RECORD_BURST);
    let answers_tx = poll_tx.clone();
    let broker_offsets = Arc::default();
    let context = WorkerContext::new(
        poll_tx,
        Duration::from_millis(cfg.worker.drain_timeout_ms),
        retry::Backoff::from_config(&cfg.worker),
        Arc::clone(&broker_offsets),
        offsets.map(|store| consumer::TargetOffsets {
            store,
            runtime: tokio::runtime::Handle::current(),
        }),
        parking.clone(),
    );
    // Before the group is joined: the first assignment is a rebalance too.
    crate::metrics::at_zero::worker();
    let consumer: Arc<BaseConsumer<WorkerContext>> =
        Arc::new(consumer_config(&cfg).create_with_context(context)?);
    let mut topics: Vec<&str> = cfg.kafka.topics.iter().map(String::as_str).collect();
    if let Some(tx) = &cfg.transactions
        && !topics.contains(&tx.topic.as_str())
    {
        topics.push(&tx.topic);
    }
    consumer.subscribe(&topics)?;
    tracing::info!(topics = ?cfg.kafka.topics, group = %cfg.kafka.group_id, sink = sink_name, writers = sinks.len(), "subscribed");

    let stop = Arc::new(AtomicBool::new(false));
    let poll_thread = {
        let consumer = Arc::clone(&consumer);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("kafka-poll".into())
            .spawn(move || poll_loop(consumer, stop))
            .map_err(|e| RuntimeError::Internal(e.to_string()))?
    };

    let (writer_events_tx, writer_events_rx) = mpsc::unbounded_channel();
    let shared = writer::Shared {
        dead_letters,
        parking,
        limits: Arc::new(writer::Limits::new(cfg.worker.rate_limit)),
        backoff: retry::Backoff::from_config(&cfg.worker),
        events: writer_events_tx,
    };
    let mut lanes = Vec::with_capacity(sinks.len());
    let mut writers = Vec::with_capacity(sinks.len());
    for (index, sink) in sinks.into_iter().enumerate() {
        // A job and a flush can queue behind the one being written.
        let (commands_tx, commands_rx) = mpsc::channel(2);
        let (revocations_tx, revocations_rx) = mpsc::unbounded_channel();
        writers.push(tokio::spawn(writer::run(
            index,
            sink,
            shared.clone(),
            commands_rx,
            revocations::Revocations::new(revocations_rx),
        )));
        lanes.push(coordinator::Lane::new(commands_tx, revocations_tx));
    }
    drop(shared);

    let (status_feed, reporter) = start_status(&client, &cfg)?;

    let committer = commit_thread::Committer::spawn(Arc::clone(&consumer), answers_tx)
        .map_err(|e| RuntimeError::Internal(e.to_string()))?;
    let end_offsets =
        end_offsets::EndOffsets::spawn(Arc::clone(&consumer), Arc::clone(&broker_offsets))
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
    let coordinator = Coordinator::new(
        consumer,
        committer,
        cfg.worker.clone(),
        cfg.decode.clone(),
        cfg.transactions.clone(),
        lanes,
        broker_offsets,
        Arc::clone(&health),
        stop,
        Some(status_feed),
        end_offsets,
        cfg.registry.clone(),
    );
    coordinator.run(poll_rx, writer_events_rx, shutdown).await;
    // The last report (stopped) goes out before the process ends.
    if tokio::time::timeout(Duration::from_secs(5), reporter)
        .await
        .is_err()
    {
        tracing::warn!("the last status report was not published in time");
    }
    // The coordinator is done and has committed what is durable: anything
    // the writers still hold was abandoned and will be replayed by the
    // partitions' next owner.
    for writer in writers {
        writer.abort();
    }
    let _ = tokio::task::spawn_blocking(move || poll_thread.join()).await;
    tracing::info!("consumer closed");
    Ok(())
}

/// Starts the reporter task: it creates the status topic if asked to, then
/// publishes the newest report the coordinator hands it, and ends after the
/// last one once the coordinator is gone. Reports are for operators, not
/// for the data path: a status topic that cannot be created or written is
/// logged, and the worker goes on.
fn start_status(
    client: &ClientConfig,
    cfg: &RuntimeConfig,
) -> Result<(coordinator::StatusFeed, tokio::task::JoinHandle<()>), RuntimeError> {
    let topic = cfg.status.topic(&cfg.kafka.group_id);
    let reporter = status::Reporter::new(client, topic.clone())?;
    let (member, host, pid) = status::identity(cfg.kafka.group_instance_id.as_deref());
    let (tx, mut rx) = tokio::sync::watch::channel(None);
    let create = cfg.status.create_topic.then(|| client.clone());
    let task = tokio::spawn(async move {
        if let Some(client) = create
            && let Err(e) =
                admin::ensure_topic_with(&client, &topic, 1, &[("cleanup.policy", "compact")]).await
        {
            tracing::warn!(%topic, error = %e, "cannot create the status topic; `sinkfleet status` may not see this worker");
        }
        while rx.changed().await.is_ok() {
            let report = rx.borrow_and_update().clone();
            if let Some(report) = report {
                reporter.send(&report).await;
            }
        }
    });
    let base = status::MemberReport {
        member,
        host,
        pid,
        started_at_ms: crate::clock::now_ms(),
        reported_at_ms: 0,
        interval_ms: cfg.status.interval_ms.max(100),
        stopped: false,
        partitions: Vec::new(),
        tables: Vec::new(),
    };
    let feed = coordinator::StatusFeed {
        tx,
        base,
        last: None,
        dirty: true,
        paused: Default::default(),
        tables: 0,
    };
    Ok((feed, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::producer::BaseProducer;

    /// Managed brokers want TLS and SASL. librdkafka refuses these settings
    /// when creating a client if it was built without OpenSSL, so this
    /// fails unless the build supports them; nothing connects.
    #[test]
    fn tls_and_sasl_properties_are_accepted() {
        let cases: [&[(&str, &str)]; 4] = [
            &[("security.protocol", "SSL")],
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", "sinkfleet"),
                ("sasl.password", "secret"),
            ],
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "sinkfleet"),
                ("sasl.password", "secret"),
            ],
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "OAUTHBEARER"),
            ],
        ];
        for properties in cases {
            let cfg = RuntimeConfig {
                kafka: KafkaConfig {
                    brokers: "127.0.0.1:9".into(),
                    group_id: "g".into(),
                    topics: vec!["t".into()],
                    group_instance_id: None,
                    properties: properties
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                },
                worker: WorkerConfig::default(),
                dead_letter: DeadLetterConfig {
                    topic: "dlq".into(),
                    create_topic: false,
                    on_error: config::OnError::Skip,
                    parked_topic: None,
                    resolved_topic: None,
                },
                decode: DecodeOptions::default(),
                transactions: None,
                status: status::StatusConfig::default(),
                registry: None,
            };
            if let Err(e) = consumer_config(&cfg).create::<BaseConsumer>() {
                panic!("consumer with {properties:?}: {e}");
            }
            if let Err(e) = producer_side(&client_config(&cfg.kafka)).create::<BaseProducer>() {
                panic!("producer with {properties:?}: {e}");
            }
        }
    }
}
