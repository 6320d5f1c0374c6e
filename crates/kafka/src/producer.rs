//! The producer behind dead letters, parked keys, resolutions and status
//! reports: idle, it costs nothing.
//!
//! rust-rdkafka's `FutureProducer` serves delivery reports on a thread
//! that polls with 100 ms deadlines and hands librdkafka each remaining
//! wait rounded *down* to whole milliseconds, so the last fraction of a
//! millisecond of every deadline is a busy loop of non-blocking polls (the
//! rounding librdkafka fixed in its own main loop,
//! confluentinc/librdkafka#4671). An idle worker's two producers took
//! 1.6% of a core that way. Here the delivery thread serves what is ready
//! without a deadline loop: it sleeps while nothing is in flight (waking
//! once a second for librdkafka's other events, and at once when a record
//! is sent), and polls every [`IN_FLIGHT_POLL`] while a record awaits its
//! acknowledgement.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::Producer as _;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, FutureRecord, ProducerContext};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often the delivery thread polls while a record is in flight.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(2);
/// How long it sleeps while nothing is in flight.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Events served per wake-up at most (one delivery report event carries
/// the acknowledgements of a whole produce response).
const EVENTS_PER_WAKE: usize = 64;
/// How long a send waits between attempts while librdkafka's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(50);

/// Completes each record's delivery future from librdkafka's report.
struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<oneshot::Sender<Result<Delivered, KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok(Delivered {
                partition: message.partition(),
                offset: message.offset(),
            }),
            Err((e, _)) => Err(e.clone()),
        };
        // The sender may have stopped waiting (cancelled): nothing to tell.
        let _ = reply.send(outcome);
    }
}

/// Where the broker stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A producer whose `send` resolves when the broker acknowledged the
/// record (with the config's `acks`), or failed to.
pub struct Producer {
    inner: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
    deliveries: Option<JoinHandle<()>>,
}

impl Producer {
    /// Creates the producer from `config` (no connection is made until
    /// the first send) and starts its delivery thread.
    pub fn new(config: &ClientConfig) -> Result<Self, KafkaError> {
        let inner: Arc<BaseProducer<Deliveries>> =
            Arc::new(config.create_with_context(Deliveries)?);
        let stop = Arc::new(AtomicBool::new(false));
        let deliveries = {
            let inner = Arc::clone(&inner);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-deliveries".into())
                .spawn(move || serve_deliveries(&inner, &stop))
                .map_err(|e| KafkaError::ClientCreation(format!("delivery thread: {e}")))?
        };
        Ok(Producer {
            inner,
            stop,
            deliveries: Some(deliveries),
        })
    }

    /// Sends `record` and waits for its acknowledgement. While librdkafka's
    /// queue is full, retries for up to `queue_timeout` (as
    /// `FutureProducer::send` does); delivery itself is bounded by
    /// `message.timeout.ms`.
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> Result<Delivered, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let give_up = Instant::now() + queue_timeout;
        loop {
            let (reply, acknowledged) = oneshot::channel();
            let mut base = BaseRecord::with_opaque_to(record.topic, Box::new(reply));
            base.partition = record.partition;
            base.payload = record.payload;
            base.key = record.key;
            base.timestamp = record.timestamp;
            base.headers = record.headers.clone();
            match self.inner.send(base) {
                Ok(()) => {
                    self.wake_deliveries();
                    return acknowledged.await.unwrap_or(Err(KafkaError::Canceled));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if Instant::now() < give_up =>
                {
                    self.wake_deliveries();
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn wake_deliveries(&self) {
        if let Some(thread) = &self.deliveries {
            thread.thread().unpark();
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.deliveries.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The delivery thread: serves ready events, then sleeps (see the module
/// docs), until `stop`. Records still in flight then are failed by the
/// producer's drop (librdkafka purges them and reports each).
fn serve_deliveries(producer: &BaseProducer<Deliveries>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        // `poll(ZERO)` takes at most one ready event and never waits; stop
        // when one served no acknowledgement.
        let mut in_flight = producer.in_flight_count();
        for _ in 0..EVENTS_PER_WAKE {
            producer.poll(Duration::ZERO);
            let now = producer.in_flight_count();
            if now == 0 || now == in_flight {
                break;
            }
            in_flight = now;
        }
        let nap = if producer.in_flight_count() > 0 {
            IN_FLIGHT_POLL
        } else {
            IDLE_POLL
        };
        std::thread::park_timeout(nap);
    }
}
