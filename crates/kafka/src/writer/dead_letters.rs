//! Dead letters and parked keys within a job: sending a record to the
//! dead-letter topic, parking its key, and taking a parked key's later
//! records out of a slice before it is written.

use super::{Context, Reporter};
use crate::dead_letter::{DeadLetter, DeadLetterProducer};
use crate::metrics::{RECORDS_DEAD_LETTERED_TOTAL, RECORDS_PARKED_TOTAL};
use crate::parking::{Parking, Verdict};
use crate::retry::Backoff;
use sinkfleet_core::{ErrorClass, Position, SinkRecord};
use std::future::Future;

/// What a change of a job keeps besides the decoded record: what it covers
/// and its raw bytes, to dead-letter it later.
pub(super) struct Origin {
    /// Lowest offset it accounts for.
    pub covers_from: i64,
    /// Raw key.
    pub key: Option<Vec<u8>>,
    /// Raw value.
    pub value: Option<Vec<u8>>,
    /// Its original offset, when it is a replay.
    pub replayed_offset: Option<i64>,
}

/// Retries `send` until the broker acknowledges it: the offset of the
/// record it is about may only advance after that.
async fn until_acked<F, Fut>(what: &str, backoff: &Backoff, reporter: &Reporter<'_>, mut send: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), rdkafka::error::KafkaError>>,
{
    let mut attempt = 0;
    while let Err(e) = send().await {
        attempt += 1;
        tracing::warn!(error = %e, attempt, "{what} produce failed; retrying");
        reporter.report(super::WriterEventKind::Retrying {
            attempt,
            error: format!("{what}: {e}"),
        });
        tokio::time::sleep(backoff.delay(attempt)).await;
    }
}

/// Sends a dead letter, retrying until the broker acknowledges it.
pub(super) async fn send_dead_letter(
    producer: &DeadLetterProducer,
    letter: &DeadLetter,
    backoff: &Backoff,
    reporter: &Reporter<'_>,
) {
    until_acked("dead-letter topic", backoff, reporter, || {
        producer.send(letter)
    })
    .await;
    metrics::counter!(RECORDS_DEAD_LETTERED_TOTAL,
        "topic" => letter.position.topic.to_string(), "class" => letter.class.as_str())
    .increment(1);
}

/// Dead-letters `letter` and, with `park_key`, parks its key from its
/// offset on (acknowledged before the offset may advance).
pub(super) async fn dead_letter(ctx: &Context<'_>, letter: &DeadLetter) {
    send_dead_letter(ctx.dead_letters, letter, &ctx.backoff, ctx.reporter).await;
    if let Some(parking) = ctx.parking {
        let reason = format!("{}: {}", letter.class.as_str(), letter.message);
        until_acked("parked-keys topic", &ctx.backoff, ctx.reporter, || {
            parking.park(&letter.position, letter.key.as_deref(), &reason)
        })
        .await;
    }
}

/// A discard marker reached its partition: if it stands for the record that
/// parked its key, the key is released there (acknowledged before the
/// marker's offset may advance); the marker itself applies nothing.
pub(super) async fn release_discarded(ctx: &Context<'_>, parking: &Parking, item: &super::Item) {
    let Some(key) = item.key.as_deref() else {
        return;
    };
    if parking.verdict(&item.position, Some(key), item.replayed_offset) == Verdict::Release {
        until_acked("parked-keys topic", &ctx.backoff, ctx.reporter, || {
            parking.release(&item.position, key)
        })
        .await;
        tracing::info!(position = ?item.position, discarded = ?item.replayed_offset,
            key = %String::from_utf8_lossy(key), "the record that parked this key was discarded");
    }
}

/// Where [`take_parked`] records what it took.
pub(super) struct Taken<'a> {
    /// Per change of the job: dead-lettered as parked, never to be written.
    pub parked: &'a mut [bool],
    /// The job's done records: `(position, covers_from)`.
    pub durable: &'a mut Vec<(Position, i64)>,
}

/// Takes the records of parked keys out of `indices` (changes of a slice
/// about to be written, in stream order) and dead-letters them, marked as
/// parked, into `taken`; releases a key whose parking record arrives
/// replayed.
pub(super) async fn take_parked(
    ctx: &Context<'_>,
    parking: &Parking,
    changes: &[SinkRecord],
    origins: &[Origin],
    indices: &mut Vec<usize>,
    taken: Taken<'_>,
) {
    let mut kept = Vec::with_capacity(indices.len());
    for &i in indices.iter() {
        let (record, origin) = (&changes[i], &origins[i]);
        let key = origin.key.as_deref();
        match parking.verdict(&record.position, key, origin.replayed_offset) {
            Verdict::Apply => kept.push(i),
            Verdict::Release => {
                if let Some(key) = key {
                    until_acked("parked-keys topic", &ctx.backoff, ctx.reporter, || {
                        parking.release(&record.position, key)
                    })
                    .await;
                }
                kept.push(i);
            }
            Verdict::Park(why) => {
                let letter = DeadLetter {
                    position: record.position.clone(),
                    key: origin.key.clone(),
                    value: origin.value.clone(),
                    class: ErrorClass::Parked,
                    message: format!("key parked since offset {} ({})", why.since, why.reason),
                    parked_since: Some(why.since),
                };
                send_dead_letter(ctx.dead_letters, &letter, &ctx.backoff, ctx.reporter).await;
                metrics::counter!(RECORDS_PARKED_TOTAL,
                    "topic" => record.position.topic.to_string())
                .increment(1);
                taken.parked[i] = true;
                taken
                    .durable
                    .push((record.position.clone(), origin.covers_from));
            }
        }
    }
    *indices = kept;
}
