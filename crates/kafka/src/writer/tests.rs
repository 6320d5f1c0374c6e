//! Writer unit tests: a revocation between retries, and durable offsets folded into ranges.

use super::*;
use crate::config::WorkerConfig;
use sinkfleet_core::PartitionId;
use sinkfleet_core::debezium::{DecodeOptions, Decoder};

/// Fails its first writes (retryable), then records what it is given.
#[derive(Default)]
struct FlakySink {
    failures_left: u32,
    written: Vec<Position>,
    revoked: Vec<PartitionId>,
    /// Sent when a write fails: a revocation arriving during the retries.
    revoke_on_failure: Option<(mpsc::UnboundedSender<Vec<PartitionId>>, PartitionId)>,
}

impl Sink for FlakySink {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Durability, SinkError> {
        if self.failures_left > 0 {
            self.failures_left -= 1;
            if let Some((tx, partition)) = self.revoke_on_failure.take() {
                tx.send(vec![partition]).expect("writer listens");
            }
            return Err(SinkError::Retryable("target down".into()));
        }
        self.written
            .extend(batch.iter().map(|r| r.position.clone()));
        Ok(Durability::Durable)
    }

    async fn flush(&mut self, _mode: FlushMode) -> Result<Vec<DurableRange>, SinkError> {
        Ok(Vec::new())
    }

    async fn revoke(&mut self, partitions: &[PartitionId]) {
        self.revoked.extend_from_slice(partitions);
    }
}

fn item(decoder: &mut Decoder, topic: &Arc<str>, partition: i32, offset: i64) -> Item {
    let key = format!(r#"{{"id":{offset}}}"#).into_bytes();
    let value = format!(
        r#"{{"op":"c","source":{{"schema":"s","table":"t","lsn":{}}},"after":{{"id":{offset}}}}}"#,
        offset + 1
    )
    .into_bytes();
    let change = decoder
        .decode(Some(&key), Some(&value), offset)
        .expect("decodes")
        .expect("a change");
    let position = Position {
        topic: Arc::clone(topic),
        partition,
        offset,
    };
    Item {
        covers_from: offset,
        position: position.clone(),
        key: Some(key),
        value: Some(value),
        replayed_offset: None,
        payload: Payload::Change(SinkRecord { position, change }),
        timestamp_ms: None,
        held: 0,
    }
}

/// When a job's partition is revoked.
enum Revoked {
    /// Queued before the job's first attempt.
    Before,
    /// When an attempt fails, before the retry.
    OnFailure,
}

/// Writes `items` into `sink` as a job whose partition `revoked` is
/// revoked `when`; retries wait 1-2 ms.
async fn job_revoking(
    sink: &mut FlakySink,
    revoked: PartitionId,
    when: Revoked,
    items: Vec<Item>,
) -> Vec<DurableRange> {
    let cfg = WorkerConfig {
        retry_initial_ms: 1,
        retry_max_ms: 2,
        ..WorkerConfig::default()
    };
    let dead_letters =
        DeadLetterProducer::new(&rdkafka::ClientConfig::new(), "dlq".into()).expect("producer");
    let limits = Limits::new(None);
    let (events, _events_rx) = mpsc::unbounded_channel();
    let reporter = Reporter {
        lane: 0,
        events: &events,
    };
    let ctx = Context {
        dead_letters: &dead_letters,
        parking: None,
        backoff: Backoff::from_config(&cfg),
        limits: &limits,
        reporter: &reporter,
        name: "flaky",
    };
    let (revoke_tx, revoke_rx) = mpsc::unbounded_channel();
    let mut revocations = Revocations::new(revoke_rx);
    match when {
        Revoked::Before => revoke_tx.send(vec![revoked]).expect("writer listens"),
        Revoked::OnFailure => sink.revoke_on_failure = Some((revoke_tx, revoked)),
    }
    write_job(sink, &mut revocations, &ctx, items).await
}

/// A partition revoked while its write is being retried: the retry
/// writes only the partitions still owned, reports only them durable,
/// and the sink hears of the revocation before that retry.
#[tokio::test]
async fn a_revocation_during_retries_drops_the_partition_from_the_job() {
    let topic: Arc<str> = Arc::from("t");
    let mut decoder = Decoder::new(DecodeOptions::default());
    let items: Vec<Item> = (0..4)
        .map(|i| item(&mut decoder, &topic, i % 2, i64::from(i)))
        .collect();
    let mut sink = FlakySink {
        failures_left: 2,
        ..FlakySink::default()
    };

    let durable = job_revoking(
        &mut sink,
        (Arc::clone(&topic), 0),
        Revoked::OnFailure,
        items,
    )
    .await;

    assert_eq!(sink.revoked, vec![(Arc::clone(&topic), 0)]);
    let written: Vec<(i32, i64)> = sink
        .written
        .iter()
        .map(|p| (p.partition, p.offset))
        .collect();
    assert_eq!(written, vec![(1, 1), (1, 3)]);
    let durable: Vec<(i32, i64, i64)> = durable
        .iter()
        .map(|r| (r.partition, r.first, r.last))
        .collect();
    assert_eq!(durable, vec![(1, 1, 1), (1, 3, 3)]);
}

/// A partition revoked while its job waited (on the rate limit, or behind
/// a slow write) and the drain gave up on it: the revocation is already
/// queued when the first attempt starts, and that attempt must not write
/// the partition, whose new owner may be writing it already. Found by the
/// Parquet crash storm: a file uploaded after the revoke held records the
/// new owner stored too.
#[tokio::test]
async fn a_revocation_heard_before_the_first_attempt_drops_the_partition() {
    let topic: Arc<str> = Arc::from("t");
    let mut decoder = Decoder::new(DecodeOptions::default());
    let items: Vec<Item> = (0..4)
        .map(|i| item(&mut decoder, &topic, i % 2, i64::from(i)))
        .collect();
    let mut sink = FlakySink::default();

    let durable = job_revoking(&mut sink, (Arc::clone(&topic), 1), Revoked::Before, items).await;

    assert_eq!(sink.revoked, vec![(Arc::clone(&topic), 1)]);
    let written: Vec<(i32, i64)> = sink
        .written
        .iter()
        .map(|p| (p.partition, p.offset))
        .collect();
    assert_eq!(written, vec![(0, 0), (0, 2)]);
    let durable: Vec<(i32, i64, i64)> = durable
        .iter()
        .map(|r| (r.partition, r.first, r.last))
        .collect();
    assert_eq!(durable, vec![(0, 0, 0), (0, 2, 2)]);
}

#[test]
fn ranges_merge_contiguous_offsets_per_partition() {
    let t: Arc<str> = Arc::from("t");
    let p = |partition, offset| Position {
        topic: t.clone(),
        partition,
        offset,
    };
    let ranges = to_ranges(vec![
        (p(0, 5), 5),
        (p(0, 3), 2),
        (p(1, 9), 9),
        (p(0, 4), 4),
        (p(0, 8), 8),
    ]);
    assert_eq!(ranges.len(), 3);
    assert_eq!((ranges[0].first, ranges[0].last), (2, 5));
    assert_eq!((ranges[1].first, ranges[1].last), (8, 8));
    assert_eq!(ranges[2].partition, 1);
}
