//! The streaming loop: pgoutput messages → Debezium events → Kafka, and
//! the one rule that makes it lossless:
//!
//! **The flush LSN confirmed to Postgres only moves past a transaction's
//! commit once Kafka acknowledged every event of that transaction and of
//! every transaction before it.** Commits are queued in order to an
//! "acker" task that awaits their deliveries and hands back `end_lsn`s.
//! Outside a transaction, with nothing unacknowledged, a keepalive's
//! `wal_end` is confirmed too, so a slot on idle tables does not hold WAL.

use crate::config::ConnectorConfig;
use crate::control;
use crate::event::message::{self, LogicalMessage, MessageCodec, PrefixFilter};
use crate::event::{Row, Snapshot, Source, TableCodec, TxOrder};
use crate::headers::{self, ContextHeaders};
use crate::incremental::{Incremental, Signal, Step};
use crate::metrics::{
    PUBLISHER_CONFIRMED_LSN, PUBLISHER_DELIVERY_SECONDS, PUBLISHER_SLOT_LAG_BYTES,
};
use crate::pgoutput::{self, Message};
use crate::producer::EventProducer;
use crate::snapshot::{acknowledged, now_ms};
use crate::transaction::TxMetadata;
use crate::types::registry::TypeRegistry;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use rdkafka::producer::DeliveryFuture;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A heartbeat's key and value. Schemaless JSON as before, unless a part
/// is Avro or JSON Schema: then the envelopes Debezium's heartbeat schemas give
/// (`io.debezium.connector.common.ServerNameKey` / `Heartbeat`), which the
/// producer converts like any record.
pub(crate) fn heartbeat_record(cfg: &ConnectorConfig, ts_ms: i64) -> (String, String) {
    let key = serde_json::json!({ "serverName": cfg.topic_prefix });
    let value = serde_json::json!({ "ts_ms": ts_ms });
    if !(cfg.key_converter.uses_registry() || cfg.value_converter.uses_registry()) {
        return (key.to_string(), value.to_string());
    }
    let key_schema = serde_json::json!({
        "type": "struct", "optional": false,
        "name": "io.debezium.connector.common.ServerNameKey",
        "fields": [{ "type": "string", "optional": false, "field": "serverName" }],
    });
    let value_schema = serde_json::json!({
        "type": "struct", "optional": false,
        "name": "io.debezium.connector.common.Heartbeat",
        "fields": [{ "type": "int64", "optional": false, "field": "ts_ms" }],
    });
    (
        serde_json::json!({ "schema": key_schema, "payload": key }).to_string(),
        serde_json::json!({ "schema": value_schema, "payload": value }).to_string(),
    )
}

/// Microseconds between 1970-01-01 and 2000-01-01 (Postgres' epoch).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Why streaming stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The replication connection failed.
    #[error("replication: {0}")]
    Replication(String),
    /// A message could not be decoded.
    #[error("pgoutput: {0}")]
    Decode(#[from] pgoutput::PgOutputError),
    /// Kafka refused or lost an event: nothing past it is confirmed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A table cannot be published, or the catalog could not be read.
    #[error("{0}")]
    Refused(String),
    /// A value the configured mapping cannot carry: the transaction is
    /// not confirmed, and the publisher stops.
    #[error("{0}")]
    Value(String),
    /// `heartbeat.action.query` failed on the source. Retried like a lost
    /// replication connection: the stream restarts from the confirmed LSN.
    #[error("heartbeat.action.query: {0}")]
    HeartbeatAction(String),
}

/// A committed transaction waiting for its acknowledgements.
struct Pending {
    end_lsn: u64,
    deliveries: Vec<DeliveryFuture>,
    committed_at: Instant,
}

/// Progress of the acker: how many commits are fully acknowledged (a
/// running count: a `watch` keeps only the latest value) and the newest
/// one's `end_lsn`.
#[derive(Debug, Clone, Copy, Default)]
struct Acked {
    commits: u64,
    end_lsn: u64,
}

/// Awaits deliveries in commit order; publishes progress, or the first failure.
async fn acker(
    mut queue: mpsc::UnboundedReceiver<Pending>,
    acked: watch::Sender<Result<Acked, String>>,
) {
    let mut progress = Acked::default();
    while let Some(p) = queue.recv().await {
        for d in p.deliveries {
            if let Err(e) = acknowledged(d).await {
                let _ = acked.send(Err(e));
                return;
            }
        }
        metrics::histogram!(PUBLISHER_DELIVERY_SECONDS)
            .record(p.committed_at.elapsed().as_secs_f64());
        progress.commits += 1;
        progress.end_lsn = p.end_lsn;
        let _ = acked.send(Ok(progress));
    }
}

/// Open transaction.
struct Tx {
    commit_lsn: u64,
    xid: u32,
    /// Commit time, µs since the Unix epoch.
    ts_us: i64,
    /// The replication origin of a replicated transaction (name, LSN).
    origin: Option<(String, u64)>,
    deliveries: Vec<DeliveryFuture>,
    /// With `provide.transaction.metadata`.
    metadata: Option<TxMetadata>,
}

/// Runs until `shutdown` fires or an error occurs; on shutdown, confirms
/// what is acknowledged and waits until the server has it.
pub async fn run(
    mut repl: ReplicationClient,
    pool: PgPool,
    cfg: &ConnectorConfig,
    registry: &mut TypeRegistry,
    producer: &mut EventProducer,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StreamError> {
    let filter = control::TableFilter::new(cfg).map_err(|e| StreamError::Refused(e.to_string()))?;
    tokio::pin!(shutdown);
    let (queue_tx, queue_rx) = mpsc::unbounded_channel();
    let (acked_tx, mut acked_rx) = watch::channel(Ok(Acked::default()));
    let acker = tokio::spawn(acker(queue_rx, acked_tx));
    // By relation OID; `None` for a table the publication covers but the
    // table lists leave out.
    let mut tables: HashMap<u32, Option<TableCodec>> = HashMap::new();
    let context = ContextHeaders::new(cfg);
    let mut tx: Option<Tx> = None;
    let mut messages = Messages::new(cfg)?;
    let mut incremental = Incremental::new(cfg);
    incremental
        .restore(&pool)
        .await
        .map_err(|e| StreamError::Refused(e.to_string()))?;
    // A snapshot resumed from its recorded progress goes on at once.
    incremental
        .next_window(&pool, cfg, registry)
        .await
        .map_err(|e| StreamError::Refused(e.to_string()))?;
    let (mut queued, mut confirmed_groups) = (0u64, 0u64);
    let mut confirmed: u64 = 0;
    let heartbeat_period = cfg.heartbeat_period();
    // Without heartbeats the branch below is off; the interval just exists.
    let mut heartbeat =
        tokio::time::interval(heartbeat_period.unwrap_or(Duration::from_secs(3600)));
    // A slow action query delays the next beat instead of bursting after it.
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lag_tick = tokio::time::interval(Duration::from_secs(5));
    let heartbeat_topic = format!("__debezium-heartbeat.{}", cfg.topic_prefix);
    let transaction_topic = cfg.transaction_topic();
    if cfg.provide_transaction_metadata {
        // One partition: END records keep commit order for consumers.
        producer
            .ensure_topic_with(&transaction_topic, 1)
            .await
            .map_err(StreamError::Kafka)?;
    }

    let result = loop {
        tokio::select! {
            event = repl.recv() => {
                let event = match event {
                    Ok(Some(e)) => e,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(StreamError::Replication(e.to_string())),
                };
                match event {
                    ReplicationEvent::Begin { final_lsn, xid, commit_time_micros } => {
                        let ts_us = commit_time_micros + PG_EPOCH_MICROS;
                        tx = Some(Tx {
                            commit_lsn: final_lsn.as_u64(),
                            xid,
                            ts_us,
                            origin: None,
                            deliveries: Vec::new(),
                            metadata: cfg
                                .provide_transaction_metadata
                                .then(|| TxMetadata::new(xid, final_lsn.as_u64(), ts_us.div_euclid(1000))),
                        });
                    }
                    ReplicationEvent::XLogData { wal_start, data, .. } => {
                        let mut stream = Stream { tables: &mut tables, filter: &filter, registry, context: &context, pool: &pool, cfg, incremental: &mut incremental };
                        if let Err(e) = stream.handle(&data, wal_start.as_u64(), &mut tx, producer).await {
                            break Err(e);
                        }
                    }
                    ReplicationEvent::Commit { end_lsn, .. } => {
                        let mut deliveries = Vec::new();
                        if let Some(t) = tx.take() {
                            deliveries = t.deliveries;
                            // END goes with the transaction's events: the
                            // commit is confirmed once it is acknowledged too.
                            if let Some(m) = t.metadata.filter(|m| !m.is_empty()) {
                                let (key, value) = m.end(cfg.schemas_enable);
                                match producer.send(&transaction_topic, Some(&key), Some(&value)).await {
                                    Ok(d) => deliveries.push(d),
                                    Err(e) => break Err(StreamError::Kafka(e)),
                                }
                            }
                        }
                        queued += 1;
                        let _ = queue_tx.send(Pending { end_lsn: end_lsn.as_u64(), deliveries, committed_at: Instant::now() });
                        // A chunk's close or a signal: the next incremental
                        // snapshot window may open.
                        incremental.committed(queued);
                        if let Err(e) = incremental.next_window(&pool, cfg, registry).await {
                            break Err(StreamError::Refused(e.to_string()));
                        }
                    }
                    ReplicationEvent::KeepAlive { wal_end, .. } => {
                        // Everything committed up to wal_end was sent before
                        // this keepalive; if all of it is acknowledged, the
                        // slot may advance (idle tables, unpublished writes).
                        if tx.is_none() && queued == confirmed_groups && wal_end.as_u64() > confirmed {
                            confirmed = wal_end.as_u64();
                            repl.update_applied_lsn(wal_end);
                            metrics::gauge!(PUBLISHER_CONFIRMED_LSN).set(confirmed as f64);
                        }
                    }
                    ReplicationEvent::Message { transactional, lsn, prefix, content } => {
                        if !messages.filter.captures(&prefix) {
                            continue;
                        }
                        let message = LogicalMessage { transactional, lsn: lsn.as_u64(), prefix: &prefix, content: &content };
                        let sent = messages.publish(producer, cfg, tx.as_mut(), &message).await;
                        match sent {
                            // Part of its transaction: confirmed with its commit.
                            Ok(None) => {}
                            // On its own: confirmed once acknowledged, as a
                            // transaction of one event ending at its LSN.
                            Ok(Some(delivery)) => {
                                queued += 1;
                                let _ = queue_tx.send(Pending { end_lsn: lsn.as_u64(), deliveries: vec![delivery], committed_at: Instant::now() });
                            }
                            Err(e) => break Err(e),
                        }
                    }
                    ReplicationEvent::StoppedAt { .. } => break Ok(()),
                }
            }
            changed = acked_rx.changed() => {
                if changed.is_err() { continue; }
                let value = acked_rx.borrow_and_update().clone();
                match value {
                    Ok(Acked { commits, end_lsn: lsn }) => {
                        confirmed_groups = commits;
                        if lsn > confirmed {
                            confirmed = lsn;
                            repl.update_applied_lsn(Lsn::from_u64(lsn));
                            metrics::gauge!(PUBLISHER_CONFIRMED_LSN).set(lsn as f64);
                        }
                        // An incremental snapshot held back by its chunks in
                        // flight (or its done marker) goes on.
                        incremental.acknowledged(confirmed_groups);
                        if let Err(e) = incremental.next_window(&pool, cfg, registry).await {
                            break Err(StreamError::Refused(e.to_string()));
                        }
                    }
                    Err(e) => break Err(StreamError::Kafka(e)),
                }
            }
            _ = heartbeat.tick(), if heartbeat_period.is_some() => {
                // Debezium runs the action query with every heartbeat, so
                // a database whose captured tables are idle still writes
                // WAL the slot reads (and a heartbeat table can carry the
                // time downstream).
                if let Some(query) = &cfg.heartbeat_action_query
                    && let Err(e) = sqlx::raw_sql(query).execute(&pool).await
                {
                    break Err(StreamError::HeartbeatAction(e.to_string()));
                }
                let (key, value) = heartbeat_record(cfg, now_ms());
                if let Err(e) = producer.ensure_topic(&heartbeat_topic).await {
                    tracing::warn!(error = %e, "heartbeat topic");
                } else if let Err(e) = producer.send(&heartbeat_topic, Some(key.as_bytes()), Some(value.as_bytes())).await {
                    tracing::warn!(error = %e, "heartbeat");
                }
            }
            _ = lag_tick.tick() => {
                if let Ok(Some(lag)) = control::slot_lag_bytes(&pool, &cfg.slot_name).await {
                    metrics::gauge!(PUBLISHER_SLOT_LAG_BYTES).set(lag as f64);
                }
            }
            _ = &mut shutdown => break Ok(()),
        }
    };

    // Confirm whatever became acknowledged (bounded wait), then make sure the
    // server received it: shutdown itself sends no final status update.
    drop(queue_tx);
    let deadline = Instant::now() + Duration::from_secs(10);
    while confirmed_groups < queued && Instant::now() < deadline {
        match tokio::time::timeout_at(deadline.into(), acked_rx.changed()).await {
            Ok(Ok(())) => {
                if let Ok(Acked { commits, end_lsn }) = *acked_rx.borrow_and_update() {
                    confirmed_groups = commits;
                    confirmed = confirmed.max(end_lsn);
                    repl.update_applied_lsn(Lsn::from_u64(confirmed));
                } else {
                    break;
                }
            }
            _ => break,
        }
    }
    let metrics = repl.metrics();
    while metrics.last_applied_lsn().as_u64() < confirmed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(confirmed = %Lsn::from_u64(confirmed), "publisher stopping");
    acker.abort();
    let _ = repl.shutdown().await;
    result
}

/// Logical decoding messages: their codec, prefix filter and topic.
struct Messages {
    codec: MessageCodec,
    filter: PrefixFilter,
    topic: String,
    /// The topic was created (on the first message).
    topic_ready: bool,
}

impl Messages {
    fn new(cfg: &ConnectorConfig) -> Result<Self, StreamError> {
        Ok(Messages {
            codec: MessageCodec::new(cfg),
            filter: PrefixFilter::new(cfg).map_err(StreamError::Refused)?,
            topic: message::topic(cfg),
            topic_ready: false,
        })
    }

    /// Sends one message event. A transactional message joins `tx` (its
    /// delivery is confirmed with the commit: `None`); a non-transactional
    /// one stands alone and its delivery is returned.
    async fn publish(
        &mut self,
        producer: &mut EventProducer,
        cfg: &ConnectorConfig,
        tx: Option<&mut Tx>,
        message: &LogicalMessage<'_>,
    ) -> Result<Option<DeliveryFuture>, StreamError> {
        let (lsn, prefix) = (message.lsn, message.prefix);
        if !self.topic_ready {
            producer
                .ensure_topic(&self.topic)
                .await
                .map_err(StreamError::Kafka)?;
            self.topic_ready = true;
        }
        let key = self.codec.key(prefix);
        if !message.transactional {
            let src = Source {
                db: &cfg.dbname,
                commit_lsn: lsn,
                lsn,
                tx_id: None,
                ts_us: crate::event::envelope::now_us(),
                snapshot: Snapshot::False,
                origin: None,
                transaction: None,
            };
            let value = self.codec.value(message, &src);
            let delivery = producer
                .send(&self.topic, Some(&key), Some(&value))
                .await
                .map_err(StreamError::Kafka)?;
            return Ok(Some(delivery));
        }
        let Some(t) = tx else {
            return Err(StreamError::Refused(format!(
                "a transactional logical decoding message (prefix `{prefix}`, LSN {}) arrived outside a transaction",
                control::format_lsn(lsn)
            )));
        };
        let transaction = tx_order(
            &mut t.metadata,
            &mut t.deliveries,
            MESSAGE_COLLECTION,
            producer,
            cfg,
        )
        .await?;
        let src = Source {
            db: &cfg.dbname,
            commit_lsn: t.commit_lsn,
            lsn,
            tx_id: Some(u64::from(t.xid)),
            ts_us: t.ts_us,
            snapshot: Snapshot::False,
            origin: t.origin.as_ref().map(|(name, at)| (name.as_str(), *at)),
            transaction,
        };
        let value = self.codec.value(message, &src);
        let delivery = producer
            .send(&self.topic, Some(&key), Some(&value))
            .await
            .map_err(StreamError::Kafka)?;
        t.deliveries.push(delivery);
        Ok(None)
    }
}

/// With `provide.transaction.metadata`: the next event's place in its
/// transaction (of `collection`), sending the BEGIN record first if it is
/// the transaction's first event; `None` without metadata.
async fn tx_order<'m>(
    metadata: &'m mut Option<TxMetadata>,
    deliveries: &mut Vec<DeliveryFuture>,
    collection: &str,
    producer: &mut EventProducer,
    cfg: &ConnectorConfig,
) -> Result<Option<TxOrder<'m>>, StreamError> {
    let Some(m) = metadata.as_mut() else {
        return Ok(None);
    };
    if m.is_empty() {
        let (key, value) = m.begin(cfg.schemas_enable);
        let begin = producer
            .send(&cfg.transaction_topic(), Some(&key), Some(&value))
            .await
            .map_err(StreamError::Kafka)?;
        deliveries.push(begin);
    }
    Ok(Some(m.next(collection)))
}

/// The data collection transactional messages count under in transaction
/// metadata (Debezium's identifier for them; its END records name each
/// message by a Java object id instead).
const MESSAGE_COLLECTION: &str = "LOGICAL_DECODING_MESSAGE";

/// A key-change header: `__debezium.newkey`/`__debezium.oldkey` and the key.
type KeyHeader = Option<(&'static str, Vec<u8>)>;

/// What one message becomes, before it is encoded: a change event (its
/// table, op, images and key-change header), or a Kafka tombstone.
enum Outgoing<'c> {
    Event {
        codec: &'c TableCodec,
        op: &'static str,
        key: Option<Vec<u8>>,
        before: Option<Row>,
        after: Option<Row>,
        header: KeyHeader,
    },
    Tombstone {
        codec: &'c TableCodec,
        key: Vec<u8>,
        header: KeyHeader,
    },
}

/// What handling a message needs of the stream's state.
struct Stream<'a> {
    /// By relation OID; `None` for a table the publication covers but the
    /// table lists leave out.
    tables: &'a mut HashMap<u32, Option<TableCodec>>,
    filter: &'a control::TableFilter,
    registry: &'a mut TypeRegistry,
    context: &'a ContextHeaders,
    pool: &'a PgPool,
    cfg: &'a ConnectorConfig,
    incremental: &'a mut Incremental,
}

impl Stream<'_> {
    /// A Relation message (a table's first change in this session, or a
    /// schema change): the table's codec, from its shape and the catalog.
    async fn relation(
        &mut self,
        rel: &pgoutput::Relation,
        producer: &mut EventProducer,
    ) -> Result<(), StreamError> {
        let names = rel.columns.iter().map(|c| c.name.clone()).collect();
        let signal = self
            .incremental
            .relation(rel.oid, &rel.namespace, &rel.name, names);
        if !self.filter.captures(&rel.namespace, &rel.name) {
            if signal {
                tracing::info!(table = %format!("{}.{}", rel.namespace, rel.name), "signal table");
            }
            // The publication covers more than the table lists (an
            // `all_tables` or hand-made publication): its changes are not
            // published, and its shape (even without a key) is none of
            // this publisher's business.
            self.tables.insert(rel.oid, None);
            return Ok(());
        }
        let refused = |e: control::ControlError| StreamError::Refused(e.to_string());
        // A type created after the registry was read (an enum, a domain).
        if rel
            .columns
            .iter()
            .any(|c| self.registry.get(c.type_oid).is_none())
        {
            *self.registry = TypeRegistry::load(self.pool)
                .await
                .map_err(|e| StreamError::Refused(format!("reading the source's types: {e}")))?;
        }
        let facts = control::column_facts(self.pool, rel.oid)
            .await
            .map_err(refused)?;
        let key = control::primary_key(self.pool, rel.oid)
            .await
            .map_err(refused)?;
        let codec = TableCodec::new(rel, &facts, &key, self.cfg, self.registry)
            .map_err(|e| StreamError::Refused(e.to_string()))?;
        producer
            .ensure_topic(&codec.topic)
            .await
            .map_err(StreamError::Kafka)?;
        self.tables.insert(rel.oid, Some(codec));
        Ok(())
    }

    /// A signal-table insert: the incremental snapshot acts on it; a
    /// window that closes publishes its chunk with this transaction.
    async fn signal(
        &mut self,
        signal: &Signal,
        lsn: u64,
        tx: &mut Option<Tx>,
        producer: &mut EventProducer,
    ) -> Result<(), StreamError> {
        let step = self
            .incremental
            .on_signal(signal, self.pool)
            .await
            .map_err(|e| StreamError::Refused(e.to_string()))?;
        let Step::Publish(codec, rows) = step else {
            return Ok(());
        };
        let Some(t) = tx.as_mut() else {
            return Err(StreamError::Refused(
                "a signal arrived outside a transaction".into(),
            ));
        };
        producer
            .ensure_topic(&codec.topic)
            .await
            .map_err(StreamError::Kafka)?;
        let src = Source {
            db: &self.cfg.dbname,
            commit_lsn: t.commit_lsn,
            lsn,
            tx_id: Some(u64::from(t.xid)),
            ts_us: t.ts_us,
            snapshot: Snapshot::Incremental,
            origin: None,
            transaction: None,
        };
        for row in &rows {
            let key = codec.key(row);
            let value = codec.value("r", None, Some(row), &src);
            let delivery = producer
                .send_with(
                    &codec.topic,
                    Some(&key),
                    Some(&value),
                    self.context.with(None),
                )
                .await
                .map_err(StreamError::Kafka)?;
            t.deliveries.push(delivery);
        }
        Ok(())
    }

    /// Handles one pgoutput message inside the stream.
    async fn handle(
        &mut self,
        data: &[u8],
        lsn: u64,
        tx: &mut Option<Tx>,
        producer: &mut EventProducer,
    ) -> Result<(), StreamError> {
        let message = pgoutput::decode(data)?;
        let (op, relation_id) = match &message {
            Message::Relation(rel) => return self.relation(rel, producer).await,
            Message::Origin { lsn, name } => {
                if let Some(t) = tx.as_mut() {
                    t.origin = Some((name.clone(), *lsn));
                }
                return Ok(());
            }
            Message::Insert { relation, .. } => ('c', *relation),
            Message::Update { relation, .. } => ('u', *relation),
            Message::Delete { relation, .. } => ('d', *relation),
            Message::Truncate { .. } => ('t', 0),
            _ => return Ok(()),
        };
        if let Message::Insert { relation, new } = &message
            && self.incremental.is_signal(*relation)
            && let Some(signal) = self.incremental.signal(new)
        {
            self.signal(&signal, lsn, tx, producer).await?;
        }
        // Skipped operations are not published, nor counted in the
        // transaction's metadata (as Debezium's dispatcher skips them).
        if self.cfg.skipped_operations.contains(&op) {
            return Ok(());
        }
        let tables = &*self.tables;
        let captured = |oid: u32| !matches!(tables.get(&oid), Some(None));
        if op != 't' && !captured(relation_id) {
            return Ok(());
        }
        let Some(t) = tx.as_mut() else {
            return Err(StreamError::Refused(
                "a change arrived outside a transaction".into(),
            ));
        };
        let src = Source {
            db: &self.cfg.dbname,
            commit_lsn: t.commit_lsn,
            lsn,
            tx_id: Some(t.xid as u64),
            ts_us: t.ts_us,
            snapshot: Snapshot::False,
            origin: t.origin.as_ref().map(|(name, at)| (name.as_str(), *at)),
            transaction: None,
        };
        let codec = |oid: u32| {
            tables.get(&oid).and_then(Option::as_ref).ok_or_else(|| {
                StreamError::Refused(format!("no Relation seen for table oid {oid}"))
            })
        };
        let xid = t.xid;
        let unencodable = |e: crate::event::ValueError| {
            StreamError::Value(format!(
                "{e} (LSN {}, transaction {xid}); nothing of this transaction is confirmed",
                control::format_lsn(lsn)
            ))
        };
        let tombstones = self.cfg.tombstones_on_delete;
        let mut out: Vec<Outgoing> = Vec::new();
        match message {
            Message::Insert { new, .. } => {
                let c = codec(relation_id)?;
                let after = c.row(&new).map_err(unencodable)?;
                out.push(Outgoing::Event {
                    codec: c,
                    op: "c",
                    key: Some(c.key(&after)),
                    before: None,
                    after: Some(after),
                    header: None,
                });
            }
            Message::Update { old, new, .. } => {
                let c = codec(relation_id)?;
                let after = c.row(&new).map_err(unencodable)?;
                let before = old.map(|o| c.row(&o)).transpose().map_err(unencodable)?;
                match before {
                    // The key changed: a delete of the old key (and its
                    // tombstone) naming the new key, then a create of the
                    // new one naming the old, as Debezium does.
                    Some(b) if !c.same_key(&b, &after) => {
                        let old_key = c.key(&b);
                        let (new_header, old_header) = (c.key_header(&after), c.key_header(&b));
                        out.push(Outgoing::Event {
                            codec: c,
                            op: "d",
                            key: Some(old_key.clone()),
                            before: Some(b),
                            after: None,
                            header: Some((headers::NEW_KEY, new_header.clone())),
                        });
                        if tombstones {
                            out.push(Outgoing::Tombstone {
                                codec: c,
                                key: old_key,
                                header: Some((headers::NEW_KEY, new_header)),
                            });
                        }
                        out.push(Outgoing::Event {
                            codec: c,
                            op: "c",
                            key: Some(c.key(&after)),
                            before: None,
                            after: Some(after),
                            header: Some((headers::OLD_KEY, old_header)),
                        });
                    }
                    before => out.push(Outgoing::Event {
                        codec: c,
                        op: "u",
                        key: Some(c.key(&after)),
                        before,
                        after: Some(after),
                        header: None,
                    }),
                }
            }
            Message::Delete { old, .. } => {
                let c = codec(relation_id)?;
                let before = c.row(&old).map_err(unencodable)?;
                let key = c.key(&before);
                out.push(Outgoing::Event {
                    codec: c,
                    op: "d",
                    key: Some(key.clone()),
                    before: Some(before),
                    after: None,
                    header: None,
                });
                if tombstones {
                    out.push(Outgoing::Tombstone {
                        codec: c,
                        key,
                        header: None,
                    });
                }
            }
            Message::Truncate { relations, .. } => {
                for oid in relations.into_iter().filter(|&oid| captured(oid)) {
                    out.push(Outgoing::Event {
                        codec: codec(oid)?,
                        op: "t",
                        key: None,
                        before: None,
                        after: None,
                        header: None,
                    });
                }
            }
            _ => {}
        }
        for outgoing in &out {
            if let Outgoing::Event {
                codec: c,
                op,
                before,
                after,
                ..
            } = outgoing
                && self.incremental.watching(&c.schema, &c.table)
            {
                if *op == "t" {
                    self.incremental.touched(&c.schema, &c.table, None);
                }
                for image in [before, after].into_iter().flatten() {
                    let identity = c.key_identity(image);
                    self.incremental
                        .touched(&c.schema, &c.table, Some(&identity));
                }
            }
        }
        for outgoing in out {
            let (topic, key, value, header) = match outgoing {
                Outgoing::Event {
                    codec: c,
                    op,
                    key,
                    before,
                    after,
                    header,
                } => {
                    let transaction = tx_order(
                        &mut t.metadata,
                        &mut t.deliveries,
                        &c.collection,
                        producer,
                        self.cfg,
                    )
                    .await?;
                    let src = Source { transaction, ..src };
                    let value = c.value(op, before.as_ref(), after.as_ref(), &src);
                    (&c.topic, key, Some(value), header)
                }
                Outgoing::Tombstone {
                    codec: c,
                    key,
                    header,
                } => (&c.topic, Some(key), None, header),
            };
            let record_headers = self
                .context
                .with(header.as_ref().map(|(k, v)| (*k, v.as_slice())));
            let delivery = producer
                .send_with(topic, key.as_deref(), value.as_deref(), record_headers)
                .await
                .map_err(StreamError::Kafka)?;
            t.deliveries.push(delivery);
        }
        Ok(())
    }
}
