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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
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

/// A record's acknowledgement: resolves when the broker stored it (with
/// the config's `acks`) or refused it; [`KafkaError::Canceled`] if the
/// producer was dropped first.
pub struct Delivery(oneshot::Receiver<Result<Delivered, KafkaError>>);

impl Future for Delivery {
    type Output = Result<Delivered, KafkaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(KafkaError::Canceled)))
    }
}

/// A producer whose `send` resolves when the broker acknowledged the
/// record (with the config's `acks`), or failed to.
pub struct Producer {
    inner: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
    /// The delivery thread is in its long sleep: a send must wake it.
    idle: Arc<AtomicBool>,
    deliveries: Option<JoinHandle<()>>,
}

impl Producer {
    /// Creates the producer from `config` (no connection is made until
    /// the first send) and starts its delivery thread.
    pub fn new(config: &ClientConfig) -> Result<Self, KafkaError> {
        let inner: Arc<BaseProducer<Deliveries>> =
            Arc::new(config.create_with_context(Deliveries)?);
        let stop = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let deliveries = {
            let inner = Arc::clone(&inner);
            let (stop, idle) = (Arc::clone(&stop), Arc::clone(&idle));
            std::thread::Builder::new()
                .name("kafka-deliveries".into())
                .spawn(move || serve_deliveries(&inner, &stop, &idle))
                .map_err(|e| KafkaError::ClientCreation(format!("delivery thread: {e}")))?
        };
        Ok(Producer {
            inner,
            stop,
            idle,
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
            match self.enqueue(&record) {
                Ok(delivery) => return delivery.await,
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
                    if Instant::now() < give_up =>
                {
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands `record` to librdkafka without waiting for the broker: one
    /// attempt, so a full local queue is the caller's to wait out
    /// (`QueueFull`). The delivery resolves with the acknowledgement.
    pub fn enqueue<K, P>(&self, record: &FutureRecord<'_, K, P>) -> Result<Delivery, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (reply, acknowledged) = oneshot::channel();
        let mut base = BaseRecord::with_opaque_to(record.topic, Box::new(reply));
        base.partition = record.partition;
        base.payload = record.payload;
        base.key = record.key;
        base.timestamp = record.timestamp;
        base.headers = record.headers.clone();
        let sent = self.inner.send(base).map_err(|(e, _)| e);
        // While records are in flight the thread polls on its own; from
        // its long sleep it is woken (on a full queue too: serving
        // reports is what drains it).
        if self.idle.swap(false, Ordering::SeqCst) {
            self.wake_deliveries();
        }
        sent.map(|()| Delivery(acknowledged))
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
fn serve_deliveries(producer: &BaseProducer<Deliveries>, stop: &AtomicBool, idle: &AtomicBool) {
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
        if producer.in_flight_count() > 0 {
            std::thread::park_timeout(IN_FLIGHT_POLL);
            continue;
        }
        // Say so before looking again: a record sent after that look
        // finds the flag and wakes this thread.
        idle.store(true, Ordering::SeqCst);
        if producer.in_flight_count() > 0 {
            idle.store(false, Ordering::SeqCst);
            continue;
        }
        std::thread::park_timeout(IDLE_POLL);
        idle.store(false, Ordering::SeqCst);
    }
}
