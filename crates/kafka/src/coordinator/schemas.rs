//! Records that name a registry schema the decoder does not hold yet.
//!
//! Such a record, and every record behind it in its partition (order is
//! the contract), waits in `pending` as [`Payload::AwaitingSchema`] while
//! the schema is fetched in the background; the dispatch never takes it.
//! When the answer comes, the waiting records are decoded in place. A
//! registry that cannot be reached is an outage: the fetch is retried with
//! backoff, the waiting partitions pause ([`PauseCause::Registry`]) and
//! resume when it answers, and nothing is dead-lettered for it. An id the
//! registry says does not exist is an answer: its records are dead-lettered
//! with that reason.
//!
//! [`PauseCause::Registry`]: crate::partition::PauseCause::Registry

use super::Coordinator;
use crate::dead_letter::DeadLetter;
use crate::metrics::{RECORDS_AWAITING_SCHEMA, SCHEMA_FETCHES_TOTAL};
use crate::partition::PartitionState;
use crate::retry::Backoff;
use crate::writer::{Item, Payload};
use sinkfleet_core::debezium::{Decoder, RegistrySchema};
use sinkfleet_core::{ErrorClass, SinkRecord};
use sinkfleet_schema_registry::{Outage, RegistryClient};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A registry's answer for one schema id, or the outage that kept it.
pub(crate) type Answer = (u32, Result<RegistrySchema, Outage>);

/// The fetches of one worker.
pub(crate) struct Schemas {
    client: RegistryClient,
    answers: mpsc::UnboundedSender<Answer>,
    /// Ids being fetched (or waiting to be fetched again).
    fetching: HashSet<u32>,
    /// Since when the registry has not answered (`None`: it answers).
    down_since: Option<Instant>,
    /// When an outage was last logged.
    logged: Option<Instant>,
    backoff: Backoff,
    /// Failed fetches in a row (the backoff's attempt).
    failures: u32,
    awaiting: metrics::Gauge,
}

impl Schemas {
    /// `answers` is where fetched schemas are sent (the coordinator's loop).
    pub(crate) fn new(
        client: RegistryClient,
        answers: mpsc::UnboundedSender<Answer>,
        backoff: Backoff,
    ) -> Self {
        Schemas {
            client,
            answers,
            fetching: HashSet::new(),
            down_since: None,
            logged: None,
            backoff,
            failures: 0,
            awaiting: metrics::gauge!(RECORDS_AWAITING_SCHEMA),
        }
    }

    /// True while the registry does not answer.
    pub(crate) fn down(&self) -> bool {
        self.down_since.is_some()
    }

    /// Fetches `id` unless it is being fetched, after `delay`.
    fn fetch(&mut self, id: u32, delay: Duration) {
        if !self.fetching.insert(id) {
            return;
        }
        let client = self.client.clone();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The coordinator is gone when this fails: nothing to tell.
            let _ = answers.send((id, client.schema(id).await));
        });
    }
}

impl Coordinator {
    /// Starts fetching the schemas `ids` (a record just named them).
    pub(super) fn request_schemas(&mut self, ids: Vec<u32>) {
        if let Some(schemas) = self.schemas.as_mut() {
            for id in ids {
                schemas.fetch(id, Duration::ZERO);
            }
        }
    }

    /// Takes the registry's answer for one id: hands a schema to the
    /// decoder and decodes what waited for it, or notes the outage and
    /// asks again after a backoff.
    pub(super) fn on_schema(&mut self, (id, answer): Answer) {
        let Some(schemas) = self.schemas.as_mut() else {
            return;
        };
        schemas.fetching.remove(&id);
        match answer {
            Ok(schema) => {
                let outcome = match schema {
                    RegistrySchema::Found { .. } => "found",
                    RegistrySchema::NotFound => "not_found",
                };
                metrics::counter!(SCHEMA_FETCHES_TOTAL, "outcome" => outcome).increment(1);
                if let Some(since) = schemas.down_since.take() {
                    tracing::info!(
                        registry = schemas.client.url(),
                        after_s = since.elapsed().as_secs(),
                        "schema registry answers again: waiting records continue"
                    );
                    schemas.logged = None;
                }
                schemas.failures = 0;
                self.decoder.add_schema(id, schema);
                self.decode_awaiting();
            }
            Err(outage) => {
                metrics::counter!(SCHEMA_FETCHES_TOTAL, "outcome" => "outage").increment(1);
                schemas.down_since.get_or_insert_with(Instant::now);
                if schemas
                    .logged
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    tracing::warn!(
                        error = %outage,
                        "schema registry unavailable: partitions waiting for a schema are paused, nothing is dead-lettered; retrying"
                    );
                    schemas.logged = Some(Instant::now());
                }
                schemas.failures += 1;
                let delay = schemas.backoff.delay(schemas.failures);
                schemas.fetch(id, delay);
            }
        }
    }

    /// Decodes the waiting records of every partition, in order, up to the
    /// first that still names a schema not held (whose fetch starts).
    fn decode_awaiting(&mut self) {
        let mut missing = Vec::new();
        let mut left = 0;
        for state in self.partitions.values_mut() {
            if state.awaiting_schema > 0 {
                missing.extend(decode_partition(&mut self.decoder, state));
                left += state.awaiting_schema;
            }
        }
        self.request_schemas(missing);
        if let Some(schemas) = &self.schemas {
            schemas.awaiting.set(left as f64);
        }
    }

    /// Counts a record that now waits.
    pub(super) fn count_awaiting(&self) {
        if let Some(schemas) = &self.schemas {
            let n: usize = self.partitions.values().map(|p| p.awaiting_schema).sum();
            schemas.awaiting.set(n as f64);
        }
    }
}

/// Decodes `state`'s waiting records in order; the schema ids the first
/// one still waiting needs.
fn decode_partition(decoder: &mut Decoder, state: &mut PartitionState) -> Vec<u32> {
    for item in state.pending.iter_mut() {
        if !matches!(item.payload, Payload::AwaitingSchema) {
            continue;
        }
        let missing = decoder.missing_schemas(
            &item.position.topic,
            item.key.as_deref(),
            item.value.as_deref(),
        );
        if !missing.is_empty() {
            return missing;
        }
        let before = item.held;
        item.payload = decoded(decoder, item);
        item.held = Item::held_bytes(item.key.as_deref(), item.value.as_deref(), &item.payload);
        state.pending_bytes = state.pending_bytes - before.min(state.pending_bytes) + item.held;
        state.awaiting_schema -= 1;
    }
    Vec::new()
}

/// What to do with a record whose schemas are held: its change, nothing
/// (a tombstone), or a dead letter naming why it cannot be decoded.
pub(super) fn decoded(decoder: &mut Decoder, item: &Item) -> Payload {
    let position = &item.position;
    match decoder.decode_record(
        &position.topic,
        item.key.as_deref(),
        item.value.as_deref(),
        position.offset,
    ) {
        Ok(Some(change)) => Payload::Change(SinkRecord {
            position: position.clone(),
            change,
        }),
        Ok(None) => Payload::Skip,
        Err(e) => Payload::DeadLetter(DeadLetter {
            position: position.clone(),
            key: item.key.clone(),
            value: item.value.clone(),
            class: ErrorClass::Decode,
            message: e.to_string(),
            parked_since: None,
        }),
    }
}
